"""How well NR-IQA metrics agree with human judgements, and how they complement each other (``nriqa-analyze-iqa``).

The measures are pure functions of score arrays (:func:`label_pairs` … :func:`greedy_ensemble`); the command line
below them scores images (or reads cached scores) and writes the report.

A *pair* compares two images a and b of the same content; ``target`` is the human preference: 1.0 when a is
preferred, 0.0 when b is, or a probability in between (SBS-style soft labels). A metric (quality: higher is
better) is scored per pair as ``1`` if it orders the pair as preferred, ``0`` if not, and ties count ``0.5``
(``ties='half'``), ``0`` (``'wrong'``) or are dropped (``'drop'``); with soft targets the credit is the
probability of the side the metric picks.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nriqa_basicsr import cli
from nriqa_basicsr.data.labels import NEGATIVE, ORIGINAL, POSITIVE, SIMILAR
from nriqa_basicsr.data.scoring import score_dataset

if TYPE_CHECKING:
    from nriqa_basicsr.data.multigt_source import MultiGTSource

__all__ = ['LEVELS', 'PairSet', 'build_parser', 'complementarity', 'greedy_ensemble', 'label_pairs',
           'level_correlations', 'main', 'pair_credit', 'weighted_accuracy']

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


# ------------------------------------------------------------------------------------------------ command line
_USAGE = r"""

Multi-GT labels (HGGT layout): every pair of variants of a group whose effective labels differ, ordered
Positive > Similar > Negative (the original is left out unless ``--original-level`` places it, e.g. 2.5):

    nriqa-analyze-iqa labels --dataroot datasets/demo/train/images \
        --labels datasets/demo/train/labels --metrics niqe piqe brisque -o results/iqa_alignment \
        [--score-file scores.npz] [--agreement-weighted] [--ties half|wrong|drop]

Pairwise preferences (SBS180K-style): a CSV with header ``image_a,image_b,preference`` where paths are relative
to ``--image-root`` and ``preference`` is ``a``, ``b`` or the probability that a is preferred:

    nriqa-analyze-iqa pairs --pairs prefs.csv --image-root images/ --metrics niqe piqe \
        -o results/iqa_pairs

