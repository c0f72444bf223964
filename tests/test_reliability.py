"""Reliability: atomic saves, safe loading, exact resume, SIGKILL fault injection, non-finite steps."""

import copy
import errno
import io
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import torch
from basicsr.data.data_sampler import EnlargedSampler
from conftest import REPO_ROOT
from test_model import _batch, _build, _cli_opt, _dataset_opt, _model_opt, _train

from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.data.sampler import ResumableSampler, SampleKey, batches_done_in_epoch
from nriqa_basicsr.rng_state import capture_rng_state, restore_rng_state
from nriqa_basicsr.safe_load import CorruptFileError, UnsafeFileError, load_torch_file
from nriqa_basicsr.step_guard import NonFiniteTrainingError


# ------------------------------------------------------------------------------------------ atomic files
def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / 'sub' / 'report.csv'
    with atomic_path(str(target)) as tmp:
        assert osp.basename(tmp).startswith('.tmp-') and tmp.endswith('report.csv')  # extension kept last
        open(tmp, 'w').write('v1')
    assert target.read_text() == 'v1'
    with pytest.raises(OSError, match='No space left'):
        with atomic_path(str(target)) as tmp:
            open(tmp, 'w').write('v2 partial')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == 'v1' and os.listdir(target.parent) == ['report.csv']
    with pytest.raises(FileNotFoundError, match='produced no file'):
        with atomic_path(str(target)):
            pass
    assert target.read_text() == 'v1'


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo should-never-run',))


def test_pickle_bearing_and_truncated_files_are_refused(data, tmp_path):
    good = {'params': {'w': torch.ones(2)}}
    torch.save(dict(good, extra=_Evil()), tmp_path / 'evil.pth')
    with pytest.raises(UnsafeFileError, match=r'evil.pth: refused, it holds pickled Python objects .*posix.system'
                                              r'.*re-save only its tensors'):
        load_torch_file(str(tmp_path / 'evil.pth'))
    torch.save(good, tmp_path / 'good.pth')
    (tmp_path / 'cut.pth').write_bytes((tmp_path / 'good.pth').read_bytes()[:200])
    with pytest.raises(CorruptFileError, match='cut.pth: truncated or not a PyTorch file'):
        load_torch_file(str(tmp_path / 'cut.pth'))
    from safetensors.torch import save_file

    save_file(good['params'], str(tmp_path / 'good.safetensors'))
    assert torch.equal(load_torch_file(str(tmp_path / 'good.safetensors'))['w'], torch.ones(2))
    # the model's pretrained path and an explicit resume state go through the same loader
    root, scores = data
    with pytest.raises(UnsafeFileError, match='pretrained checkpoint .*evil.pth'):
        _build(_model_opt(root, scores, 'original', tmp_path, pretrain=str(tmp_path / 'evil.pth')))
    from nriqa_basicsr.pipeline import load_resume_state

    opt = _model_opt(root, scores, 'original', tmp_path)
    opt['path']['resume_state'] = str(tmp_path / 'evil.pth')
    with pytest.raises(UnsafeFileError, match='path.resume_state'):
        load_resume_state(opt)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    root, scores = data
    model = _build(_model_opt(root, scores, 'upos', tmp_path, gan=True))
    model.feed_data(_batch(root, scores))
    model.optimize_parameters(1)
    model.save(0, 2)
    before = {p.name: p.read_bytes() for p in (tmp_path / 'models').iterdir()}
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf)
        open(f, 'wb').write(buf.getvalue()[:len(buf.getvalue()) // 3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f)

    model.optimize_parameters(2)
    monkeypatch.setattr(torch, 'save', full_disk)
    (tmp_path / 'models' / 'net_g_2.pth').rename(tmp_path / 'models' / 'net_g_4.pth')  # a file to overwrite
    before['net_g_4.pth'] = before.pop('net_g_2.pth')
    with pytest.raises(OSError, match='No space left'):
        model.save(0, 4)
    after = {p.name: p.read_bytes() for p in (tmp_path / 'models').iterdir()}
    assert after == before  # nothing replaced, nothing half-written, no temporary left
    assert sorted(os.listdir(tmp_path / 'states')) == ['2.state']


# ------------------------------------------------------------------------------------------ exact resume
def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state
    torch.save({'rng': capture_rng_state()}, tmp_path / 's.state')
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / 's.state', weights_only=True)['rng'])
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_resumable_sampler_keeps_basicsr_order_and_skips_done_batches():
    dataset = list(range(10))
    bases = [EnlargedSampler(dataset, 2, rank, ratio=3) for rank in (0, 1)]
    plain = [EnlargedSampler(dataset, 2, rank, ratio=3) for rank in (0, 1)]
    samplers = [ResumableSampler(b, seed=5, batch_size=3, keyed=True) for b in bases]
    for s, p in zip(samplers, plain):
        s.set_epoch(4), p.set_epoch(4)
        assert [k.index for k in s] == list(p)  # BasicSR's indices, rank by rank
    keys = [k for s in samplers for k in s]
    assert all(isinstance(k, SampleKey) and k.entropy[:2] == (5, 4) for k in keys)
    assert sorted(k.entropy[2] for k in keys) == list(range(30))  # positions unique across ranks
    samplers[0].resume_at(4, 2)
    assert list(samplers[0]) == keys[6:15]  # 2 batches of 3 skipped, once
    assert list(samplers[0]) == keys[:15]
    assert batches_done_in_epoch(7, 1, 5) == 2 and batches_done_in_epoch(10, 1, 5) == 5
    assert batches_done_in_epoch(12, 1, 5) is None  # does not fit: the epoch restarts


