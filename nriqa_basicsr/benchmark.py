"""Benchmark SR models on test sets with distortion, full-reference perceptual and no-reference metrics.

    nriqa-benchmark --scale 4 \
        --model bicubic --model amo_ft=options/test/my_model.yml \
        --dataset Set5=../shared/benchmarks/Set5/HR \
        --dataset Set14=../shared/benchmarks/Set14/HR:../shared/benchmarks/Set14/LR_bicubic/X4 \
        --lq-filename-tmpl '{}x4' --metrics psnr ssim lpips niqe musiq -o results/benchmark

Models: ``bicubic`` (MATLAB-compatible, built in), ``NAME=option.yml`` (``network_g`` + ``path.pretrain_network_g``;
an FT option file gives its run's merged result or adapters, never the untuned base),
or ``NAME=checkpoint.pth`` (architecture read from the weights, see ``nriqa_basicsr.archs.detect``; or
``--network-g RRDBNet``, an arch name with its stock x``scale`` defaults, or ``--network-g '{"type": ...}'``).
``--scale`` defaults to the networks' own factor (they must agree; a different ``--scale`` is an error).
Datasets: ``NAME=HR_DIR`` (LR made by MATLAB bicubic from the mod-cropped HR) or ``NAME=HR_DIR:LR_DIR``
(pairs; LR file = ``--lq-filename-tmpl`` of the HR stem). Multi-GT sets (HGGT layout):
``--multigt NAME=IMAGES_DIR:LABELS_DIR[:LR_DIR]`` — full-reference metrics are averaged over each item's
effective-positive GTs (the original when an item has none), as HGGT reports them, and a "gold standard
(positive GTs)" row gives the NR metrics of those GTs themselves. PSNR/SSIM on the Y channel with border = scale
(``--rgb`` for RGB). ``niqe`` is the MATLAB NIQE SR papers report (``--niqe pyiqa``: pyiqa's). Metrics whose
weights are missing offline are listed as skipped in the report. Writes
``per_image.csv``, ``summary.csv``, ``summary.md`` and ``perception_distortion.png`` (PSNR vs each NR metric)
under ``-o/--output``; prints the table and images/s per model.

``--run experiments/NAME`` adds every saved generator of one training run as a model ``NAME@<iter>``
(``net_g_<iter>.pth``, ``net_g_best_<iter>.pth``, LoRA adapters ``net_g_lora_<iter>.pth``, ``net_g_latest.pth``;
``--metrics`` defaults to the run's ``val.metrics``) and writes ``run_summary.png`` (metrics over iterations,
guide / judges of the run's ``val.guard``, the guard's firing iteration) and ``run_summary.md`` (best checkpoint
per criterion); see ``nriqa_basicsr.best_checkpoint.write_checkpoint_summary``.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from nriqa_basicsr import cli
from nriqa_basicsr.archs.detect import network_scale
from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.best_checkpoint import RunCheckpoint, load_run, resolve_model_spec
from nriqa_basicsr.data.labels import POSITIVE
from nriqa_basicsr.data.multigt_source import MultiGTSource
from nriqa_basicsr.evaluation import (
    MetricSuite,
    TestPair,
    bicubic_upscale,
    list_pairs,
    load_pair,
    summarize,
    write_reports,
    write_run_reports,
)
from nriqa_basicsr.inference import checked_scale, load_generator_and_arch, upscale_image
from nriqa_basicsr.iqa.custom import add_plugin_argument, register_plugins
from nriqa_basicsr.output_guard import OutputPathError, claim_output_dir, guard_output_dir

__all__ = ['MultiGTItem', 'TOOL', 'build_parser', 'common_scale', 'main', 'multigt_items', 'parse_named', 'run']

TOOL = 'benchmark.py'  # the owner named in output_guard's marker (earlier results carry this name)
DEFAULT_OUTPUT = 'results/benchmark'


def parse_named(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    """``NAME=SPEC`` values of ``--<what>`` (``bicubic`` alone is the built-in model)."""
    out = []
    for value in values:
        name, sep, spec = value.partition('=')
        if value == 'bicubic':
            name, spec = 'bicubic', 'bicubic'
        elif not sep or not name or not spec:
            raise ValueError(f'--{what} {value!r}: expected NAME=SPEC' + (' or bicubic' if what == 'model' else ''))
        out.append((name, spec))
    return out


def common_scale(archs: dict[str, dict], scale: int | None) -> int:
    """The factor of the models' networks (``archs``: model name -> ``network_g``); ``scale`` must agree."""
    scales = {name: checked_scale(g, scale, f'--scale (model {name})') for name, g in archs.items()
              if scale is not None or network_scale(g) is not None}
    if len(set(scales.values())) > 1:
        found = ', '.join(f'{n}: x{s}' for n, s in scales.items())
        raise ValueError(f'the models upscale by different factors ({found}); benchmark them in separate runs.')
    if scale is None and not scales:
        raise ValueError('give --scale (no model network states its factor).')
    return scale if scale is not None else next(iter(scales.values()))


