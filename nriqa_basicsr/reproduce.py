"""The real-model reproduction: LoRA fine-tuning of the released Real-ESRGAN x4plus with NR-IQA guidance.

Five arms, same seed, iterations, LoRA rank and learning rate (``make reproduce``; ``nriqa-reproduce``):

* **A0** the released model, untouched;
* **A1** FT-Ori: L1 to the original HR (the control for "trained longer");
* **A2** FT-AMO: L1 to the guide's argmax among the original and its enhanced variants (label-free selection);
* **A3** FT-Ori + NR-IQA loss ``-λ_Q·Q(SR)``;
* **A4** FT-AMO + NR-IQA loss (the paper's AMO + FT).

Pipeline: multi-GT training patches from real HR photos (:mod:`nriqa_basicsr.data.build_multigt`), LR made on
the fly with Real-ESRGAN's second-order degradation; a held-out guard set (validation during training, watched
by the reward-hacking guard); Set5 / Set14 with MATLAB-bicubic LR and with a fixed-seed Real-ESRGAN-degraded LR
(written once); evaluation through ``nriqa-benchmark``; a report with the per-arm table, the
perception–distortion plot, the guard curves and side-by-side crops.

Profiles fix the sizes: ``cpu`` fits a 2-core CPU in about an hour, ``quick`` runs the whole pipeline in a few
minutes (tests), ``gpu`` only writes the paper-scale option files (GT 256, batch 12, MUSIQ guide, VGG term).

Paths default to the current directory, the checkout ``make reproduce`` runs in: ``../shared`` (inputs),
``datasets/reproduce`` (generated data), ``experiments/`` (the trained arms) and ``results/reproduce`` (report).
Training and evaluation run the installed package (``python -m nriqa_basicsr.train`` / ``.benchmark``), so a
non-editable install works too.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ['ARMS', 'PROFILES', 'Arm', 'Profile', 'ReproduceConfig', 'arm_options', 'arms_of', 'build_parser',
           'degrade_test_set', 'main', 'run_reproduce', 'write_option_files']

@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    policy: str | None  # None: the released model, not trained
    iqa_loss: bool = False
    lambda_q: float | None = None  # a λ_Q sweep point (None: the run's λ_Q)
    rank: int | None = None  # a LoRA-rank sweep point (None: the run's rank)
    lr: float | None = None  # a learning-rate sweep point (None: the run's lr)


ARMS: tuple[Arm, ...] = (
    Arm('A0', 'A0-released', None),
    Arm('A1', 'A1-FT-Ori', 'original'),
    Arm('A2', 'A2-FT-AMO', 'amo'),
    Arm('A3', 'A3-FT-Ori+IQA', 'original', iqa_loss=True),
    Arm('A4', 'A4-FT-AMO+IQA', 'amo', iqa_loss=True),
)

# Real-ESRGAN x4plus's own training degradation, split as BasicSR splits it: kernels drawn by the dataset,
# the rest applied by the model (``degradation`` block).
_KERNEL_KEYS = ('blur_kernel_size', 'kernel_range', 'kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma',
                'betag_range', 'betap_range', 'kernel_list2', 'kernel_prob2', 'sinc_prob2', 'blur_sigma2',
                'betag_range2', 'betap_range2', 'final_sinc_prob')


def realesrgan_options() -> tuple[dict[str, Any], dict[str, Any]]:
    """(dataset kernel options, model degradation options) of Real-ESRGAN x4plus."""
    from nriqa_basicsr.data.degradation import REALESRGAN_X4PLUS

    kernels = {k: copy.deepcopy(v) for k, v in REALESRGAN_X4PLUS.items() if k in _KERNEL_KEYS}
    rest = {k: copy.deepcopy(v) for k, v in REALESRGAN_X4PLUS.items() if k not in _KERNEL_KEYS}
    return kernels, rest


@dataclass(frozen=True)
class Profile:
    """Sizes of one reproduction run."""

    name: str
    train_sets: tuple[str, ...]           # folders under <shared>/datasets with HR/
    max_train_images: int | None          # per set (None: all)
    patch_size: int                       # HGGT-style patches cut from the photos
    patch_step: int
    gt_size: int                          # training crop
    batch: int
    iters: int
    val_images: int                       # held-out photos (General100, last ones) for the guard
    val_freq: int
    eval_sets: tuple[str, ...]            # under <shared>/benchmarks
    eval_images: int | None               # per set (None: all)
    judges: tuple[str, ...]               # NR judges never used in training (besides PSNR/SSIM)
    val_judges: tuple[str, ...]           # the cheaper subset watched during training
    guide: str = 'cnniqa_live'            # NR-IQA model of AMO and the loss
    lambda_q: float = 0.002               # weight of -Q(SR) per raw guide point
    lambda_sweep: tuple[float, ...] = ()  # extra A4 arms with these λ_Q
    device: str = 'cpu'
    workers: int = 0
    perceptual: bool = False              # VGG19 term (needs ImageNet weights, not available offline here)


PROFILES: dict[str, Profile] = {
    'cpu': Profile('cpu', train_sets=('BSD200', 'General100', 'T91'), max_train_images=None, patch_size=192,
                   patch_step=160, gt_size=128, batch=4, iters=100, val_images=8, val_freq=20,
                   eval_sets=('Set5', 'Set14'), eval_images=None,
                   judges=('niqe', 'brisque', 'ilniqe', 'piqe'), val_judges=('niqe', 'brisque', 'piqe')),
    'quick': Profile('quick', train_sets=('BSD200',), max_train_images=3, patch_size=128, patch_step=128,
                     gt_size=64, batch=1, iters=2, val_images=1, val_freq=2, eval_sets=('Set5',), eval_images=2,
                     judges=('niqe', 'piqe'), val_judges=('niqe',)),
    'gpu': Profile('gpu', train_sets=('BSD200', 'General100', 'T91'), max_train_images=None, patch_size=480,
                   patch_step=240, gt_size=256, batch=12, iters=20000, val_images=20, val_freq=1000,
                   eval_sets=('Set5', 'Set14'), eval_images=None,
                   judges=('nima', 'topiq_nr', 'qalign', 'niqe', 'brisque'), val_judges=('nima', 'topiq_nr'),
                   guide='musiq', lambda_q=0.01, device='cuda', workers=6, perceptual=True),
}


@dataclass(frozen=True)
class ReproduceConfig:
    """What to run and where; relative paths are relative to the current directory (the checkout)."""

    shared: str = osp.join(osp.pardir, 'shared')
    out: str = osp.join('results', 'reproduce')
    work: str = osp.join('datasets', 'reproduce')
    root: str = '.'                       # the arms train in <root>/experiments (and <root>/tb_logger)
    profile: Profile = PROFILES['cpu']
    pretrained: str | None = None         # default: <shared>/pretrained/RealESRGAN_x4plus.pth
    weights_dir: tuple[str, ...] = ()     # default: <shared>/iqa_weights
    guide: str = 'cnniqa_live'            # main() takes the profile's guide and weight unless given
    lambda_q: float = 0.002
    rank: int = 8
    lr: float = 5e-4
    seed: int = 0
    arms: tuple[str, ...] = tuple(a.key for a in ARMS)
    lambda_sweep: tuple[float, ...] = ()  # extra A4 arms with these λ_Q
    rank_sweep: tuple[int, ...] = ()      # extra A4 arms with these LoRA ranks
    lr_sweep: tuple[float, ...] = ()      # extra A4 arms with these learning rates

    @property
    def pretrained_path(self) -> str:
        return self.pretrained or osp.join(self.shared, 'pretrained', 'RealESRGAN_x4plus.pth')

    @property
    def iqa_weights(self) -> list[str]:
        """The IQA weight folders, searched in this order."""
        return list(self.weights_dir) or [osp.join(self.shared, 'iqa_weights')]

    @property
    def run_name(self) -> str:
        return f'reproduce_{self.profile.name}'


def arms_of(cfg: ReproduceConfig) -> list[Arm]:
    """The arms a run trains and evaluates: the chosen ones of :data:`ARMS`, then the λ_Q, rank and lr sweeps of A4
    (one setting changed at a time; the run's own value is not trained twice)."""
    unknown = [k for k in cfg.arms if k not in {a.key for a in ARMS}]
    if unknown:
        raise ValueError(f'unknown arm(s) {unknown}; arms: {", ".join(a.key for a in ARMS)}.')
    arms = [a for a in ARMS if a.key in cfg.arms]
    a4 = ARMS[-1]
    arms += [Arm(f'A4_l{lam:g}', f'A4-FT-AMO+IQA-λ{lam:g}', a4.policy, True, lambda_q=lam)
             for lam in cfg.lambda_sweep if lam != cfg.lambda_q]
    arms += [Arm(f'A4_r{rank}', f'A4-FT-AMO+IQA-r{rank}', a4.policy, True, rank=rank)
             for rank in cfg.rank_sweep if rank != cfg.rank]
    arms += [Arm(f'A4_lr{lr:g}', f'A4-FT-AMO+IQA-lr{lr:g}', a4.policy, True, lr=lr)
             for lr in cfg.lr_sweep if lr != cfg.lr]
    return arms


def arm_options(cfg: ReproduceConfig, arm: Arm, paths: dict[str, str]) -> dict[str, Any]:
    """The BasicSR option dict of one fine-tuning arm (A1–A4). IQA weight files are found through
    ``$NRIQA_WEIGHTS_DIR`` (the run sets it to ``cfg.iqa_weights``), so the files stay portable."""
    if arm.policy is None:
        raise ValueError(f'{arm.key} is the released model; it has no training options.')
    p = cfg.profile
    kernels, degradation = realesrgan_options()
    train_ds: dict[str, Any] = {
        'name': 'reproduce_train', 'type': 'MultiGTDataset', 'layout': 'hggt', 'dataroot_gt': paths['train'],
        'lq_mode': 'realesrgan', **kernels, 'gt_size': p.gt_size, 'use_hflip': True, 'use_rot': False,
        'io_backend': {'type': 'disk'}, 'num_worker_per_gpu': p.workers, 'batch_size_per_gpu': p.batch,
        'dataset_enlarge_ratio': 1, 'prefetch_mode': None}
    val_ds = {'name': 'guard_val', 'type': 'PairedImageDataset', 'dataroot_gt': paths['val_gt'],
              'dataroot_lq': paths['val_lq'], 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}}
    guide = {cfg.guide: 1.0}
    rank = cfg.rank if arm.rank is None else arm.rank
    train: dict[str, Any] = {
        'ema_decay': 0,  # a few hundred adapter steps: an EMA of 0.999 would stay at the released weights
        'optim_g': {'type': 'Adam', 'lr': cfg.lr if arm.lr is None else arm.lr, 'weight_decay': 0,
                    'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [10 * p.iters], 'gamma': 0.5},
        'total_iter': p.iters, 'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        'gt_selection': ({'policy': 'amo', 'metrics': guide, 'include_original': True} if arm.policy == 'amo'
                         else {'policy': 'original'}),
    }
    if p.perceptual:
        train['perceptual_opt'] = {
            'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1, 'conv4_4': 1,
                                                        'conv5_4': 1},
            'vgg_type': 'vgg19', 'use_input_norm': True, 'perceptual_weight': 1.0, 'style_weight': 0,
            'range_norm': False, 'criterion': 'l1'}
    if arm.iqa_loss:
        train['iqa_opt'] = {'type': 'NRIQALoss', 'metrics': guide,
                            'loss_weight': cfg.lambda_q if arm.lambda_q is None else arm.lambda_q}
    metrics: dict[str, Any] = {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True},
        cfg.guide: {'type': 'calculate_nriqa', 'metric': cfg.guide}}
    for judge in p.val_judges:
        metrics[judge] = {'type': 'calculate_nriqa', 'metric': judge}
    return {
        'name': f'{cfg.run_name}_{arm.key}', 'model_type': 'NRIQAModel', 'scale': 4,
        'num_gpu': 0 if p.device == 'cpu' else 'auto', 'manual_seed': cfg.seed,
        'datasets': {'train': train_ds, 'val': val_ds},
        'degradation': degradation,
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 23,
                      'num_grow_ch': 32, 'scale': 4},
        'network_g_lora': {'rank': rank, 'alpha': rank, 'dropout': 0.0},
        'path': {'pretrain_network_g': paths['pretrained'], 'param_key_g': 'params_ema', 'strict_load_g': True,
                 'resume_state': None},
        'train': train,
        # the guard watches the guide against held-out judges and fidelity; it warns (the arms keep equal length)
        'val': {'val_freq': p.val_freq, 'save_img': False, 'metrics': metrics,
                'best': {'criterion': {m: 1.0 for m in ('psnr', 'ssim', *p.val_judges)}, 'keep': 1},
                'guard': {'guide': [cfg.guide], 'judges': ['psnr', 'ssim', *p.val_judges], 'stop': False}},
        'logger': {'print_freq': max(1, min(10, p.iters)), 'save_checkpoint_freq': p.iters,
                   'use_tb_logger': True, 'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo' if p.device == 'cpu' else 'nccl', 'port': 29500},
    }


