"""A resumable view of BasicSR's ``EnlargedSampler``, for runs that resume exactly where they stopped.

BasicSR restarts the interrupted epoch from its first batch on resume, and its DataLoader workers draw their seeds
from the global torch RNG, so a resumed run sees other samples and crops than an uninterrupted one.
:class:`ResumableSampler` keeps BasicSR's order (the same indices, epoch by epoch, rank by rank) and adds:

* ``resume_at(epoch, batches)``: the first iteration over ``epoch`` skips the batches already trained on;
* sample keys: datasets that set ``accepts_sample_keys = True`` (``MultiGTDataset``) receive
  :class:`SampleKey` items whose ``entropy`` — (seed, epoch, position in the epoch's permutation) — seeds their
  random crop/flip/kernel draws, so a sample's augmentation does not depend on the worker that loads it;
* the loader's own generator, reseeded every epoch, so worker seeds no longer consume the global torch RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from basicsr.data.data_sampler import EnlargedSampler

__all__ = ['ResumableSampler', 'SampleKey', 'batches_done_in_epoch']


class SampleKey(NamedTuple):
    """A dataset index plus the entropy its random augmentation is drawn from."""

    index: int
    entropy: tuple[int, ...]


def batches_done_in_epoch(iteration: int, epoch: int, iters_per_epoch: int) -> int | None:
    """Batches of ``epoch`` already trained when a state was saved at ``iteration`` (iterations count from 1 and
    every epoch has ``iters_per_epoch`` batches); ``None`` when the numbers do not fit such a run (e.g. an older
    resume that restarted an epoch, or a changed batch size)."""
    done = iteration - epoch * iters_per_epoch
    return done if 0 <= done <= iters_per_epoch else None


class ResumableSampler:
    """Wraps an ``EnlargedSampler``; see the module docstring."""

    def __init__(self, base: EnlargedSampler, seed: int, batch_size: int, keyed: bool,
                 loader_generator: torch.Generator | None = None) -> None:
        self.base = base
        self.seed = int(seed)
        self.batch_size = batch_size
        self.keyed = keyed
        self.loader_generator = loader_generator
        self._resume: tuple[int, int] | None = None

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)
        if self.loader_generator is not None:
            self.loader_generator.manual_seed(self.seed * 1_000_003 + epoch)

    def resume_at(self, epoch: int, batches: int) -> None:
        """Skip the first ``batches`` batches the next time ``epoch`` is iterated."""
        self._resume = (epoch, batches)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[int | SampleKey]:
        base = self.base
        skip = 0
        if self._resume is not None and self._resume[0] == base.epoch:
            skip = self._resume[1] * self.batch_size
            self._resume = None
        for j, index in enumerate(base):
            if j < skip:
                continue
            # position in the epoch's permutation (before rank striding): unique across ranks
            position = base.rank + j * base.num_replicas
            yield SampleKey(index, (self.seed, base.epoch, position)) if self.keyed else index
