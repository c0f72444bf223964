#!/usr/bin/env python
"""Benchmark SR models on test sets with distortion, full-reference perceptual and no-reference metrics.

    python scripts/benchmark.py --scale 4 \
        --model bicubic --model amo_ft=options/test/my_model.yml \
        --dataset Set5=../shared/benchmarks/Set5/HR \
        --dataset Set14=../shared/benchmarks/Set14/HR:../shared/benchmarks/Set14/LR_bicubic/X4 --lr-tmpl '{}x4' \
        --metrics psnr ssim lpips niqe musiq --out results/benchmark

Models: ``bicubic`` (MATLAB-compatible, built in), ``NAME=option.yml`` (``network_g`` + ``path.pretrain_network_g``;
an FT option file gives its run's merged result or adapters, never the untuned base),
or ``NAME=checkpoint.pth`` (architecture read from the weights, see ``nriqa_basicsr.archs.detect``; or
``--network-g RRDBNet``, an arch name with its stock x``scale`` defaults, or ``--network-g '{"type": ...}'``).
``--scale`` defaults to the networks' own factor (they must agree; a different ``--scale`` is an error).
Datasets: ``NAME=HR_DIR`` (LR made by MATLAB bicubic from the mod-cropped HR) or ``NAME=HR_DIR:LR_DIR``
(pairs; LR file = ``--lr-tmpl`` of the HR stem). Multi-GT sets (HGGT layout):
``--multigt NAME=IMAGES_DIR:LABELS_DIR[:LR_DIR]`` — full-reference metrics are averaged over each item's
effective-positive GTs (the original when an item has none), as HGGT reports them, and a "gold standard
(positive GTs)" row gives the NR metrics of those GTs themselves. PSNR/SSIM on the Y channel with border = scale
(``--rgb`` for RGB). ``niqe`` is the MATLAB NIQE SR papers report (``--niqe pyiqa``: pyiqa's). Metrics whose
weights are missing offline are listed as skipped in the report. Writes
``per_image.csv``, ``summary.csv``, ``summary.md`` and ``perception_distortion.png`` (PSNR vs each NR metric)
under ``--out``; prints the table and images/s per model.

``--run experiments/NAME`` adds every saved generator of one training run as a model ``NAME@<iter>``
(``net_g_<iter>.pth``, ``net_g_best_<iter>.pth``, LoRA adapters ``net_g_lora_<iter>.pth``, ``net_g_latest.pth``;
``--metrics`` defaults to the run's ``val.metrics``) and writes ``run_summary.png`` (metrics over iterations,
guide / judges of the run's ``val.guard``, the guard's firing iteration) and ``run_summary.md`` (best checkpoint
per criterion); see ``nriqa_basicsr.best_checkpoint.write_checkpoint_summary``.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
import cv2  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nriqa_basicsr.archs.detect import network_scale  # noqa: E402
from nriqa_basicsr.atomic import atomic_path  # noqa: E402
from nriqa_basicsr.best_checkpoint import RunCheckpoint, load_run, resolve_model_spec  # noqa: E402
from nriqa_basicsr.data.labels import POSITIVE  # noqa: E402
from nriqa_basicsr.data.multigt_source import MultiGTSource  # noqa: E402
from nriqa_basicsr.evaluation import (  # noqa: E402
    MetricSuite,
    TestPair,
    bicubic_upscale,
    list_pairs,
    load_pair,
    summarize,
    write_reports,
    write_run_reports,
)
from nriqa_basicsr.inference import checked_scale, load_generator_and_arch, upscale_image  # noqa: E402
from nriqa_basicsr.iqa.custom import add_plugin_argument, register_plugins  # noqa: E402
from nriqa_basicsr.output_guard import OutputPathError, claim_output_dir, guard_output_dir  # noqa: E402


def parse_named(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, spec = value.partition('=')
        if value == 'bicubic':
            name, spec = 'bicubic', 'bicubic'
        elif not sep or not name or not spec:
            raise ValueError(f'--{what} {value!r}: expected NAME=SPEC' + (' or bicubic' if what == 'model' else ''))
        out.append((name, spec))
    return out


def arch_options(value: str, scale: int) -> dict:
    """``--network-g``: a JSON ``network_g`` block, or just an arch name with its stock defaults (RRDBNet: the
    ESRGAN/Real-ESRGAN x4 generator, 64 features, 23 blocks)."""
    if value.lstrip().startswith('{'):
        return json.loads(value)
    stock = {'RRDBNet': {'num_in_ch': 3, 'num_out_ch': 3, 'scale': scale},
             'SwinIR': {'upscale': scale, 'img_size': 64, 'window_size': 8, 'img_range': 1.0,
                        'depths': [6] * 6, 'embed_dim': 180, 'num_heads': [6] * 6, 'mlp_ratio': 2,
                        'upsampler': 'pixelshuffle', 'resi_connection': '1conv'},
             'MSRResNet': {'num_in_ch': 3, 'num_out_ch': 3, 'upscale': scale}}
    return {'type': value, **stock.get(value, {})}


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
    labels_dir, _, lr_dir = rest.partition(':')
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
        pair = TestPair(name, source.path(name, 0), osp.join(lr_dir, f'{name}.png') if lr_dir else None)
        if pair.lr_path is not None and not osp.isfile(pair.lr_path):
            raise FileNotFoundError(f'{pair.lr_path}: LR image of item "{name}" missing.')
        _, lr = load_pair(pair, scale)
        items.append(MultiGTItem(name, lr, positives))
    return items


def _run_checkpoint(spec: str, network_g: dict | None) -> tuple[str, dict | None]:
    """``experiments/NAME[@best|@best<k>|@latest]`` → that run's checkpoint (and architecture); else unchanged."""
    path, run_arch = resolve_model_spec(spec)
    return path, network_g or run_arch


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, str], dict[str, float]]:
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    amp = torch.bfloat16 if args.bf16 else None
    if args.network_g and args.scale is None and not args.network_g.lstrip().startswith('{'):
        raise ValueError(f'--network-g {args.network_g}: stock defaults need --scale.')
    network_g = arch_options(args.network_g, args.scale) if args.network_g else None
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
        hr_dir, _, lr_dir = spec.partition(':')
        datasets.append((name, list_pairs(hr_dir, lr_dir or None, args.lr_tmpl)))
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
            def sr_fn(lr):  # noqa: ANN001, ANN202
                return bicubic_upscale(lr, args.scale)
        else:
            def sr_fn(lr, net=loaded[0]):  # noqa: ANN001, ANN202
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
                    folder = osp.join(args.out, 'images', model_name, ds_name)
                    import os

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
    paths = write_reports(args.out, rows, summary, suite, 'SR benchmark')
    if training_run is not None:
        paths.update(write_run_reports(args.out, training_run, summary, suite))
    return rows, summary, paths, speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', help='bicubic, NAME=option.yml, NAME=ckpt.pth or '
                        'NAME=experiments/RUN[@best|@best2|@latest] (a run\'s val.best checkpoint)')
    parser.add_argument('--run', help='experiments/RUN: compare all saved generator checkpoints of one training run '
                        '(run_summary.png/.md: metrics over iterations, best checkpoint per criterion)')
    parser.add_argument('--dataset', action='append', help='NAME=HR_DIR or NAME=HR_DIR:LR_DIR')
    parser.add_argument('--multigt', action='append', help='NAME=IMAGES_DIR:LABELS_DIR[:LR_DIR] (HGGT layout)')
    parser.add_argument('--scale', type=int, help="default: the networks' own factor")
    parser.add_argument('--lr-tmpl', default='{}', help="LR file stem from the HR stem, e.g. '{}x4'")
    parser.add_argument('--metrics', nargs='+', help="default: psnr ssim niqe; with --run the run's val.metrics")
    parser.add_argument('--rgb', action='store_true', help='PSNR/SSIM on RGB instead of the Y channel')
    parser.add_argument('--niqe', choices=['matlab', 'pyiqa'], default='matlab',
                        help="which NIQE 'niqe' in --metrics is: the MATLAB one SR papers report (default) or pyiqa's")
    parser.add_argument('--network-g', help='arch name (stock defaults) or JSON network_g, for .pth models')
    parser.add_argument('--param-key', help='checkpoint key (default params_ema, falling back to params)')
    parser.add_argument('--tile', type=int, default=0, help='LR tile size for large images (0: whole image)')
    parser.add_argument('--tile-pad', type=int, default=16)
    parser.add_argument('--device', help='cuda / cpu (default: cuda when available)')
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast for the networks on CUDA')
    parser.add_argument('--weights-dir', help='extra directory searched first for IQA weight files')
    add_plugin_argument(parser)  # custom NR-IQA models (nriqa_basicsr.iqa.custom), usable in --metrics
    parser.add_argument('--save-images', action='store_true')
    parser.add_argument('--out', default='results/benchmark')
    parser.add_argument('--overwrite', action='store_true', help="replace an earlier benchmark.py result in --out")
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        # before any work: --out must not hold the data, and replaces only an earlier benchmark.py result
        inputs = [p for _, spec in parse_named((args.dataset or []) + (args.multigt or []), 'dataset')
                  for p in spec.split(':')] + [args.run]
        guard_output_dir(args.out, 'benchmark.py', inputs, args.overwrite)
        claim_output_dir(args.out, 'benchmark.py')
        register_plugins(args.iqa_plugin)
        _, _, paths, speed = run(args)
    except (ValueError, KeyError, FileNotFoundError, OutputPathError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(open(paths['summary_md']).read())
    if 'run_summary_md' in paths:
        print(open(paths['run_summary_md']).read())
    print('throughput: ' + ', '.join(f'{m} {s:.2f} images/s' for m, s in speed.items()))
    print('written: ' + ', '.join(paths.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
