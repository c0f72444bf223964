"""The main job on the built-in demo data (``make demo``, ``nriqa-demo``): data → three tiny CPU trainings → report.

Run it in the project checkout: paths are relative to the current directory (``options/demo/``, ``experiments/``).

1. ``nriqa-make-demo-data`` → ``--demo-data`` (default ``datasets/demo``; kept if present);
2. ``python -m nriqa_basicsr.train`` with ``options/demo/train_demo_ori.yml`` (Ori baseline),
   ``train_demo_amo.yml`` (AMO) and ``train_demo_amo_ft.yml`` (LoRA FT with an NR-IQA loss on top of AMO);
   earlier ``experiments/demo_*`` / ``tb_logger/demo_*`` runs are removed first. The guide is the learned
   CNNIQA-LIVE (``cnniqa_live``) when its weights file ``CNNIQA-LIVE`` is found (``--weights-dir``, default
   ``$NRIQA_WEIGHTS_DIR`` or ``../shared/iqa_weights``), NIQE otherwise (``--guide`` forces one); the option
   files actually trained are written to ``<output>/options/``;
3. evaluation of bicubic and the three models on the demo validation split: PSNR / SSIM (Y channel, border
   4, as SR papers), the guide metric and held-out NR metrics no run was trained on (NIQE and PIQE, minus the
   guide), plus the same NR metrics of the HR originals; writes ``report.md``, ``metrics.csv`` and
   ``perception_distortion.png`` to ``--output`` (default ``results/demo``).

About 6 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from nriqa_basicsr import cli
from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.iqa.custom import find_custom_weights, get_custom_metric
from nriqa_basicsr.plotting import labelled_scatter

if TYPE_CHECKING:
    from nriqa_basicsr.evaluation import MetricSuite

__all__ = ['RUNS', 'build_parser', 'choose_guide', 'guided_options', 'machine_summary', 'main', 'train',
           'write_options', 'write_report']

RUNS = [('Ori', 'train_demo_ori.yml', 'demo_ori'), ('AMO ({guide})', 'train_demo_amo.yml', 'demo_amo'),
        ('AMO + FT ({guide}, LoRA)', 'train_demo_amo_ft.yml', 'demo_amo_ft')]
SCALE = 4
DEFAULT_DATA = osp.join('datasets', 'demo')  # the option files' own dataroots (relative to the checkout)
DEFAULT_OUTPUT = osp.join('results', 'demo')
_ITER = re.compile(r'\biter:\s*(\d{1,3}(?:,\d{3})*)')  # BasicSR's progress line: "[epoch:  0, iter:  1,000, lr:"
SHARED_WEIGHTS = osp.join(osp.pardir, 'shared', 'iqa_weights')  # beside the checkout the demo runs in
# NR-IQA loss weight per point of each guide's raw score: CNNIQA's DMOS spans ~5x the NIQE range on the demo
# data and its input gradient per point is larger too, so its weight is smaller for a similar pull.
LOSS_WEIGHT = {'niqe': 0.02, 'cnniqa_live': 0.004}
NR_FORMATS = {'niqe': '.3f'}  # NIQE differences of hundredths matter; other NR scores span tens of points


def _root(root: str | None) -> str:
    """The checkout the demo runs in: ``root`` or the current directory."""
    return osp.abspath(root or os.getcwd())


def default_weights_dir() -> str | None:
    """``$NRIQA_WEIGHTS_DIR`` if set, else ``../shared/iqa_weights`` when present."""
    return os.environ.get('NRIQA_WEIGHTS_DIR') or (SHARED_WEIGHTS if osp.isdir(SHARED_WEIGHTS) else None)


def _demo_option_file(option_file: str, root: str | None) -> str:
    path = osp.join(_root(root), 'options', 'demo', option_file)
    if not osp.isfile(path):
        raise SystemExit(f'error: {path}: no such file; run nriqa-demo in the project checkout (it reads '
                         f'options/demo/ and writes experiments/ there).')
    return path


def choose_guide(weights_dir: str | Sequence[str] | None, forced: str | None = None) -> tuple[str, list[str]]:
    """The demo's guide metric and its held-out NR metrics: CNNIQA-LIVE when its weights are found, else NIQE."""
    found = find_custom_weights(get_custom_metric('cnniqa_live'), weights_dir)[0] is not None
    guide = forced or ('cnniqa_live' if found else 'niqe')
    if guide == 'cnniqa_live' and not found:
        raise SystemExit(f'--guide cnniqa_live: no CNNIQA-LIVE weights file under {weights_dir or "the search path"} '
                         f'(or its cnniqa/ folder); pass --weights-dir.')
    return guide, [m for m in ('niqe', 'piqe') if m != guide]


