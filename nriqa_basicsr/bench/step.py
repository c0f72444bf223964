"""Training-step cost of NRIQAModel against BasicSR's own GAN model on the same networks and batch (benchmark).

    nriqa-bench-step -opt options/train/train_RRDB_AMO.yml --iters 20 -o step.json
    nriqa-bench-step -opt options/train/train_RRDB_AMO_FT.yml \
        --baseline-opt options/train/train_RRDB_AMO.yml        # FT step vs the plain fp32 ESRGAN step
    nriqa-bench-step -opt options/demo/train_demo_amo.yml --device cpu --batch-size 2 --gt-size 64

Both models are built in this process on random weights (checkpoint paths, VGG19 and IQA weights are replaced
by random ones when absent, so nothing is downloaded; timing does not depend on weight values; BasicSR's VGG19
path points at the random file only while the tool runs its models) and trained on the same synthetic batch:
(a) BasicSR's ``SRGANModel`` (``--baseline ESRGANModel`` for the relativistic one; ``SRModel`` when the baseline
options have no ``network_d``) in fp32 without our sections, (b) ``NRIQAModel`` with the option file's policy,
losses and precision. After ``--warmup`` steps each model runs ``--iters`` timed steps with device
synchronisation, then as many again with per-phase timers (synchronised around each phase).
``--time-loader`` also times the configured training loader (batches/s from disk or LMDB). The LR is given directly:
``lq_mode: realesrgan``'s on-device degradation is not part of the measured step.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os.path as osp
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from basicsr.models import build_model

from nriqa_basicsr import cli
from nriqa_basicsr.bench import device_name, sync, write_json
from nriqa_basicsr.config.sections import NRIQA_TOP_KEYS, NRIQA_TRAIN_KEYS
from nriqa_basicsr.data.labels import NEGATIVE, ORIGINAL, POSITIVE, SIMILAR
from nriqa_basicsr.data.multigt_source import HGGT_VARIANTS
from nriqa_basicsr.iqa import WeightsNotFoundError, build_scorer
from nriqa_basicsr.options import prepare_options
from nriqa_basicsr.patches import vgg_pretrain_path
from nriqa_basicsr.yaml_io import load_option_file

__all__ = ['PhaseTimer', 'baseline_options', 'build_parser', 'load_options', 'main', 'print_table',
           'random_weights', 'randomise_weights', 'run', 'synthetic_batch', 'time_loader', 'time_model']



def load_options(path: str, device: torch.device, tmp: str, batch: int | None, gt_size: int | None,
                 overrides: dict[str, Any] | None = None) -> dict:
    """The training options of ``path`` for one in-process model on ``device``: everything written goes to
    ``tmp``, no resume, no validation; ``batch`` / ``gt_size`` / ``overrides`` (``train`` keys, ``policy``)
    replace the file's values."""
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


def randomise_weights(opt: dict, device: torch.device, tmp: str) -> str | None:
    """Point every pretrained file the models would load at random weights (see module docstring).

    Returns the random VGG file to build the perceptual loss with when BasicSR's own VGG19 file is absent
    (None otherwise); :func:`random_weights` applies it.
    """
    from basicsr.archs import build_network

    if opt['path'].get('pretrain_network_g'):
        if 'network_g_lora' in opt:  # FT needs a base generator: a random one, saved like a stage-one result
            path = osp.join(tmp, 'random_base.pth')
            torch.save({'params_ema': build_network(copy.deepcopy(opt['network_g'])).state_dict()}, path)
            opt['path']['pretrain_network_g'] = path
        else:
            opt['path']['pretrain_network_g'] = None
    vgg = None
    if opt['train'].get('perceptual_opt'):
        import basicsr.archs.vgg_arch as vgg_arch
        import torchvision

        if not osp.isfile(vgg_arch.VGG_PRETRAIN_PATH):
            vgg_type = opt['train']['perceptual_opt'].get('vgg_type', 'vgg19')
            vgg = osp.join(tmp, f'{vgg_type}_random.pth')
            if not osp.isfile(vgg):  # the baseline's options ask for the same file
                torch.save(getattr(torchvision.models, vgg_type)(weights=None).state_dict(), vgg)
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
    return vgg