def test_sample_keys_fix_the_crop_whatever_worker_loads_them(data):
    root, scores = data
    ds = MultiGTDataset(dict(_dataset_opt(root, scores), phase='train', scale=4))
    key = SampleKey(2, (0, 3, 17))
    first, again = ds[key], ds[key]
    assert torch.equal(first['gts'], again['gts']) and torch.equal(first['crop'], again['crop'])
    others = [ds[SampleKey(2, (0, e, 17))]['crop'].tolist() for e in range(4, 12)]
    assert any(c != first['crop'].tolist() for c in others)  # another epoch draws another crop
    assert first['key'] == ds[2]['key']


def _state_dicts(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.slow
def test_resumed_run_reaches_the_same_weights_as_a_straight_run(data, tmp_path, run_names):
    """6 iterations straight vs 3 + --auto_resume + 3, with 2 data-loader workers, a GAN, EMA and random (SMA) GT
    selection; the resume point lies inside an epoch (6 groups, batch 3: two iterations per epoch)."""
    root, scores = data
    opts = []
    for tag in ('straight', 'resumed'):
        name = f'pytest_exact_{tag}_{uuid.uuid4().hex[:6]}'
        run_names.append(name)
        opt = _cli_opt(root, scores, name, 'sma', gan=True)
        opt['datasets']['train']['num_worker_per_gpu'] = 2
        opt['train']['total_iter'] = 6
        opt['logger']['save_checkpoint_freq'] = 3
        opts.append(opt)
    _train(opts[0], tmp_path)
    half = copy.deepcopy(opts[1])
    half['train']['total_iter'] = 3
    _train(half, tmp_path)
    log = _train(opts[1], tmp_path, '--auto_resume')
    assert 'Resuming training from epoch: 1, iter: 3' in log
    models = [osp.join(REPO_ROOT, 'experiments', o['name'], 'models') for o in opts]
    for net in ('net_g_6.pth', 'net_d_6.pth'):
        a, b = (_state_dicts(osp.join(m, net)) for m in models)
        for key in a:
            for name, tensor in a[key].items():
                assert torch.allclose(tensor, b[key][name], rtol=0, atol=1e-6), (net, key, name)


# ------------------------------------------------------------------------------------------ fault injection
_HARNESS = r'''
import io, os, signal, sys
import torch
mode, count = sys.argv[1], int(sys.argv[2])
sys.argv = [sys.argv[0]] + sys.argv[3:]
calls = [0]
if mode == 'mid_write':  # die with the checkpoint half written
    real_save = torch.save
    def save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] == count:
            buf = io.BytesIO()
            real_save(obj, buf)
            open(f, 'wb').write(buf.getvalue()[:len(buf.getvalue()) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = save
elif mode == 'before_rename':  # die with the file complete but not yet renamed into place
    real_replace = os.replace
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)
    os.replace = replace
import nriqa_basicsr
from nriqa_basicsr.pipeline import train_main
train_main(sys.argv.pop(1))
'''


def run_under_harness(mode: str, count: int, yml, console, started: str, delay: float,
                      extra: list[str]) -> tuple[int, str]:
    """Train ``yml`` with ``--auto_resume`` under :data:`_HARNESS`: ``mid_write`` / ``before_rename`` kill the
    process inside its ``count``-th save, ``random`` SIGKILLs it ``delay`` s after ``started`` shows in the
    console, ``finish`` runs to the end. Returns (exit status, console text)."""
    cmd = [sys.executable, '-c', _HARNESS, 'random' if mode == 'finish' else mode, str(count), REPO_ROOT,
           '-opt', str(yml), '--auto_resume', *extra]
    with open(console, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        if mode == 'random':
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline and started not in console.read_text():
                time.sleep(0.05)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
    return proc.returncode, console.read_text()


def _check_files_intact(exp):
    for sub in ('models', 'training_states'):
        folder = osp.join(exp, sub)
        for name in os.listdir(folder) if osp.isdir(folder) else []:
            if not name.startswith('.tmp-'):
                load_torch_file(osp.join(folder, name))  # raises on a corrupt file


@pytest.mark.slow
def test_sigkill_at_any_moment_never_corrupts_and_loses_at_most_one_interval(data, tmp_path, run_names):
    import yaml

    root, scores = data
    name = f'pytest_kill_{uuid.uuid4().hex[:6]}'
    run_names.append(name)
    opt = _cli_opt(root, scores, name, 'sma', gan=True)
    freq = 2
    opt['train']['total_iter'] = 1000  # the kills end every run but the last
    opt['logger']['save_checkpoint_freq'] = freq
    yml = tmp_path / 'kill.yml'
    yml.write_text(yaml.safe_dump(opt))
    exp = osp.join(REPO_ROOT, 'experiments', name)
    rng = random.Random(0)
    # injected kills inside saves (3 files per save: net_g, net_d, state) and kills at random moments
    trials = [('mid_write', 5), ('before_rename', 6), ('random', 0), ('random', 0), ('mid_write', 4), ('random', 0)]
    last_done = 0
    for mode, count in trials + [('finish', 0)]:
        total = (last_done // freq + 2) * freq  # a save interval boundary: net_g_<total>.pth is written
        # random: a kill at a random moment once training runs (log lines "[epoch: E, iter: N"), saves included
        returncode, text = run_under_harness(
            mode, count, yml, tmp_path / f'console_{mode}_{count}_{time.time()}.txt', '[epoch:',
            rng.uniform(0.0, 1.5) if mode == 'random' else 0.0,
            ['--force_yml', f'train:total_iter={total}'] if mode == 'finish' else [])
        resumed = re.search(r'Resuming training from epoch: \d+, iter: (\d+)', text)
        start = int(resumed.group(1)) if resumed else 0
        assert last_done - start <= freq, (mode, last_done, start, text[-2000:])  # lost at most one interval
        done = [int(i.replace(',', '')) for i in re.findall(r'\[epoch:\s*\d+, iter:\s*([\d,]+)', text)]
        last_done = max(done + [start])
        _check_files_intact(exp)
        if mode == 'finish':
            assert returncode == 0, text[-3000:]
        else:
            assert returncode == -signal.SIGKILL, (mode, text[-3000:])
    models = os.listdir(osp.join(exp, 'models'))
    assert f'net_g_{total}.pth' in models and 'net_g_latest.pth' in models
    assert not [n for n in models if n.startswith('.tmp-')]  # leftovers of killed saves were cleaned up
    assert 'unfinished save' in ''.join(p.read_text() for p in tmp_path.glob('console_*'))


# ------------------------------------------------------------------------------------------ non-finite values
def test_nonfinite_steps_are_skipped_then_training_stops_naming_the_term(data, tmp_path, caplog):
    root, scores = data
    opt = _model_opt(root, scores, 'amo', tmp_path, gan=True)
    opt['train']['max_consecutive_nonfinite'] = 3
    model = _build(opt)
    batch = _batch(root, scores)
    model.feed_data(batch)
    model.optimize_parameters(1)
    model.save(0, 1)
    good = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    good_d = {k: v.clone() for k, v in model.net_d.named_parameters()}  # spectral-norm buffers move
    real_pix = model.cri_pix
    model.cri_pix = lambda out, gt: real_pix(out, gt) * float('nan')
    model.feed_data(batch)
    model.optimize_parameters(2)
    assert model.step_guard.skips == 1 and 'non-finite l_g_pix' in caplog.text
    model.cri_pix = real_pix
    model.feed_data(batch)
    model.optimize_parameters(3)  # a good step resets the streak
    assert model.step_guard.streak == 0
    good = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    good_d = {k: v.clone() for k, v in model.net_d.named_parameters()}  # spectral-norm buffers move
    scorer = model.amo_scorers['piqe']
    model.amo_scorers['piqe'] = lambda x: scorer(x) * float('inf')
    model.feed_data(batch)
    model.optimize_parameters(4)
    assert 'non-finite candidate scores (piqe)' in caplog.text
    model.amo_scorers['piqe'] = scorer
    model.cri_pix = lambda out, gt: real_pix(out, gt) * float('nan')
    model.feed_data(batch)
    model.optimize_parameters(5)
    model.feed_data(batch)
    with pytest.raises(NonFiniteTrainingError, match=r'iter 6: 3 steps in a row .* last: l_g_pix\. .*'
                                                     r'max_consecutive_nonfinite = 3'):
        model.optimize_parameters(6)
    assert model.step_guard.skips == 4
    assert all(torch.equal(v, good[k]) for k, v in model.net_g.state_dict().items())  # skipped: unchanged
    assert all(torch.equal(v, good_d[k]) for k, v in model.net_d.named_parameters())
    saved = load_torch_file(str(tmp_path / 'models' / 'net_g_1.pth'))['params']
    assert saved and all(torch.isfinite(v).all() for v in saved.values())  # the last checkpoint is intact


def test_nonfinite_gradients_skip_the_step(data, tmp_path, caplog):
    root, scores = data
    model = _build(_model_opt(root, scores, 'original', tmp_path))
    model.feed_data(_batch(root, scores))
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    first = next(model.net_g.parameters())
    first.register_hook(lambda g: g * float('nan'))
    model.optimize_parameters(1)
    assert 'non-finite gradients of net_g' in caplog.text and model.step_guard.skips == 1
    assert all(torch.equal(v, before[k]) for k, v in model.net_g.state_dict().items())
