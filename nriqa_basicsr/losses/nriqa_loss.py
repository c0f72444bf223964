"""``NRIQALoss``: minus the weighted no-reference quality of the SR output, as a BasicSR loss."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from nriqa_basicsr.config.schema import decode_or_raise
from nriqa_basicsr.config.sections import NRIQALossOptions
from nriqa_basicsr.iqa import get_metric_info
from nriqa_basicsr.iqa.scorer import private_scorers

__all__ = ['NRIQALoss', 'NonFiniteScoreError']


class NonFiniteScoreError(FloatingPointError):
    """A metric returned NaN/inf for the SR output."""


@LOSS_REGISTRY.register()
class NRIQALoss(nn.Module):
    """``loss_weight · Σ_m w_m · (−quality_m(pred))``, reduced over the batch.

    Qualities come from :class:`~nriqa_basicsr.iqa.IQAScorer` (higher is better for every metric; lower-better
    metrics such as NIQE are negated, or mapped to about [0, 1] with ``normalize: true``). The metric networks
    are frozen and in eval mode; gradients flow to ``pred`` only.

    Args:
        metrics: ``{name: weight}``, a list of names (weight 1) or one name: pyiqa names, registered custom
            metrics (``cnniqa_live``) or import paths ``package.module:Class``.
        loss_weight: overall weight.
        reduction: ``mean`` (default), ``sum`` or ``none`` (per-sample ``(B,)``).
        normalize: put every metric on about [0, 1] before weighting (recommended when mixing metrics).
        clamp: clamp ``pred`` to [0, 1] before scoring (SR outputs overshoot; metrics expect [0, 1]).
        nonfinite: ``raise`` (default) on a NaN/inf score, naming the metric; ``skip`` drops those samples
            from the term and counts them in ``nonfinite_counts``.
        metric_opts: ``{name: {option: value}}`` passed to each scorer (``weights_path``, ``score_range``,
            pyiqa architecture options ...).
        weights_dir: extra directory searched first for weight files.
        device: where the metrics are built at start-up (default CUDA if available); inputs on another device
            get their own cached copy.
        metric: shorthand for one metric with weight 1 (``metric: cnniqa_live``).
    """

    def __init__(self, metrics: Any = None, loss_weight: float = 1.0, reduction: str = 'mean',
                 normalize: bool = False, clamp: bool = True, nonfinite: str = 'raise',
                 metric_opts: dict[str, dict] | None = None, weights_dir: str | list[str] | None = None,
                 device: str | None = None, metric: str | None = None) -> None:
        super().__init__()
        # BasicSR calls this with the block's keys: decode them with the schema the start-up checks use.
        config = decode_or_raise(NRIQALossOptions, {
            'metrics': metrics, 'loss_weight': loss_weight, 'reduction': reduction, 'normalize': normalize,
            'clamp': clamp, 'nonfinite': nonfinite, 'metric_opts': metric_opts, 'weights_dir': weights_dir,
            'device': device, 'metric': metric}, 'NRIQALoss')
        self.weights = config.weights
        for name in self.weights:
            get_metric_info(name, 'NR')  # unknown or full-reference names fail here, before any network is built
        self.loss_weight = config.loss_weight
        self.reduction = config.reduction
        self.clamp = config.clamp
        self.nonfinite = config.nonfinite
        self.nonfinite_counts: Counter[str] = Counter()
        self.last_quality: dict[str, torch.Tensor] = {}  # detached batch-mean quality per metric, for logging
        self._scorer_opts = {
            name: {'normalize': config.normalize, 'weights_dir': config.weights_dir, **config.metric_opts.get(name, {})}
            for name in self.weights
        }
        self._own_scorers = private_scorers()
        # Built now so that missing weights or bad options fail at start-up, not at the first iteration.
        for name in self.weights:
            self._scorer(name, config.device)

    def _scorer(self, name: str, device: torch.device | str | None):
        # The loss's own scorers (the model may compile them), kept in a cache, not as submodules: they must stay
        # out of optimisers, DDP wrappers and state dicts, and `.to()`/`.train()` on this loss must not reach them.
        return self._own_scorers.get(name, 'NR', device, **self._scorer_opts[name])

    def scorers(self, device: torch.device | str | None = None) -> dict[str, Any]:
        """The loss's own scorer of each metric on ``device``."""
        return {name: self._scorer(name, device) for name in self.weights}

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        x = pred.clamp(0, 1) if self.clamp else pred
        total = pred.new_zeros(pred.shape[0], dtype=torch.float32)
        for name, weight in self.weights.items():
            quality = self._scorer(name, pred.device)(x).to(pred.device)
            finite = torch.isfinite(quality)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                if self.nonfinite == 'raise':
                    raise NonFiniteScoreError(
                        f'NRIQALoss: metric "{name}" returned a non-finite score for {bad} of {quality.numel()} '
                        f'images. Set nonfinite: skip to drop such samples, or check the SR output for NaN/inf.')
                self.nonfinite_counts[name] += bad
                get_root_logger().warning(f'NRIQALoss: skipped {bad} non-finite "{name}" score(s) '
                                          f'({self.nonfinite_counts[name]} so far).')
                quality = torch.where(finite, quality, torch.zeros_like(quality))
            self.last_quality[name] = quality.detach().mean()
            total = total - weight * quality
        total = self.loss_weight * total
        if self.reduction == 'mean':
            return total.mean()
        if self.reduction == 'sum':
            return total.sum()
        return total

    def extra_repr(self) -> str:
        return f'metrics={self.weights}, loss_weight={self.loss_weight}, reduction={self.reduction}'
