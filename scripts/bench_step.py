"""Training-step cost of NRIQAModel against BasicSR's own GAN model on the same networks and batch (benchmark).

    python scripts/bench_step.py -opt options/train/train_RRDB_AMO.yml --iters 20 --json step.json
    python scripts/bench_step.py -opt options/train/train_RRDB_AMO_FT.yml \
        --baseline-opt options/train/train_RRDB_AMO.yml        # FT step vs the plain fp32 ESRGAN step
    python scripts/bench_step.py -opt options/demo/train_demo_amo.yml --device cpu --batch 2 --gt-size 64

Both models are built in this process on random weights (checkpoint paths, VGG19 and IQA weights are replaced
by random ones when absent, so nothing is downloaded; timing does not depend on weight values) and trained on
the same synthetic batch: (a) BasicSR's ``SRGANModel`` (``--baseline ESRGANModel`` for the relativistic one;
``SRModel`` when the baseline options have no ``network_d``) in fp32 without our sections, (b) ``NRIQAModel``
with the option file's policy, losses and precision. After ``--warmup`` steps each model runs ``--iters`` timed
steps with device synchronisation, then as many again with per-phase timers (synchronised around each phase).
``--data`` also times the configured training loader (batches/s from disk or LMDB). The LR is given directly:
``lq_mode: realesrgan``'s on-device degradation is not part of the measured step.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

if __name__ == '__main__':
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims + registration, before basicsr)

# isort: split
from basicsr.models import build_model  # noqa: E402

from nriqa_basicsr.data.labels import NEGATIVE, ORIGINAL, POSITIVE, SIMILAR  # noqa: E402
from nriqa_basicsr.iqa import WeightsNotFoundError, build_scorer  # noqa: E402
from nriqa_basicsr.options import prepare_options  # noqa: E402
from nriqa_basicsr.yaml_io import load_option_file  # noqa: E402

OUR_TRAIN_KEYS = ('gt_selection', 'iqa_opt', 'neg_opt', 'amp', 'channels_last', 'max_consecutive_nonfinite')


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def load_options(path: str, device: torch.device, tmp: str, batch: int | None, gt_size: int | None,
                 overrides: dict[str, Any] | None = None) -> dict:
    opt = load_option_file(path, '-opt')  # safe loader: no Python tags, no duplicate keys
    for key, value in (overrides or {}).items():
        if key == 'policy':
            sel = dict(opt['train'].get('gt_selection') or {}, policy=value)
            if value in ('sma', 'smp', 'amo_cached'):  # the synthetic batch carries (grid) scores
                opt['datasets']['train'].setdefault('score_file', 'synthetic-scores-of-bench_step.npz')
            opt['train']['gt_selection'] = sel
        elif value is not None:
            opt['train'][key] = value
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False,
               num_gpu=1 if device.type == 'cuda' else 0)
    opt['path'] = dict(opt.get('path') or {}, experiments_root=tmp, models=tmp, training_states=tmp,
                       log=tmp, visualization=tmp, resume_state=None, pretrain_network_d=None)
    train_set = opt['datasets']['train']
    train_set.update(phase='train', scale=opt['scale'])
    if batch:
        train_set['batch_size_per_gpu'] = batch
    if gt_size:
        train_set['gt_size'] = gt_size
    opt['datasets'] = {'train': train_set}
    opt.pop('val', None)
    opt['logger'] = dict(opt.get('logger') or {}, print_freq=10**9, use_tb_logger=False)
    return prepare_options(opt)


def randomise_weights(opt: dict, device: torch.device, tmp: str) -> None:
    """Point every pretrained file the models would load at random weights (see module docstring)."""
    from basicsr.archs import build_network

    if opt['path'].get('pretrain_network_g'):
        if 'network_g_lora' in opt:  # FT needs a base generator: a random one, saved like a stage-one result
            path = osp.join(tmp, 'random_base.pth')
            torch.save({'params_ema': build_network(copy.deepcopy(opt['network_g'])).state_dict()}, path)
            opt['path']['pretrain_network_g'] = path
        else:
            opt['path']['pretrain_network_g'] = None
    if opt['train'].get('perceptual_opt'):
        import basicsr.archs.vgg_arch as vgg_arch
        import torchvision

        if not osp.isfile(vgg_arch.VGG_PRETRAIN_PATH):
            vgg_type = opt['train']['perceptual_opt'].get('vgg_type', 'vgg19')
            path = osp.join(tmp, f'{vgg_type}_random.pth')
            torch.save(getattr(torchvision.models, vgg_type)(weights=None).state_dict(), path)
            vgg_arch.VGG_PRETRAIN_PATH = path
    blocks = [opt['train'].get('gt_selection') or {}, opt['train'].get('iqa_opt') or {}]
    for block in blocks:
        metrics = block.get('metrics') or {}
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        metric_opts = block.setdefault('metric_opts', {})
        for name in metrics:
            try:
                build_scorer(name, 'NR', device, **metric_opts.get(name, {}))
            except WeightsNotFoundError:
                metric_opts[name] = dict(metric_opts.get(name, {}), pretrained=False)


def baseline_options(opt: dict, model_type: str) -> dict:
    base = copy.deepcopy(opt)
    for key in OUR_TRAIN_KEYS:
        base['train'].pop(key, None)
    for key in ('network_g_lora', 'degradation'):
        base.pop(key, None)
    if base['path'].get('pretrain_network_g') and 'network_g_lora' in opt:
        base['path']['pretrain_network_g'] = None
    base['model_type'] = model_type if 'network_d' in base else 'SRModel'
    if base['model_type'] == 'SRModel':
        base['train'].pop('gan_opt', None)
        base['train'].pop('optim_d', None)
    return base


def synthetic_batch(opt: dict, device: torch.device) -> dict[str, torch.Tensor]:
    ds = opt['datasets']['train']
    b, size, scale = ds['batch_size_per_gpu'], ds['gt_size'], opt['scale']
    k = len(ds.get('gt_variants') or ['original', '01', '02', '03', '04'])
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([POSITIVE, SIMILAR, NEGATIVE])[torch.randint(0, 3, (b, k), generator=g)]
    labels[:, 0] = ORIGINAL
    batch = {'gts': torch.rand(b, k, 3, size, size, generator=g), 'labels': labels,
             'label_counts': torch.full((b, k), 3), 'scores': torch.rand(b, k, generator=g) * 100,
             'grid_scores': torch.rand(b, k, generator=g) * 100, 'key': [f'g{i}' for i in range(b)]}
    batch['gt'] = batch['gts'][:, 0]
    batch['lq'] = torch.nn.functional.interpolate(batch['gt'], scale_factor=1 / scale, mode='bicubic',
                                                  antialias=True).clamp(0, 1)
    return batch


class PhaseTimer:
    """Wraps methods so that each call's synchronised wall time is added to ``totals[label]``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            _sync(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _sync(self.device)
                self.totals[label] += time.perf_counter() - start

        setattr(owner, attr, timed)


