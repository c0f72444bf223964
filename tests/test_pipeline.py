"""End to end through BasicSR's own pipelines: stock SRModel + PairedImageDataset via our entry points."""

import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import uuid

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _write_pairs(folder: str, crops: list[np.ndarray], scale: int = 4) -> tuple[str, str]:
    from basicsr.utils.matlab_functions import imresize

    hr_dir, lr_dir = osp.join(folder, 'HR'), osp.join(folder, 'LR')
    os.makedirs(hr_dir), os.makedirs(lr_dir)
    for i, hr in enumerate(crops):
        lr = np.clip(imresize(hr.astype(np.float64) / 255, 1 / scale) * 255, 0, 255).round().astype(np.uint8)
        cv2.imwrite(osp.join(hr_dir, f'img{i}.png'), hr)
        cv2.imwrite(osp.join(lr_dir, f'img{i}.png'), lr)
    return hr_dir, lr_dir


@pytest.fixture(scope='module')
def paired_data(tmp_path_factory):
    from skimage import data

    root = str(tmp_path_factory.mktemp('paired'))
    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    bgr = [np.ascontiguousarray(p[..., ::-1]) for p in photos]
    train = _write_pairs(osp.join(root, 'train'), [p[:128, :128] for p in bgr] + [p[-128:, -128:] for p in bgr])
    val = _write_pairs(osp.join(root, 'val'), [p[:256, :256] for p in bgr[:2]])  # NIQE needs >= 2x2 blocks
    return train, val


@pytest.fixture
def run_name():
    name = f'pytest_pipeline_{uuid.uuid4().hex[:8]}'
    yield name
    for sub in ('experiments', 'tb_logger', 'results'):
        if osp.isdir(osp.join(REPO_ROOT, sub)):
            for other in os.listdir(osp.join(REPO_ROOT, sub)):
                # the run itself, BasicSR's "<name>_archived_<time>" copies and "debug_<name>"
                if other.startswith(name) or other.startswith(f'debug_{name}'):
                    shutil.rmtree(osp.join(REPO_ROOT, sub, other), ignore_errors=True)


def _train_options(name, paired_data, lpips_weights):
    (gt, lq), (val_gt, val_lq) = paired_data
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
                      'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'gt_size': 64, 'use_hflip': True,
                      'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                      'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {'name': 'tinyval', 'type': 'PairedImageDataset', 'dataroot_gt': val_gt, 'dataroot_lq': val_lq,
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2,
                      'upscale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 4,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': False, 'metrics': {
            'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False},
            'niqe': {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': 4},
            'lpips': {'type': 'calculate_fr_iqa', 'metric': 'lpips', 'weights_dir': lpips_weights},
        }},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def _run(script, opt_path, *flags, cwd):
    cmd = [sys.executable, osp.join(REPO_ROOT, 'nriqa_basicsr', script), '-opt', str(opt_path), *flags]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=os.environ.copy())


def _log_text(folder):
    logs = sorted(f for f in os.listdir(folder) if f.endswith('.log'))
    return ''.join(open(osp.join(folder, f)).read() for f in logs)