def guided_options(option_file: str, guide: str, weights_dir: str | Sequence[str] | None,
                   root: str | None = None, demo_data: str | None = None) -> dict[str, Any]:
    """``options/demo/<option_file>`` with NIQE replaced by ``guide`` in GT selection and the NR-IQA loss, and
    the demo data read from ``demo_data`` (default: the files' own ``datasets/demo``)."""
    with open(_demo_option_file(option_file, root)) as f:
        opt = yaml.safe_load(f)
    if demo_data is not None and osp.normpath(demo_data) != DEFAULT_DATA:
        for block in (opt.get('datasets') or {}).values():
            for key, value in block.items():
                if key.startswith('dataroot') and isinstance(value, str) and value.startswith(DEFAULT_DATA + '/'):
                    block[key] = osp.join(osp.abspath(demo_data), value[len(DEFAULT_DATA) + 1:])
    train_opt = opt.get('train') or {}
    if weights_dir is not None and not isinstance(weights_dir, str):
        weights_dir = list(weights_dir)  # a --weights-dir list stays a YAML list
    extra = {'weights_dir': weights_dir} if weights_dir else {}
    selection = train_opt.get('gt_selection') or {}
    if selection.get('metrics'):
        selection['metrics'] = {guide: 1.0}
        selection['metric_opts'] = {guide: extra} if extra else {}
    if train_opt.get('iqa_opt'):
        train_opt['iqa_opt'].update(metrics={guide: 1.0}, loss_weight=LOSS_WEIGHT[guide], **extra)
    metrics = (opt.get('val') or {}).get('metrics')
    if metrics is not None:  # the reward-hacking guard validates the guide; NIQE, if replaced, becomes a judge
        metrics.setdefault(guide, {'type': 'calculate_nriqa', 'metric': guide, 'crop_border': 4, **extra})
    return opt


def write_options(out: str, guide: str, weights_dir: str | Sequence[str] | None,
                  root: str | None = None, demo_data: str | None = None) -> dict[str, str]:
    """The option file each run trains with, under ``<out>/options`` (kept next to the report)."""
    folder = osp.join(out, 'options')
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for _, option_file, _ in RUNS:
        path = osp.join(folder, option_file)
        with atomic_path(path) as tmp, open(tmp, 'w') as f:
            f.write(f'# written by nriqa-demo from options/demo/{option_file}: guide {guide}\n')
            yaml.safe_dump(guided_options(option_file, guide, weights_dir, root, demo_data), f, sort_keys=False)
        paths[option_file] = path
    return paths


