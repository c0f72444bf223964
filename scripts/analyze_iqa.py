#!/usr/bin/env python
"""How well NR-IQA metrics agree with human judgements, and how they complement each other (the paper's
analysis, on any set of pyiqa NR metrics).

Multi-GT labels (HGGT layout): every pair of variants of a group whose effective labels differ, ordered
Positive > Similar > Negative (the original is left out unless ``--original-level`` places it, e.g. 2.5):

    python scripts/analyze_iqa.py labels --dataroot datasets/demo/train/images \
        --labels datasets/demo/train/labels --metrics niqe piqe brisque --out results/iqa_alignment \
        [--score-file scores.npz] [--agreement-weighted] [--ties half|wrong|drop]

Pairwise preferences (SBS180K-style): a CSV with header ``image_a,image_b,preference`` where paths are relative
to ``--image-root`` and ``preference`` is ``a``, ``b`` or the probability that a is preferred:

    python scripts/analyze_iqa.py pairs --pairs prefs.csv --image-root images/ --metrics niqe piqe \
        --out results/iqa_pairs

Scores are computed once and cached: labels mode reads/writes a ``scripts/score_gts.py`` score file (``--cache``,
resumable); pairs mode a JSON cache of per-image scores. Writes ``alignment.csv``, ``complementarity.csv``,
``report.md`` and ``complementarity.png`` (row i, column j: accuracy of j on the pairs i gets wrong), plus a
greedy z-scored ensemble and its accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
import cv2  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nriqa_basicsr.analysis import (  # noqa: E402
    PairSet,
    complementarity,
    greedy_ensemble,
    label_pairs,
    level_correlations,
    pair_credit,
    weighted_accuracy,
)
from nriqa_basicsr.atomic import atomic_path  # noqa: E402
from nriqa_basicsr.data.multigt_source import MultiGTSource  # noqa: E402
from nriqa_basicsr.data.score_file import load_score_table  # noqa: E402
from nriqa_basicsr.iqa import build_scorer  # noqa: E402
from nriqa_basicsr.iqa.catalog import canonical_names  # noqa: E402
from nriqa_basicsr.iqa.custom import add_plugin_argument  # noqa: E402
from nriqa_basicsr.metrics.nriqa_metric import image_to_tensor  # noqa: E402
from scripts.score_gts import score_dataset  # noqa: E402


def label_scores(args: argparse.Namespace, source: MultiGTSource) -> dict[str, np.ndarray]:
    """(N, K) qualities per metric from ``--score-file`` / ``--cache`` (a score_gts.py file), scored when needed."""
    path = args.score_file or args.cache or osp.join(args.out, 'scores.npz')
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
        scorers = {m: build_scorer(m, 'NR', args.device, weights_dir=args.weights_dir) for m in args.metrics}
        have = score_dataset(source, scorers, path, progress=True).scores
    return {m: have[m] for m in args.metrics}


def pair_scores(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], PairSet]:
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
    cache_path = args.cache or osp.join(args.out, 'pair_scores.json')
    cache = json.load(open(cache_path)) if osp.isfile(cache_path) else {}
    for metric in args.metrics:
        scorer = None
        for img in tqdm([i for i in images if metric not in cache.get(i, {})], desc=f'scoring {metric}'):
            scorer = scorer or build_scorer(metric, 'NR', args.device, weights_dir=args.weights_dir)
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


def report(args: argparse.Namespace, flat: dict[str, np.ndarray], pairs: PairSet,
           extra: dict[str, dict[str, float]]) -> str:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    credits = {m: pair_credit(v, pairs, args.ties) for m, v in flat.items()}
    rows = []
    for m in flat:
        rows.append({'metric': m, 'pairs': int((~np.isnan(credits[m])).sum()),
                     'accuracy': weighted_accuracy(credits[m], np.ones(len(pairs))),
                     'weighted_accuracy': weighted_accuracy(credits[m], pairs.weight), **extra.get(m, {})})
    rows.sort(key=lambda r: -r['accuracy'])
    fields = list(rows[0])
    with atomic_path(osp.join(args.out, 'alignment.csv')) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    names, matrix = complementarity(credits, pairs.weight)
    with atomic_path(osp.join(args.out, 'complementarity.csv')) as tmp, open(tmp, 'w', newline='') as f:
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
    with atomic_path(osp.join(args.out, 'complementarity.png')) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    members, acc = greedy_ensemble(flat, pairs, ties=args.ties) if len(flat) > 1 else ({names[0]: 1.0}, rows[0][
        'weighted_accuracy'])
    lines = ['# NR-IQA human alignment', '', f'{len(pairs)} human-ordered pairs; ties count as {args.ties}.', '',
             '| ' + ' | '.join(fields) + ' |', '|' + '---|' * len(fields)]
    for r in rows:
        lines.append('| ' + ' | '.join(f'{v:.4f}' if isinstance(v, float) else str(v) for v in r.values()) + ' |')
    lines += ['', '## Complementarity (row: pairs this metric gets wrong; column: accuracy there)', '',
              '| | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    lines += [f'| {n} | ' + ' | '.join(f'{v:.3f}' for v in row) + ' |' for n, row in zip(names, matrix)]
    lines += ['', f'Greedy z-scored ensemble: {members} → accuracy {acc:.4f}.', '',
              '![complementarity](complementarity.png)', '']
    path = osp.join(args.out, 'report.md')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=['labels', 'pairs'])
    parser.add_argument('--metrics', nargs='+', required=True,
                        help='NR metrics to compare side by side: pyiqa names, custom ones (cnniqa_live) or '
                             'package.module:Class')
    add_plugin_argument(parser)
    parser.add_argument('--out', required=True)
    parser.add_argument('--dataroot', help='labels: GT variant folders (HGGT layout)')
    parser.add_argument('--labels', help='labels: annotator folders')
    parser.add_argument('--layout', choices=['hggt', 'generic'], default='hggt')
    parser.add_argument('--variants', nargs='+')
    parser.add_argument('--score-file', help='labels: existing scripts/score_gts.py output to reuse')
    parser.add_argument('--cache', help='where to keep computed scores (default under --out)')
    parser.add_argument('--original-level', type=float, help='labels: put the original on the scale (P=3, S=2, N=1)')
    parser.add_argument('--agreement-weighted', action='store_true', help='labels: weigh pairs by agreement')
    parser.add_argument('--pairs', help='pairs: CSV image_a,image_b,preference')
    parser.add_argument('--image-root', default='.', help='pairs: folder the CSV paths are relative to')
    parser.add_argument('--ties', choices=['half', 'wrong', 'drop'], default='half')
    parser.add_argument('--device')
    parser.add_argument('--weights-dir')
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
        path = report(args, flat, pairs, extra)
    except (ValueError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(open(path).read().split('\n![')[0])
    print(f'report: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