def time_model(model: Any, batch: dict, device: torch.device, iters: int, warmup: int,
               phases: Callable[[Any, PhaseTimer], None]) -> dict[str, float]:
    """Mean ms per step (plain) and per phase (instrumented run)."""
    def step(it: int) -> None:
        model.feed_data(batch)
        model.optimize_parameters(it)

    for it in range(1, warmup + 1):
        step(it)
    _sync(device)
    start = time.perf_counter()
    for it in range(warmup + 1, warmup + iters + 1):
        step(it)
    _sync(device)
    result = {'step_ms': 1000 * (time.perf_counter() - start) / iters}
    timer = PhaseTimer(device)
    timer.wrap(model, 'feed_data', 'feed_data (to device, GT selection, scoring)')
    timer.wrap(model, 'optimize_parameters', 'optimize_parameters')
    phases(model, timer)
    for it in range(warmup + iters + 1, warmup + 2 * iters + 1):
        step(it)
    result.update({f'{label}_ms': 1000 * total / iters for label, total in timer.totals.items()})
    if device.type == 'cuda':
        result['max_memory_gib'] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def _optimizer_phases(model: Any, timer: PhaseTimer) -> None:
    timer.wrap(model.optimizer_g, 'step', 'optimizer_g.step')
    if hasattr(model, 'optimizer_d'):
        timer.wrap(model.optimizer_d, 'step', 'optimizer_d.step')


