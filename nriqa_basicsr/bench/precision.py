"""Does bf16 + channels_last change training results beyond seed noise? A short-run check (benchmark, not a test).

    nriqa-bench-precision -opt options/train/train_RRDB_UPos.yml --iters 300 -o precision.json

Trains the option file's networks and losses (random initial weights, see ``nriqa_basicsr.bench.step``) on the
built-in demo data (``--demo-data``; made there if missing, else in a temporary folder) three times from the same
initial weights and data order: fp32 seed 0, fp32 seed 1 (the noise reference: another data order and GT draw)
and ``--amp`` + channels_last seed 0; then reports each run's mean training loss over the last 20 % of the
iterations and PSNR-Y on the demo val split. The precision is "within noise" when |bf16 − fp32| ≤
|fp32 seed 1 − fp32 seed 0| for the validation PSNR.
On a CPU the model ignores amp/channels_last, so only the mechanics are exercised there.
"""

from __future__ import annotations

import argparse
import copy
import os.path as osp
import sys
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
from basicsr.metrics import calculate_psnr
from basicsr.models import build_model

from nriqa_basicsr import cli
from nriqa_basicsr.bench import device_name, write_json
from nriqa_basicsr.bench.step import load_options, random_weights
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.demo.data import make_demo_data
from nriqa_basicsr.evaluation import list_pairs, load_pair
from nriqa_basicsr.inference import upscale_image

__all__ = ['build_parser', 'demo_options', 'main', 'run', 'train_and_eval']


def demo_options(opt: dict, data: str, batch: int, gt_size: int) -> dict:
    """The option file's training set replaced by the demo data (paired x4 LR, HGGT layout, labels)."""
    train = opt['datasets']['train']
    keep = {k: train[k] for k in ('name', 'type', 'phase', 'scale', 'use_hflip', 'use_rot') if k in train}
    opt['datasets']['train'] = dict(keep, type='MultiGTDataset', layout='hggt', gt_size=gt_size,
                                    dataroot_gt=osp.join(data, 'train', 'images'),
                                    dataroot_label=osp.join(data, 'train', 'labels'),
                                    dataroot_lq=osp.join(data, 'train', 'lq_x4'), lq_mode='paired',
                                    batch_size_per_gpu=batch, num_worker_per_gpu=0, report_counts=False)
    sel = opt['train'].get('gt_selection') or {}
    if sel.get('policy') in ('sma', 'smp', 'amo_cached'):  # no score file for the demo data: human labels
        opt['train']['gt_selection'] = {'policy': 'upos'}
    return opt


