"""Any pyiqa or custom NR-IQA metric as a BasicSR validation metric (``val.metrics`` in the YAML).

.. code-block:: yaml

    val:
      metrics:
        musiq: {type: calculate_nriqa, metric: musiq}            # better: higher (filled in automatically)
        niqe: {type: calculate_nriqa, metric: niqe, crop_border: 4}   # better: lower; MATLAB NIQE (see below)
        niqe_pyiqa: {type: calculate_nriqa, metric: niqe, niqe_variant: pyiqa}   # pyiqa's NIQE instead
        lpips: {type: calculate_fr_iqa, metric: lpips}
        cnniqa: {type: calculate_nriqa, metric: cnniqa_live, weights_dir: ../shared/iqa_weights}  # custom model

Values are the metric's own raw scores (NIQE stays "lower is better"); the entry points fill in BasicSR's
``better`` key from the metric's direction so best-checkpoint tracking is right (see ``nriqa_basicsr.options``).

``metric: niqe`` here (and in :class:`~nriqa_basicsr.evaluation.MetricSuite`, ``scripts/benchmark.py``) means NIQE
as SR papers report it — the MATLAB release on the YCbCr Y channel, custom metric ``niqe_matlab_y``
(:mod:`nriqa_basicsr.iqa.niqe_matlab`); ``niqe_variant: pyiqa`` selects pyiqa's ``niqe`` (YIQ luma, differentiable,
the one the NR-IQA guides use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from nriqa_basicsr.iqa import build_scorer
from nriqa_basicsr.iqa.niqe_matlab import NIQE_MATLAB

__all__ = ['NIQE_VARIANTS', 'calculate_fr_iqa', 'calculate_nriqa', 'image_to_tensor', 'niqe_option_problem',
           'report_metric']

# What ``niqe`` means in validation and reports: the metric each ``niqe_variant`` builds.
NIQE_VARIANTS = {'matlab': NIQE_MATLAB, 'pyiqa': 'niqe'}
# IQAScorer's own options (not the metric's): fine for the MATLAB NIQE too.
_SCORER_KEYS = frozenset({'device', 'normalize', 'score_range', 'weights_path', 'weights_dir', 'check_range'})


def report_metric(name: str, niqe_variant: str = 'matlab') -> str:
    """The metric to build for ``name`` in validation / reports: ``niqe`` → MATLAB NIQE unless ``niqe_variant`` is
    ``'pyiqa'``; every other name unchanged."""
    if niqe_variant not in NIQE_VARIANTS:
        raise ValueError(f'niqe_variant must be one of {sorted(NIQE_VARIANTS)}, got {niqe_variant!r} ("matlab": '
                         f'NIQE as SR papers report it; "pyiqa": pyiqa\'s niqe).')
    return NIQE_VARIANTS[niqe_variant] if isinstance(name, str) and name.lower() == 'niqe' else name


def niqe_option_problem(metric: str, niqe_variant: str, options: Mapping[str, Any]) -> str | None:
    """Why ``options`` do not fit what ``metric: niqe`` means under ``niqe_variant`` (None when they do): pyiqa's
    NIQE options (``color_space``, ...) on the MATLAB NIQE would be dropped silently otherwise."""
    try:
        resolved = report_metric(metric, niqe_variant)
    except ValueError as exc:
        return str(exc)
    pyiqa_opts = sorted(set(options) - _SCORER_KEYS)
    if resolved == NIQE_MATLAB and metric != NIQE_MATLAB and pyiqa_opts:
        return (f'option(s) {pyiqa_opts} belong to pyiqa\'s NIQE, but metric: niqe is the MATLAB NIQE by default; '
                f'add niqe_variant: pyiqa to the metric block.')
    return None


def image_to_tensor(img: np.ndarray, crop_border: int = 0, input_order: str = 'HWC') -> torch.Tensor:
    """BasicSR's image convention (BGR, 0-255 uint8 or float, HWC/CHW/HW) → RGB ``(1, C, H, W)`` in [0, 1]."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f'Expected a numpy image (BasicSR tensor2img output), got {type(img).__name__}.')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f'Wrong input_order {input_order}; supported: "HWC", "CHW".')
    if img.ndim == 2:
        img = img[..., None]
    elif input_order == 'CHW':
        img = img.transpose(1, 2, 0)
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f'Expected an image of shape (H, W, 3) or (H, W), got {img.shape}.')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    scale = 255.0 if (img.dtype == np.uint8 or img.max() > 1.0) else 1.0
    rgb = np.ascontiguousarray(img[..., ::-1], dtype=np.float32) / scale
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)


@METRIC_REGISTRY.register()
def calculate_nriqa(img: np.ndarray, img2: np.ndarray | None = None, metric: str | None = None,
                    crop_border: int = 0, input_order: str = 'HWC', better: str | None = None,
                    niqe_variant: str = 'matlab', **metric_opts: Any) -> float:
    """No-reference score of ``img`` with metric ``metric`` (pyiqa or custom); ``img2`` (the GT) is ignored.

    ``metric: niqe`` is the MATLAB NIQE (``niqe_variant: matlab``) or pyiqa's (``niqe_variant: pyiqa``).
    """
    if not metric:
        raise ValueError('calculate_nriqa needs the pyiqa metric name, e.g. {type: calculate_nriqa, metric: musiq}.')
    problem = niqe_option_problem(metric, niqe_variant, metric_opts)
    if problem:
        raise ValueError(f'calculate_nriqa: {problem}')
    metric = report_metric(metric, niqe_variant)
    scorer = build_scorer(metric, 'NR', **metric_opts)
    with torch.no_grad():
        return float(scorer.raw(image_to_tensor(img, crop_border, input_order))[0])


@METRIC_REGISTRY.register()
def calculate_fr_iqa(img: np.ndarray, img2: np.ndarray | None = None, metric: str | None = None,
                     crop_border: int = 0, input_order: str = 'HWC', better: str | None = None,
                     **metric_opts: Any) -> float:
    """Full-reference score of ``img`` against ``img2`` (the GT) with pyiqa metric ``metric``."""
    if not metric:
        raise ValueError('calculate_fr_iqa needs the pyiqa metric name, e.g. {type: calculate_fr_iqa, metric: lpips}.')
    if img2 is None:
        raise ValueError(f'calculate_fr_iqa ({metric}) is full-reference: the validation set needs ground truth.')
    scorer = build_scorer(metric, 'FR', **metric_opts)
    with torch.no_grad():
        sr = image_to_tensor(img, crop_border, input_order)
        gt = image_to_tensor(img2, crop_border, input_order)
        return float(scorer.raw(sr, gt)[0])
