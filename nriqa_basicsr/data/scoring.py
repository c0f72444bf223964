"""Score every GT variant of a multi-GT dataset with one or more no-reference IQA metrics (``nriqa-score-gts``).

    nriqa-score-gts --dataroot datasets/demo/train/images --layout hggt \\
        --metrics musiq nima -o datasets/demo/train/scores_musiq_nima.npz [--grid 32 --crop 256]

Writes a score file (:mod:`nriqa_basicsr.data.score_file`) that ``MultiGTDataset`` reads with ``score_file:``
(SMA/SMP policies, and ``amo_cached`` with ``--grid``). Scores are qualities (higher is better; lower-better
metrics are negated). The file records the metrics, pyiqa version, weight files with SHA-256, dataset root and
fingerprint, so a stale or foreign file is refused by the dataset.

Resumable: finished groups are appended to ``<output>.partial.jsonl`` as they are scored; rerunning the same
command skips them. The score file itself appears only when every group is done (atomic rename).
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from nriqa_basicsr import cli
from nriqa_basicsr.data.multigt_source import MultiGTSource, add_source_arguments, source_from_args
from nriqa_basicsr.data.score_file import RESUME_KEYS, ScoreTable, grid_positions, save_score_table, score_header
from nriqa_basicsr.iqa import IQAScorer

__all__ = ['ResumeError', 'build_parser', 'grid_crops', 'main', 'read_partial', 'score_dataset', 'score_images']

TOOL = 'score_gts.py'  # owner name in the output markers of earlier runs: kept so they are still recognised


class ResumeError(RuntimeError):
    """A partial file from a different configuration is in the way."""


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
    if {k: old.get(k) for k in RESUME_KEYS} != {k: header.get(k) for k in RESUME_KEYS}:
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
    """Score every group of ``source`` with ``scorers`` into the score file ``out`` (resuming its partial log);
    ``grid`` is ``(stride, crop)`` for the crop scores ``amo_cached`` reads."""
    from tqdm import tqdm

    header = score_header(source, scorers, grid)
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


def build_parser() -> argparse.ArgumentParser:
    from nriqa_basicsr.iqa.custom import add_plugin_argument

    parser = argparse.ArgumentParser(prog='nriqa-score-gts', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser)
    parser.add_argument('--metrics', nargs='+', required=True,
                        help='NR metric names: pyiqa, custom (cnniqa_live) or package.module:Class')
    add_plugin_argument(parser)
    cli.add_output(parser, required=True, help='score file to write (.npz)')
    cli.add_batch_size(parser, default=16)
    cli.add_device(parser)
    parser.add_argument('--workers', type=int, default=2, help='image decoding workers (default: 2)')
    parser.add_argument('--grid', type=int, metavar='STRIDE', help='also score crops on a grid of this stride')
    parser.add_argument('--crop', type=int, metavar='SIZE', help='grid crop size (the training gt_size)')
    cli.add_weights_dir(parser)
    cli.add_no_progress(parser)
    cli.add_overwrite(parser, help='replace an existing --output score file')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-score-gts`` / ``scripts/score_gts.py``."""
    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.iqa.catalog import canonical_names
    from nriqa_basicsr.output_guard import guard_output_files

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.grid is None) != (args.crop is None):
        parser.error('--grid STRIDE and --crop SIZE go together')
    if not args.output.endswith('.npz'):
        parser.error('--output must end with .npz')
    device = cli.resolve_device(args.device)
    try:
        # before scoring: an existing score file is replaced only when asked (the partial log still resumes)
        guard_output_files([args.output], TOOL, [args.dataroot], args.overwrite)
        source = source_from_args(args)
        metrics = canonical_names(args.metrics, args.iqa_plugin, 'NR')
        scorers = {m: build_scorer(m, 'NR', device, weights_dir=args.weights_dir) for m in metrics}
        grid = (args.grid, args.crop) if args.grid else None
        table = score_dataset(source, scorers, args.output, args.batch_size, grid, args.workers,
                              progress=not args.no_progress)
    except (ValueError, FileNotFoundError, ResumeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    means = {m: np.round(v.mean(0), 3).tolist() for m, v in table.scores.items()}
    print(f'wrote {args.output}: {len(table.groups)} groups, mean quality per variant {means}')
    return 0
