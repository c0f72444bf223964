"""Pure functions that put every IQA metric on one direction and, optionally, one scale."""

from __future__ import annotations

import re

import torch

__all__ = ['parse_score_range', 'to_quality']

_NUMBER = re.compile(r'^~?\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)$', re.IGNORECASE)


def parse_score_range(text: str | None) -> tuple[float, float] | None:
    """Parse pyiqa's free-text ``score_range`` (e.g. ``'~0, ~100'``, ``'1, 10'``) into ``(low, high)``.

    Returns ``None`` when either end is open (``'0, ~'``) or the text is missing or malformed: such metrics
    cannot be normalised without an explicit range.
    """
    if not text:
        return None
    parts = [p.strip() for p in str(text).split(',')]
    if len(parts) != 2:
        return None
    bounds = []
    for part in parts:
        match = _NUMBER.match(part)
        if match is None:
            return None
        bounds.append(float(match.group(1)))
    low, high = bounds
    return (low, high) if high > low else None


def to_quality(raw: torch.Tensor, lower_better: bool,
               score_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Map raw metric scores to a quality where higher is better.

    Without ``score_range`` the raw score is returned as is, negated for lower-better metrics. With
    ``score_range=(low, high)`` the result is ``(raw - low) / (high - low)`` (``(high - raw) / (high - low)``
    for lower-better metrics): about 0 = worst and 1 = best on the metric's documented scale. Values are not
    clipped, because the documented ranges are approximate.
    """
    if score_range is None:
        return -raw if lower_better else raw
    low, high = score_range
    span = high - low
    return (high - raw) / span if lower_better else (raw - low) / span