@contextlib.contextmanager
def random_weights(opts: Sequence[dict], device: torch.device, tmp: str) -> Iterator[None]:
    """:func:`randomise_weights` of each of ``opts``; models built inside the block load the random VGG (BasicSR's
    ``VGG_PRETRAIN_PATH`` is restored on exit, see :func:`nriqa_basicsr.patches.vgg_pretrain_path`)."""
    vggs = [v for v in (randomise_weights(o, device, tmp) for o in opts) if v]
    with (vgg_pretrain_path(vggs[0]) if vggs else contextlib.nullcontext()):
        yield


def baseline_options(opt: dict, model_type: str) -> dict:
    """BasicSR's own model on ``opt``'s networks, losses and optimizers: our sections removed, fp32
    (``SRModel`` when there is no ``network_d``)."""
    base = copy.deepcopy(opt)
    for key in NRIQA_TRAIN_KEYS:  # from the option schema: every train key NRIQAModel adds to BasicSR's
        base['train'].pop(key, None)
    for key in NRIQA_TOP_KEYS:
        base.pop(key, None)
    if base['path'].get('pretrain_network_g') and 'network_g_lora' in opt:
        base['path']['pretrain_network_g'] = None
    base['model_type'] = model_type if 'network_d' in base else 'SRModel'
    if base['model_type'] == 'SRModel':
        base['train'].pop('gan_opt', None)
        base['train'].pop('optim_d', None)
    return base


def synthetic_batch(opt: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """A seeded random multi-GT batch of the training set's size (labels, scores and a bicubic LR)."""
    ds = opt['datasets']['train']
    b, size, scale = ds['batch_size_per_gpu'], ds['gt_size'], opt['scale']
    k = len(ds.get('gt_variants') or HGGT_VARIANTS)
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
            sync(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
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
    sync(device)
    start = time.perf_counter()
    for it in range(warmup + 1, warmup + iters + 1):
        step(it)
    sync(device)
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
    """Both models' step times on the same synthetic batch (the flags of :func:`build_parser`); the JSON result."""
    device = torch.device(cli.resolve_device(args.device))
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix='bench_step-') as tmp:
        overrides = {'amp': args.amp, 'channels_last': args.channels_last or None, 'compile': args.compile,
                     'policy': args.policy}
        opt = load_options(args.opt, device, tmp, args.batch_size, args.gt_size,
                           {k: v for k, v in overrides.items() if v is not None})
        base_opt = load_options(args.baseline_opt or args.opt, device, tmp, args.batch_size, args.gt_size)
        batch = synthetic_batch(opt, device)
        results = {}
        # one model at a time (its peak memory alone), each built while the random VGG file is BasicSR's
        with random_weights((opt, base_opt), device, tmp):
            base_opt = baseline_options(base_opt, args.baseline)
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
    out = {'device': device_name(device), 'options': args.opt,
           'baseline_options': args.baseline_opt or args.opt, 'batch': ds['batch_size_per_gpu'],
           'gt_size': ds['gt_size'], 'policy': (opt['train'].get('gt_selection') or {}).get('policy', 'original'),
           'compile': bool(opt['train'].get('compile')),
           'iters': args.iters, 'torch': torch.__version__, **results,
           'ratio': results['nriqa']['step_ms'] / results['baseline']['step_ms']}
    if args.time_loader:
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


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-bench-step``."""
    parser = argparse.ArgumentParser(prog='nriqa-bench-step', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_opt(parser, help='NRIQAModel option file (model (b))', must_exist=True)
    parser.add_argument('--baseline-opt', metavar='FILE', type=cli.existing_file,
                        help='option file of the baseline (default: -opt); its '
                        'network_d, losses and optimizers, without our sections, in fp32')
    parser.add_argument('--baseline', default='SRGANModel', choices=['SRGANModel', 'ESRGANModel'],
                        help='BasicSR model of the baseline (default: SRGANModel)')
    cli.add_device(parser)
    cli.add_batch_size(parser, help='override batch_size_per_gpu')
    parser.add_argument('--gt-size', type=int, help='override gt_size')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], help='override train.amp of (b)')
    parser.add_argument('--channels-last', action='store_true', help='set train.channels_last of (b)')
    parser.add_argument('--compile', action='store_true', default=None, help='set train.compile of (b)')
    parser.add_argument('--policy', help='override train.gt_selection.policy of (b)')
    parser.add_argument('--iters', type=int, default=10, help='timed steps (default: 10)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first (default: 3)')
    parser.add_argument('--time-loader', action='store_true', help='also time the configured training data loader')
    cli.add_output(parser, help='also write the results here (JSON)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-bench-step``: print the table (and write ``-o``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result = run(args)
    print_table(result)
    if args.output:
        write_json(args.output, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