# ---------------------------------------------------------------------------------------------------- data
def _list_images(folder: str) -> list[str]:
    from nriqa_basicsr.data.image_io import list_images

    if not osp.isdir(folder):
        raise FileNotFoundError(f'{folder}: no such folder (is ../shared beside the checkout? --shared DIR).')
    return list_images(folder)


def degrade_test_set(gt_dir: str, out_dir: str, seed: int, scale: int = 4, names: Sequence[str] | None = None,
                     lq_tmpl: str = '{}x4') -> str:
    """Write the fixed-seed Real-ESRGAN-degraded LR of every HR image in ``gt_dir`` (mod-cropped to ``scale``)
    to ``out_dir/<lq_tmpl>.png``, image ``i`` with seed ``seed + i``; an existing complete folder is kept."""
    import cv2

    from nriqa_basicsr.atomic import atomic_path
    from nriqa_basicsr.data.degradation import degrade_image

    files = [f for f in _list_images(gt_dir) if names is None or osp.splitext(f)[0] in names]
    os.makedirs(out_dir, exist_ok=True)
    for i, fname in enumerate(files):
        stem = osp.splitext(fname)[0]
        target = osp.join(out_dir, lq_tmpl.format(stem) + '.png')
        if osp.isfile(target):
            continue
        img = cv2.imread(osp.join(gt_dir, fname), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'{osp.join(gt_dir, fname)}: unreadable image.')
        h, w = img.shape[:2]
        lq = degrade_image(np.ascontiguousarray(img[:h - h % scale, :w - w % scale]), scale, seed + i)
        with atomic_path(target) as tmp:
            if not cv2.imwrite(tmp, lq):
                raise OSError(f'{target}: could not be written.')
    return out_dir


