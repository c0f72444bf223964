"""GT-selection policies: which of K ground-truth variants supervises each sample.

Pure, seeded functions on ``(B, K)`` tensors, used by the model for every policy (variant 0 is the original):

==============  ==========================================================================================
``original``    always the original HR (HGGT "Ori")
``upos``        uniform among effective positives; the original when there are none (HGGT "Pos", paper UPos)
``sma``         sample from softmax(score / τ) over all K variants (offline per-image scores)
``smp``         the same over the effective positives only; the original when there are none
``amo``         argmax of the online scores of the K crops being trained on
``amo_cached``  argmax of precomputed per-crop scores (a score grid); same rule as ``amo``
==============  ==========================================================================================

Argmax ties break towards the lowest index (the original first). Scores are qualities (higher is better);
:func:`combine_scores` builds a weighted ensemble of several metrics, each z-scored with dataset statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from nriqa_basicsr.data.labels import NEGATIVE, POSITIVE

if TYPE_CHECKING:  # the schema module imports the policy names from here
    from nriqa_basicsr.config.sections import GTSelectionOptions

__all__ = ['POLICIES', 'SCORE_POLICIES', 'LABEL_POLICIES', 'candidate_mask', 'combine_scores',
           'parse_selection_options', 'selection_probabilities', 'select', 'zscore_stats']

POLICIES = ('original', 'upos', 'sma', 'smp', 'amo', 'amo_cached')
SCORE_POLICIES = frozenset({'sma', 'smp', 'amo', 'amo_cached'})
LABEL_POLICIES = frozenset({'upos', 'smp'})
ARGMAX_POLICIES = frozenset({'amo', 'amo_cached'})


def _check(policy: str, labels: torch.Tensor | None, scores: torch.Tensor | None) -> None:
    if policy not in POLICIES:
        raise ValueError(f'Unknown GT-selection policy "{policy}"; choose one of {list(POLICIES)}.')
    if policy in LABEL_POLICIES and labels is None:
        raise ValueError(f'GT-selection policy "{policy}" needs human labels (dataroot_label on the dataset).')
    if policy in SCORE_POLICIES and scores is None:
        what = 'online candidate scores' if policy == 'amo' else 'a score file (score_file on the dataset)'
        raise ValueError(f'GT-selection policy "{policy}" needs {what}.')


def candidate_mask(policy: str, labels: torch.Tensor | None, num_variants: int, batch: int = 1,
                   include_original: bool = True, exclude_negatives: bool = False) -> torch.Tensor:
    """Boolean ``(B, K)``: which variants a policy may choose for each sample.

    Positive-only policies (``upos``, ``smp``) fall back to the original where a sample has no positive.
    ``include_original`` / ``exclude_negatives`` shape the AMO/SMA candidate set (the paper's "all GTs" is the
    default; excluding human negatives uses labels and so is no longer label-free).
    """
    if policy == 'original':
        mask = torch.zeros(batch, num_variants, dtype=torch.bool)
        mask[:, 0] = True
        return mask
    if policy in LABEL_POLICIES:
        mask = labels == POSITIVE
        fallback = ~mask.any(dim=1)
        mask[fallback, 0] = True
        return mask
    mask = torch.ones(batch, num_variants, dtype=torch.bool)
    if not include_original:
        mask[:, 0] = False
    if exclude_negatives and labels is not None:
        mask &= labels != NEGATIVE
    mask[~mask.any(dim=1), 0] = True  # never leave a sample without a candidate
    return mask


def selection_probabilities(policy: str, labels: torch.Tensor | None = None, scores: torch.Tensor | None = None,
                            tau: float = 1.0, include_original: bool = True, exclude_negatives: bool = False,
                            num_variants: int | None = None) -> torch.Tensor:
    """Probability ``(B, K)`` of choosing each variant under ``policy`` (argmax policies are one-hot)."""
    _check(policy, labels, scores)
    ref = scores if scores is not None else labels
    if ref is None and num_variants is None:
        raise ValueError('selection_probabilities needs labels, scores or num_variants.')
    batch, k = (ref.shape[0], ref.shape[1]) if ref is not None else (1, num_variants)
    mask = candidate_mask(policy, labels, k, batch, include_original, exclude_negatives)
    if ref is not None:
        mask = mask.to(ref.device)
    if policy in ('sma', 'smp'):
        if not tau > 0:
            raise ValueError(f'Softmax temperature tau must be > 0, got {tau}.')
        logits = (scores.double() / tau).masked_fill(~mask, float('-inf'))
        return torch.softmax(logits, dim=1).to(scores.dtype)
    if policy in ARGMAX_POLICIES:
        masked = scores.masked_fill(~mask, float('-inf'))
        index = masked.argmax(dim=1)  # first maximum: deterministic ties
        return torch.nn.functional.one_hot(index, k).to(scores.dtype)
    probs = mask.float()
    return probs / probs.sum(dim=1, keepdim=True)


def select(policy: str, labels: torch.Tensor | None = None, scores: torch.Tensor | None = None, tau: float = 1.0,
           generator: torch.Generator | None = None, include_original: bool = True,
           exclude_negatives: bool = False, num_variants: int | None = None) -> torch.Tensor:
    """Chosen variant index ``(B,)`` per sample; random policies draw from ``generator`` (CPU)."""
    probs = selection_probabilities(policy, labels, scores, tau, include_original, exclude_negatives, num_variants)
    if policy in ARGMAX_POLICIES or policy == 'original':
        return probs.argmax(dim=1)
    return torch.multinomial(probs.detach().double().cpu(), 1, generator=generator).squeeze(1).to(probs.device)


def zscore_stats(scores: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of all finite scores (dataset-level standardisation)."""
    finite = scores[torch.isfinite(scores)].double()
    if finite.numel() < 2:
        raise ValueError('z-scoring needs at least two finite scores.')
    std = float(finite.std())
    return float(finite.mean()), (std if std > 0 else 1.0)


def combine_scores(per_metric: Mapping[str, torch.Tensor], weights: Mapping[str, float],
                   stats: Mapping[str, tuple[float, float]] | None = None) -> torch.Tensor:
    """Weighted ensemble ``Σ_m w_m · (s_m − μ_m) / σ_m`` of per-metric quality scores (same shape each).

    With one metric and no ``stats`` the raw scores are returned unchanged (τ then stays in the metric's
    units, e.g. MUSIQ points). With several metrics ``stats`` is required: mixing raw scales is meaningless.
    """
    missing = [m for m in weights if m not in per_metric]
    if missing:
        raise KeyError(f'scores for metric(s) {missing} are not available (have {sorted(per_metric)}).')
    if stats is None:
        if len(weights) != 1:
            raise ValueError('combining several metrics needs their dataset statistics (z-scores).')
        (name, weight), = weights.items()
        return per_metric[name] * weight
    total = None
    for name, weight in weights.items():
        mean, std = stats[name]
        term = weight * (per_metric[name] - mean) / std
        total = term if total is None else total + term
    return total


def parse_selection_options(opt: Mapping[str, Any] | None) -> tuple[GTSelectionOptions | None, list[str]]:
    """``train.gt_selection`` → its decoded schema (:class:`~nriqa_basicsr.config.sections.GTSelectionOptions`)
    and the list of all problems found; ``(None, [])`` when the section is absent."""
    from nriqa_basicsr.config.schema import decode
    from nriqa_basicsr.config.sections import GTSelectionOptions

    return (None, []) if opt is None else decode(GTSelectionOptions, opt, 'train.gt_selection')
