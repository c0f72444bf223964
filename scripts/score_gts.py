#!/usr/bin/env python
"""Score every GT variant of a multi-GT dataset with one or more no-reference IQA metrics.

    python scripts/score_gts.py --dataroot datasets/demo/train/images --layout hggt \
        --metrics musiq nima --out datasets/demo/train/scores_musiq_nima.npz [--grid 32 --crop 256]

Writes a score file (``nriqa_basicsr/data/score_file.py``) that ``MultiGTDataset`` reads with
``score_file:`` (SMA/SMP policies, and ``amo_cached`` with ``--grid``). Scores are qualities (higher is better;
lower-better metrics are negated). The file records the metrics, pyiqa version, weight files with SHA-256,
dataset root and fingerprint, so a stale or foreign file is refused by the dataset.

Resumable: finished groups are appended to ``<out>.partial.jsonl`` as they are scored; rerunning the same
command skips them. The score file itself appears only when every group is done (atomic rename).
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)
from nriqa_basicsr.data.multigt_source import MultiGTSource, add_source_arguments, source_from_args  # noqa: E402
from nriqa_basicsr.data.score_file import (  # noqa: E402
    FORMAT,
    ScoreTable,
    dataset_fingerprint,
    grid_positions,
    save_score_table,
    source_content_fingerprint,
)
from nriqa_basicsr.iqa import IQAScorer, build_scorer  # noqa: E402
from nriqa_basicsr.iqa.catalog import canonical_names  # noqa: E402
from nriqa_basicsr.iqa.custom import add_plugin_argument  # noqa: E402
from nriqa_basicsr.iqa.releases import file_sha256  # noqa: E402
from nriqa_basicsr.output_guard import guard_output_files  # noqa: E402


class ResumeError(RuntimeError):
    """A partial file from a different configuration is in the way."""


def metric_record(scorer: IQAScorer) -> dict[str, Any]:
    import pyiqa

    custom = {'custom_model': type(scorer.net).__module__ + ':' + type(scorer.net).__qualname__} \
        if scorer.info.custom else {}
    return {'pyiqa_version': pyiqa.__version__, 'lower_better': scorer.lower_better, **custom,
            'stored_as': 'quality (higher is better; lower-better metrics negated)',
            'options': {k: str(v) for k, v in scorer.metric_opts.items()},
            'weight_files': {osp.basename(p): file_sha256(p) for p in scorer.weight_files}}


def _batches(items: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, items.shape[0], size):
        yield items[start:start + size]


@torch.no_grad()
def score_images(scorer: IQAScorer, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Qualities ``(N,)`` of ``(N, 3, H, W)`` images, in chunks of ``batch_size`` on the scorer's device."""
    return torch.cat([scorer(chunk.to(scorer.device)).cpu() for chunk in _batches(images, batch_size)])


def grid_crops(images: torch.Tensor, crop: int, stride: int) -> tuple[torch.Tensor, int, int]:
    """All ``crop``-sized windows on the stride grid: ``(K·R·C, 3, crop, crop)`` plus ``R, C``."""
    tops, lefts = grid_positions(images.shape[-2], crop, stride), grid_positions(images.shape[-1], crop, stride)
    if not tops or not lefts:
        raise ValueError(f'images of {images.shape[-1]}x{images.shape[-2]} are smaller than --crop {crop}.')
    crops = images.unfold(2, crop, stride).unfold(3, crop, stride)  # K, 3, R, C, crop, crop
    crops = crops[:, :, :len(tops), :len(lefts)].permute(0, 2, 3, 1, 4, 5)
    return crops.reshape(-1, 3, crop, crop), len(tops), len(lefts)