@dataclass
class MultiGTItem:
    name: str
    lr: np.ndarray
    references: list[np.ndarray]  # effective-positive GTs (the original when there are none), uint8 BGR


def multigt_items(spec: str, scale: int) -> list[MultiGTItem]:
    """Items of an HGGT-layout set: ``IMAGES_DIR:LABELS_DIR[:LR_DIR]`` (LR: ``<name>.png`` in LR_DIR, else MATLAB
    bicubic of the original)."""
    images, _, rest = spec.partition(':')
    labels_dir, _, lq_dir = rest.partition(':')
    if not labels_dir:
        raise ValueError(f'--multigt {spec!r}: expected IMAGES_DIR:LABELS_DIR[:LR_DIR].')
    source = MultiGTSource(images, 'hggt', dataroot_label=labels_dir)
    labels, _ = source.read_labels()
    items = []
    for i, name in enumerate(source.groups):
        gts = [np.clip(g * 255.0, 0, 255).round().astype(np.uint8) for g in source.read_group(name)]
        h, w = gts[0].shape[:2]
        gts = [g[:h - h % scale, :w - w % scale] for g in gts]
        positives = [gts[k] for k in range(len(gts)) if labels[i, k] == POSITIVE] or [gts[0]]
        pair = TestPair(name, source.path(name, 0), osp.join(lq_dir, f'{name}.png') if lq_dir else None)
        if pair.lq_path is not None and not osp.isfile(pair.lq_path):
            raise FileNotFoundError(f'{pair.lq_path}: LR image of item "{name}" missing.')
        _, lr = load_pair(pair, scale)
        items.append(MultiGTItem(name, lr, positives))
    return items