def train(option_path: str, name: str, root: str | None = None) -> float:
    """Train one demo run in a fresh process (outputs under ``root``, default the CWD); returns its wall time."""
    from nriqa_basicsr.run_lock import ExperimentLockedError, experiment_lock

    root = _root(root)
    try:  # never delete the folders of a demo run that is still training (its train.py holds this lock)
        with experiment_lock(osp.join(root, 'experiments', name)):
            for sub in ('experiments', 'tb_logger'):
                for entry in os.listdir(osp.join(root, sub)) if osp.isdir(osp.join(root, sub)) else []:
                    if entry == name or entry.startswith(f'{name}_archived_'):
                        shutil.rmtree(osp.join(root, sub, entry))
    except ExperimentLockedError as exc:
        raise SystemExit(f'error: {exc}') from None
    start = time.time()
    # the installed package's entry point, run in root: outputs go to root/experiments whatever the install
    cmd = [sys.executable, '-m', 'nriqa_basicsr.train', '-opt', osp.abspath(option_path)]
    with open(option_path) as f:
        total = (yaml.safe_load(f).get('train') or {}).get('total_iter', '?')
    tail: collections.deque[str] = collections.deque(maxlen=200)
    with subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # BasicSR's log lines: one progress line per print_freq iterations
            tail.append(line)
            match = _ITER.search(line)
            if match:
                print(f'  {name}: iter {match.group(1)}/{total} ({time.time() - start:.0f} s)', flush=True)
    if proc.returncode != 0:
        sys.stderr.write(''.join(tail)[-8000:])
        raise SystemExit(f'training {name} failed (exit {proc.returncode})')
    seconds = time.time() - start
    logs = sorted(glob.glob(osp.join(root, 'experiments', name, f'train_{name}_*.log')))
    print(f'  {name}: done in {seconds:.0f} s; log: {logs[-1] if logs else osp.join(root, "experiments", name)}',
          flush=True)
    return seconds


def trained_generator(option_file: str, name: str, root: str | None = None) -> torch.nn.Module:
    """The run's ``net_g_latest.pth`` (EMA weights); the FT run's holds merged weights that load strictly into the
    stock RRDBNet."""
    from nriqa_basicsr.inference import load_generator

    with open(_demo_option_file(option_file, root)) as f:
        network_g = yaml.safe_load(f)['network_g']
    return load_generator(osp.join(_root(root), 'experiments', name, 'models', 'net_g_latest.pth'), network_g,
                          'params_ema')


def evaluate(upscale: Callable[[np.ndarray], np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]],
             suite: MetricSuite) -> dict[str, float]:
    """Mean of every metric of ``suite`` over ``pairs`` (HR, LR) with the SR of ``upscale``."""
    rows = [suite(upscale(lr), hr) for hr, lr in pairs]
    return {k: float(np.mean([r[k] for r in rows])) for k in suite.names}


def _fmt(metric: str, value: float) -> str:
    return format(value, NR_FORMATS.get(metric, '.2f'))