def test_stock_basicsr_yaml_trains_resumes_and_tests(paired_data, lpips_weights, run_name, tmp_path):
    opt = _train_options(run_name, paired_data, lpips_weights)
    opt_path = tmp_path / 'train.yml'
    opt_path.write_text(yaml.safe_dump(opt))

    # From another working directory, with the PyTorch >= 2 launcher spelling of the rank flag.
    out = _run('train.py', opt_path, '--local-rank=0', cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    exp = osp.join(REPO_ROOT, 'experiments', run_name)
    for rel in ('models/net_g_2.pth', 'models/net_g_4.pth', 'models/net_g_latest.pth', 'training_states/4.state',
                'train.yml'):
        assert osp.isfile(osp.join(exp, rel)), rel
    assert os.listdir(osp.join(REPO_ROOT, 'tb_logger', run_name))
    assert not osp.exists(osp.join(str(tmp_path), 'experiments'))

    log = _log_text(exp)
    niqe = [(float(v), float(b), int(i)) for v, b, i in re.findall(r'# niqe: ([\d.]+)\tBest: ([\d.]+) @ (\d+) iter',
                                                                  log)]
    lpips = re.findall(r'# lpips: ([\d.]+)\tBest', log)
    assert len(niqe) >= 2 and len(lpips) >= 2
    # better: lower was filled in for NIQE: the best is the minimum seen so far
    best_so_far = min(v for v, _, _ in niqe[:2])
    assert niqe[1][1] == pytest.approx(best_so_far, abs=1e-4)

    # --auto_resume on a CPU-only machine (BasicSR's own loader needs CUDA), extending the run to 6 iterations.
    out = _run('train.py', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6', cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'Resuming training from epoch' in _log_text(exp) and 'iter: 4' in _log_text(exp)
    assert osp.isfile(osp.join(exp, 'models', 'net_g_6.pth'))

    # test.py with the trained generator on the validation pairs
    test_opt = {k: opt[k] for k in ('model_type', 'scale', 'num_gpu', 'network_g')}
    test_opt.update({
        'name': run_name, 'manual_seed': 0,
        'datasets': {'test_1': dict(opt['datasets']['val'], name='tinytest')},
        'path': {'pretrain_network_g': osp.join(exp, 'models', 'net_g_latest.pth'), 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'metrics': opt['val']['metrics']},
    })
    test_path = tmp_path / 'test.yml'
    test_path.write_text(yaml.safe_dump(test_opt))
    out = _run('test.py', test_path, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    results = osp.join(REPO_ROOT, 'results', run_name)
    assert re.search(r'# niqe: [\d.]+', _log_text(results))
    assert len(os.listdir(osp.join(results, 'visualization', 'tinytest'))) == 2


def test_bad_metric_option_fails_before_anything_is_written(paired_data, lpips_weights, run_name, tmp_path):
    opt = _train_options(run_name, paired_data, lpips_weights)
    opt['val']['metrics']['niqe']['metric'] = 'nique'
    opt['val']['metrics']['lpips']['better'] = 'higher'
    opt_path = tmp_path / 'bad.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    out = _run('train.py', opt_path, cwd=REPO_ROOT)
    assert out.returncode != 0
    assert 'Invalid options' in out.stderr
    assert 'val.metrics.niqe: Unknown IQA metric "nique". Did you mean:' in out.stderr
    assert 'val.metrics.lpips.better: "lpips" is lower-is-better' in out.stderr
    assert not osp.exists(osp.join(REPO_ROOT, 'experiments', run_name))


def test_debug_flag_runs_a_debug_experiment(paired_data, lpips_weights, run_name, tmp_path):
    opt = _train_options(run_name, paired_data, lpips_weights)
    opt['train']['total_iter'] = 2
    opt_path = tmp_path / 'debug.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    out = _run('train.py', opt_path, '--debug', cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert osp.isfile(osp.join(REPO_ROOT, 'experiments', f'debug_{run_name}', 'models', 'net_g_latest.pth'))
    assert not osp.exists(osp.join(REPO_ROOT, 'tb_logger', f'debug_{run_name}'))  # BasicSR: no TB in debug


def test_console_scripts_expose_basicsr_flags():
    script = osp.join(osp.dirname(sys.executable), 'nriqa-train')
    if not osp.isfile(script):
        pytest.skip('package not installed in this interpreter (make install installs the console scripts)')
    out = subprocess.run([script, '-h'], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for flag in ('-opt', '--launcher', '--auto_resume', '--debug', '--local_rank', '--force_yml'):
        assert flag in out.stdout


def test_multigt_dataset_drives_a_stock_basicsr_model(run_name, tmp_path):
    """MultiGTDataset registers by import and feeds BasicSR's SRModel (the "Ori" baseline) and validation."""
    from nriqa_basicsr.demo.data import make_demo_data

    demo = make_demo_data(str(tmp_path / 'demo'), num_train=4, num_val=1, size=128, seed=5)
    common = {'type': 'MultiGTDataset', 'layout': 'hggt', 'lq_mode': 'bicubic', 'io_backend': {'type': 'disk'}}
    opt = _train_options(run_name, (('', ''), ('', '')), None)
    opt['datasets'] = {
        'train': dict(common, name='demo', dataroot_gt=osp.join(demo, 'train', 'images'),
                      dataroot_label=osp.join(demo, 'train', 'labels'), gt_size=64, use_hflip=True, use_rot=True,
                      num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1, prefetch_mode=None),
        'val': dict(common, name='demoval', dataroot_gt=osp.join(demo, 'val', 'images')),
    }
    opt['train']['total_iter'] = 2
    opt['val']['metrics'] = {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}}
    opt_path = tmp_path / 'multigt.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    out = _run('train.py', opt_path, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    log = _log_text(osp.join(REPO_ROOT, 'experiments', run_name))
    assert 'MultiGTDataset demo: 4 groups, K=5 variants' in log
    assert re.search(r'# psnr: [\d.]+', log)
