"""A foolable NR "quality" for the reward-hacking guard's tests (a custom IQA model, cheap on a CPU)."""

import torch


class Sharpness(torch.nn.Module):
    """Mean gradient magnitude ×10: noise and ringing raise it, as hacking an NR metric raises its score."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1)
        dy, dx = grey[:, 1:] - grey[:, :-1], grey[..., 1:] - grey[..., :-1]
        return 10 * (dy.abs().mean((1, 2)) + dx.abs().mean((1, 2)))
