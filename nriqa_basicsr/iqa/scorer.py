"""One way to build any pyiqa or custom metric for scoring, losses and validation.

:class:`IQAScorer` wraps a pyiqa network, or a registered custom model (:mod:`nriqa_basicsr.iqa.custom`), so that
every metric behaves the same: always in eval mode, parameters frozen, output shape ``(B,)``, and a *quality*
where higher is better (lower-better metrics such as NIQE are negated, or mapped through their documented score
range when ``normalize=True``). Gradients reach the input whenever autograd is enabled by the caller; wrap calls
in ``torch.no_grad()`` for plain scoring.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from typing import Any

import torch
from torch import nn

from nriqa_basicsr.iqa.catalog import MetricInfo, get_metric_info
from nriqa_basicsr.iqa.custom import CustomMetricSpec, find_custom_weights, get_custom_metric
from nriqa_basicsr.iqa.fast_musiq import is_musiq, musiq_forward
from nriqa_basicsr.iqa.scores import to_quality
from nriqa_basicsr.iqa.weights import WeightsNotFoundError, check_tensors_only, redirect_downloads
from nriqa_basicsr.safe_load import load_torch_file

__all__ = ['IQAInputError', 'IQAScorer', 'ScorerCache', 'build_scorer', 'clear_scorer_cache', 'default_device',
           'private_scorers']

_RANGE_TOLERANCE = 1e-4


class IQAInputError(ValueError):
    """An image handed to an IQA metric is not a 4-D RGB tensor in [0, 1]."""


def default_device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def _build_pyiqa_net(info: MetricInfo, device: torch.device, weights_path: str | None,
                     weights_dir: str | list[str] | None, metric_opts: dict[str, Any]) -> tuple[nn.Module, list[str]]:
    """The frozen eval-mode pyiqa network and the weight files it was built from."""
    import pyiqa

    opts = dict(metric_opts)
    if weights_path is not None:
        weights_path = os.path.expanduser(str(weights_path))
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f'weights_path for IQA metric "{info.name}": no such file {weights_path}')
        check_tensors_only(weights_path, info.name)  # pyiqa unpickles it with weights_only=False
        opts['pretrained_model_path'] = weights_path
    with redirect_downloads(info.name, weights_dir) as used:
        try:
            # as_loss=True: pyiqa then neither asserts the input range nor disables autograd; we do both ourselves.
            model = pyiqa.create_metric(info.name, as_loss=True, loss_reduction='none', device=device, **opts)
        except TypeError as exc:
            if 'pretrained_model_path' in str(exc):
                raise ValueError(
                    f'IQA metric "{info.name}" does not accept weights_path (its pyiqa architecture has no '
                    f'pretrained_model_path argument). Put its weight files, under their pyiqa file names, into a '
                    f'weights directory (weights_dir option or NRIQA_WEIGHTS_DIR) instead.') from exc
            raise TypeError(f'Bad option for IQA metric "{info.name}": {exc}') from exc
    net = model.net
    net.requires_grad_(False)
    return net.eval(), ([weights_path] if weights_path else []) + used


def _find_custom_weights(spec: CustomMetricSpec, weights_dir: str | list[str] | None) -> str:
    """Path of a custom model's weights file from the search path; else WeightsNotFoundError."""
    path, searched = find_custom_weights(spec, weights_dir)
    if path is None:
        raise WeightsNotFoundError(spec.name, spec.weights_file, searched, spec.url,
                                   'Custom IQA models are never downloaded: their weights are a file you provide.')
    return path