GUARD_CROP = 192  # side of the guard crops (HR pixels)


def guard_files(folder: str, count: int, min_side: int = GUARD_CROP) -> list[str]:
    """The guard set: the last ``count`` photos of ``folder`` (sorted names) with both sides ≥ ``min_side``
    (NIQE needs 2x2 blocks of 96 px); :func:`prepare_data` holds them out of training."""
    import cv2

    picked: list[str] = []
    for fname in reversed(_list_images(folder)):
        img = cv2.imread(osp.join(folder, fname), cv2.IMREAD_UNCHANGED)
        if img is not None and min(img.shape[:2]) >= min_side:
            picked.insert(0, fname)
        if len(picked) == count:
            break
    return picked


def prepare_data(cfg: ReproduceConfig, log: Any) -> dict[str, str]:
    """Training patches (multi-GT, HGGT layout) and the held-out guard set, under ``<work>/<profile>``; reused
    when already built with the same settings. Returns the paths the option files need."""
    import cv2

    from nriqa_basicsr.atomic import atomic_path
    from nriqa_basicsr.data.build_multigt import MultiGTBuildConfig, build_multigt
    from nriqa_basicsr.data.degradation import degrade_image

    p = cfg.profile
    root = osp.join(cfg.work, p.name)
    val_src = osp.join(cfg.shared, 'datasets', 'General100', 'HR')
    val_files = guard_files(val_src, p.val_images)
    hr_dirs = []
    for set_name in p.train_sets:
        src = osp.join(cfg.shared, 'datasets', set_name, 'HR')
        files = [f for f in _list_images(src) if not (set_name == 'General100' and f in val_files)]
        if p.max_train_images is not None:
            files = files[:p.max_train_images]
        if len(files) < len(_list_images(src)):
            src = _subset(src, osp.join(root, 'hr_subsets', set_name), files)
        hr_dirs.append(src)
    train_out = osp.join(root, 'train')
    build = MultiGTBuildConfig(hr_dirs=tuple(hr_dirs), out=train_out, patch_size=p.patch_size, step=p.patch_step,
                               lq='none', max_patches=p.iters * p.batch, seed=cfg.seed, overwrite=True)
    marker = osp.join(root, 'train_build.json')
    # the marker names the photos too: a changed hold-out must rebuild the patches (no guard image in training)
    wanted = json.dumps({**{k: v for k, v in build.__dict__.items() if k != 'overwrite'},
                         'photos': {d: sorted(os.listdir(d)) for d in hr_dirs}}, sort_keys=True, default=str)
    if osp.isfile(marker) and open(marker).read() == wanted and osp.isdir(osp.join(train_out, 'images')):
        log(f'  training patches: reused {train_out}')
    else:
        start = time.time()
        summary = build_multigt(build)
        log(f'  training patches: {summary.groups} groups x {len(summary.variants)} GTs from {summary.images} photos '
            f'({len(summary.skipped_small)} smaller than {p.patch_size}px skipped) in {time.time() - start:.0f} s '
            f'-> {train_out}')
        with atomic_path(marker) as tmp, open(tmp, 'w') as f:
            f.write(wanted)
    val_gt, val_lq = osp.join(root, 'guard_val', 'gt'), osp.join(root, 'guard_val', 'lq')
    os.makedirs(val_gt, exist_ok=True)
    os.makedirs(val_lq, exist_ok=True)
    crop = GUARD_CROP
    for i, fname in enumerate(val_files):
        stem = osp.splitext(fname)[0]
        if osp.isfile(osp.join(val_lq, f'{stem}.png')):
            continue
        img = cv2.imread(osp.join(val_src, fname), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        hr = np.ascontiguousarray(img[y:y + crop, x:x + crop])
        with atomic_path(osp.join(val_gt, f'{stem}.png')) as tmp:
            cv2.imwrite(tmp, hr)
        with atomic_path(osp.join(val_lq, f'{stem}.png')) as tmp:
            cv2.imwrite(tmp, degrade_image(hr, 4, 10_000 + cfg.seed + i))
    log(f'  guard set: {len(val_files)} held-out General100 crops ({crop}px, Real-ESRGAN-degraded LR) in '
        f'{osp.dirname(val_gt)}')
    return {'train': osp.join(train_out, 'images'), 'val_gt': val_gt, 'val_lq': val_lq,
            'pretrained': osp.abspath(cfg.pretrained_path)}


# ---------------------------------------------------------------------------------------------------- training
_ITER_TIME = re.compile(r'time \(data\): ([\d.]+) \(([\d.]+)\)')


def _dump_yaml(opt: dict[str, Any], path: str) -> None:
    import yaml

    from nriqa_basicsr.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('# written by nriqa-reproduce (nriqa_basicsr/reproduce.py); edit the profile there, not this file\n')
        yaml.safe_dump(opt, f, sort_keys=False, default_flow_style=None, width=120)


def write_option_files(cfg: ReproduceConfig, paths: dict[str, str], folder: str) -> dict[str, str]:
    """One BasicSR option file per fine-tuning arm under ``folder``; returns {arm key: path}."""
    files = {}
    for arm in arms_of(cfg):
        if arm.policy is None:
            continue
        files[arm.key] = osp.join(folder, f'train_{cfg.run_name}_{arm.key}.yml')
        _dump_yaml(arm_options(cfg, arm, paths), files[arm.key])
    return files


def _experiment_dir(cfg: ReproduceConfig, name: str) -> str:
    return osp.join(osp.abspath(cfg.root), 'experiments', name)


def train_arm(cfg: ReproduceConfig, option_file: str, name: str, env: dict[str, str], log: Any) -> dict[str, float]:
    """Train one arm with ``python -m nriqa_basicsr.train`` in ``cfg.root`` (a fresh process, as a user runs it);
    reuse a finished run trained from the same option file. Returns wall time and BasicSR's average iteration/data
    times."""
    exp = _experiment_dir(cfg, name)
    stamp = osp.join(exp, 'reproduce_options.txt')  # not *.yml: tools look for the run's option file there
    result = osp.join(exp, 'models', 'net_g_latest.pth')
    with open(option_file) as f:
        wanted = f.read()
    record = osp.join(exp, 'reproduce_timings.json')
    if osp.isfile(result) and osp.isfile(stamp) and open(stamp).read() == wanted and osp.isfile(record):
        log(f'  {name}: finished run with the same options found, reused ({result})')
        with open(record) as f:
            return json.load(f) | {'reused': 1.0}
    start = time.time()
    cmd = [sys.executable, '-m', 'nriqa_basicsr.train', '-opt', osp.abspath(option_file)]
    proc = subprocess.run(cmd, cwd=osp.abspath(cfg.root), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout[-3000:] + proc.stderr[-3000:]).strip()
        raise RuntimeError(f'training {name} failed (exit {proc.returncode}); command: {" ".join(cmd)}\n{tail}')
    from nriqa_basicsr.atomic import atomic_path

    timings = _timings(exp) | {'wall_s': time.time() - start}
    with atomic_path(record) as tmp, open(tmp, 'w') as f:
        json.dump(timings, f)
    with atomic_path(stamp) as tmp, open(tmp, 'w') as f:
        f.write(wanted)
    return timings


def _timings(exp: str) -> dict[str, float]:
    """BasicSR's last printed average iteration and data-loading times of a run (its train_*.log)."""
    logs = sorted(f for f in os.listdir(exp) if f.startswith('train_') and f.endswith('.log')) if osp.isdir(exp) else []
    out: dict[str, float] = {}
    for name in logs[-1:]:
        matches = _ITER_TIME.findall(open(osp.join(exp, name)).read())
        if matches:
            out['iter_s'], out['data_s'] = float(matches[-1][0]), float(matches[-1][1])
    return out


# ---------------------------------------------------------------------------------------------------- evaluation
def _subset(src: str, dst: str, names: Sequence[str]) -> str:
    """``dst`` holding symbolic links to exactly ``names`` (file names) of ``src``: some images of a read-only
    set; links from an earlier, different subset are removed (only links this function made live there)."""
    os.makedirs(dst, exist_ok=True)
    for entry in os.listdir(dst):
        path = osp.join(dst, entry)
        if entry not in names and osp.islink(path):
            os.remove(path)
    for name in names:
        link = osp.join(dst, name)
        if not osp.lexists(link):
            os.symlink(osp.abspath(osp.join(src, name)), link)
    return dst


def eval_datasets(cfg: ReproduceConfig, log: Any) -> list[tuple[str, str, str]]:
    """(name, HR dir, LR dir) of every evaluation set: each benchmark with its MATLAB-bicubic LR and with the
    fixed-seed Real-ESRGAN-degraded LR (written once under ``<work>/benchmarks``)."""
    out = []
    for set_name in cfg.profile.eval_sets:
        base = osp.join(cfg.shared, 'benchmarks', set_name)
        gt_dir, lq_dir = osp.join(base, 'HR'), osp.join(base, 'LR_bicubic', 'X4')
        files = _list_images(gt_dir)
        if cfg.profile.eval_images is not None:
            files = files[:cfg.profile.eval_images]
            gt_dir = _subset(gt_dir, osp.join(cfg.work, 'benchmarks', set_name, 'HR'), files)
            lq_dir = _subset(lq_dir, osp.join(cfg.work, 'benchmarks', set_name, 'LR_bicubic', 'X4'),
                             [f'{osp.splitext(f)[0]}x4.png' for f in files])
        degraded = osp.join(cfg.work, 'benchmarks', set_name, f'LR_realesrgan_seed{cfg.seed}', 'X4')
        start = time.time()
        degrade_test_set(osp.join(base, 'HR'), degraded, cfg.seed, names=[osp.splitext(f)[0] for f in files])
        log(f'  {set_name}: Real-ESRGAN-degraded LR in {degraded} ({time.time() - start:.0f} s)')
        out += [(f'{set_name}', gt_dir, lq_dir), (f'{set_name}-RealESRGAN', gt_dir, degraded)]
    return out


def run_benchmark(cfg: ReproduceConfig, models: dict[str, str], datasets: list[tuple[str, str, str]],
                  metrics: Sequence[str], out: str, env: dict[str, str]) -> str:
    """Evaluate ``models`` (label → checkpoint) through ``nriqa-benchmark``; returns its summary.csv."""
    # no --network-g: the released file and the merged FT results are recognised by their state dicts
    cmd = [sys.executable, '-m', 'nriqa_basicsr.benchmark', '--scale', '4', '--lq-filename-tmpl', '{}x4',
           '--metrics', *metrics, '--save-images', '-o', out, '--overwrite', '--no-progress',
           '--device', cfg.profile.device]
    for folder in cfg.iqa_weights:
        cmd += ['--weights-dir', folder]
    for label, path in models.items():
        cmd += ['--model', f'{label}={path}']
    for name, hr, lr in datasets:
        cmd += ['--dataset', f'{name}={hr}:{lr}']
    proc = subprocess.run(cmd, cwd=osp.abspath(cfg.root), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark failed (exit {proc.returncode}): {" ".join(cmd)}\n'
                           f'{(proc.stdout[-3000:] + proc.stderr[-3000:]).strip()}')
    return osp.join(out, 'summary.csv')


def read_summary(path: str) -> list[dict[str, Any]]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k, v in row.items():
            if k not in ('model', 'dataset'):
                row[k] = float(v)
    return rows


# ---------------------------------------------------------------------------------------------------- report
def _lower_better(metric: str) -> bool:
    if metric in ('psnr', 'ssim'):
        return False
    from nriqa_basicsr.iqa import get_metric_info

    return get_metric_info(metric).lower_better


def _fmt(metric: str, value: float) -> str:
    if value != value:  # NaN
        return '–'
    return f'{value:.4f}' if metric == 'ssim' else f'{value:.2f}'


def markdown_table(rows: list[dict[str, Any]], dataset: str, metrics: Sequence[str], guide: str) -> list[str]:
    def head(m: str) -> str:
        arrow = '↓' if _lower_better(m) else '↑'
        role = ' (guide)' if m == guide else ('' if m in ('psnr', 'ssim') else ' (judge)')
        return f'{m.upper() if m in ("psnr", "ssim") else m}{arrow}{role}'

    lines = ['| arm | ' + ' | '.join(head(m) for m in metrics) + ' |', '|---|' + '---|' * len(metrics)]
    for row in rows:
        if row['dataset'] == dataset:
            lines.append(f'| {row["model"]} | ' + ' | '.join(_fmt(m, row.get(m, float('nan'))) for m in metrics)
                         + ' |')
    return lines


def reading(rows: list[dict[str, Any]], datasets: Sequence[str], guide: str, judges: Sequence[str]) -> list[str]:
    """Plain statements computed from the table: what each IQA-guided arm did to the guide, the judges and
    PSNR, against the released model (A0) and the L1-only control (A1)."""
    def get(model_prefix: str, ds: str) -> dict[str, Any] | None:
        return next((r for r in rows if r['dataset'] == ds and r['model'].startswith(model_prefix)), None)

    def better(m: str, new: float, old: float) -> bool:
        return new < old if _lower_better(m) else new > old

    out = []
    for ds in datasets:
        for arm in ('A3', 'A4', 'A2'):
            row = get(arm, ds)
            if row is None:
                continue
            for ref_key in ('A0', 'A1'):
                ref = get(ref_key, ds)
                if ref is None:
                    continue
                # a judge measured on only some sets (IL-NIQE) is NaN elsewhere: neither better nor worse there
                known = [j for j in judges if j in row and j in ref and row[j] == row[j] and ref[j] == ref[j]]
                improved = [j for j in known if better(j, row[j], ref[j])]
                worse = [j for j in known if not better(j, row[j], ref[j])]
                out.append(
                    f'- {ds}, {row["model"]} vs {ref["model"]}: guide {guide} {ref[guide]:.2f} → {row[guide]:.2f} '
                    f'({"better" if better(guide, row[guide], ref[guide]) else "worse"}); PSNR-Y '
                    f'{row["psnr"] - ref["psnr"]:+.2f} dB, SSIM-Y {row["ssim"] - ref["ssim"]:+.4f}; judges better: '
                    f'{", ".join(improved) or "none"}; worse: {", ".join(worse) or "none"}.')
    return out


def plot_perception_distortion(rows: list[dict[str, Any]], datasets: Sequence[str], nr_metrics: Sequence[str],
                               path: str) -> None:
    """PSNR-Y against each NR metric, one panel per (dataset, metric); arms by colour and marker with one legend
    (:func:`nriqa_basicsr.plotting.labelled_scatter`: close arms stay readable)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from nriqa_basicsr.atomic import atomic_path
    from nriqa_basicsr.plotting import labelled_scatter

    fig, axes = plt.subplots(len(datasets), len(nr_metrics), figsize=(3.6 * len(nr_metrics), 3.2 * len(datasets)),
                             squeeze=False)
    panels, series = [], []
    for i, ds in enumerate(datasets):
        for j, metric in enumerate(nr_metrics):
            ax = axes[i][j]
            ax.set_title(f'{ds}: {metric}', fontsize=9)
            ax.set_xlabel('PSNR-Y (dB) ↑', fontsize=8)
            ax.set_ylabel(f'{metric} {"↓" if _lower_better(metric) else "↑"}', fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.grid(alpha=0.3)
            panels.append(ax)
            series.append([(r['model'], r['psnr'], r.get(metric, float('nan'))) for r in rows if r['dataset'] == ds])
    labelled_scatter(fig, panels, series)
    for ax, points in zip(panels, series):
        if all(y != y for _, _, y in points):  # a judge measured on some sets only (IL-NIQE: cost)
            ax.text(0.5, 0.5, 'not measured here', ha='center', va='center', fontsize=8, color='grey',
                    transform=ax.transAxes)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_crops(image_root: str, models: Sequence[str], gt_path: str, ds_name: str, image: str, path: str,
               crop: int = 96) -> None:
    """Side-by-side crops (HR + each arm) of one image, taken where the HR has the most texture."""
    import cv2
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from nriqa_basicsr.atomic import atomic_path

    hr = cv2.imread(gt_path, cv2.IMREAD_COLOR)
    h, w = hr.shape[:2]
    hr = hr[:h - h % 4, :w - w % 4]
    grey = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = cv2.boxFilter(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), -1, (crop, crop))
    half = crop // 2
    inner = detail[half:hr.shape[0] - half, half:hr.shape[1] - half]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    panels = [('HR', hr)] + [(m, cv2.imread(osp.join(image_root, m, ds_name, f'{image}.png'), cv2.IMREAD_COLOR))
                             for m in models]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, (label, img) in zip(axes, panels):
        ax.axis('off')
        if img is None:
            ax.set_title(f'{label}\n(missing)', fontsize=8)
            continue
        ax.imshow(img[y:y + crop, x:x + crop, ::-1], interpolation='nearest')
        ax.set_title(label, fontsize=8)
    fig.suptitle(f'{ds_name} / {image}: {crop}x{crop} HR-pixel crop at ({x}, {y})', fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- pipeline
def check_inputs(cfg: ReproduceConfig) -> None:
    """Every input the run reads, all missing ones reported at once."""
    problems = []
    needed = [(cfg.pretrained_path, 'released generator (--pretrained)')]
    needed += [(folder, 'IQA weights folder (--weights-dir)') for folder in cfg.iqa_weights]
    needed += [(osp.join(cfg.shared, 'datasets', s, 'HR'), f'training photos {s}') for s in cfg.profile.train_sets]
    needed += [(osp.join(cfg.shared, 'benchmarks', s, 'HR'), f'benchmark {s}') for s in cfg.profile.eval_sets]
    for path, what in needed:
        if not osp.exists(path):
            problems.append(f'- {what}: {path} not found')
    if problems:
        raise FileNotFoundError('nriqa-reproduce: missing inputs (point --shared at the project\'s shared folder, '
                                'or give the paths):\n' + '\n'.join(problems))


def _env(cfg: ReproduceConfig) -> dict[str, str]:
    env = dict(os.environ)
    env['NRIQA_WEIGHTS_DIR'] = os.pathsep.join(cfg.iqa_weights + [p for p in env.get('NRIQA_WEIGHTS_DIR', '')
                                                                     .split(os.pathsep) if p])
    env.setdefault('HF_HUB_OFFLINE', '1')
    return env


def run_reproduce(cfg: ReproduceConfig, log: Any = print) -> dict[str, Any]:
    """The whole experiment: data → option files → training of each arm → benchmark → report."""
    import torch

    check_inputs(cfg)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    p = cfg.profile
    timings: dict[str, Any] = {}
    os.makedirs(cfg.out, exist_ok=True)
    env = _env(cfg)

    start = time.time()
    log(f'[1/4] data ({p.name} profile) ...')
    paths = prepare_data(cfg, log)
    timings['data_s'] = time.time() - start

    log('[2/4] option files ...')
    option_files = write_option_files(cfg, paths, osp.join(cfg.out, 'options'))
    log('[3/4] training ' + ', '.join(option_files) + f' ({p.iters} iterations each) ...')
    for key, path in option_files.items():
        name = f'{cfg.run_name}_{key}'
        t = train_arm(cfg, path, name, env, log)
        timings[key] = t
        log(f'  {key}: {t.get("wall_s", 0):.0f} s wall, {t.get("iter_s", float("nan")):.2f} s/iter '
            f'(data {t.get("data_s", float("nan")):.3f} s); log in {_experiment_dir(cfg, name)}')

    log('[4/4] evaluation ...')
    start = time.time()
    rows, datasets, bench_dir = evaluate(cfg, env, log)
    timings['eval_s'] = time.time() - start
    report = write_report(cfg, rows, [d[0] for d in datasets], datasets, bench_dir, timings)
    log(f'report: {report}')
    return {'rows': rows, 'timings': timings, 'report': report}


def evaluate(cfg: ReproduceConfig, env: dict[str, str], log: Any,
             reuse: bool = False) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]], str]:
    """Benchmark every arm (``reuse``: read the summaries an earlier evaluation wrote instead)."""
    p = cfg.profile
    models = {a.label: (cfg.pretrained_path if a.policy is None else
                        osp.join(_experiment_dir(cfg, f'{cfg.run_name}_{a.key}'), 'models', 'net_g_latest.pth'))
              for a in arms_of(cfg)}
    datasets = eval_datasets(cfg, log)
    fast = ['psnr', 'ssim', cfg.guide] + [j for j in p.judges if j not in SLOW_JUDGES]
    bench_dir, slow_dir = osp.join(cfg.out, 'benchmark'), osp.join(cfg.out, 'benchmark_slow')
    rows = read_summary(osp.join(bench_dir, 'summary.csv') if reuse else
                        run_benchmark(cfg, models, datasets, fast, bench_dir, env))
    slow = [j for j in p.judges if j in SLOW_JUDGES]
    if slow:  # IL-NIQE costs ~9 s per image on a 2-core CPU: on the first benchmark only (both LR kinds)
        first = [d for d in datasets if d[0].split('-')[0] == p.eval_sets[0]]
        slow_rows = read_summary(osp.join(slow_dir, 'summary.csv') if reuse else
                                 run_benchmark(cfg, models, first, slow, slow_dir, env))
        for row in rows:
            match = next((r for r in slow_rows if r['model'] == row['model'] and r['dataset'] == row['dataset']), {})
            for j in slow:
                row[j] = match.get(j, float('nan'))
    return rows, datasets, bench_dir


SLOW_JUDGES = frozenset({'ilniqe'})


def rewrite_report(cfg: ReproduceConfig, log: Any = print) -> str:
    """The report again from the summaries and timings the last full run wrote to ``cfg.out``."""
    timings_path = osp.join(cfg.out, 'timings.json')
    if not osp.isfile(osp.join(cfg.out, 'benchmark', 'summary.csv')) or not osp.isfile(timings_path):
        raise FileNotFoundError(f'{cfg.out}: no earlier evaluation (benchmark/summary.csv, timings.json) to '
                                'report on; run without --report-only first.')
    with open(timings_path) as f:
        timings = json.load(f)
    rows, datasets, bench_dir = evaluate(cfg, _env(cfg), log, reuse=True)
    return write_report(cfg, rows, [d[0] for d in datasets], datasets, bench_dir, timings)


def write_report(cfg: ReproduceConfig, rows: list[dict[str, Any]], dataset_names: Sequence[str],
                 datasets: list[tuple[str, str, str]], bench_dir: str, timings: dict[str, Any]) -> str:
    """``report.md`` with the per-arm tables, plots, crops, timings and a computed reading; ``summary.csv``."""
    from nriqa_basicsr.atomic import atomic_path

    p = cfg.profile
    metrics = ['psnr', 'ssim', cfg.guide, *p.judges]
    with atomic_path(osp.join(cfg.out, 'summary.csv')) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['model', 'dataset', 'images', *metrics], extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(osp.join(cfg.out, 'timings.json')) as tmp, open(tmp, 'w') as f:
        json.dump(timings, f, indent=1)
    plot_perception_distortion(rows, dataset_names, [cfg.guide, *p.judges], osp.join(cfg.out,
                                                                                        'perception_distortion.png'))
    models = list(dict.fromkeys(r['model'] for r in rows))
    crops = []
    for name, gt_dir, _ in datasets:
        files = _list_images(gt_dir)
        pick = next((f for f in files if osp.splitext(f)[0] in CROP_IMAGES), files[0])
        target = osp.join(cfg.out, f'crops_{name}.png')
        plot_crops(osp.join(bench_dir, 'images'), models, osp.join(gt_dir, pick), name, osp.splitext(pick)[0], target)
        crops.append(osp.basename(target))
    guard_lines, guard_plots = [], []
    for arm in arms_of(cfg):
        summary = _guard_summary(_experiment_dir(cfg, f'{cfg.run_name}_{arm.key}'))
        if summary is None:
            continue
        png, md = summary
        target = osp.join(cfg.out, f'guard_{arm.key}.png')
        with open(png, 'rb') as src, atomic_path(target) as tmp, open(tmp, 'wb') as dst:
            dst.write(src.read())
        guard_plots.append(osp.basename(target))
        state = next((line for line in open(md).read().splitlines() if line.startswith('Guard:')), 'Guard: –')
        guard_lines.append(f'- {arm.label}: {state}')
    lines = [f'# Real-model reproduction ({p.name} profile)', '',
             'LoRA fine-tuning of the released **Real-ESRGAN x4plus** (RRDBNet 64/23/32, `params_ema`) with NR-IQA '
             f'guidance. Guide: `{cfg.guide}` (used by AMO selection and the NR-IQA loss); held-out judges, never '
             f'used in training: {", ".join(f"`{j}`" for j in p.judges)}, plus PSNR/SSIM on the Y channel '
             '(border 4) against the HR original.', '',
             f'Training data: HGGT-style multi-GT patches ({p.patch_size}² cut with step {p.patch_step}, original + '
             f'enhanced variants) from {", ".join(p.train_sets)} in `{cfg.shared}/datasets`; LR made on the fly '
             f"with Real-ESRGAN's second-order degradation. Same seed ({cfg.seed}), iterations ({p.iters}), batch "
             f'({p.batch}), GT crop ({p.gt_size}), LoRA rank ({cfg.rank}), learning rate ({cfg.lr:g}) for every arm; '
             f'λ_Q = {cfg.lambda_q:g} per guide point; EMA off; GAN off (sweep arms `A4_l*`, `A4_r*`, `A4_lr*` '
             'change only λ_Q, the rank or the learning rate of A4). '
             + ('No perceptual (VGG) term: ImageNet VGG19 weights are not available offline here. '
                if not p.perceptual else '') + '', '',
             'Arms: A0 the released model; A1 FT-Ori (L1 to the original: the "trained longer" control); A2 FT-AMO '
             '(L1 to the guide\'s argmax among original + variants); A3 FT-Ori + NR-IQA loss; A4 FT-AMO + NR-IQA loss '
             "(the paper's AMO+FT).", '',
             'Test sets: ' + ', '.join(dataset_names) + ' — `-RealESRGAN` rows use a fixed-seed Real-ESRGAN '
             f'degradation of the HR (seed {cfg.seed} + image index; written once, deterministic), the others '
             'the MATLAB-bicubic LR of the benchmark. ' + (
                 f'`{"`, `".join(sorted(SLOW_JUDGES & set(p.judges)))}` only on {p.eval_sets[0]} (about 9 s per '
                 'image on a 2-core CPU).' if SLOW_JUDGES & set(p.judges) else ''), '']
    for name in dataset_names:
        lines += [f'## {name}', ''] + markdown_table(rows, name, metrics, cfg.guide) + ['']
    lines += ['## Reading (computed from the tables)', '',
              'Lower is better for the guide and every NR judge here except where marked ↑. A change only counts '
              'as an effect if it exceeds the spread between arms that should not differ; with one seed per arm '
              'this report cannot give error bars.', '']
    lines += reading(rows, dataset_names, cfg.guide, p.judges) + ['']
    lines += ['## Plots', '', '![perception-distortion](perception_distortion.png)', '']
    lines += [f'![crops]({c})' for c in crops] + ['']
    lines += ['## Reward-hacking guard (held-out guard set, during training)', '',
              f'Guide `{cfg.guide}` against the judges {", ".join(["psnr", "ssim", *p.val_judges])} on '
              f'{p.val_images} held-out General100 crops every {p.val_freq} iterations (`val.guard`, warn only).', '']
    lines += guard_lines + [''] + [f'![guard]({g})' for g in guard_plots]
    lines += ['', '## Cost (this machine)', '', '| stage | seconds | s/iter | data s/iter |', '|---|---|---|---|',
              f'| data | {timings.get("data_s", 0):.0f} | | |']
    for key in [a.key for a in arms_of(cfg)]:
        t = timings.get(key)
        if isinstance(t, dict):
            lines.append(f'| train {key} | {t.get("wall_s", float("nan")):.0f} | {t.get("iter_s", float("nan")):.2f}'
                         f' | {t.get("data_s", float("nan")):.3f} |')
    lines.append(f'| evaluation | {timings.get("eval_s", 0):.0f} | | |')
    lines += ['', 'Where the time goes: A1 is L1 + LoRA backward through the frozen RRDB-23; A2 − A1 is the '
              'guide scoring of the K+1 candidate crops (AMO); A3 − A1 is the guide forward/backward on the SR '
              'output (NR-IQA loss).', '']
    path = osp.join(cfg.out, 'report.md')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines))
    return path


CROP_IMAGES = ('baboon', 'butterfly')


def _guard_summary(exp: str) -> tuple[str, str] | None:
    """(summary.png, summary.md) that the best-checkpoint tracker wrote at the end of a run, if any."""
    for folder, _, files in os.walk(exp) if osp.isdir(exp) else []:
        if 'summary.png' in files and 'summary.md' in files:
            return osp.join(folder, 'summary.png'), osp.join(folder, 'summary.md')
    return None


def build_parser() -> argparse.ArgumentParser:
    """``nriqa-reproduce``'s command line."""
    from nriqa_basicsr import cli

    parser = argparse.ArgumentParser(prog='nriqa-reproduce', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = ReproduceConfig()
    parser.add_argument('--shared', default=d.shared, metavar='DIR', help='folder with pretrained/, datasets/, '
                        'benchmarks/, iqa_weights/ (read only; default: ../shared beside the current directory)')
    cli.add_output(parser, default=d.out, help=f'report folder (default: {d.out})')
    parser.add_argument('--work', default=d.work, metavar='DIR', help=f'generated data (default: {d.work})')
    parser.add_argument('--profile', choices=sorted(PROFILES), default='cpu')
    parser.add_argument('--quick', action='store_true', help='the whole pipeline in a few minutes (= --profile quick)')
    parser.add_argument('--pretrained', help='released generator (default: <shared>/pretrained/RealESRGAN_x4plus.pth)')
    cli.add_weights_dir(parser, help='IQA weight folder(s), repeatable (default: <shared>/iqa_weights)')
    parser.add_argument('--guide', help='NR-IQA guide of AMO and the NR-IQA loss (default: the profile\'s; cpu: '
                        'cnniqa_live, gpu: musiq)')
    parser.add_argument('--lambda-q', type=float, help='weight of -Q(SR) per raw guide point (default: the '
                        'profile\'s)')
    parser.add_argument('--rank', type=int, default=d.rank, help='LoRA rank')
    parser.add_argument('--lr', type=float, default=d.lr, help='learning rate of the adapters')
    parser.add_argument('--iters', type=int, help='override the profile\'s iterations per arm')
    cli.add_seed(parser, default=d.seed)
    parser.add_argument('--arms', nargs='+', default=list(d.arms), choices=[a.key for a in ARMS])
    parser.add_argument('--lambda-sweep', nargs='*', type=float, default=None,
                        help='extra A4 arms with these λ_Q (default: the profile\'s sweep)')
    parser.add_argument('--rank-sweep', nargs='*', type=int, default=(), help='extra A4 arms with these LoRA ranks')
    parser.add_argument('--lr-sweep', nargs='*', type=float, default=(), help='extra A4 arms with these learning rates')
    parser.add_argument('--write-options', metavar='DIR', help='only write the option files of the profile to DIR')
    parser.add_argument('--report-only', action='store_true',
                        help='rewrite the report from the last evaluation in --output (no training, no benchmark)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-reproduce`` / ``make reproduce``; the arms train in the current directory's ``experiments/``."""
    from dataclasses import replace

    args = build_parser().parse_args(argv)
    profile = PROFILES['quick' if args.quick else args.profile]
    if args.iters is not None:
        profile = replace(profile, iters=args.iters)
    cfg = ReproduceConfig(shared=osp.abspath(args.shared), out=osp.abspath(args.output),
                          work=osp.abspath(args.work), root=os.getcwd(), profile=profile, pretrained=args.pretrained,
                          weights_dir=tuple(osp.abspath(w) for w in args.weights_dir or ()),
                          guide=args.guide or profile.guide,
                          lambda_q=profile.lambda_q if args.lambda_q is None else args.lambda_q, rank=args.rank,
                          lr=args.lr, seed=args.seed,
                          arms=tuple(args.arms),
                          lambda_sweep=tuple(profile.lambda_sweep if args.lambda_sweep is None else args.lambda_sweep),
                          rank_sweep=tuple(args.rank_sweep), lr_sweep=tuple(args.lr_sweep))
    try:
        if args.write_options:
            files = write_option_files(cfg, gpu_paths(), args.write_options)
            print('\n'.join(files.values()))
            return 0
        if args.report_only:
            print(rewrite_report(cfg, log=lambda msg: print(msg, flush=True)))
            return 0
        run_reproduce(cfg, log=lambda msg: print(msg, flush=True))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


def gpu_paths() -> dict[str, str]:
    """Paths written into the paper-scale option files (``--write-options``): relative to the repo root, as in
    ``options/train/``; build the data with ``nriqa-build-multigt`` (README) first."""
    return {'train': 'datasets/reproduce/gpu/train/images', 'val_gt': 'datasets/reproduce/gpu/guard_val/gt',
            'val_lq': 'datasets/reproduce/gpu/guard_val/lq',
            'pretrained': 'experiments/pretrained_models/RealESRGAN_x4plus.pth'}


if __name__ == '__main__':
    sys.exit(main())
