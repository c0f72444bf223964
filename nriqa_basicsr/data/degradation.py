"""Blind (Real-ESRGAN-style) degradation of the original GT, as HGGT trains.

The CPU part lives in the dataset: :class:`KernelSampler` draws the blur kernels per sample with basicsr's
kernel functions (option names as BasicSR's ``RealESRGANDataset``). The tensor part,
:func:`degrade_realesrgan`, applies blur → resize → noise → JPEG (one or two stages) → final sinc/resize to a
batch on any device, reusing basicsr's ``filter2D``, noise functions and ``DiffJPEG``; the model calls it on
the GPU (as BasicSR's ``RealESRGANModel`` does). :func:`degrade_image` runs both on one image, deterministically
from a seed (for LR files written once, e.g. by ``nriqa_basicsr.data.build_multigt``), with Real-ESRGAN
x4plus's second-order settings (:data:`REALESRGAN_X4PLUS`) unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from basicsr.data.degradations import (
    circular_lowpass_kernel,
    random_add_gaussian_noise_pt,
    random_add_poisson_noise_pt,
    random_mixed_kernels,
)
from basicsr.utils import DiffJPEG
from basicsr.utils.img_process_util import filter2D
from torch.nn import functional as F

from nriqa_basicsr.patches import global_rngs_seeded

__all__ = ['REALESRGAN_X4PLUS', 'KernelSampler', 'degrade_image', 'degrade_realesrgan']

_KERNEL_DEFAULTS = {
    'blur_kernel_size': 21, 'kernel_range': [7, 21],
    'kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
    'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], 'sinc_prob': 0.1, 'blur_sigma': [0.2, 3],
    'betag_range': [0.5, 4], 'betap_range': [1, 2], 'final_sinc_prob': 0.8,
}

#: Real-ESRGAN x4plus's degradation (``options/train_realesrgan_x4plus.yml`` of xinntao/Real-ESRGAN): dataset
#: kernel options and model degradation options, second stage included.
REALESRGAN_X4PLUS: dict[str, Any] = {
    **_KERNEL_DEFAULTS,
    'kernel_list2': list(_KERNEL_DEFAULTS['kernel_list']), 'kernel_prob2': list(_KERNEL_DEFAULTS['kernel_prob']),
    'sinc_prob2': 0.1, 'blur_sigma2': [0.2, 1.5], 'betag_range2': [0.5, 4], 'betap_range2': [1, 2],
    'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5,
    'noise_range': [1, 30], 'poisson_scale_range': [0.05, 3], 'gray_noise_prob': 0.4, 'jpeg_range': [30, 95],
    'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2], 'gaussian_noise_prob2': 0.5,
    'noise_range2': [1, 25], 'poisson_scale_range2': [0.05, 2.5], 'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95],
}


class KernelSampler:
    """Per-sample blur kernels: ``kernel1`` (first stage), ``kernel2`` (second stage, when ``kernel_list2`` is
    configured), ``sinc_kernel`` (final), each ``(S, S)`` with ``S = blur_kernel_size``."""

    def __init__(self, opt: dict[str, Any]) -> None:
        self.opt = {k: opt.get(k, v) for k, v in _KERNEL_DEFAULTS.items()}
        self.size = int(self.opt['blur_kernel_size'])
        lo, hi = self.opt['kernel_range']
        if lo % 2 == 0 or hi % 2 == 0 or not 3 <= lo <= hi <= self.size:
            raise ValueError(f'kernel_range {self.opt["kernel_range"]} must hold odd sizes within '
                             f'[3, blur_kernel_size={self.size}].')
        self.sizes = list(range(lo, hi + 1, 2))
        self.second = None
        if opt.get('kernel_list2') is not None:
            self.second = {k: opt.get(f'{k}2', self.opt[k]) for k in
                           ('kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma', 'betag_range', 'betap_range')}
        pulse = np.zeros((self.size, self.size), np.float32)
        pulse[self.size // 2, self.size // 2] = 1
        self.pulse = torch.from_numpy(pulse)

    def _blur_kernel(self, o: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        ksize = int(rng.choice(self.sizes))
        if rng.random() < o['sinc_prob']:
            omega = rng.uniform(np.pi / 3, np.pi) if ksize < 13 else rng.uniform(np.pi / 5, np.pi)
            kernel = circular_lowpass_kernel(omega, ksize, pad_to=False)
        else:
            # basicsr draws the kernel from numpy's and Python's global RNGs: run it from this sample's generator
            with global_rngs_seeded(int(rng.integers(0, 2**32))):
                kernel = random_mixed_kernels(o['kernel_list'], o['kernel_prob'], ksize, o['blur_sigma'],
                                              o['blur_sigma'], [-math.pi, math.pi], o['betag_range'],
                                              o['betap_range'], noise_range=None)
        pad = (self.size - ksize) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad))).astype(np.float32)

    def sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        out = {'kernel1': torch.from_numpy(self._blur_kernel(self.opt, rng))}
        if self.second is not None:
            out['kernel2'] = torch.from_numpy(self._blur_kernel(self.second, rng))
        if rng.random() < self.opt['final_sinc_prob']:
            ksize = int(rng.choice(self.sizes))
            omega = rng.uniform(np.pi / 3, np.pi)
            out['sinc_kernel'] = torch.from_numpy(circular_lowpass_kernel(omega, ksize, pad_to=self.size)).float()
        else:
            out['sinc_kernel'] = self.pulse.clone()
        return out


def _stage(x: torch.Tensor, kernel: torch.Tensor, opt: dict[str, Any], suffix: str, jpeger: DiffJPEG,
           g: torch.Generator, size: tuple[int, int] | None = None) -> torch.Tensor:
    def uniform(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=g))

    x = filter2D(x.contiguous(), kernel)
    probs = opt.get(f'resize_prob{suffix}', [0.2, 0.7, 0.1])
    mode = ['up', 'down', 'keep'][int(torch.multinomial(torch.tensor(probs, dtype=torch.float), 1, generator=g))]
    rng = opt.get(f'resize_range{suffix}', [0.15, 1.5])
    scale = uniform(1, rng[1]) if mode == 'up' else (uniform(rng[0], 1) if mode == 'down' else 1.0)
    interp = ['area', 'bilinear', 'bicubic'][int(torch.randint(0, 3, (), generator=g))]
    if size is not None:
        x = F.interpolate(x, size=(max(1, int(size[0] * scale)), max(1, int(size[1] * scale))), mode=interp)
    else:
        x = F.interpolate(x, scale_factor=scale, mode=interp)
    gray = opt.get(f'gray_noise_prob{suffix}', 0.4)
    if float(torch.rand((), generator=g)) < opt.get(f'gaussian_noise_prob{suffix}', 0.5):
        x = random_add_gaussian_noise_pt(x, sigma_range=opt.get(f'noise_range{suffix}', [1, 30]), clip=True,
                                         rounds=False, gray_prob=gray)
    else:
        x = random_add_poisson_noise_pt(x, scale_range=opt.get(f'poisson_scale_range{suffix}', [0.05, 3]),
                                        gray_prob=gray, clip=True, rounds=False)
    q = x.new_empty(x.size(0)).uniform_(*opt.get(f'jpeg_range{suffix}', [30, 95]))
    return jpeger(torch.clamp(x, 0, 1), quality=q)


def _reflect_pad(x: torch.Tensor, pad_y: int, pad_x: int) -> torch.Tensor:
    # torch's reflect padding must be smaller than the input: pad in as many rounds as a small crop needs
    while pad_y or pad_x:
        py, px = min(pad_y, x.shape[-2] - 1), min(pad_x, x.shape[-1] - 1)
        x = F.pad(x, (px, px, py, py), mode='reflect')
        pad_y, pad_x = pad_y - py, pad_x - px
    return x


@torch.no_grad()
def degrade_realesrgan(gt: torch.Tensor, kernel1: torch.Tensor, sinc_kernel: torch.Tensor, opt: dict[str, Any],
                       scale: int, kernel2: torch.Tensor | None = None, jpeger: DiffJPEG | None = None,
                       generator: torch.Generator | None = None, min_size: int = 160) -> torch.Tensor:
    """LR batch ``(B, C, H/scale, W/scale)`` from original GT crops ``(B, C, H, W)`` in [0, 1].

    One stage (HGGT's blind configs) unless ``kernel2`` is given (Real-ESRGAN's second stage, options with the
    suffix ``2``). Option names and defaults follow BasicSR's ``RealESRGANModel``. Noise and JPEG draw from
    torch's global RNG (as basicsr's functions do); resize choices from ``generator``.

    Crops smaller than ``min_size`` are reflected out to it (in whole LR pixels per side) and the LR cut back:
    Real-ESRGAN's random down-scalings (to 0.15, then 0.3/scale of the size) followed by a 21-tap blur need
    about 150 px (Real-ESRGAN degrades 400 px crops); a 128 px GT crop would otherwise fail in the blur.
    """
    g = generator or torch.default_generator
    jpeger = jpeger or DiffJPEG(differentiable=False).to(gt.device)
    h, w = gt.shape[-2:]
    pad_y, pad_x = (math.ceil(max(0, min_size - d) / (2 * scale)) * scale for d in (h, w))
    x = _reflect_pad(gt, pad_y, pad_x)
    ph, pw = x.shape[-2:]
    x = _stage(x, kernel1, opt, '', jpeger, g)
    if kernel2 is not None:
        x = _stage(x, kernel2, opt, '2', jpeger, g, size=(ph // scale, pw // scale))
    x = filter2D(x.contiguous(), sinc_kernel)
    x = F.interpolate(x, size=(ph // scale, pw // scale), mode='bicubic')
    x = x[..., pad_y // scale:pad_y // scale + h // scale, pad_x // scale:pad_x // scale + w // scale]
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def degrade_image(hr: np.ndarray, scale: int, seed: int | Sequence[int], opt: dict[str, Any] | None = None,
                  jpeger: DiffJPEG | None = None, min_size: int = 160) -> np.ndarray:
    """Real-ESRGAN-degraded LR (BGR uint8 ``(H/scale, W/scale, 3)``) of a BGR uint8 HR image, a pure function
    of ``(hr, scale, seed, opt)``.

    ``opt`` overrides :data:`REALESRGAN_X4PLUS` (``kernel_list2: null`` for one stage). The caller's random
    state is left alone: kernels come from a generator seeded with ``seed`` (basicsr's kernel functions see a
    temporarily seeded numpy RNG, restored afterwards), noise and JPEG run inside ``torch.random.fork_rng``.

    Images smaller than ``min_size`` are mirrored out to it first and the LR cut back: a 21-tap blur after the
    random down-scalings (to 0.15 and then 0.3/scale of the size) needs about 150 px (Real-ESRGAN itself
    degrades 400 px crops).
    """
    h, w = hr.shape[:2]
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f'degrade_image needs a BGR uint8 (H, W, 3) image, got {hr.dtype} {hr.shape}.')
    if h % scale or w % scale:
        raise ValueError(f'degrade_image: {w}x{h} is not a multiple of scale {scale}.')
    opt = {**REALESRGAN_X4PLUS, **(opt or {})}
    # mirror padding in whole LR pixels per side, so the LR of the padded image crops back exactly
    pad_y, pad_x = (math.ceil(max(0, min_size - d) / (2 * scale)) * scale for d in (h, w))
    if pad_y or pad_x:
        hr = np.pad(hr, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode='symmetric')
    rng = np.random.default_rng(seed)
    kernels = KernelSampler(opt).sample(rng)
    x = torch.from_numpy(np.ascontiguousarray(hr[..., ::-1], dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**63)))
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**63)))
        lq = degrade_realesrgan(x, kernels['kernel1'][None], kernels['sinc_kernel'][None], opt, scale,
                                kernel2=kernels['kernel2'][None] if 'kernel2' in kernels else None,
                                jpeger=jpeger, generator=g)
    lq = lq[0, :, pad_y // scale:pad_y // scale + h // scale, pad_x // scale:pad_x // scale + w // scale]
    return np.ascontiguousarray((lq.permute(1, 2, 0).numpy()[..., ::-1] * 255.0).round().astype(np.uint8))
