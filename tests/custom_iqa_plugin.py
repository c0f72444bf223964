"""A user's own NR-IQA model, outside the package, for the custom-metric tests (not a test module itself).

``TinySharpness`` scores the mean absolute response of a 3x3 filter on the luma (higher is better); its filter
comes from a weights file, as a trained model's would. It declares its metadata as class attributes, so it can
be registered by import path alone. ``TinyBlurriness`` uses the decorator, with the opposite direction.
"""

import torch
import torch.nn.functional as F
from torch import nn

from nriqa_basicsr.iqa import register_nriqa_metric

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


class TinySharpness(nn.Module):
    iqa_name = 'tiny_sharp'
    weights_file = 'tiny_sharp.pth'
    lower_better = False
    score_range = (0.0, 1.0)

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.filter = nn.Conv2d(1, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        luma = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return self.gain * self.filter(luma).abs().mean((1, 2, 3))


@register_nriqa_metric('tiny_blur', lower_better=True, score_range=(0, 1))
class TinyBlurriness(nn.Module):
    """1 - sharpness, without weights (nothing to load)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        lap = F.conv2d(grey, LAPLACIAN.to(x).view(1, 1, 3, 3), padding=1)
        return 1.0 - lap.abs().mean((1, 2, 3)).clamp(max=1.0)


def save_weights(path: str) -> None:
    """The "trained" filter of TinySharpness, as a user would ship it."""
    torch.save({'filter.weight': LAPLACIAN.view(1, 1, 3, 3).clone()}, path)