def write_report(out: str, rows: list[dict[str, Any]], durations: dict[str, float], hr_nr: dict[str, float],
                 pairs: list[Any], guide: str = 'niqe', held_out: Sequence[str] = ('piqe',),
                 machine: str | None = None) -> str:
    """``report.md``, ``metrics.csv`` and ``perception_distortion.png`` under ``out``; returns the report path."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    nr = [guide, *held_out]
    os.makedirs(out, exist_ok=True)
    with atomic_path(osp.join(out, 'metrics.csv')) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['model', 'psnr', 'ssim', *nr])
        writer.writeheader()
        writer.writerows(rows)
    fig, axes = plt.subplots(1, len(nr), figsize=(5.5 * len(nr), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], nr):
        ax.set_xlabel('PSNR-Y (dB), higher = less distortion')
        ax.set_ylabel(f'{metric.upper()} (lower = better perceived quality)')
        ax.set_title(f'Perception-distortion: PSNR vs {metric.upper()}'
                     + (' (guides training)' if metric == guide else ' (held out)'), fontsize=10)
        ax.grid(alpha=0.3)
    # one colour/marker per model and a legend: text next to the points overlapped for nearly equal models
    for ax, metric in zip(axes[0], nr):  # before the points: their range includes the HR line
        ax.axhline(hr_nr[metric], color='grey', linestyle='--', linewidth=1)
    labelled_scatter(fig, axes[0], [[(row['model'], row['psnr'], row[metric]) for row in rows] for metric in nr])
    for ax, metric in zip(axes[0], nr):  # after them: placed at the final left edge of the axis
        ax.text(ax.get_xlim()[0], hr_nr[metric], ' HR originals', va='bottom', fontsize=8, color='grey')
    with atomic_path(osp.join(out, 'perception_distortion.png')) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)

    guide_name = guide.upper() if guide != 'cnniqa_live' else 'CNNIQA-LIVE'
    learned = (' CNNIQA-LIVE is a learned NR-IQA model (Kang et al. 2014, trained on LIVE DMOS; lower = better).'
               if guide == 'cnniqa_live' else ' (CNNIQA-LIVE is used instead when its weights file is found.)')
    header = ' | '.join(f'{m.upper()} ↓ ({"trained on" if m == guide else "held out"})' for m in nr)
    lines = ['# nriqa_basicsr demo report', '',
             'Tiny RRDB (3 blocks, 32 features, ~0.3 M parameters) trained for a few hundred iterations on CPU on '
             'the **synthetic** demo data (scikit-image photos; enhanced GTs from classical operators; labels from '
             'simulated annotators). These numbers show that the pipeline runs end to end and which way each '
             'variant moves the metrics on this toy data; they say nothing about HGGT, the paper, or real human '
             'preferences. Differences of a few hundredths of a dB or a few tenths of NIQE are within '
             'run-to-run noise here.', '',
             f'Validation split: the {len(pairs)} demo val images (x4, LR = MATLAB bicubic of '
             'the HR original). PSNR/SSIM on the Y channel with a 4-pixel border crop, against the original HR. '
             f'{guide_name} guided the AMO selection and the FT loss;{learned} '
             f'{", ".join(m.upper() for m in held_out)}: held-out NR metric(s) no run optimised.'
             + (' NIQE here is the MATLAB NIQE SR papers report (Y channel); training used pyiqa\'s differentiable '
                'NIQE, which reads a few tenths differently.' if 'niqe' in nr else ''), '',
             f'| model | PSNR-Y ↑ | SSIM-Y ↑ | {header} |', '|---|---|---|' + '---|' * len(nr)]
    for row in rows:
        values = ' | '.join(_fmt(m, row[m]) for m in nr)
        lines.append(f'| {row["model"]} | {row["psnr"]:.2f} | {row["ssim"]:.4f} | {values} |')
    lines.append(f'| HR originals (reference) | – | – | {" | ".join(_fmt(m, hr_nr[m]) for m in nr)} |')
    bicubic_psnr = next(r['psnr'] for r in rows if r['model'] == 'Bicubic')
    behind = [r['model'] for r in rows if r['model'] != 'Bicubic' and r['psnr'] < bicubic_psnr]
    if behind:
        lines += ['', f'Note: {", ".join(behind)} stay below bicubic on PSNR: a network this small, trained for a few '
                      'hundred CPU iterations from scratch, has not converged; compare the trained variants with '
                      'each other, not with bicubic.']
    if durations:
        lines += ['', 'Training time (this machine, including start-up): ' + ', '.join(
            f'{k} {v:.0f} s' for k, v in durations.items()) + '.']
    if machine:
        lines += ['', f'Machine: {machine}. Reproducible: the same machine, thread count and seed give the same '
                      'table; another CPU (its float kernels, BLAS, thread count) may train to different numbers '
                      '(a few hundred steps amplify last-bit differences), so compare models within one run of this '
                      'report.']
    lines += ['',
        f'What to look for: AMO trains on whichever GT crop {guide_name} prefers, so relative to Ori it is expected '
        f'to trade PSNR against the original for {guide_name}; FT adds a {guide_name} term with LoRA adapters only. '
        'AMO + FT also gets 100 more (adapter) iterations than the other runs, so part of its change is simply more '
        f'training. If {guide_name} improves while the held-out metrics worsen, the model is learning what '
        f'{guide_name} rewards rather than better images (reward hacking) — the reason the paper keeps the fidelity '
        'terms and a frozen base.', '',
        '![perception-distortion](perception_distortion.png)', '']
    path = osp.join(out, 'report.md')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines))
    return path


def machine_summary() -> str:
    """CPU model, cores, torch threads and versions: what the demo's numbers depend on besides the seed."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, '
            f'{platform.system()} {platform.machine()}, Python {platform.python_version()}')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='nriqa-demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # not --dataroot: the demo writes this folder when it is missing (nriqa-make-demo-data's --output)
    parser.add_argument('--demo-data', default=DEFAULT_DATA, metavar='DIR',
                        help=f'the demo data folder, made there when missing (default: {DEFAULT_DATA})')
    cli.add_output(parser, default=DEFAULT_OUTPUT,
                   help=f'report folder (report.md, metrics.csv, the plot, options/) (default: {DEFAULT_OUTPUT})')
    parser.add_argument('--skip-training', action='store_true', help='only evaluate existing demo runs')
    cli.add_weights_dir(parser, help='where CNNIQA-LIVE (and other IQA weights) are looked for (default: '
                        '$NRIQA_WEIGHTS_DIR, else ../shared/iqa_weights when present)')
    parser.add_argument('--guide', choices=['cnniqa_live', 'niqe'],
                        help='force the guide metric (default: cnniqa_live when its weights are found, else niqe)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-demo`` / ``scripts/run_demo.py`` / ``make demo``."""
    from nriqa_basicsr.demo.data import make_demo_data
    from nriqa_basicsr.evaluation import MetricSuite, bicubic_upscale, list_pairs, load_pair
    from nriqa_basicsr.inference import upscale_image

    args = build_parser().parse_args(argv)
    weights_dir = args.weights_dir or default_weights_dir()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.time()
    guide, held_out = choose_guide(weights_dir, args.guide)
    print(f'guide: {guide}; held-out NR metrics: {", ".join(held_out)}', flush=True)
    if not osp.isdir(args.demo_data):
        make_demo_data(args.demo_data)
        print(f'demo data written to {args.demo_data}')
    option_paths = write_options(args.output, guide, weights_dir, demo_data=args.demo_data)
    runs = [(label.format(guide=guide), option_file, name) for label, option_file, name in RUNS]
    durations = {}
    if not args.skip_training:
        for label, option_file, name in runs:
            print(f'training {label} ({option_paths[option_file]}) ...', flush=True)
            durations[label] = train(option_paths[option_file], name)
    val = osp.join(args.demo_data, 'val')
    pairs = [load_pair(p, SCALE) for p in list_pairs(osp.join(val, 'images', 'original'), osp.join(val, 'lq_x4'))]
    print('evaluating ...', flush=True)
    nr = [guide, *held_out]
    suite = MetricSuite(['psnr', 'ssim', *nr], SCALE, device='cpu', weights_dir=weights_dir)
    rows = [dict(model='Bicubic', **evaluate(lambda lr: bicubic_upscale(lr, SCALE), pairs, suite))]
    for label, option_file, name in runs:
        net = trained_generator(option_file, name)
        rows.append(dict(model=label, **evaluate(lambda lr, net=net: upscale_image(net, lr, SCALE), pairs, suite)))
    nr_only = MetricSuite(nr, SCALE, device='cpu', weights_dir=weights_dir)
    hr_nr = {m: float(np.mean([nr_only(hr, None)[m] for hr, _ in pairs])) for m in nr}
    path = write_report(args.output, rows, durations, hr_nr, pairs, guide, held_out, machine_summary())
    with open(path) as f:
        print(f.read().split('\n\n![')[0])
    plot = osp.join(args.output, 'perception_distortion.png')
    print(f'\nReport: {path} (plot: {plot}); total {time.time() - start:.0f} s')
    return 0