def train_and_eval(opt: dict, init: dict, seed: int, iters: int, data: str, device: torch.device) -> dict:
    """Train ``opt``'s model from ``init`` for ``iters`` steps (data order and GT draws from ``seed``); its tail
    training loss and PSNR-Y on the demo val split."""
    torch.manual_seed(0)
    model = build_model(copy.deepcopy(opt))
    model.get_bare_model(model.net_g).load_state_dict(init['net_g'])
    if 'net_d' in init:
        model.get_bare_model(model.net_d).load_state_dict(init['net_d'])
    if getattr(model, 'ema_decay', 0) > 0:
        model.model_ema(0)
    model.sel_generator.manual_seed(seed)
    dataset = MultiGTDataset(opt['datasets']['train'])
    loader = torch.utils.data.DataLoader(dataset, batch_size=opt['datasets']['train']['batch_size_per_gpu'],
                                         shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    losses, it = [], 0
    while it < iters:
        for batch in loader:
            it += 1
            model.feed_data(batch)
            model.optimize_parameters(it)
            log = model.get_current_log()
            losses.append(float(sum(v for k, v in log.items() if k.startswith('l_g_'))))
            if it >= iters:
                break
    net = model.net_g_ema if getattr(model, 'ema_decay', 0) > 0 else model.get_bare_model(model.net_g)
    amp = model.precision.amp_dtype
    psnr = []
    for pair in list_pairs(osp.join(data, 'val', 'images', 'original'), osp.join(data, 'val', 'lq_x4')):
        hr, lr = load_pair(pair, opt['scale'])
        sr = upscale_image(net.eval(), lr, opt['scale'], amp_dtype=amp)
        psnr.append(calculate_psnr(sr, hr, opt['scale'], test_y_channel=True))
    tail = losses[-max(1, iters // 5):]
    return {'train_loss_tail': float(np.mean(tail)), 'val_psnr_y': float(np.mean(psnr)),
            'amp': str(amp), 'channels_last': model.precision.channels_last}


def run(args: argparse.Namespace) -> dict:
    """The three short runs and the verdict (the flags of :func:`build_parser`); the JSON result."""
    device = torch.device(cli.resolve_device(args.device))
    data = args.demo_data or osp.join(tempfile.mkdtemp(prefix='bench_precision-'), 'demo')
    if not osp.isdir(data):
        make_demo_data(data, num_train=args.groups, num_val=4, size=max(256, args.gt_size), seed=0)
    with tempfile.TemporaryDirectory(prefix='bench_precision-') as tmp:
        base = load_options(args.opt, device, tmp, args.batch_size, args.gt_size)
        with random_weights((base,), device, tmp):  # every model below is built with the random VGG
            base = demo_options(base, data, base['datasets']['train']['batch_size_per_gpu'], args.gt_size)
            base['train'].update(amp=False, channels_last=False, compile=False)
            torch.manual_seed(0)
            template = build_model(copy.deepcopy(base))
            init = {'net_g': copy.deepcopy(template.get_bare_model(template.net_g).state_dict())}
            if hasattr(template, 'net_d'):
                init['net_d'] = copy.deepcopy(template.get_bare_model(template.net_d).state_dict())
            del template
            low = copy.deepcopy(base)
            low['train'].update(amp=args.amp, channels_last=True)
            runs = {'fp32_seed0': train_and_eval(base, init, 0, args.iters, data, device),
                    'fp32_seed1': train_and_eval(base, init, 1, args.iters, data, device),
                    f'{args.amp}_cl_seed0': train_and_eval(low, init, 0, args.iters, data, device)}
    noise = abs(runs['fp32_seed1']['val_psnr_y'] - runs['fp32_seed0']['val_psnr_y'])
    change = abs(runs[f'{args.amp}_cl_seed0']['val_psnr_y'] - runs['fp32_seed0']['val_psnr_y'])
    return {'device': device_name(device), 'options': args.opt, 'iters': args.iters, 'runs': runs,
            'seed_noise_psnr': noise, 'precision_change_psnr': change, 'within_noise': change <= noise}


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-bench-precision``."""
    parser = argparse.ArgumentParser(prog='nriqa-bench-precision', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_opt(parser, help='option file whose networks and losses are trained', must_exist=True)
    cli.add_device(parser)
    parser.add_argument('--amp', default='bf16', choices=['bf16', 'fp16'],
                        help='the low precision compared with fp32 (default: bf16)')
    parser.add_argument('--iters', type=int, default=300, help='training iterations of each run (default: 300)')
    cli.add_batch_size(parser, default=8)
    parser.add_argument('--gt-size', type=int, default=128, help='GT crop size (default: 128)')
    parser.add_argument('--groups', type=int, default=40,
                        help='demo training groups to make when --demo-data is missing (default: 40)')
    # not --dataroot: the folder is made (nriqa-make-demo-data) when it is missing
    parser.add_argument('--demo-data', metavar='DIR',
                        help='the demo data folder, made there when missing (default: a temporary folder)')
    cli.add_output(parser, help='also write the results here (JSON)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-bench-precision``: print the runs and the verdict (and write ``-o``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result = run(args)
    for name, r in result['runs'].items():
        print(f'{name:<16} train loss (last 20%) {r["train_loss_tail"]:.5f}   val PSNR-Y {r["val_psnr_y"]:.3f} dB')
    print(f'seed noise {result["seed_noise_psnr"]:.3f} dB, precision change {result["precision_change_psnr"]:.3f} dB'
          f' -> {"within" if result["within_noise"] else "beyond"} noise')
    if args.output:
        write_json(args.output, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
