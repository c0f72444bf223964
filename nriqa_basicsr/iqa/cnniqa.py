"""CNNIQA-LIVE (Kang et al., CVPR 2014; weights of D. Li's re-implementation), as custom metric ``cnniqa_live``.

The architecture and preprocessing follow ``../shared/iqa_weights/README.md`` (section CNNIQA), written here as
differentiable, batched torch ops so that the model can guide GT selection and serve as a loss:

1. grey = ITU-R 601 luma, exactly PIL's ``convert('L')`` for 8-bit images (see :func:`pil_luma`);
2. non-overlapping 32x32 patches at ``range(0, h - 32, 32)`` (the reference's stride quirk: when ``h`` or ``w``
   is a multiple of 32 the last row/column of patches is dropped);
3. per-patch local normalisation ``(x - mu) / (sigma + 1)`` with 3x3 box statistics, symmetric boundary, on the
   [0, 1] scale;
4. conv 7x7 (50) → global max and min pooling → fc 800 → fc 800 → 1 per patch; image score = mean patch score.

The score is a predicted LIVE DMOS: **higher is worse**, about 0-100. The weights are the user's file
``CNNIQA-LIVE`` (legacy ``torch.save`` of a state_dict of plain tensors, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nriqa_basicsr.iqa.custom import register_nriqa_metric

__all__ = ['CNNIQALive', 'PATCH', 'cnniqa_patches', 'local_normalize', 'pil_luma']

PATCH = 32
# PIL's fixed-point ITU-R 601 coefficients (libImaging/Convert.c: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16).
_PIL_COEFS = (19595.0, 38470.0, 7471.0)


def _straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient of ``x`` in the backward pass."""
    return x + (value - x).detach()


def pil_luma(rgb: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """ITU-R 601 luma ``(B, 1, H, W)`` in [0, 1] of RGB ``(B, 3, H, W)`` in [0, 1].

    With ``quantize`` the forward value is bit-exact PIL ``convert('L')`` of the 8-bit image: channels are rounded
    to 0-255, combined with PIL's fixed-point weights and rounded half up, as PIL does. The rounding is
    straight-through (the backward pass sees ``L = 0.299 R + 0.587 G + 0.114 B``), so gradients still reach the
    input. Without ``quantize`` the float luma is returned (no rounding at all).
    """
    coefs = rgb.new_tensor(_PIL_COEFS).view(1, 3, 1, 1)
    if not quantize:
        return (rgb * coefs).sum(1, keepdim=True) / 65536.0
    q = _straight_through(rgb * 255.0, torch.round(rgb.detach() * 255.0))
    # Integers up to 255 * 65536 + 2^15 < 2^24: exact in float32, so the rounding below matches PIL exactly.
    acc = (q * coefs).sum(1, keepdim=True)
    grey = _straight_through(acc / 65536.0, torch.floor((acc.detach() + 32768.0) / 65536.0))
    return grey / 255.0


def cnniqa_patches(grey: torch.Tensor) -> torch.Tensor:
    """``(B, N, 32, 32)`` patches of ``(B, 1, H, W)`` at the reference's positions ``range(0, h - 32, 32)``."""
    b, _, h, w = grey.shape
    rows, cols = len(range(0, h - PATCH, PATCH)), len(range(0, w - PATCH, PATCH))
    if rows == 0 or cols == 0:
        raise ValueError(f'CNNIQA needs images larger than {PATCH}x{PATCH} pixels (at least {PATCH + 1} in each '
                         f'dimension, as in the reference implementation), got {h}x{w}.')
    x = grey[:, 0, :rows * PATCH, :cols * PATCH]
    x = x.reshape(b, rows, PATCH, cols, PATCH).permute(0, 1, 3, 2, 4)
    return x.reshape(b, rows * cols, PATCH, PATCH)


def local_normalize(patches: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """``(x - mu) / (sigma + c)`` per patch; mu, sigma from 3x3 box means with symmetric boundary.

    scipy's ``boundary='symm'`` mirrors with the edge repeated, which for a 3x3 kernel is replicate padding.
    """
    shape = patches.shape
    x = patches.reshape(-1, 1, shape[-2], shape[-1])
    padded = F.pad(torch.cat([x, x * x], 1), (1, 1, 1, 1), mode='replicate')
    stats = F.avg_pool2d(padded, 3, stride=1)
    mu, mean_sq = stats[:, :1], stats[:, 1:]
    # The floor keeps sqrt's gradient finite on flat patches (sigma 0); 1e-5 against c = 1 is far below 0.1 DMOS.
    sigma = torch.sqrt((mean_sq - mu * mu).clamp_min(1e-10))
    return ((x - mu) / (sigma + c)).reshape(shape)


@register_nriqa_metric('cnniqa_live', weights_file='CNNIQA-LIVE', weights_subdirs=('cnniqa',), lower_better=True,
                       score_range=(0, 100), url='https://github.com/lidq92/CNNIQA (models/CNNIQA-LIVE)')
class CNNIQALive(nn.Module):
    """CNNIQA with LIVE weights: RGB ``(B, 3, H, W)`` in [0, 1] → predicted DMOS ``(B,)`` (higher is worse).

    Args:
        quantize: round to 8-bit grey as PIL does (default; the weights were trained on PIL-converted 8-bit
            images, and this reproduces the reference values); ``False`` uses float luma.
        patch_batch: patches per network call (bounds memory on large batches); ``0`` = all at once.
    """

    def __init__(self, quantize: bool = True, patch_batch: int = 0, ker_size: int = 7, n_kers: int = 50,
                 n1_nodes: int = 800, n2_nodes: int = 800) -> None:
        super().__init__()
        self.quantize = bool(quantize)
        self.patch_batch = int(patch_batch)
        self.conv1 = nn.Conv2d(1, n_kers, ker_size)
        self.fc1 = nn.Linear(2 * n_kers, n1_nodes)
        self.fc2 = nn.Linear(n1_nodes, n2_nodes)
        self.fc3 = nn.Linear(n2_nodes, 1)
        self.dropout = nn.Dropout(0.5)

    def patch_scores(self, patches: torch.Tensor) -> torch.Tensor:
        """Scores ``(N,)`` of normalised patches ``(N, 32, 32)``."""
        h = self.conv1(patches.unsqueeze(1)).flatten(2)
        h = torch.cat([h.amax(2), h.amin(2)], 1)  # [max(50), min(50)], as the reference concatenates them
        h = self.dropout(F.relu(self.fc1(h)))
        h = F.relu(self.fc2(h))
        return self.fc3(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f'CNNIQA expects RGB or grey (B, C, H, W), got {tuple(x.shape)}.')
        grey = pil_luma(x.expand(-1, 3, -1, -1), self.quantize)  # grey input: R = G = B
        patches = local_normalize(cnniqa_patches(grey))
        b, n = patches.shape[:2]
        flat = patches.reshape(b * n, PATCH, PATCH)
        step = self.patch_batch if self.patch_batch > 0 else flat.shape[0]
        scores = torch.cat([self.patch_scores(flat[i:i + step]) for i in range(0, flat.shape[0], step)])
        return scores.reshape(b, n).mean(1)
