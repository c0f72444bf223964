"""The non-finite step guard: an optimizer step that meets a NaN/inf is skipped, on every DDP rank together, and
training stops after ``limit`` skipped steps in a row (``train.max_consecutive_nonfinite``).

A step is skipped, not clipped or rescaled: its weights stay exactly as before, so the checkpoints written so far
remain a valid place to resume from. Under DDP every rank must skip the same steps, or the ranks that step would
wait forever in the gradient all-reduce; :func:`on_any_rank` makes them agree.
"""

from __future__ import annotations

from typing import Any

import torch
from basicsr.utils import get_root_logger

__all__ = ['NonFiniteTrainingError', 'StepGuard', 'nonfinite_terms', 'on_any_rank']


class NonFiniteTrainingError(RuntimeError):
    """Too many optimizer steps in a row met a NaN/inf (``train.max_consecutive_nonfinite``)."""


def nonfinite_terms(values: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors holding a NaN or an infinity."""
    return [name for name, value in values.items() if not bool(torch.isfinite(value).all())]


def on_any_rank(flag: bool, device: torch.device, distributed: bool) -> bool:
    """Whether ``flag`` holds on any process (just ``flag`` outside an initialised process group)."""
    if not (distributed and torch.distributed.is_initialized()):
        return flag
    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


class StepGuard:
    """Counts skipped steps and decides, with the other ranks, whether a step goes ahead.

    Args:
        limit: stop after this many skipped steps in a row (0: never stop).
        device: where the agreement flag lives (the model's device; gloo needs CPU, NCCL CUDA).
        distributed: whether the run is distributed (``opt['dist']``).
        grads_checked_elsewhere: the fp16 grad scaler skips steps with non-finite gradients itself.
        models_dir: named in the stop message (the checkpoints there are intact).
    """

    def __init__(self, limit: int, device: torch.device, distributed: bool = False,
                 grads_checked_elsewhere: bool = False, models_dir: str | None = None) -> None:
        self.limit = int(limit)
        self.device, self.distributed = device, distributed
        self.grads_checked_elsewhere = grads_checked_elsewhere
        self.models_dir = models_dir
        self.skips = 0  # skipped steps in all
        self.streak = 0  # skipped steps in a row

    def any_rank(self, bad: list[str]) -> bool:
        """Whether this or any other rank found non-finite values (every rank must call it at the same point)."""
        return on_any_rank(bool(bad), self.device, self.distributed)

    def gradients(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, name: str) -> list[str]:
        """``[name]``, with the gradients cleared, when a gradient of ``net`` holds NaN/inf; else ``[]``."""
        if self.grads_checked_elsewhere:
            return []
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        if not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return []
        optimizer.zero_grad(set_to_none=True)
        return [name]

    def account(self, bad: list[str], current_iter: int) -> None:
        """Record the step: skipped for the non-finite ``bad`` terms, or taken (``bad`` empty, ends a streak).
        Raises :class:`NonFiniteTrainingError` when the streak reaches ``limit``."""
        if not bad:
            self.streak = 0
            return
        self.skips += 1
        self.streak += 1
        get_root_logger().warning(f'iter {current_iter}: non-finite {", ".join(bad)}; optimizer step skipped '
                                  f'({self.streak} in a row, {self.skips} in all).')
        if self.limit and self.streak >= self.limit:
            raise NonFiniteTrainingError(
                f'iter {current_iter}: {self.streak} steps in a row were skipped for non-finite values, last: '
                f'{", ".join(bad)}. Training stopped (train.max_consecutive_nonfinite = {self.limit}); no weights '
                f'were changed by these steps and the checkpoints in {self.models_dir} are intact. Lower the '
                f'learning rate or the weight of the named term (or fix the data it points to), then resume with '
                f'--auto_resume.')

    def state_dict(self) -> dict[str, int]:
        """The counters, under the keys of the training state (``<iter>.state``)."""
        return {'nonfinite_skips': self.skips, 'nonfinite_streak': self.streak}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Counters of a training state (states written before the guard existed count from zero)."""
        self.skips = int(state.get('nonfinite_skips', 0))
        self.streak = int(state.get('nonfinite_streak', 0))
