"""Hardening, round two: experiment-folder lock, output-path guard, safe option files, start-up refusals,
content-checked score files, LMDB listings, label files (README "Bad-input catalogue")."""

import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT

from nriqa_basicsr.options import OptionsError, check_option_structure, check_train_loader, prepare_options
from nriqa_basicsr.output_guard import (
    OutputExistsError,
    OutputPathError,
    claim_output_dir,
    guard_output_dir,
    guard_output_files,
    marker_path,
)
from nriqa_basicsr.pipeline import ResumeError, basicsr_hooks, load_resume_state, read_option_file
from nriqa_basicsr.run_lock import ExperimentLockedError, RunLock, lock_path_for
from nriqa_basicsr.safe_load import CorruptFileError, UnsafeFileError, load_torch_file
from nriqa_basicsr.yaml_io import OptionFileError, load_option_file

RUN_LOCK_FILE = osp.join(REPO_ROOT, 'nriqa_basicsr', 'run_lock.py')
# Holds a RunLock until killed; run_lock.py is loaded on its own, so the helper starts in a fraction of a second.
_HOLDER = r'''
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location('run_lock', sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
lock = mod.RunLock(sys.argv[2])
print('held', flush=True)
time.sleep(600)
'''
GARBAGE = b'\xb3 not a checkpoint ' * 20  # what a bad copy or a disk error leaves
_TRAIN = 'import sys, nriqa_basicsr; from nriqa_basicsr.pipeline import train_main; train_main(sys.argv.pop(1))'


def _hold_lock(folder):
    proc = subprocess.Popen([sys.executable, '-c', _HOLDER, RUN_LOCK_FILE, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'held'
    return proc


def _write_images(folder, names, seed, size=32):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(osp.join(folder, f'{name}.png'), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def _sr_options(name, data):
    """A tiny SRModel run (2 iterations of an 8-channel MSRResNet on two 32 px crops)."""
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 't', 'type': 'PairedImageDataset', 'dataroot_gt': osp.join(data, 'HR'),
            'dataroot_lq': osp.join(data, 'LR'), 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'},
            'gt_size': 32, 'use_hflip': False, 'use_rot': False, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
            'dataset_enlarge_ratio': 1, 'prefetch_mode': None}},
        'network_g': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'upscale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 2e-4},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 2,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


@pytest.fixture(scope='module')
def sr_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('sr_data')
    rng = np.random.default_rng(0)
    os.makedirs(root / 'HR'), os.makedirs(root / 'LR')
    for i in range(2):
        hr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'HR' / f'img{i}.png'), hr)
        cv2.imwrite(str(root / 'LR' / f'img{i}.png'), cv2.resize(hr, (8, 8), interpolation=cv2.INTER_AREA))
    return str(root)