def _nriqa_phases(model: Any, timer: PhaseTimer) -> None:
    _optimizer_phases(model, timer)
    if model.amo_scorers:
        timer.wrap(model, 'score_candidates', 'candidate scoring (AMO)')
    if model.cri_iqa is not None:
        timer.wrap(model.cri_iqa, 'forward', 'NR-IQA loss forward')
    if model.use_gan:
        timer.wrap(model, '_discriminator_step', 'discriminator step')


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix='bench_step-') as tmp:
        overrides = {'amp': args.amp, 'channels_last': args.channels_last or None, 'compile': args.compile,
                     'policy': args.policy}
        opt = load_options(args.opt, device, tmp, args.batch, args.gt_size,
                           {k: v for k, v in overrides.items() if v is not None})
        base_opt = load_options(args.baseline_opt or args.opt, device, tmp, args.batch, args.gt_size)
        for o in (opt, base_opt):
            randomise_weights(o, device, tmp)
        base_opt = baseline_options(base_opt, args.baseline)
        batch = synthetic_batch(opt, device)
        results = {}
        for label, o, phases in (('baseline', base_opt, _optimizer_phases), ('nriqa', opt, _nriqa_phases)):
            torch.manual_seed(0)
            model = build_model(o)
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            results[label] = dict(time_model(model, batch, device, args.iters, args.warmup, phases),
                                  model_type=o['model_type'], amp=o['train'].get('amp', False),
                                  channels_last=o['train'].get('channels_last', False))
            del model
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    ds = opt['datasets']['train']
    out = {'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else
           f'CPU ({torch.get_num_threads()} threads)', 'options': args.opt,
           'baseline_options': args.baseline_opt or args.opt, 'batch': ds['batch_size_per_gpu'],
           'gt_size': ds['gt_size'], 'policy': (opt['train'].get('gt_selection') or {}).get('policy', 'original'),
           'compile': bool(opt['train'].get('compile')),
           'iters': args.iters, 'torch': torch.__version__, **results,
           'ratio': results['nriqa']['step_ms'] / results['baseline']['step_ms']}
    if args.data:
        out['data'] = time_loader(opt, args.iters)
    return out


def time_loader(opt: dict, batches: int) -> dict[str, float]:
    """Batches/s of the configured training loader (its workers, disk or LMDB)."""
    from basicsr.data import build_dataloader, build_dataset

    ds_opt = opt['datasets']['train']
    loader = build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                              seed=0)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = (time.perf_counter() - start) / batches
    return {'ms_per_batch': 1000 * seconds, 'workers': ds_opt.get('num_worker_per_gpu', 0)}


def print_table(result: dict) -> None:
    print(f'{result["device"]}: batch {result["batch"]}, GT crop {result["gt_size"]}, policy {result["policy"]}, '
          f'{result["iters"]} timed steps')
    for label in ('baseline', 'nriqa'):
        r = result[label]
        print(f'\n({"a" if label == "baseline" else "b"}) {r["model_type"]} amp={r["amp"]} '
              f'channels_last={r["channels_last"]}: {r["step_ms"]:.1f} ms/step')
        for key, value in r.items():
            if key.endswith('_ms') and key != 'step_ms':
                print(f'    {key[:-3]:<48} {value:9.1f} ms')
    if 'data' in result:
        print(f'\ndata loader: {result["data"]["ms_per_batch"]:.1f} ms/batch with '
              f'{result["data"]["workers"]} workers')
    print(f'\nratio (b)/(a): {result["ratio"]:.3f}')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='NRIQAModel option file')
    parser.add_argument('--baseline-opt', help='option file of the baseline (default: -opt); its network_d, '
                                               'losses and optimizers, without our sections, in fp32')
    parser.add_argument('--baseline', default='SRGANModel', choices=['SRGANModel', 'ESRGANModel'])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, help='override batch_size_per_gpu')
    parser.add_argument('--gt-size', type=int, help='override gt_size')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], help='override train.amp of (b)')
    parser.add_argument('--channels-last', action='store_true', help='set train.channels_last of (b)')
    parser.add_argument('--compile', action='store_true', default=None, help='set train.compile of (b)')
    parser.add_argument('--policy', help='override train.gt_selection.policy of (b)')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--data', action='store_true', help='also time the configured training data loader')
    parser.add_argument('--json', help='write the results here too')
    args = parser.parse_args(argv)
    if not osp.isfile(args.opt):
        parser.error(f'{args.opt}: no such option file')
    result = run(args)
    print_table(result)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