def read_partial(path: str, header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished groups of an earlier run with the same configuration (a torn last line is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        return done
    try:
        old = json.loads(lines[0])
    except json.JSONDecodeError:
        if len(lines) == 1:  # killed while writing the header: nothing was scored yet, start the log again
            os.remove(path)
            return done
        raise ResumeError(f'{path}: its first line (the run header) is damaged, so the scored groups cannot be '
                          f'trusted; delete the file to start over.') from None
    keys = ('metrics', 'variants', 'fingerprint', 'content', 'grid')
    if {k: old.get(k) for k in keys} != {k: header.get(k) for k in keys}:
        raise ResumeError(f'{path}: left by a run with different metrics, variants, dataset or grid; delete it '
                          f'to start over, or rerun with the options of that run.')
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # interrupted while writing this line: that group is rescored
        done[record['group']] = record
    return done


def score_dataset(source: MultiGTSource, scorers: dict[str, IQAScorer], out: str, batch_size: int = 16,
                  grid: tuple[int, int] | None = None, workers: int = 0, progress: bool = True) -> ScoreTable:
    from tqdm import tqdm

    header = {
        'format': FORMAT, 'metrics': {m: metric_record(s) for m, s in scorers.items()},
        'variants': source.variants, 'layout': source.layout, 'dataset_root': osp.abspath(source.root),
        'io_backend': source.backend, 'fingerprint': dataset_fingerprint(source.groups, source.variants),
        'content': source_content_fingerprint(source),  # other images with the same names are refused on load
        'grid': {'stride': grid[0], 'crop': grid[1]} if grid else None,
    }
    partial = out + '.partial.jsonl'
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    done = read_partial(partial, header) if osp.isfile(partial) else {}
    todo = [g for g in source.groups if g not in done]

    class _Groups(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(todo)

        def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
            imgs = source.read_group(todo[i])  # BGR float32
            return todo[i], torch.from_numpy(np.stack(imgs)[..., ::-1].copy()).permute(0, 3, 1, 2)

    loader = torch.utils.data.DataLoader(_Groups(), batch_size=None, num_workers=workers)
    new = not osp.isfile(partial) or os.path.getsize(partial) == 0
    with open(partial, 'a') as log:
        if new:
            log.write(json.dumps(header) + '\n')
        for name, images in tqdm(loader, total=len(todo), disable=not progress, desc='scoring groups',
                                 initial=0, unit='group'):
            record: dict[str, Any] = {'group': name, 'scores': {}, 'grid': {}}
            for metric, scorer in scorers.items():
                record['scores'][metric] = score_images(scorer, images, batch_size).tolist()
                if grid:
                    crops, rows, cols = grid_crops(images, grid[1], grid[0])
                    values = score_images(scorer, crops, batch_size).reshape(len(source.variants), rows, cols)
                    record['grid'][metric] = values.tolist()
            log.write(json.dumps(record) + '\n')
            log.flush()
            os.fsync(log.fileno())
            done[name] = record

    scores = {m: np.array([done[g]['scores'][m] for g in source.groups], np.float32) for m in scorers}
    grids = {}
    if grid:
        shapes = {np.shape(done[g]['grid'][next(iter(scorers))]) for g in source.groups}
        if len(shapes) != 1:
            raise ValueError(f'--grid needs equally sized groups; found grid shapes {sorted(shapes)}.')
        grids = {m: np.array([done[g]['grid'][m] for g in source.groups], np.float32) for m in scorers}
    table = ScoreTable(header, list(source.groups), scores, grids)
    save_score_table(out, table)
    os.remove(partial)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument('--metrics', nargs='+', required=True,
                        help='NR metric names: pyiqa, custom (cnniqa_live) or package.module:Class')
    add_plugin_argument(parser)
    parser.add_argument('--out', required=True, help='score file to write (.npz)')
    parser.add_argument('--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument('--device', default=None, help='cuda / cpu (default: cuda when available)')
    parser.add_argument('--workers', type=int, default=2, help='image decoding workers')
    parser.add_argument('--grid', type=int, metavar='STRIDE', help='also score crops on a grid of this stride')
    parser.add_argument('--crop', type=int, metavar='SIZE', help='grid crop size (the training gt_size)')
    parser.add_argument('--weights-dir', help='extra directory searched first for metric weight files')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out score file')
    args = parser.parse_args(argv)
    if (args.grid is None) != (args.crop is None):
        parser.error('--grid STRIDE and --crop SIZE go together')
    if not args.out.endswith('.npz'):
        parser.error('--out must end with .npz')
    try:
        # before scoring: an existing score file is replaced only when asked (the partial log still resumes)
        guard_output_files([args.out], 'score_gts.py', [args.dataroot], args.overwrite)
        source = source_from_args(args)
        metrics = canonical_names(args.metrics, args.iqa_plugin, 'NR')
        scorers = {m: build_scorer(m, 'NR', args.device, weights_dir=args.weights_dir) for m in metrics}
        grid = (args.grid, args.crop) if args.grid else None
        table = score_dataset(source, scorers, args.out, args.batch_size, grid, args.workers,
                              progress=not args.no_progress)
    except (ValueError, FileNotFoundError, ResumeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    means = {m: np.round(v.mean(0), 3).tolist() for m, v in table.scores.items()}
    print(f'wrote {args.out}: {len(table.groups)} groups, mean quality per variant {means}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
