"""Does bf16 + channels_last change training results beyond seed noise? A short-run check (benchmark, not a test).

    python scripts/bench_precision.py -opt options/train/train_RRDB_UPos.yml --iters 300 --json precision.json

Trains the option file's networks and losses (random initial weights, see ``bench_step.py``) on the built-in
demo data (``--data``; made if missing) three times from the same initial weights and data order: fp32 seed 0,
fp32 seed 1 (the noise reference: another data order and GT draw) and ``--amp`` + channels_last seed 0; then
reports each run's mean training loss over the last 20 % of the iterations and PSNR-Y on the demo val split.
The precision is "within noise" when |bf16 − fp32| ≤ |fp32 seed 1 − fp32 seed 0| for the validation PSNR.
On a CPU the model ignores amp/channels_last, so only the mechanics are exercised there.
"""

from __future__ import annotations

import argparse
import copy
import json
import os.path as osp
import sys
import tempfile

import numpy as np
import torch

if __name__ == '__main__':
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims + registration, before basicsr)

# isort: split
from basicsr.metrics import calculate_psnr  # noqa: E402
from basicsr.models import build_model  # noqa: E402

from nriqa_basicsr.data.multigt_dataset import MultiGTDataset  # noqa: E402
from nriqa_basicsr.evaluation import list_pairs, load_pair  # noqa: E402
from nriqa_basicsr.inference import upscale_image  # noqa: E402
from scripts.bench_step import load_options, randomise_weights  # noqa: E402
from scripts.make_demo_data import make_demo_data  # noqa: E402


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
    amp = model.amp_dtype
    psnr = []
    for pair in list_pairs(osp.join(data, 'val', 'images', 'original'), osp.join(data, 'val', 'lq_x4')):
        hr, lr = load_pair(pair, opt['scale'])
        sr = upscale_image(net.eval(), lr, opt['scale'], amp_dtype=amp)
        psnr.append(calculate_psnr(sr, hr, opt['scale'], test_y_channel=True))
    tail = losses[-max(1, iters // 5):]
    return {'train_loss_tail': float(np.mean(tail)), 'val_psnr_y': float(np.mean(psnr)),
            'amp': str(amp), 'channels_last': model.channels_last}


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    data = args.data or osp.join(tempfile.mkdtemp(prefix='bench_precision-'), 'demo')
    if not osp.isdir(data):
        make_demo_data(data, num_train=args.groups, num_val=4, size=max(256, args.gt_size), seed=0)
    with tempfile.TemporaryDirectory(prefix='bench_precision-') as tmp:
        base = load_options(args.opt, device, tmp, args.batch, args.gt_size)
        randomise_weights(base, device, tmp)
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
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'
    return {'device': name, 'options': args.opt, 'iters': args.iters, 'runs': runs,
            'seed_noise_psnr': noise, 'precision_change_psnr': change, 'within_noise': change <= noise}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', default='bf16', choices=['bf16', 'fp16'])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--gt-size', type=int, default=128)
    parser.add_argument('--groups', type=int, default=40, help='demo training groups to make when --data is absent')
    parser.add_argument('--data', help='demo data folder (scripts/make_demo_data.py layout)')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    result = run(args)
    for name, r in result['runs'].items():
        print(f'{name:<16} train loss (last 20%) {r["train_loss_tail"]:.5f}   val PSNR-Y {r["val_psnr_y"]:.3f} dB')
    print(f'seed noise {result["seed_noise_psnr"]:.3f} dB, precision change {result["precision_change_psnr"]:.3f} dB'
          f' -> {"within" if result["within_noise"] else "beyond"} noise')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