Scores are computed once and cached: labels mode reads/writes a ``nriqa-score-gts`` score file (``--cache``,
resumable); pairs mode a JSON cache of per-image scores. Writes ``alignment.csv``, ``complementarity.csv``,
``report.md`` and ``complementarity.png`` (row i, column j: accuracy of j on the pairs i gets wrong), plus a
greedy z-scored ensemble and its accuracy.
"""


def label_scores(args: argparse.Namespace, source: MultiGTSource) -> dict[str, np.ndarray]:
    """(N, K) qualities per metric from ``--score-file`` / ``--cache`` (a score file), scored when needed."""
    from nriqa_basicsr.data.score_file import load_score_table
    from nriqa_basicsr.iqa import build_scorer

    path = args.score_file or args.cache or osp.join(args.output, 'scores.npz')
    have = {}
    if osp.isfile(path):
        table = load_score_table(path)
        table.check_dataset(path, source.groups, source.variants)
        order = [table.index()[g] for g in source.groups]
        have = {m: table.scores[m][order] for m in args.metrics if m in table.scores}
    missing = [m for m in args.metrics if m not in have]
    if missing:
        if args.score_file:
            raise ValueError(f'{args.score_file}: has no scores for {missing}; use --cache to score them.')
        # (re)score the whole requested set into the cache, so the next run finds everything in one file
        device = cli.resolve_device(args.device)
        scorers = {m: build_scorer(m, 'NR', device, weights_dir=args.weights_dir) for m in args.metrics}
        have = score_dataset(source, scorers, path, progress=not args.no_progress).scores
    return {m: have[m] for m in args.metrics}


def pair_scores(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], PairSet]:
    """Qualities of every image of the ``--pairs`` CSV (cached in ``--cache``) and its pairs."""
    import cv2
    import torch
    from tqdm import tqdm

    from nriqa_basicsr.atomic import atomic_path
    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.metrics.nriqa_metric import image_to_tensor

    with open(args.pairs, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows or not {'image_a', 'image_b', 'preference'} <= set(rows[0]):
        raise ValueError(f'{args.pairs}: expected a CSV with header image_a,image_b,preference.')
    images = sorted({r['image_a'] for r in rows} | {r['image_b'] for r in rows})
    index = {img: i for i, img in enumerate(images)}
    targets = []
    for r in rows:
        pref = r['preference'].strip().lower()
        value = {'a': 1.0, 'b': 0.0}.get(pref)
        if value is None:
            try:
                value = float(pref)
            except ValueError:
                raise ValueError(f'{args.pairs}: preference {r["preference"]!r} is not a, b or a '
                                 f'probability.') from None
            if not 0 <= value <= 1:
                raise ValueError(f'{args.pairs}: preference {value} outside [0, 1].')
        targets.append(value)
    cache_path = args.cache or osp.join(args.output, 'pair_scores.json')
    cache = {}
    if osp.isfile(cache_path):
        with open(cache_path) as f:
            cache = json.load(f)
    for metric in args.metrics:
        scorer = None
        for img in tqdm([i for i in images if metric not in cache.get(i, {})], desc=f'scoring {metric}',
                        disable=args.no_progress):
            scorer = scorer or build_scorer(metric, 'NR', cli.resolve_device(args.device), weights_dir=args.weights_dir)
            data = cv2.imread(osp.join(args.image_root, img), cv2.IMREAD_COLOR)
            if data is None:
                raise ValueError(f'{osp.join(args.image_root, img)}: unreadable image.')
            with torch.no_grad():
                cache.setdefault(img, {})[metric] = float(scorer(image_to_tensor(data))[0])
        with atomic_path(cache_path) as tmp, open(tmp, 'w') as f:
            json.dump(cache, f)
    scores = {m: np.array([cache[i][m] for i in images]) for m in args.metrics}
    pairs = PairSet(np.array([index[r['image_a']] for r in rows]), np.array([index[r['image_b']] for r in rows]),
                    np.array(targets), np.ones(len(rows)))
    return scores, pairs


def report(out: str, flat: dict[str, np.ndarray], pairs: PairSet, extra: dict[str, dict[str, float]],
           ties: str = 'half') -> str:
    """``alignment.csv``, ``complementarity.csv``/``.png`` and ``report.md`` under ``out``; returns the report."""
    import matplotlib

    from nriqa_basicsr.atomic import atomic_path

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    credits = {m: pair_credit(v, pairs, ties) for m, v in flat.items()}
    rows = []
    for m in flat:
        rows.append({'metric': m, 'pairs': int((~np.isnan(credits[m])).sum()),
                     'accuracy': weighted_accuracy(credits[m], np.ones(len(pairs))),
                     'weighted_accuracy': weighted_accuracy(credits[m], pairs.weight), **extra.get(m, {})})
    rows.sort(key=lambda r: -r['accuracy'])
    fields = list(rows[0])
    with atomic_path(osp.join(out, 'alignment.csv')) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    names, matrix = complementarity(credits, pairs.weight)
    with atomic_path(osp.join(out, 'complementarity.csv')) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['wrong \\ judged'] + names)
        writer.writerows([[n] + [f'{v:.4f}' for v in row] for n, row in zip(names, matrix)])
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.0 * len(names) + 1.5))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap='viridis')
    ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel('accuracy of this metric ...')
    ax.set_ylabel('... on the pairs this metric gets wrong')
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f'{matrix[i, j]:.2f}', ha='center', va='center', color='w', fontsize=8)
    fig.colorbar(im)
    fig.tight_layout()
    with atomic_path(osp.join(out, 'complementarity.png')) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    members, acc = greedy_ensemble(flat, pairs, ties=ties) if len(flat) > 1 else ({names[0]: 1.0}, rows[0][
        'weighted_accuracy'])
    lines = ['# NR-IQA human alignment', '', f'{len(pairs)} human-ordered pairs; ties count as {ties}.', '',
             '| ' + ' | '.join(fields) + ' |', '|' + '---|' * len(fields)]
    for r in rows:
        lines.append('| ' + ' | '.join(f'{v:.4f}' if isinstance(v, float) else str(v) for v in r.values()) + ' |')
    lines += ['', '## Complementarity (row: pairs this metric gets wrong; column: accuracy there)', '',
              '| | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    lines += [f'| {n} | ' + ' | '.join(f'{v:.3f}' for v in row) + ' |' for n, row in zip(names, matrix)]
    lines += ['', f'Greedy z-scored ensemble: {members} → accuracy {acc:.4f}.', '',
              '![complementarity](complementarity.png)', '']
    path = osp.join(out, 'report.md')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines))
    return path


def build_parser() -> argparse.ArgumentParser:
    from nriqa_basicsr.iqa.custom import add_plugin_argument

    parser = argparse.ArgumentParser(prog='nriqa-analyze-iqa', description=__doc__ + _USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=['labels', 'pairs'])
    parser.add_argument('--metrics', nargs='+', required=True,
                        help='NR metrics to compare side by side: pyiqa names, custom ones (cnniqa_live) or '
                             'package.module:Class')
    add_plugin_argument(parser)
    cli.add_output(parser, required=True, help='report folder (alignment.csv, complementarity.csv/.png, report.md)')
    parser.add_argument('--dataroot', help='labels: GT variant folders (HGGT layout)')
    parser.add_argument('--labels', metavar='DIR', help='labels: annotator folders')
    parser.add_argument('--layout', choices=['hggt', 'generic'], default='hggt')
    parser.add_argument('--variants', nargs='+')
    parser.add_argument('--score-file', help='labels: existing nriqa-score-gts output to reuse')
    parser.add_argument('--cache', help='where to keep computed scores (default under --output)')
    parser.add_argument('--original-level', type=float, help='labels: put the original on the scale (P=3, S=2, N=1)')
    parser.add_argument('--agreement-weighted', action='store_true', help='labels: weigh pairs by agreement')
    parser.add_argument('--pairs', help='pairs: CSV image_a,image_b,preference')
    parser.add_argument('--image-root', default='.', help='pairs: folder the CSV paths are relative to')
    parser.add_argument('--ties', choices=['half', 'wrong', 'drop'], default='half')
    cli.add_device(parser)
    cli.add_weights_dir(parser)
    cli.add_no_progress(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-analyze-iqa`` / ``scripts/analyze_iqa.py``."""
    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.iqa.catalog import canonical_names

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # names only a cache holds (scores computed elsewhere) are allowed with --cache
        args.metrics = canonical_names(args.metrics, args.iqa_plugin, 'NR', keep_unknown=bool(args.cache))
        extra: dict[str, dict[str, float]] = {}
        if args.mode == 'labels':
            if not (args.dataroot and args.labels):
                parser.error('labels mode needs --dataroot and --labels')
            source = MultiGTSource(args.dataroot, args.layout, args.variants, dataroot_label=args.labels)
            labels, counts = source.read_labels()
            scores = label_scores(args, source)
            pairs = label_pairs(labels, counts, len(source.annotators()), args.original_level,
                                args.agreement_weighted)
            extra = {m: level_correlations(v, labels) for m, v in scores.items()}
            flat = {m: v.reshape(-1) for m, v in scores.items()}
        else:
            if not args.pairs:
                parser.error('pairs mode needs --pairs')
            flat, pairs = pair_scores(args)
        if not len(pairs):
            raise ValueError('no human-ordered pairs found.')
        path = report(args.output, flat, pairs, extra, args.ties)
    except (ValueError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    with open(path) as f:
        print(f.read().split('\n![')[0])
    print(f'report: {path}')
    return 0
