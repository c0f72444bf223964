"""NIQE as SR papers report it (the LIVE MATLAB release), as custom NR-IQA metric ``niqe_matlab_y``.

Scores are BasicSR's :func:`basicsr.metrics.niqe.calculate_niqe` — the port of the MATLAB code, MATLAB R2021a
5.72957338 vs 5.72956 here on BasicSR's ``baboon.png`` — on the MATLAB-YCbCr Y channel (16-235), rounded,
without border crop (crop before scoring, as :func:`~nriqa_basicsr.metrics.nriqa_metric.calculate_nriqa` does).

pyiqa's ``niqe`` differs on the same image by up to 0.5 on bicubic SR outputs, mostly because it converts to
YIQ luma (0-255, ``color_space='yiq'``) instead of the YCbCr Y (16-235) of the MATLAB scripts; with
``color_space='ycbcr'`` a smaller difference (up to ~0.06) remains from its torch ops (float64 MSCN and
``imresize``; BasicSR works in float32). This metric is not differentiable: the NR-IQA *guides* (``NRIQALoss``,
AMO) use pyiqa's ``niqe``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nriqa_basicsr.iqa.custom import register_nriqa_metric

__all__ = ['NIQE_MATLAB', 'NIQEMatlab', 'to_bgr255']

NIQE_MATLAB = 'niqe_matlab_y'
BLOCK = 96  # NIQE's block size (the LIVE model was fitted on 96x96 patches)


def to_bgr255(rgb: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` RGB in [0, 1] → BGR ``(H, W, 3)`` float32 in [0, 255]; 8-bit images come back as exact integers.

    ``image_to_tensor`` divides 8-bit images by 255 in float32; rounding them back keeps the Y channel (and so its
    rounding in NIQE) bit-identical to BasicSR's path on the uint8 image.
    """
    img = rgb.detach().to('cpu', torch.float64).permute(1, 2, 0).numpy()[..., ::-1] * 255.0
    rounded = np.round(img)
    if np.abs(img - rounded).max(initial=0.0) < 1e-3:
        img = rounded
    return np.ascontiguousarray(img, dtype=np.float32)


@register_nriqa_metric(NIQE_MATLAB, lower_better=True, score_range=(0, 100))
class NIQEMatlab(nn.Module):
    """MATLAB-compatible NIQE on the Y channel (BasicSR's port, LIVE pristine model shipped with basicsr);
    higher is worse. No options, no weights file."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:  # TypeError: the scorer must not relabel it a size problem
            raise TypeError(f'IQA metric "{NIQE_MATLAB}" (MATLAB NIQE) is not differentiable; as a loss or '
                               f'guide use pyiqa\'s "niqe".')
        from basicsr.metrics.niqe import calculate_niqe

        h, w = x.shape[-2:]
        if (h // BLOCK) * (w // BLOCK) < 2:  # the covariance of one block's features is undefined (NaN in BasicSR)
            raise ValueError(f'{NIQE_MATLAB} needs at least two {BLOCK}x{BLOCK} blocks, got a {h}x{w} image (after '
                             f'crop_border); score larger images, or use niqe_variant: pyiqa')
        scores = [calculate_niqe(to_bgr255(img), 0, input_order='HWC', convert_to='y') for img in x]
        return torch.tensor(scores, dtype=torch.float32, device=x.device)
