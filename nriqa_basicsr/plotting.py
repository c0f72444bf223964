"""Scatter plots whose points stay readable when models score almost the same (perception–distortion plots)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ['MARKERS', 'labelled_scatter']

MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X', '*', '<', '>')


def labelled_scatter(fig: Any, axes: Sequence[Any], series: Sequence[Sequence[tuple[str, float, float]]],
                     legend_title: str | None = None) -> None:
    """Plot ``series[i]`` — ``(label, x, y)`` points — on ``axes[i]``, one colour + marker per label (the same
    on every axis), and one legend for the figure, below the axes.

    Text next to each point overlaps when two models are nearly equal; a legend does not. Markers shrink in
    plotting order, so a point drawn on top of an equal one leaves the earlier marker visible as a ring.
    """
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for points in series for label, _, _ in points))
    colours = plt.get_cmap('tab10').colors
    style = {label: dict(color=colours[i % len(colours)], marker=MARKERS[i % len(MARKERS)],
                         s=max(130 - 18 * i, 25), zorder=3 + i) for i, label in enumerate(labels)}
    handles = {}
    for ax, points in zip(axes, series):
        for label, x, y in points:
            if math.isnan(x) or math.isnan(y):
                continue
            handles[label] = ax.scatter(x, y, edgecolors='black', linewidths=0.6, alpha=0.9, **style[label])
    shown = [label for label in labels if label in handles]
    if not shown:
        fig.tight_layout()
        return
    ncol = min(len(shown), 3)
    rows = math.ceil(len(shown) / ncol)
    fig.legend([handles[label] for label in shown], shown, loc='lower center', ncol=ncol, fontsize=8,
               title=legend_title, title_fontsize=8, frameon=False)
    # room below the axes for the legend: about 0.3 inch per row, in figure fractions
    bottom = min(0.45, (0.3 * rows + (0.25 if legend_title else 0.1)) / fig.get_figheight())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        fig.tight_layout(rect=(0, bottom, 1, 1))
    if any('Tight layout not applied' in str(w.message) for w in caught):
        # too little room for tight_layout (long titles): still keep the x labels clear of the legend
        fig.subplots_adjust(bottom=bottom + 0.6 / fig.get_figheight())