def _build_custom_net(spec: CustomMetricSpec, device: torch.device, weights_path: str | None,
                      weights_dir: str | list[str] | None, metric_opts: dict[str, Any]) -> tuple[nn.Module, list[str]]:
    """The frozen eval-mode custom model, its weights loaded safely, and the weight files it was built from."""
    try:
        net = spec.cls(**metric_opts)
    except TypeError as exc:
        raise TypeError(f'Bad option for custom IQA metric "{spec.name}" ({spec.import_path}): {exc}') from exc
    files: list[str] = []
    if weights_path is not None:
        path = os.path.expanduser(str(weights_path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f'weights_path for IQA metric "{spec.name}": no such file {path}')
        files.append(path)
    elif spec.weights_file is not None:
        files.append(_find_custom_weights(spec, weights_dir))
    if files:
        state = load_torch_file(files[0], 'cpu', what=f'weights of IQA metric "{spec.name}"')
        if isinstance(state, dict):
            for key in ('params_ema', 'params', 'state_dict'):  # BasicSR / Lightning-style wrappers
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
            state = {k.removeprefix('module.'): v for k, v in state.items()}  # saved from DataParallel
        if not isinstance(state, dict):
            raise ValueError(f'weights of IQA metric "{spec.name}" ({files[0]}): expected a state_dict, got '
                             f'{type(state).__name__}.')
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f'weights of IQA metric "{spec.name}" ({files[0]}) do not fit {spec.import_path}: '
                             f'{exc}') from exc
    net.requires_grad_(False)
    return net.to(device).eval(), files


