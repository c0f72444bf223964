"""Run-to-run noise of the reward-hacking guard's inputs: two seeds of a tiny normal run (the README's numbers).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_guard_noise.py [--iters 24] [--val-every 4]

Tiny MSRResNet (starts as bilinear upscaling) trained with L1 (a normal run, nothing fooled) on demo data made by
:func:`nriqa_basicsr.demo.data.make_demo_data` (8 groups of 128 px, 4 validation images) in a temporary folder;
each seed perturbs the initial weights and draws other batches. Validation: psnr, ssim, piqe (held out) and niqe
(declared the guide). Prints each seed's guard reports and the largest seed-to-seed difference of every relative
change (:func:`nriqa_basicsr.guard.seed_spread`): the guard's default margins must exceed it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import os.path as osp
import shutil
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ['build_parser', 'main', 'measure', 'run_seed']

# starts close to bilinear upscaling: a "trained" model whose metrics move little in a normal run
MSRRESNET = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4}
GT_SIZE = 128
NUM_TRAIN = 8


def _dataset_opt(root: str) -> dict[str, Any]:
    return {'name': 'demo', 'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_size': GT_SIZE,
            'dataroot_gt': osp.join(root, 'train', 'images'), 'dataroot_label': osp.join(root, 'train', 'labels'),
            'dataroot_lq': osp.join(root, 'train', 'lq_x4'), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 3,
            'dataset_enlarge_ratio': 1, 'prefetch_mode': None, 'report_counts': False, 'phase': 'train', 'scale': 4}


def _val_metrics() -> dict[str, Any]:
    return {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False, 'better': 'higher'},
            'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': False, 'better': 'higher'},
            'piqe': {'type': 'calculate_nriqa', 'metric': 'piqe'},
            # pyiqa's NIQE, as measured for the README (the MATLAB NIQE needs two 96 px blocks; these are 120 px)
            'niqe': {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': 4, 'niqe_variant': 'pyiqa'}}


def run_options(root: str, seed: int, iters: int, val_every: int, folder: str) -> dict[str, Any]:
    """The BasicSR options of one seed's run (built in-process, outputs under ``folder``)."""
    opt = {
        'name': 'guard_noise', 'model_type': 'NRIQAModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': seed,
        'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1, 'auto_resume': False,
        'datasets': {'train': _dataset_opt(root)},
        'network_g': dict(MSRRESNET),
        'path': {'pretrain_network_g': None, 'param_key_g': 'params_ema', 'strict_load_g': True,
                 'resume_state': None, 'models': osp.join(folder, 'models'),
                 'training_states': osp.join(folder, 'states'), 'experiments_root': folder},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': iters,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                  'gt_selection': {'policy': 'original'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
        # a normal run (L1 only): the guide is declared, nothing optimises it; the spread is pure seed noise
        'val': {'val_freq': val_every, 'save_img': False, 'metrics': _val_metrics(), 'guard': {'guide': ['niqe']},
                'best': {}},
    }
    os.makedirs(opt['path']['models'], exist_ok=True)
    os.makedirs(opt['path']['training_states'], exist_ok=True)
    return opt


def _val_loader(root: str) -> torch.utils.data.DataLoader:
    from basicsr.data.paired_image_dataset import PairedImageDataset

    ds = PairedImageDataset({'name': 'demo_val', 'dataroot_gt': osp.join(root, 'val', 'images', 'original'),
                             'dataroot_lq': osp.join(root, 'val', 'lq_x4'), 'io_backend': {'type': 'disk'},
                             'phase': 'val', 'scale': 4, 'filename_tmpl': '{}'})
    return torch.utils.data.DataLoader(ds, batch_size=1)


def _batch(root: str, idx: list[int]) -> dict[str, Any]:
    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset

    ds = MultiGTDataset(_dataset_opt(root))
    return torch.utils.data.default_collate([ds[i] for i in idx])


def run_seed(root: str, seed: int, iters: int, val_every: int, folder: str) -> tuple[list[Any], dict[str, Any]]:
    """One seed's run: (its validation history, its options)."""
    from basicsr.models import build_model

    from nriqa_basicsr.options import prepare_options

    opt = run_options(root, seed, iters, val_every, folder)
    torch.manual_seed(0)
    prepare_options(opt)
    model = build_model(copy.deepcopy(opt))
    torch.manual_seed(seed)  # the seed decides the perturbation of the initial weights and the batches
    for p in model.get_bare_model(model.net_g).parameters():
        p.data.add_(torch.randn_like(p) * 0.01)
    if hasattr(model, 'net_g_ema'):
        model.model_ema(0)
    loader = _val_loader(root)
    for it in range(1, iters + 1):
        g = torch.Generator().manual_seed(seed * 1000 + it)
        model.feed_data(_batch(root, torch.randperm(NUM_TRAIN, generator=g)[:3].tolist()))
        model.optimize_parameters(it)
        if it % val_every == 0:
            model.validation(loader, it, None, False)
    return model.val_tracker.book.history, opt


def measure(seeds: Sequence[int] = (1, 2), iters: int = 24, val_every: int = 4, log: Any = print) -> dict[str, Any]:
    """Train one run per seed on fresh demo data and return ``{'best': spread, 'start': spread}`` (relative changes
    since the best and since the start, :func:`~nriqa_basicsr.guard.seed_spread`), logging the guard reports."""
    from nriqa_basicsr.demo.data import make_demo_data
    from nriqa_basicsr.guard import (
        evaluate_guard,
        metric_directions,
        parse_best_options,
        parse_guard_options,
        seed_spread,
    )

    tmp = tempfile.mkdtemp(prefix='guard-noise-')
    try:
        root = make_demo_data(osp.join(tmp, 'demo'), num_train=NUM_TRAIN, num_val=4, size=GT_SIZE, seed=7)
        histories, opt = [], None
        for seed in seeds:
            history, opt = run_seed(root, seed, iters, val_every, osp.join(tmp, f'seed{seed}'))
            histories.append(history)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    val = opt['val']
    cfg, directions = parse_guard_options(val), metric_directions(val['metrics'])
    criterion = parse_best_options(val).criterion
    for seed, history in zip(seeds, histories):
        log(f'seed {seed}:')
        for (it, values), r in zip(history, evaluate_guard(history, cfg, directions, criterion)):
            log(f'  iter {it}: ' + ', '.join(f'{k} {v:.4f}' for k, v in values.items())
                + f' | guide {100 * r.guide_change:+.2f}% judges {100 * r.judge_change:+.2f}%')
    return {reference: seed_spread(histories, dataclasses.replace(cfg, reference=reference), directions, criterion)
            for reference in ('best', 'start')}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='measure_guard_noise.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=24, help='trained iterations per seed (default: 24)')
    parser.add_argument('--val-every', type=int, default=4, help='validate every N iterations (default: 4)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2], help='the seeds compared (default: 1 2)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/measure_guard_noise.py``."""
    args = build_parser().parse_args(argv)
    if len(args.seeds) < 2:
        build_parser().error('--seeds: give at least two seeds to compare')
    start = time.time()
    spreads = measure(args.seeds, args.iters, args.val_every)
    for reference, spread in spreads.items():
        print(f'largest seed-to-seed difference of the relative change since the {reference}: '
              + ', '.join(f'{k} {100 * v:.2f}%' for k, v in spread.items()))
    print(f'({time.time() - start:.0f} s for {len(args.seeds)} runs)')
    return 0
