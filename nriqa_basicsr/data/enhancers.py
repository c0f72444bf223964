"""Enhancers that turn an HR patch into an enhanced ground truth (EGT) of the same size.

An enhancer is a callable ``(BGR uint8 (H, W, 3)) -> BGR uint8 (H, W, 3)`` with a ``name`` and a ``spec``.
:func:`build_enhancer` makes one from a spec string ``kind`` or ``kind:key=value,key=value``:

* classical operators (deterministic; the defaults are the demo data's four operators, in order):
  ``unsharp`` (``sigma`` 1.6, ``amount`` 1.2), ``clahe`` (local contrast on L*: ``clip`` 2.5, ``tiles`` 4),
  ``detail`` (OpenCV edge-preserving detail enhancement: ``sigma_s`` 10, ``sigma_r`` 0.15),
  ``denoise_unsharp`` (non-local means ``h`` 5, ``h_color`` 5, ``template`` 5, ``search`` 15, then unsharp
  ``sigma`` 1.0, ``amount`` 0.6);
* ``model:path=FILE[,mode=auto|x1|downup][,param_key=KEY][,tile=N][,scale=S]`` — any SR / enhancement
  checkpoint whose architecture :func:`nriqa_basicsr.archs.detect.load_network_file` recognises from the
  weights. ``x1`` runs the net on the patch itself (an ×S net's output is brought back to the patch size with
  MATLAB bicubic); ``downup`` runs it on a MATLAB-bicubic ×1/S copy, so the net restores the patch from an LR
  version of it (HGGT's way of making EGTs with SR nets); ``auto`` (default) is ``x1`` for ×1 nets and
  ``downup`` otherwise. A bare ``FILE.pth`` / ``FILE.safetensors`` is short for ``model:path=FILE``.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ['CLASSICAL', 'DEMO_ENHANCERS', 'Enhancer', 'EnhancerError', 'ModelEnhancer', 'build_enhancer',
           'build_enhancers', 'parse_spec']


class EnhancerError(ValueError):
    """An enhancer spec is malformed, names an unknown operator or option, or the enhancer cannot run."""


# ------------------------------------------------------------------------------------------ classical operators
def unsharp(img: np.ndarray, sigma: float = 1.6, amount: float = 1.2) -> np.ndarray:
    """Unsharp masking: ``img + amount · (img − Gaussian(img, sigma))``, clipped and rounded."""
    f = img.astype(np.float32)
    return np.clip(f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma)), 0, 255).round().astype(np.uint8)


def clahe(img: np.ndarray, clip: float = 2.5, tiles: int = 4) -> np.ndarray:
    """Local contrast: CLAHE on the L* channel of CIELAB (colours kept)."""
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def detail(img: np.ndarray, sigma_s: float = 10, sigma_r: float = 0.15) -> np.ndarray:
    """OpenCV's edge-preserving detail enhancement."""
    return cv2.detailEnhance(img, sigma_s=sigma_s, sigma_r=sigma_r)


def denoise_unsharp(img: np.ndarray, h: float = 5, h_color: float = 5, template: int = 5, search: int = 15,
                    sigma: float = 1.0, amount: float = 0.6) -> np.ndarray:
    """Non-local-means denoising, then mild unsharp masking."""
    return unsharp(cv2.fastNlMeansDenoisingColored(img, None, h, h_color, template, search), sigma, amount)


CLASSICAL: dict[str, Callable[..., np.ndarray]] = {
    'unsharp': unsharp, 'clahe': clahe, 'detail': detail, 'denoise_unsharp': denoise_unsharp}
#: The demo data's EGTs 01..04 (strong unsharp mask, local contrast, detail enhancement, denoise + sharpen).
DEMO_ENHANCERS = ('unsharp', 'clahe', 'detail', 'denoise_unsharp')
_INT_OPTIONS = {'tiles', 'template', 'search', 'tile', 'scale'}


