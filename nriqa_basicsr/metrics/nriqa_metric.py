"""Any pyiqa metric as a BasicSR validation metric (``val.metrics`` in the YAML).

.. code-block:: yaml

    val:
      metrics:
        musiq: {type: calculate_nriqa, metric: musiq}            # better: higher (filled in automatically)
        niqe: {type: calculate_nriqa, metric: niqe, crop_border: 4}   # better: lower
        lpips: {type: calculate_fr_iqa, metric: lpips}

Values are the metric's own raw scores (NIQE stays "lower is better"); the entry points fill in BasicSR's
``better`` key from the metric's direction so best-checkpoint tracking is right (see ``nriqa_basicsr.options``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from nriqa_basicsr.iqa import build_scorer

__all__ = ['calculate_fr_iqa', 'calculate_nriqa', 'image_to_tensor']


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
                    **metric_opts: Any) -> float:
    """No-reference score of ``img`` with pyiqa metric ``metric``; ``img2`` (the GT) is ignored."""
    if not metric:
        raise ValueError('calculate_nriqa needs the pyiqa metric name, e.g. {type: calculate_nriqa, metric: musiq}.')
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
