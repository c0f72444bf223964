#!/usr/bin/env python
"""Run-to-run noise of the reward-hacking guard's inputs: two seeds of a tiny normal FT run (README numbers).

    HF_HUB_OFFLINE=1 .venv/bin/python tests/measure_guard_noise.py [--iters 24] [--val-every 4]

Tiny MSRResNet (starts as bilinear upscaling) trained with L1 (a normal run, nothing fooled) on the demo data
made by ``scripts/make_demo_data.py`` (8 groups of 128 px, 4 validation images); each seed perturbs the initial
weights and draws other batches. Validation: psnr, ssim, niqe (declared the guide), piqe (held out). Prints
each seed's guard reports and the largest seed-to-seed difference of every relative change
(:func:`nriqa_basicsr.guard.seed_spread`).
"""

import argparse
import dataclasses
import os.path as osp
import sys
import tempfile
import time

sys.path[:0] = [osp.dirname(__file__), osp.join(osp.dirname(__file__), osp.pardir)]
import conftest  # noqa: E402,F401  (offline, isolated caches, shims)
import torch  # noqa: E402
from test_guard import MSRRESNET, _val_loader, _val_opt  # noqa: E402
from test_model import _build, _dataset_opt, _model_opt  # noqa: E402

from nriqa_basicsr.guard import (  # noqa: E402
    evaluate_guard,
    metric_directions,
    parse_best_options,
    parse_guard_options,
    seed_spread,
)


def run(root: str, seed: int, iters: int, val_every: int, tmp: str) -> tuple[list, dict]:
    opt = _model_opt(root, None, 'original', __import__('pathlib').Path(tmp) / f'seed{seed}')
    opt['manual_seed'] = seed
    opt['network_g'] = dict(MSRRESNET)
    opt['datasets']['train']['gt_size'] = 128
    opt['train']['total_iter'] = iters
    metrics = _val_opt()['metrics']
    metrics.pop('musiq')
    metrics['niqe'] = {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': 4}
    # a normal run (L1 only): the guide is declared, nothing optimises it; the spread is pure seed noise
    opt['val'] = {'val_freq': val_every, 'save_img': False, 'metrics': metrics, 'guard': {'guide': ['niqe']},
                  'best': {}}
    model = _build(opt)
    torch.manual_seed(seed)  # _build seeds 0: the seed decides the initial weights and the batches
    for p in model.get_bare_model(model.net_g).parameters():
        p.data.add_(torch.randn_like(p) * 0.01)
    if hasattr(model, 'net_g_ema'):
        model.model_ema(0)
    loader = _val_loader(root)
    for it in range(1, iters + 1):
        g = torch.Generator().manual_seed(seed * 1000 + it)
        idx = torch.randperm(8, generator=g)[:3].tolist()
        model.feed_data(_pick(root, idx))
        model.optimize_parameters(it)
        if it % val_every == 0:
            model.validation(loader, it, None, False)
    return model.val_tracker.book.history, opt


def _pick(root: str, idx: list[int]) -> dict:
    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset

    ds = MultiGTDataset(dict(_dataset_opt(root, None, gt_size=128), phase='train', scale=4))
    return torch.utils.data.default_collate([ds[i] for i in idx])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--iters', type=int, default=24)
    parser.add_argument('--val-every', type=int, default=4)
    args = parser.parse_args()
    from scripts.make_demo_data import make_demo_data

    tmp = tempfile.mkdtemp(prefix='guard-noise-')
    root = osp.join(tmp, 'demo')
    make_demo_data(root, num_train=8, num_val=4, size=128, seed=7)
    start = time.time()
    histories = []
    for seed in (1, 2):
        history, opt = run(root, seed, args.iters, args.val_every, tmp)
        histories.append(history)
    val = opt['val']
    cfg, directions = parse_guard_options(val), metric_directions(val['metrics'])
    criterion = parse_best_options(val).criterion
    for seed, history in zip((1, 2), histories):
        print(f'seed {seed}:')
        for (it, values), r in zip(history, evaluate_guard(history, cfg, directions, criterion)):
            print(f'  iter {it}: ' + ', '.join(f'{k} {v:.4f}' for k, v in values.items())
                  + f' | guide {100 * r.guide_change:+.2f}% judges {100 * r.judge_change:+.2f}%')
    for reference in ('best', 'start'):
        spread = seed_spread(histories, dataclasses.replace(cfg, reference=reference), directions, criterion)
        print(f'largest seed-to-seed difference of the relative change since the {reference}: '
              + ', '.join(f'{k} {100 * v:.2f}%' for k, v in spread.items()))
    print(f'({time.time() - start:.0f} s for both runs)')


if __name__ == '__main__':
    main()