class IQAScorer(nn.Module):
    """A frozen pyiqa or custom metric returning per-image quality ``(B,)``, higher is better.

    Args:
        name: pyiqa metric name (``musiq``, ``niqe``, ``lpips`` ...), a registered custom metric (``cnniqa_live``)
            or a custom metric's import path ``package.module:Class`` (see :mod:`nriqa_basicsr.iqa.custom`).
        mode: ``'NR'`` (no-reference, ``forward(x)``) or ``'FR'`` (full-reference, ``forward(x, ref)``).
        device: where the metric lives; defaults to CUDA when available.
        normalize: map scores to about [0, 1] with the metric's score range (see ``score_range``).
        score_range: ``(low, high)`` overriding pyiqa's documented range, used by ``normalize``.
        weights_path: explicit checkpoint file for the metric's main network.
        weights_dir: extra directory (or list) searched first for weight files by their pyiqa file names.
        check_range: raise :class:`IQAInputError` for inputs outside [0, 1].
        fast_path: use :func:`~nriqa_basicsr.iqa.fast_musiq.musiq_forward` for MUSIQ (same result, faster).
        **metric_opts: passed to the pyiqa architecture (e.g. ``pretrained=False``, ``color_space='ycbcr'``), or
            to a custom metric's constructor.
    """

    def __init__(self, name: str, mode: str = 'NR', device: str | torch.device | None = None,
                 normalize: bool = False, score_range: tuple[float, float] | list[float] | None = None,
                 weights_path: str | None = None, weights_dir: str | list[str] | None = None,
                 check_range: bool = True, fast_path: bool = True, **metric_opts: Any) -> None:
        super().__init__()
        self.info = get_metric_info(name, mode)
        self.device = torch.device(device) if device is not None else default_device()
        if score_range is not None:
            if len(score_range) != 2 or not float(score_range[1]) > float(score_range[0]):
                raise ValueError(f'score_range for "{name}" must be [low, high] with high > low, got {score_range}.')
            score_range = (float(score_range[0]), float(score_range[1]))
        else:
            score_range = self.info.score_range
        if normalize and score_range is None:
            raise ValueError(f'IQA metric "{name}" has no bounded score range in pyiqa, so normalize=True needs an '
                             f'explicit score_range: [low, high].')
        self.score_range = score_range if normalize else None
        self.check_range = check_range
        self.metric_opts = dict(metric_opts)
        if self.info.custom:
            spec = get_custom_metric(self.info.name)
            build = functools.partial(_build_custom_net, spec)
        else:
            build = functools.partial(_build_pyiqa_net, self.info)
        self.net, self.weight_files = build(self.device, weights_path, weights_dir, metric_opts)
        self.fast_path = fast_path and is_musiq(self.net)
        self.eval()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def lower_better(self) -> bool:
        return self.info.lower_better

    def train(self, mode: bool = True) -> 'IQAScorer':
        # pyiqa nets change behaviour (random crops, crashes) in train mode; a parent's .train() must not reach them.
        return super().train(False)

    def _prepare(self, x: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise IQAInputError(f'IQA metric "{self.name}": {what} must be a 4-D tensor (B, C, H, W), got {shape}.')
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey images are scored as R = G = B
        elif x.shape[1] != 3:
            raise IQAInputError(f'IQA metric "{self.name}": {what} must have 3 (RGB) or 1 (grey) channels, '
                                f'got {x.shape[1]}.')
        if self.check_range and x.numel():
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if not (lo >= -_RANGE_TOLERANCE and hi <= 1 + _RANGE_TOLERANCE):
                raise IQAInputError(f'IQA metric "{self.name}": {what} must be RGB in [0, 1], got values in '
                                    f'[{lo:.4g}, {hi:.4g}]. Clamp SR outputs first (NRIQALoss does this with '
                                    f'clamp: true) or rescale 0-255 images by 1/255.')
        return x.to(self.device, torch.float32)

    def raw(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """The metric's own score, shape ``(B,)``, in pyiqa's direction and scale."""
        x = self._prepare(x, 'input')
        if self.info.mode == 'FR':
            if ref is None:
                raise IQAInputError(f'IQA metric "{self.name}" is full-reference: pass the reference image too.')
            ref = self._prepare(ref, 'reference')
            if ref.shape != x.shape:
                raise IQAInputError(f'IQA metric "{self.name}": input {tuple(x.shape)} and reference '
                                    f'{tuple(ref.shape)} must have the same shape.')
        try:
            if self.fast_path:
                out = musiq_forward(self.net, x)
            else:
                out = self.net(x, ref) if self.info.mode == 'FR' else self.net(x)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, IndexError, ValueError, AssertionError) as exc:
            raise IQAInputError(f'IQA metric "{self.name}" failed on input of shape {tuple(x.shape)}: {exc}. Some '
                                f'metrics need a minimum size (e.g. NIQE: at least 2x2 blocks of 96 px).') from exc
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = out.reshape(-1)
        if out.numel() != x.shape[0]:
            raise RuntimeError(f'IQA metric "{self.name}" returned {out.numel()} scores for a batch of {x.shape[0]}.')
        return out.float()

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Quality ``(B,)``: higher is better; normalised to about [0, 1] when ``normalize=True``."""
        return to_quality(self.raw(x, ref), self.info.lower_better, self.score_range)

    def extra_repr(self) -> str:
        return f'name={self.name}, mode={self.info.mode}, device={self.device}, normalized={self.score_range}'


class ScorerCache:
    """Scorers by ``(name, mode, device, options)``, each built once.

    The process-wide cache behind :func:`build_scorer` is shared by every user (losses, metrics, selection,
    tools), so nobody may change its scorers (``torch.compile``, ``channels_last``). An owner that changes its
    scorers keeps a private cache (:func:`private_scorers`): its scorers are deep copies of the shared ones
    (one weights load per process) that no one else holds.
    """

    def __init__(self, shared: ScorerCache | None = None) -> None:
        self._scorers: dict[str, IQAScorer] = {}
        self._shared = shared

    def get(self, name: str, mode: str = 'NR', device: str | torch.device | None = None,
            **options: Any) -> IQAScorer:
        """The scorer for ``(name, mode, device, options)``, built (or copied from the shared cache) once."""
        dev = torch.device(device) if device is not None else default_device()
        if dev.type == 'cuda' and dev.index is None:
            dev = torch.device('cuda', torch.cuda.current_device())
        key = json.dumps([get_metric_info(name, mode).name, mode, str(dev), options], sort_keys=True, default=str)
        scorer = self._scorers.get(key)
        if scorer is None:
            if self._shared is not None:
                scorer = copy.deepcopy(self._shared.get(name, mode, dev, **options))
            else:
                scorer = IQAScorer(name, mode=mode, device=dev, **options)
            self._scorers[key] = scorer
        return scorer

    def clear(self) -> None:
        self._scorers.clear()


_SHARED = ScorerCache()


def build_scorer(name: str, mode: str = 'NR', device: str | torch.device | None = None,
                 **options: Any) -> IQAScorer:
    """Return the shared cached :class:`IQAScorer` for ``(name, mode, device, options)``, building it once.
    It is shared: use it as it is (see :class:`ScorerCache` for scorers you change)."""
    return _SHARED.get(name, mode, device, **options)


def private_scorers() -> ScorerCache:
    """A cache of scorers owned by its holder (copies of the shared ones), free to compile or reformat."""
    return ScorerCache(shared=_SHARED)


def clear_scorer_cache() -> None:
    _SHARED.clear()