def _run_checkpoint(spec: str, network_g: dict | None) -> tuple[str, dict | None]:
    """``experiments/NAME[@best|@best<k>|@latest]`` → that run's checkpoint (and architecture); else unchanged."""
    path, run_arch = resolve_model_spec(spec)
    return path, network_g or run_arch


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, str], dict[str, float]]:
    """Benchmark the models of ``args`` (the parsed flags of :func:`build_parser`): (per-image rows, summary rows,
    written report paths, images/s per model)."""
    device = cli.resolve_device(args.device)
    amp = torch.bfloat16 if args.bf16 else None
    network_g = cli.parse_network_g(args.network_g, args.scale) if args.network_g else None
    # networks first: their own factor is the default --scale, which the data and metrics below need
    models = [(name, spec, None if spec == 'bicubic' else load_generator_and_arch(
        *_run_checkpoint(spec, network_g), args.param_key, device)) for name, spec in parse_named(args.model or [],
                                                                                                'model')]
    archs = {name: loaded[1] for name, _, loaded in models if loaded}
    training_run = load_run(args.run) if getattr(args, 'run', None) else None  # callers' Namespaces may lack it
    if training_run is not None:  # --run: every checkpoint of one run, loaded one at a time in the loop below
        archs[training_run.name] = training_run.architecture(args.param_key)
        models += [(training_run.model_name(c), c.path, c) for c in training_run.checkpoints]
        args.metrics = args.metrics or training_run.benchmark_metrics()
    if not models:
        raise ValueError('give --model and/or --run.')
    args.metrics = args.metrics or ['psnr', 'ssim', 'niqe']
    args.scale = common_scale(archs, args.scale)
    datasets = []
    for name, spec in parse_named(args.dataset or [], 'dataset'):
        gt_dir, _, lq_dir = spec.partition(':')
        datasets.append((name, list_pairs(gt_dir, lq_dir or None, args.lq_filename_tmpl)))
    for name, spec in parse_named(args.multigt or [], 'multigt'):
        datasets.append((name, multigt_items(spec, args.scale)))
    if not datasets:
        raise ValueError('give at least one --dataset or --multigt.')
    suite = MetricSuite(args.metrics, args.scale, y_channel=not args.rgb, device=device, weights_dir=args.weights_dir,
                        niqe_variant=getattr(args, 'niqe', 'matlab'))
    rows, speed = [], {}
    for model_name, _, loaded in models:
        if isinstance(loaded, RunCheckpoint):
            loaded = training_run.load(loaded, args.param_key, device)
        if loaded is None:
            def sr_fn(lr: np.ndarray) -> np.ndarray:
                return bicubic_upscale(lr, args.scale)
        else:
            def sr_fn(lr: np.ndarray, net: torch.nn.Module = loaded[0]) -> np.ndarray:
                return upscale_image(net, lr, args.scale, args.tile, args.tile_pad, amp)
        seconds, count = 0.0, 0
        for ds_name, pairs in datasets:
            for pair in tqdm(pairs, desc=f'{model_name} / {ds_name}', disable=args.no_progress):
                hr, lr = load_pair(pair, args.scale) if isinstance(pair, TestPair) else (None, pair.lr)
                start = time.perf_counter()
                sr = sr_fn(lr)
                seconds += time.perf_counter() - start
                count += 1
                if args.save_images:
                    folder = osp.join(args.output, 'images', model_name, ds_name)
                    os.makedirs(folder, exist_ok=True)
                    with atomic_path(osp.join(folder, f'{pair.name}.png')) as tmp:
                        cv2.imwrite(tmp, sr)
                values = suite(sr, hr) if hr is not None else suite.multi_reference(sr, pair.references)
                rows.append({'model': model_name, 'dataset': ds_name, 'image': pair.name, **values})
        speed[model_name] = count / seconds if seconds else float('inf')
    for ds_name, items in datasets:
        for item in items:
            if isinstance(item, MultiGTItem):  # NR quality of the human-positive GTs: the gold standard row
                per_gt = [suite.no_reference_only(ref) for ref in item.references]
                rows.append({'model': 'gold standard (positive GTs)', 'dataset': ds_name, 'image': item.name,
                             **{n: float(np.mean([v[n] for v in per_gt])) for n in suite.names}})
    summary = summarize(rows, suite.names)
    paths = write_reports(args.output, rows, summary, suite, 'SR benchmark')
    if training_run is not None:
        paths.update(write_run_reports(args.output, training_run, summary, suite))
    return rows, summary, paths, speed


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-benchmark``."""
    parser = argparse.ArgumentParser(prog='nriqa-benchmark', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', help='bicubic, NAME=option.yml, NAME=ckpt.pth or '
                        'NAME=experiments/RUN[@best|@best2|@latest] (a run\'s val.best checkpoint); repeatable')
    parser.add_argument('--run', help='experiments/RUN: compare all saved generator checkpoints of one training run '
                        '(run_summary.png/.md: metrics over iterations, best checkpoint per criterion)')
    parser.add_argument('--dataset', action='append', help='NAME=HR_DIR or NAME=HR_DIR:LR_DIR (repeatable)')
    parser.add_argument('--multigt', action='append', help='NAME=IMAGES_DIR:LABELS_DIR[:LR_DIR] (HGGT layout)')
    cli.add_scale(parser, help="upscaling factor (default: the networks' own, which must agree)")
    parser.add_argument('--lq-filename-tmpl', default='{}', metavar='TMPL',
                        help="LR file stem from the HR stem, e.g. '{}x4' (default: '{}')")
    parser.add_argument('--metrics', nargs='+', help="IQA metrics (default: psnr ssim niqe; with --run the run's "
                        'val.metrics)')
    parser.add_argument('--rgb', action='store_true', help='PSNR/SSIM on RGB instead of the Y channel')
    parser.add_argument('--niqe', choices=['matlab', 'pyiqa'], default='matlab',
                        help="which NIQE 'niqe' in --metrics is: the MATLAB one SR papers report (default) or pyiqa's")
    cli.add_network_g(parser)
    cli.add_param_key(parser)
    cli.add_tile(parser)
    cli.add_device(parser)
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast for the networks on CUDA')
    cli.add_weights_dir(parser)
    add_plugin_argument(parser)  # custom NR-IQA models (nriqa_basicsr.iqa.custom), usable in --metrics
    parser.add_argument('--save-images', action='store_true', help='also write the SR images under OUTPUT/images')
    cli.add_output(parser, default=DEFAULT_OUTPUT, help=f'results folder (default: {DEFAULT_OUTPUT})')
    cli.add_overwrite(parser, help='replace an earlier benchmark result in --output (never other files)')
    cli.add_no_progress(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-benchmark``: run :func:`run` and print the tables; 1 on a bad model, dataset or output."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.network_g:  # a malformed flag is a usage error, before anything is loaded
        try:
            cli.parse_network_g(args.network_g, args.scale)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        # before any work: --output must not hold the data, and replaces only an earlier benchmark result
        inputs = [p for _, spec in parse_named((args.dataset or []) + (args.multigt or []), 'dataset')
                  for p in spec.split(':')] + [args.run]
        guard_output_dir(args.output, TOOL, inputs, args.overwrite)
        claim_output_dir(args.output, TOOL)
        register_plugins(args.iqa_plugin)
        _, _, paths, speed = run(args)
    except (ValueError, KeyError, FileNotFoundError, OutputPathError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    with open(paths['summary_md'], encoding='utf-8') as f:
        print(f.read())
    if 'run_summary_md' in paths:
        with open(paths['run_summary_md'], encoding='utf-8') as f:
            print(f.read())
    print('throughput: ' + ', '.join(f'{m} {s:.2f} images/s' for m, s in speed.items()))
    print('written: ' + ', '.join(paths.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
