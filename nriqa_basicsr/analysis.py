"""How well NR-IQA metrics agree with human judgements, and how they complement each other (pure functions).

A *pair* compares two images a and b of the same content; ``target`` is the human preference: 1.0 when a is
preferred, 0.0 when b is, or a probability in between (SBS-style soft labels). A metric (quality: higher is
better) is scored per pair as ``1`` if it orders the pair as preferred, ``0`` if not, and ties count ``0.5``
(``ties='half'``), ``0`` (``'wrong'``) or are dropped (``'drop'``); with soft targets the credit is the
probability of the side the metric picks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nriqa_basicsr.data.labels import NEGATIVE, ORIGINAL, POSITIVE, SIMILAR

__all__ = ['LEVELS', 'PairSet', 'complementarity', 'greedy_ensemble', 'label_pairs', 'level_correlations',
           'pair_credit', 'weighted_accuracy']

# Human preference levels of HGGT's effective labels.
LEVELS = {POSITIVE: 3.0, SIMILAR: 2.0, NEGATIVE: 1.0}


@dataclass
class PairSet:
    """Pairs as index arrays into a flat score vector, with targets and weights."""

    a: np.ndarray
    b: np.ndarray
    target: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def label_pairs(labels: np.ndarray, counts: np.ndarray | None = None, num_annotators: int = 3,
                original_level: float | None = None, agreement_weighted: bool = False) -> PairSet:
    """All within-group pairs of variants whose effective labels differ, ordered Positive > Similar > Negative.

    ``labels``: ``(N, K)`` codes. Indices refer to the flattened ``(N·K,)`` score vector. The original (code 0) is
    left out unless ``original_level`` places it on the scale (e.g. 2.5: between Positive and Similar). With
    ``agreement_weighted`` a pair weighs the mean agreement ``count / num_annotators`` of its two labels.
    """
    n, k = labels.shape
    levels = np.full(labels.shape, np.nan)
    for code, level in LEVELS.items():
        levels[labels == code] = level
    if original_level is not None:
        levels[labels == ORIGINAL] = original_level
    agree = (counts / num_annotators) if counts is not None else np.ones(labels.shape)
    agree = np.where(labels == ORIGINAL, 1.0, agree)
    a_idx, b_idx, target, weight = [], [], [], []
    for g in range(n):
        for i in range(k):
            for j in range(i + 1, k):
                li, lj = levels[g, i], levels[g, j]
                if np.isnan(li) or np.isnan(lj) or li == lj:
                    continue
                a_idx.append(g * k + i)
                b_idx.append(g * k + j)
                target.append(1.0 if li > lj else 0.0)
                weight.append((agree[g, i] + agree[g, j]) / 2 if agreement_weighted else 1.0)
    return PairSet(np.array(a_idx, int), np.array(b_idx, int), np.array(target, float), np.array(weight, float))


def pair_credit(scores: np.ndarray, pairs: PairSet, ties: str = 'half') -> np.ndarray:
    """Per-pair credit of one metric (quality scores, flat vector): 1 right, 0 wrong, ties per ``ties``;
    ``nan`` marks dropped ties."""
    if ties not in ('half', 'wrong', 'drop'):
        raise ValueError(f'ties must be half, wrong or drop, got {ties!r}.')
    diff = scores[pairs.a] - scores[pairs.b]
    picks_a = (diff > 0).astype(float)
    credit = picks_a * pairs.target + (1 - picks_a) * (1 - pairs.target)
    tie = diff == 0
    credit[tie] = {'half': 0.5, 'wrong': 0.0, 'drop': np.nan}[ties]
    return credit


def weighted_accuracy(credit: np.ndarray, weight: np.ndarray, mask: np.ndarray | None = None) -> float:
    keep = ~np.isnan(credit) if mask is None else (~np.isnan(credit) & mask)
    if not keep.any() or weight[keep].sum() == 0:
        return float('nan')
    return float((credit[keep] * weight[keep]).sum() / weight[keep].sum())


def complementarity(credits: Mapping[str, np.ndarray], weight: np.ndarray) -> tuple[list[str], np.ndarray]:
    """``M[i, j]`` = accuracy of metric j on the pairs metric i gets wrong (credit 0); the diagonal is 0."""
    names = list(credits)
    matrix = np.full((len(names), len(names)), np.nan)
    for i, mi in enumerate(names):
        wrong = credits[mi] == 0
        for j, mj in enumerate(names):
            matrix[i, j] = weighted_accuracy(credits[mj], weight, wrong)
    return names, matrix


def level_correlations(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """SRCC / KRCC between a metric's scores and the label level, plus mean score per label."""
    from scipy.stats import kendalltau, spearmanr

    flat_scores, flat_labels = scores.reshape(-1), labels.reshape(-1)
    levels = np.array([LEVELS.get(int(c), np.nan) for c in flat_labels])
    keep = ~np.isnan(levels) & np.isfinite(flat_scores)
    out = {'srcc': float(spearmanr(flat_scores[keep], levels[keep])[0]),
           'krcc': float(kendalltau(flat_scores[keep], levels[keep])[0])}
    for name, code in (('mean_original', ORIGINAL), ('mean_positive', POSITIVE), ('mean_similar', SIMILAR),
                       ('mean_negative', NEGATIVE)):
        sel = (flat_labels == code) & np.isfinite(flat_scores)
        out[name] = float(flat_scores[sel].mean()) if sel.any() else float('nan')
    return out


def greedy_ensemble(scores: Mapping[str, np.ndarray], pairs: PairSet, max_size: int = 3,
                    weight_grid: Sequence[float] = (0.25, 0.5, 1.0, 2.0), ties: str = 'half'
                    ) -> tuple[dict[str, float], float]:
    """Greedy forward search for a small weighted ensemble of z-scored metrics maximising pair accuracy.

    Starts from the best single metric (weight 1) and adds the (metric, weight) that helps most, until
    ``max_size`` members or no gain. Returns ``({metric: weight}, accuracy)``.
    """
    z = {}
    for name, values in scores.items():
        std = np.nanstd(values)
        z[name] = (values - np.nanmean(values)) / (std if std > 0 else 1.0)

    def accuracy(members: Mapping[str, float]) -> float:
        combined = sum(w * z[m] for m, w in members.items())
        return weighted_accuracy(pair_credit(combined, pairs, ties), pairs.weight)

    best_single = max(z, key=lambda m: (accuracy({m: 1.0}), -list(z).index(m)))
    members, best = {best_single: 1.0}, accuracy({best_single: 1.0})
    while len(members) < max_size:
        candidates = [(accuracy({**members, m: w}), m, w) for m in z if m not in members for w in weight_grid]
        if not candidates:
            break
        acc, metric, w = max(candidates, key=lambda c: c[0])
        if not acc > best:
            break
        members[metric], best = w, acc
    return members, best