def _train(root, opt, tmp_path, *flags):
    path = tmp_path / f'{opt["name"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    return subprocess.run([sys.executable, '-c', _TRAIN, str(root), '-opt', str(path), *flags], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def _tree(folder):
    return sorted(osp.relpath(osp.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


# ------------------------------------------------------------------------------------------ 1. data loss
def test_experiment_lock_refuses_a_live_owner_and_reclaims_a_dead_ones(tmp_path):
    folder = tmp_path / 'experiments' / 'run'
    holder = _hold_lock(folder)
    try:
        with pytest.raises(ExperimentLockedError, match=rf'in use by PID {holder.pid} on host .*kill {holder.pid}'):
            RunLock(str(folder))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the flock with the process; the file still names the dead PID
    assert json.load(open(lock_path_for(str(folder))))['pid'] == holder.pid
    lock = RunLock(str(folder))
    assert lock.reclaimed_from['pid'] == holder.pid
    with pytest.raises(ExperimentLockedError, match=f'PID {os.getpid()}'):
        RunLock(str(folder))  # a second owner in the same process is refused too (flock is per open file)
    lock.release()
    assert not osp.exists(lock_path_for(str(folder)))
    RunLock(str(folder)).release()


@pytest.mark.slow
def test_second_run_with_the_same_name_is_refused_before_anything_is_archived(sr_data, tmp_path):
    root = tmp_path / 'root'
    exp = root / 'experiments' / 'busy'
    os.makedirs(exp / 'models')
    (exp / 'models' / 'net_g_1.pth').write_bytes(b'the running run\'s file')
    (exp / 'models' / '.tmp-1-net_g_2.pth').write_bytes(b'its in-flight save')
    before = _tree(exp)
    holder = _hold_lock(exp)
    try:
        for flags in ((), ('--auto_resume',)):
            out = _train(root, _sr_options('busy', sr_data), tmp_path, *flags)
            assert out.returncode == 2, out.stderr[-2000:]
            assert f'is in use by PID {holder.pid}' in out.stderr and 'Traceback' not in out.stderr
            assert sorted(os.listdir(root / 'experiments')) == ['.busy.lock', 'busy']  # nothing archived
            assert _tree(exp) == before  # the in-flight temporary file survives too
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the owner died (crash): the next run reclaims the lock, trains (BasicSR archives the dead run's folder, as
    # for any new run), and releases the lock on exit
    out = _train(root, _sr_options('busy', sr_data), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'Reclaimed the lock of {exp} from PID {holder.pid}' in out.stdout
    assert osp.isfile(exp / 'models' / 'net_g_latest.pth')
    archived = [e for e in os.listdir(root / 'experiments') if e.startswith('busy_archived_')]
    # the dead run's checkpoint is kept (archived); only its unfinished temporary save was removed
    assert len(archived) == 1 and _tree(root / 'experiments' / archived[0]) == ['models/net_g_1.pth']
    assert not osp.exists(root / 'experiments' / '.busy.lock')


def _resume_opt(exp):
    return {'name': 'r', 'auto_resume': True, 'rank': 0, 'num_gpu': 0, 'is_train': True,
            'network_g': {'type': 'MSRResNet'},
            'path': {'models': str(exp / 'models'), 'training_states': str(exp / 'training_states'),
                     'experiments_root': str(exp), 'resume_state': None}}


def test_auto_resume_without_a_usable_state_stops_listing_each_state(tmp_path):
    exp = tmp_path / 'exp'
    os.makedirs(exp / 'models'), os.makedirs(exp / 'training_states')
    buf = __import__('io').BytesIO()
    torch.save({'iter': 2, 'epoch': 0}, buf)
    (exp / 'training_states' / '2.state').write_bytes(buf.getvalue()[:40])  # truncated
    (exp / 'training_states' / '4.state').write_bytes(GARBAGE)
    before = _tree(exp)
    with pytest.raises(ResumeError) as info:
        load_resume_state(_resume_opt(exp))
    message = str(info.value)
    assert '4.state: CorruptFileError' in message and 'not a PyTorch file' in message
    assert '2.state: CorruptFileError' in message and 'nothing was started or archived' in message
    assert _tree(exp) == before


def test_garbage_checkpoint_falls_back_to_the_previous_state_and_is_called_garbage(tmp_path, caplog):
    exp = tmp_path / 'exp'
    os.makedirs(exp / 'models'), os.makedirs(exp / 'training_states')
    for it in (2, 4):
        torch.save({'iter': it, 'epoch': 0}, exp / 'training_states' / f'{it}.state')
    torch.save({'params': {'w': torch.zeros(1)}}, exp / 'models' / 'net_g_2.pth')
    (exp / 'models' / 'net_g_4.pth').write_bytes(GARBAGE)
    with pytest.raises(CorruptFileError, match='not a PyTorch file'):
        load_torch_file(str(exp / 'models' / 'net_g_4.pth'))
    opt = _resume_opt(exp)
    state = load_resume_state(opt)
    assert state['iter'] == 2 and opt['path']['pretrain_network_g'].endswith('net_g_2.pth')
    assert 'net_g_4.pth: not a PyTorch file' in caplog.text and 'pickled' not in caplog.text


# ---------------------------------------------------------------------------------- output-path guard
def test_output_guard_api(tmp_path):
    inp = tmp_path / 'data' / 'images'
    _write_images(inp, ['a'], 0)
    for out in (inp, tmp_path / 'data'):  # the input itself, or a folder holding it
        with pytest.raises(OutputPathError, match='the input'):
            guard_output_dir(str(out), 'tool', [str(inp)], overwrite=True)
    foreign = tmp_path / 'foreign'
    _write_images(foreign, ['x'], 1)
    with pytest.raises(OutputPathError, match='was not made by tool'):
        guard_output_dir(str(foreign), 'tool', overwrite=True)
    own = tmp_path / 'own'
    assert guard_output_dir(str(own), 'tool') is False
    claim_output_dir(str(own), 'tool')
    _write_images(own, ['y'], 2)
    assert os.listdir(own) == ['y.png'] and osp.isfile(marker_path(str(own)))  # the marker lives beside it
    with pytest.raises(OutputExistsError, match='pass --overwrite'):
        guard_output_dir(str(own), 'tool')
    with pytest.raises(OutputPathError, match='was made by tool; --overwrite replaces only other'):
        guard_output_dir(str(own), 'other', overwrite=True)
    assert guard_output_dir(str(own), 'tool', overwrite=True) is True
    with pytest.raises(OutputPathError, match='is the input'):
        guard_output_files([str(inp / 'a.png')], 'tool', [str(inp / 'a.png')], overwrite=True)
    with pytest.raises(OutputPathError, match='did not make'):
        guard_output_files([str(foreign / 'x.png')], 'tool', overwrite=True, folder=str(foreign))
    assert guard_output_files([str(own / 'y.png')], 'tool', overwrite=True, folder=str(own)) == [str(own / 'y.png')]


def test_tools_never_destroy_their_inputs_or_foreign_outputs(tmp_path):
    from nriqa_basicsr.data.lmdb import main as lmdb_main
    from nriqa_basicsr.merge_lora import main as merge_main
    from nriqa_basicsr.upscale import main as upscale_main

    lr = tmp_path / 'lr'
    _write_images(lr, ['a', 'b'], 0, size=16)
    before = {p: (lr / p).read_bytes() for p in os.listdir(lr)}
    # -o equal to -i: refused before the model is even looked at
    assert upscale_main(['-i', str(lr), '-o', str(lr), '--model', str(tmp_path / 'none.pth')]) == 1
    assert {p: (lr / p).read_bytes() for p in os.listdir(lr)} == before

    dataset = tmp_path / 'D'
    for variant in ('original', 'v1'):
        _write_images(dataset / 'images' / variant, ['g1', 'g2'], 3)
    os.makedirs(dataset / 'labels' / 'A')
    tree = _tree(dataset)
    common = ['--dataroot', str(dataset / 'images'), '--layout', 'generic', '--variants', 'original', 'v1',
              '--no-progress']
    assert lmdb_main(common + ['--output', str(dataset), '--overwrite']) == 1
    assert _tree(dataset) == tree
    out = tmp_path / 'lmdb'
    assert lmdb_main(common + ['--output', str(out)]) == 0
    assert lmdb_main(common + ['--output', str(out)]) == 1                   # exists: not without --overwrite
    assert lmdb_main(common + ['--output', str(out), '--overwrite']) == 0    # its own earlier output
    foreign = tmp_path / 'mine'
    _write_images(foreign, ['keep'], 4)
    assert lmdb_main(common + ['--output', str(foreign), '--overwrite']) == 1
    assert os.listdir(foreign) == ['keep.png']

    ft = tmp_path / 'ft.yml'
    ft.write_text(yaml.safe_dump({'network_g': {'type': 'MSRResNet'}, 'network_g_lora': {'rank': 2},
                                  'path': {'pretrain_network_g': str(tmp_path / 'base.pth')}}))
    existing = tmp_path / 'merged.pth'
    existing.write_bytes(b'an earlier merge')
    assert merge_main(['-opt', str(ft), '--adapters', str(tmp_path / 'ad.pth'), '--output', str(existing)]) == 1
    assert merge_main(['-opt', str(ft), '--adapters', str(tmp_path / 'ad.pth'), '--output', str(ft),
                       '--overwrite']) == 1
    assert existing.read_bytes() == b'an earlier merge' and 'network_g_lora' in ft.read_text()


def test_score_benchmark_and_conversion_outputs_are_not_replaced_silently(tmp_path, capsys):
    from nriqa_basicsr.benchmark import main as benchmark_main
    from nriqa_basicsr.data.scoring import main as score_main
    from nriqa_basicsr.iqa.convert import main as convert_main

    images = tmp_path / 'images'
    for variant in ('original', 'v1'):
        _write_images(images / variant, ['g'], 0)
    scores = tmp_path / 'scores.npz'
    scores.write_bytes(b'earlier scores')
    assert score_main(['--dataroot', str(images), '--layout', 'generic', '--variants', 'original', 'v1',
                       '--metrics', 'piqe', '--output', str(scores), '--no-progress']) == 1
    assert 'pass --overwrite' in capsys.readouterr().err and scores.read_bytes() == b'earlier scores'
    weights = tmp_path / 'weights'
    os.makedirs(weights)
    (weights / 'niqe_modelparameters.mat').write_bytes(b'earlier conversion')
    src = tmp_path / 'niqe.npz'
    np.savez(src, mu_pris_param=np.zeros((1, 36)), cov_pris_param=np.eye(36))
    assert convert_main(['niqe', str(src), '--output', str(weights)]) == 1
    assert (weights / 'niqe_modelparameters.mat').read_bytes() == b'earlier conversion'
    results = tmp_path / 'results'
    _write_images(results, ['someone_elses'], 1)
    assert benchmark_main(['--model', 'bicubic', '--dataset', f'x={images / "original"}', '--scale', '4',
                           '-o', str(results), '--overwrite', '--no-progress']) == 1
    assert 'was not made by benchmark.py' in capsys.readouterr().err and os.listdir(results) == ['someone_elses.png']


# ---------------------------------------------------------------------------------- 2. safe option files
def _evil(tmp_path, marker):
    path = tmp_path / 'evil.yml'
    path.write_text(f'name: x\nmodel_type: !!python/object/apply:os.system ["touch {marker}"]\n')
    return path


def test_option_files_are_read_safely(tmp_path):
    marker = tmp_path / 'pwned'
    with pytest.raises(OptionFileError, match=r'evil.yml:2: tag !!python/object/apply:os.system refused'):
        load_option_file(str(_evil(tmp_path, marker)))
    dup = tmp_path / 'dup.yml'
    dup.write_text('name: a\ntrain:\n  total_iter: 10\n  lr: 1\n  total_iter: 20\n')
    with pytest.raises(OptionFileError, match=r'dup.yml:5: duplicate key "total_iter" \(first at line 3\)'):
        load_option_file(str(dup))
    ok = tmp_path / 'ok.yml'
    ok.write_text('b: !!float 2e-4\na: &base {x: 1, y: 2}\nc:\n  <<: *base\n  y: 3\n')
    opt = load_option_file(str(ok))
    assert list(opt) == ['b', 'a', 'c'] and opt['b'] == 2e-4 and dict(opt['c']) == {'x': 1, 'y': 3}
    for text, what in (('', 'empty'), ('- a\n- b\n', 'not a mapping')):
        (tmp_path / 'bad.yml').write_text(text)
        with pytest.raises(OptionFileError, match=what):
            load_option_file(str(tmp_path / 'bad.yml'))
    with pytest.raises(OptionFileError, match='no such file'):
        load_option_file(str(tmp_path / 'missing.yml'))
    # BasicSR's own parse_options reads through ordered_yaml(), which the pipeline hooks make safe
    import basicsr.utils.options as basicsr_options

    with basicsr_hooks(), open(_evil(tmp_path, marker)) as f, pytest.raises(yaml.YAMLError):
        yaml.load(f, Loader=basicsr_options.ordered_yaml()[0])
    assert not marker.exists()


def test_every_tool_refuses_python_tags_without_running_them(sr_data, tmp_path):
    from nriqa_basicsr.benchmark import main as benchmark_main
    from nriqa_basicsr.merge_lora import main as merge_main
    from nriqa_basicsr.upscale import main as upscale_main

    marker = tmp_path / 'pwned'
    evil = str(_evil(tmp_path, marker))
    assert merge_main(['-opt', evil, '--adapters', 'a.pth', '--output', str(tmp_path / 'm.pth')]) == 1
    assert upscale_main(['-i', osp.join(sr_data, 'LR'), '-o', str(tmp_path / 'sr'), '--model', evil]) == 1
    assert benchmark_main(['--model', f'm={evil}', '--dataset', f'x={osp.join(sr_data, "HR")}', '--scale', '4',
                           '-o', str(tmp_path / 'bench'), '--no-progress']) == 1
    out = subprocess.run([sys.executable, '-c', _TRAIN, str(tmp_path / 'root'), '-opt', evil], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and 'refused' in out.stderr and 'Traceback' not in out.stderr
    assert not marker.exists() and not (tmp_path / 'root').exists()


def test_iqa_weight_file_with_pickled_code_is_refused_before_pyiqa_loads_it(tmp_path):
    from nriqa_basicsr.iqa import build_scorer

    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    evil = tmp_path / 'musiq.pth'
    torch.save({'params': Payload()}, evil)
    with pytest.raises(UnsafeFileError, match='weights of IQA metric "musiq"'):
        build_scorer('musiq', device='cpu', weights_path=str(evil))
    assert not marker.exists()


# ------------------------------------------------------------------- 3./4. start-up refusals (options.py)
def test_structure_of_an_option_file_is_checked_before_basicsr_indexes_it(tmp_path, sr_data):
    assert 'name: required' in ' '.join(check_option_structure({'datasets': {}, 'path': {}, 'num_gpu': 0}))
    opt = _sr_options('s', sr_data)
    opt['datasets']['train'] = ['not', 'a', 'mapping']
    path = tmp_path / 's.yml'
    path.write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError, match=r's.yml: datasets.train: must be a mapping'):
        read_option_file(str(path))


def test_values_that_train_nothing_or_crash_late_are_refused_at_start_up(sr_data):
    opt = _sr_options('s', sr_data)
    opt['is_train'] = True
    opt['train']['total_iter'] = 0
    opt['logger']['print_freq'] = 0
    opt['datasets']['train'].update(batch_size_per_gpu=0, dataset_enlarge_ratio=0)
    opt['train']['gan_opt'] = {'loss_weight': 0.1}  # no type
    opt['val'] = {'val_freq': 2, 'metrics': {
        'psnr': {'type': 'calculate_psnr', 'crop_boder': 4},
        'musiq': {'type': 'calculate_nriqa', 'metric': 'musiq', 'pretrainde': False}}}
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    for expected in ('train.total_iter: must be a whole number >= 1, got 0',
                     'logger.print_freq: must be a whole number >= 1, got 0',
                     'datasets.train.batch_size_per_gpu: must be a whole number >= 1, got 0',
                     'datasets.train.dataset_enlarge_ratio: must be a whole number >= 1, got 0',
                     'train.gan_opt: missing "type"',
                     'val.metrics.psnr.crop_boder: not an argument of calculate_psnr (did you mean crop_border?)',
                     'val.metrics.psnr: calculate_psnr needs "crop_border"',
                     'val.metrics.musiq.pretrainde: not an option of IQA metric "musiq" (did you mean pretrained?)'):
        assert expected in text, (expected, text)


def test_gt_selection_and_loss_weights_must_be_usable_numbers():
    opt = {'is_train': True, 'model_type': 'NRIQAModel', 'train': {
        'gt_selection': {'policy': 'amo', 'metrics': {'musiq': 0, 'niqe': -1.0, 'piqe': '0.5'},
                         'metric_opts': {'musiq': {'pretrainde': 1}}},
        'iqa_opt': {'type': 'NRIQALoss', 'metrics': {'musiq': 'one'}}},
        'datasets': {'train': {'type': 'MultiGTDataset', 'score_metrics': {'piqe': 0.0}}}}
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    for expected in ('train.gt_selection.metrics.musiq: the weight must be > 0, got 0',
                     'train.gt_selection.metrics.niqe: the weight must be > 0, got -1.0',
                     "train.gt_selection.metrics.piqe: the weight must be a number, got str '0.5'",
                     "train.iqa_opt.metrics.musiq: the weight must be a number, got str 'one'",
                     'datasets.train.score_metrics.piqe: the weight must be > 0',
                     'train.gt_selection.metric_opts.musiq.pretrainde: not an option of IQA metric "musiq"'):
        assert expected in text, (expected, text)


def test_batch_larger_than_the_dataset_is_refused_before_training():
    loader = torch.utils.data.DataLoader(list(range(2)), batch_size=3, drop_last=True)
    opt = {'world_size': 1, 'datasets': {'train': {'batch_size_per_gpu': 3, 'dataset_enlarge_ratio': 1}}}
    problems = check_train_loader(opt, loader, 10)
    assert len(problems) == 1 and 'larger than the training set (2 samples' in problems[0]
    assert check_train_loader(opt, torch.utils.data.DataLoader(list(range(4)), batch_size=3, drop_last=True), 10) == []


# ------------------------------------------------------------------------- 3. data files: labels, scores, LMDB
def test_label_file_naming_a_variant_twice_is_refused(tmp_path):
    from nriqa_basicsr.data.labels import LabelError, read_hggt_label_file

    variants = ['original', '01', '02']
    entries = {'Picture_1': {'File': 'original', 'Label': None}, 'Picture_2': {'File': '01', 'Label': 'Positive'},
               'Picture_3': {'File': '01', 'Label': 'Negative'}}
    path = tmp_path / 'g.json'
    path.write_text(json.dumps(entries))
    with pytest.raises(LabelError, match='g.json: variant "01" is named by Picture_2 and Picture_3'):
        read_hggt_label_file(str(path), variants)
    entries['Picture_3']['File'] = '2'
    path.write_text(json.dumps(entries))
    with pytest.raises(LabelError, match="Picture_3 has File '2', which is not one of the variants"):
        read_hggt_label_file(str(path), variants)
    entries['Picture_3']['File'] = '02'
    path.write_text(json.dumps(entries))
    assert read_hggt_label_file(str(path), variants) == [None, 'Positive', 'Negative']


def _generic(root, seed, size=64, names=('g1', 'g2')):
    for variant in ('original', 'v1'):
        _write_images(osp.join(root, variant), names, seed + (variant == 'v1'), size)
    return str(root)


def _score_file(path, source, grid=None):
    from nriqa_basicsr.data.score_file import (
        FORMAT,
        ScoreTable,
        dataset_fingerprint,
        save_score_table,
        source_content_fingerprint,
    )

    meta = {'format': FORMAT, 'variants': source.variants, 'dataset_root': source.root,
            'fingerprint': dataset_fingerprint(source.groups, source.variants),
            'content': source_content_fingerprint(source), 'grid': grid}
    n = len(source.groups)
    grids = {'piqe': np.zeros((n, 2, 1, 1), np.float32)} if grid else {}
    save_score_table(str(path), ScoreTable(meta, list(source.groups), {'piqe': np.zeros((n, 2), np.float32)},
                                           grids))
    return str(path)


def test_score_file_of_other_images_with_the_same_names_is_refused(tmp_path):
    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.data.score_file import ScoreFileError

    a, b = _generic(tmp_path / 'A', 0), _generic(tmp_path / 'B', 10)
    scores = _score_file(tmp_path / 's.npz', MultiGTSource(a, 'generic', ['original', 'v1']))
    opt = {'phase': 'val', 'scale': 4, 'layout': 'generic', 'gt_variants': ['original', 'v1'], 'score_file': scores,
           'report_counts': False}
    MultiGTDataset(dict(opt, dataroot_gt=a))
    with pytest.raises(ScoreFileError, match='the images differ from the ones scored'):
        MultiGTDataset(dict(opt, dataroot_gt=b))


def test_score_grid_made_for_other_image_sizes_names_the_file_not_an_index(tmp_path):
    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.data.score_file import ScoreFileError

    root = _generic(tmp_path / 'A', 0, size=64)
    # a one-cell grid: what scoring 32 px images gives; these are 64 px, so most crops have no grid score
    scores = _score_file(tmp_path / 's.npz', MultiGTSource(root, 'generic', ['original', 'v1']),
                         grid={'stride': 32, 'crop': 32})
    dataset = MultiGTDataset({'phase': 'train', 'scale': 4, 'layout': 'generic', 'gt_variants': ['original', 'v1'],
                              'dataroot_gt': root, 'score_file': scores, 'gt_size': 32, 'report_counts': False,
                              'lq_mode': 'bicubic'})
    with pytest.raises(ScoreFileError, match='s.npz: no grid score for the crop .*made for other image sizes'):
        for _ in range(40):
            dataset[0]


def test_lmdb_names_with_spaces_work_and_bad_listings_are_named(tmp_path):
    from nriqa_basicsr.data.lmdb import create_lmdb
    from nriqa_basicsr.data.multigt_source import MultiGTLayoutError, MultiGTSource

    root = _generic(tmp_path / 'D', 0, size=16, names=('a b', 'a c'))
    out = create_lmdb(MultiGTSource(root, 'generic', ['original', 'v1']), str(tmp_path / 'lmdb'), progress=False)
    lmdb_source = MultiGTSource(out, 'generic', ['original', 'v1'], io_backend={'type': 'lmdb'})
    assert lmdb_source.groups == ['a b', 'a c']  # not collapsed into "a"
    meta = osp.join(out, 'original.lmdb', 'meta_info.txt')
    lines = open(meta).read().splitlines()
    open(meta, 'w').write(lines[0] + '\n')  # a lost line: the group would silently vanish
    with pytest.raises(MultiGTLayoutError, match=r'original.lmdb/meta_info.txt: does not match .*"a c"'):
        MultiGTSource(out, 'generic', ['original', 'v1'], io_backend={'type': 'lmdb'})
    accented = _generic(tmp_path / 'E', 0, size=16, names=('caf\u00e9',))
    with pytest.raises(ValueError, match='cannot be LMDB keys'):
        create_lmdb(MultiGTSource(accented, 'generic', ['original', 'v1']), str(tmp_path / 'lmdb2'), progress=False)
    assert not osp.exists(tmp_path / 'lmdb2')


def test_hidden_folder_in_labels_is_not_an_annotator(tmp_path):
    from nriqa_basicsr.data.multigt_source import MultiGTSource

    root = _generic(tmp_path / 'D', 0, size=16, names=('g',))
    for annotator in ('A', '.ipynb_checkpoints'):
        os.makedirs(tmp_path / 'labels' / annotator)
    source = MultiGTSource(root, 'generic', ['original', 'v1'], dataroot_label=str(tmp_path / 'labels'))
    assert source.annotators() == ['A']


def test_torn_score_log_header_does_not_block_reruns(tmp_path):
    from nriqa_basicsr.data.scoring import read_partial

    partial = tmp_path / 'x.npz.partial.jsonl'
    partial.write_text('{"format": "nriqa-gt-sc')
    assert read_partial(str(partial), {}) == {} and not partial.exists()


def test_lock_is_released_when_the_holder_exits_normally(tmp_path):
    folder = tmp_path / 'exp'
    proc = subprocess.Popen([sys.executable, '-c', _HOLDER.replace('time.sleep(600)', 'time.sleep(0.2)'),
                             RUN_LOCK_FILE, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'held'
    proc.wait(timeout=30)
    time.sleep(0.05)
    RunLock(str(folder)).release()


# ---------------------------------------------------------------------------------------------- 5. messages
def test_torch_write_failure_surfaces_as_an_oserror_naming_the_file(tmp_path, monkeypatch):
    from nriqa_basicsr.atomic import atomic_path

    target = tmp_path / 'net_g_4.pth'
    target.write_bytes(b'previous')

    def full_disk_save(obj, f, *args, **kwargs):  # what torch's zip writer raises when a write fails
        open(f, 'wb').write(b'partial')
        raise RuntimeError('[enforce fail at inline_container.cc:603] . unexpected pos 4352 vs 4248')

    monkeypatch.setattr(torch, 'save', full_disk_save)
    with pytest.raises(OSError, match=r'writing .*net_g_4.pth failed \(\[enforce fail.*unexpected pos'):
        with atomic_path(str(target)) as tmp:
            torch.save({}, tmp)
    assert target.read_bytes() == b'previous' and os.listdir(tmp_path) == ['net_g_4.pth']
    with pytest.raises(RuntimeError, match='something else'):  # other errors are not rewritten
        with atomic_path(str(target)):
            raise RuntimeError('something else')


def test_malformed_score_file_header_and_missing_option_file_name_the_file(tmp_path):
    from nriqa_basicsr.data.score_file import ScoreFileError, load_score_table

    for meta, why in (('not json {', 'is not JSON'), ('[1, 2]', 'is not a mapping'),
                      ('{"format": "nriqa-gt-scores/1"}', 'has no list of variants')):
        np.savez(tmp_path / 'bad.npz', meta=np.array(meta), groups=np.array(['g']))
        with pytest.raises(ScoreFileError, match=f'bad.npz: its meta header {why}'):
            load_score_table(str(tmp_path / 'bad.npz'))
    with pytest.raises(OptionFileError, match=r'-opt .*nothere.yml: no such file'):
        read_option_file(str(tmp_path / 'nothere.yml'))


def test_run_demo_does_not_delete_a_running_demo_experiment(tmp_path):
    import uuid

    from nriqa_basicsr.demo.run import train

    name = f'pytest_demo_lock_{uuid.uuid4().hex[:6]}'
    exp = osp.join(REPO_ROOT, 'experiments', name)
    os.makedirs(osp.join(exp, 'models'))
    holder = _hold_lock(exp)
    try:
        with pytest.raises(SystemExit, match=f'in use by PID {holder.pid}'):
            train(str(tmp_path / 'unused.yml'), name)
        assert osp.isdir(osp.join(exp, 'models'))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        import shutil

        shutil.rmtree(exp, ignore_errors=True)
        if osp.exists(lock_path_for(exp)):
            os.remove(lock_path_for(exp))
