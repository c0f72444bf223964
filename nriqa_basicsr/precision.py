"""Numeric precision and memory layout of training: autocast (``train.amp``), ``train.channels_last`` and
``train.compile``.

Both precision options apply on CUDA only (CPU autocast and channels_last bring nothing for these networks and
change results); on another device they are ignored with one log line. ``train.compile`` compiles modules in
place (``nn.Module.compile``), so their state-dict keys, and with them the checkpoints, stay those of the stock
architecture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from basicsr.utils import get_root_logger

from nriqa_basicsr.config.sections import CompileOptions

__all__ = ['AMP_DTYPES', 'Precision', 'compile_in_place']

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass(frozen=True)
class Precision:
    """How one run computes: ``amp_dtype`` for autocast (None: fp32) and the ``channels_last`` layout."""

    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def from_options(cls, amp: str | None, channels_last: bool, device: torch.device) -> Precision:
        """From the decoded ``train.amp`` (``'bf16'``, ``'fp16'`` or None) and ``train.channels_last``
        (:class:`nriqa_basicsr.config.sections.NRIQATrainOptions`); both off on a device other than CUDA."""
        if device.type != 'cuda':
            if amp or channels_last:
                get_root_logger().info('train.amp / train.channels_last apply on CUDA only; ignored on this device.')
            return cls()
        return cls(AMP_DTYPES[amp] if amp else None, bool(channels_last))

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast in ``amp_dtype`` on CUDA, or nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast('cuda', dtype=self.amp_dtype)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the run's memory layout."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def apply(self, modules: Iterable[torch.nn.Module]) -> None:
        """Put the weights of ``modules`` (owned by the caller) into the run's memory layout, in place."""
        if self.channels_last:
            for module in modules:
                module.to(memory_format=torch.channels_last)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """The loss scaler: active for fp16 only (bf16 has fp32's range)."""
        return torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)


def compile_in_place(generator: torch.nn.Module, scorers: Iterable[torch.nn.Module],
                     opt: CompileOptions | None) -> None:
    """The decoded ``train.compile`` (None: off): ``torch.compile`` the generator (and the scorers, owned by the
    caller) in place."""
    if opt is None:
        return
    kwargs, with_scorers = opt.kwargs(), opt.scorers
    generator.compile(**kwargs)
    if with_scorers:
        for scorer in scorers:
            scorer.compile(**kwargs)
    get_root_logger().info(f'torch.compile: generator{" and scorers" if with_scorers else ""} '
                           f'({kwargs or "default settings"}).')