def _value(key: str, text: str, spec: str) -> Any:
    if key in _INT_OPTIONS:
        try:
            return int(text)
        except ValueError:
            raise EnhancerError(f'enhancer "{spec}": {key} must be an integer, got "{text}".') from None
    try:
        return float(text)
    except ValueError:
        return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``'kind:key=value,...'`` → ``(kind, {key: value})`` (numbers converted; a bare checkpoint path → model)."""
    spec = spec.strip()
    if spec.lower().endswith(('.pth', '.pt', '.safetensors')) and not spec.startswith('model:'):
        return 'model', {'path': spec}
    kind, _, rest = spec.partition(':')
    options: dict[str, Any] = {}
    if kind == 'model' and rest and '=' not in rest:  # 'model:FILE'
        return 'model', {'path': rest}
    for item in filter(None, (p.strip() for p in rest.split(','))):
        key, eq, text = item.partition('=')
        if not eq or not key:
            raise EnhancerError(f'enhancer "{spec}": "{item}" is not key=value (e.g. unsharp:sigma=1.6,amount=1.2).')
        options[key.strip()] = text.strip() if key.strip() in ('path', 'mode', 'param_key', 'device') else \
            _value(key.strip(), text.strip(), spec)
    return kind, options


class Enhancer:
    """A classical operator with fixed options."""

    def __init__(self, kind: str, options: dict[str, Any], spec: str) -> None:
        import inspect

        fn = CLASSICAL[kind]
        allowed = [p for p in inspect.signature(fn).parameters if p != 'img']
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise EnhancerError(f'enhancer "{spec}": unknown option(s) {unknown}; {kind} takes {allowed}.')
        self.name, self.spec, self._fn, self.options = kind, spec, fn, dict(options)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return self._fn(img, **self.options)

    def __repr__(self) -> str:
        return f'Enhancer({self.spec!r})'


class ModelEnhancer:
    """An SR / enhancement network from a checkpoint file, run at ×1 or on a down-up copy (see module doc)."""

    def __init__(self, path: str, mode: str = 'auto', param_key: str | None = None, tile: int = 0,
                 scale: int | None = None, device: str = 'cpu', spec: str | None = None) -> None:
        self.spec = spec or f'model:path={path}'
        if not osp.isfile(path):
            raise EnhancerError(f'enhancer "{self.spec}": checkpoint {path} not found.')
        if mode not in ('auto', 'x1', 'downup'):
            raise EnhancerError(f'enhancer "{self.spec}": mode must be auto, x1 or downup, got "{mode}".')
        # lazy: the detector pulls in basicsr's arch registry and the model code
        from nriqa_basicsr.archs.detect import load_network_file, network_scale

        self.net, self.network_g = load_network_file(path, param_key=param_key, device=device)
        self.scale = int(scale or network_scale(self.network_g) or self._probe_scale())
        self.mode = mode if mode != 'auto' else ('x1' if self.scale == 1 else 'downup')
        if self.mode == 'downup' and self.scale == 1:
            raise EnhancerError(f'enhancer "{self.spec}": mode downup needs an SR net (scale > 1); this one is x1.')
        self.tile = int(tile)
        self.name = f'{self.network_g["type"]}-{self.mode}'

    def _probe_scale(self) -> int:
        import torch

        with torch.no_grad():
            x = torch.zeros(1, 3, 32, 32, device=next(self.net.parameters()).device)
            out = self.net(x)
        if out.shape[-1] % 32 or out.shape[-2] != out.shape[-1]:
            raise EnhancerError(f'enhancer "{self.spec}": output {tuple(out.shape)} of a 32x32 input is not an '
                                f'integer upscaling; pass scale=S.')
        return out.shape[-1] // 32

    def __call__(self, img: np.ndarray) -> np.ndarray:
        from basicsr.utils.matlab_functions import imresize

        from nriqa_basicsr.inference import upscale_image

        h, w = img.shape[:2]
        if self.mode == 'downup':
            if h % self.scale or w % self.scale:
                raise EnhancerError(f'enhancer "{self.spec}": patch {w}x{h} is not a multiple of the net\'s scale '
                                    f'{self.scale}; pick a patch size divisible by {self.scale}.')
            lr = imresize(img.astype(np.float64) / 255.0, 1 / self.scale)
            lr = np.clip(lr * 255.0, 0, 255).round().astype(np.uint8)
            out = upscale_image(self.net, lr, self.scale, tile=self.tile)
        else:
            out = upscale_image(self.net, img, self.scale, tile=self.tile)
            if self.scale != 1:  # an SR net at x1: back to the patch size
                out = imresize(out.astype(np.float64) / 255.0, 1 / self.scale)
                out = np.clip(out * 255.0, 0, 255).round().astype(np.uint8)
        if out.shape != img.shape:
            raise EnhancerError(f'enhancer "{self.spec}": output {out.shape[1]}x{out.shape[0]} differs from the '
                                f'patch {w}x{h}; check scale= and mode=.')
        return out

    def __repr__(self) -> str:
        return f'ModelEnhancer({self.spec!r}, {self.name}, x{self.scale})'


def build_enhancer(spec: str, device: str = 'cpu') -> Enhancer | ModelEnhancer:
    """One enhancer from its spec string (see the module docstring for the grammar)."""
    kind, options = parse_spec(spec)
    if kind == 'model':
        if 'path' not in options:
            raise EnhancerError(f'enhancer "{spec}": a model enhancer needs path=FILE.')
        allowed = {'path', 'mode', 'param_key', 'tile', 'scale', 'device'}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise EnhancerError(f'enhancer "{spec}": unknown option(s) {unknown}; model takes {sorted(allowed)}.')
        options.setdefault('device', device)
        return ModelEnhancer(spec=spec, **options)
    if kind not in CLASSICAL:
        raise EnhancerError(f'unknown enhancer "{kind}" (in "{spec}"); choose from {sorted(CLASSICAL)} or '
                            f'model:path=FILE.pth.')
    return Enhancer(kind, options, spec)


def build_enhancers(specs: Sequence[str], device: str = 'cpu') -> list[Enhancer | ModelEnhancer]:
    if not specs:
        raise EnhancerError('at least one enhancer is needed (e.g. unsharp clahe detail denoise_unsharp).')
    return [build_enhancer(s, device) for s in specs]
