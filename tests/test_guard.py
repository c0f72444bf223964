"""Reward-hacking guard and best-checkpoint selection: the math, the options, the bookkeeping, real training."""

import copy
import json
import os
import os.path as osp
import random
import re
import signal
import subprocess
import sys
import uuid

import pytest
import torch
from conftest import REPO_ROOT
from guard_plugin import Sharpness
from test_model import NET_G, _batch, _build, _cli_opt, _model_opt

from nriqa_basicsr.best_checkpoint import BestCheckpoints, resolve_checkpoint, resolve_model_spec
from nriqa_basicsr.guard import (
    GUARD_EXIT_CODE,
    GuardConfig,
    GuardStop,
    check_guard_options,
    criterion_scores,
    evaluate_guard,
    relative_change,
)
from nriqa_basicsr.iqa import register_nriqa_metric
from nriqa_basicsr.safe_load import load_torch_file

MSRRESNET = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4}
DIRS = {'musiq': 1, 'niqe': -1, 'psnr': 1, 'ssim': 1}


register_nriqa_metric('guard_sharpness', override=True)(Sharpness)
PLUGIN = osp.join(osp.dirname(osp.abspath(__file__)), 'guard_plugin.py') + ':Sharpness'


# ------------------------------------------------------------------------------------------ the math
def test_criterion_is_z_scored_with_each_metrics_direction():
    history = [(1, {'psnr': 20.0, 'niqe': 8.0}), (2, {'psnr': 22.0, 'niqe': 7.0}), (3, {'psnr': 21.0, 'niqe': 4.0})]
    assert criterion_scores(history, {'psnr': 1}, DIRS) == pytest.approx([-1.2247, 1.2247, 0.0], abs=1e-4)
    niqe = criterion_scores(history, {'niqe': 1}, DIRS)
    assert max(range(3), key=niqe.__getitem__) == 2  # lower NIQE is better
    # equal weights: psnr ranks 2 > 3 > 1, niqe 3 > 2 > 1; scales do not matter, only z
    both = criterion_scores(history, {'psnr': 1.0, 'niqe': 1.0}, DIRS)
    scaled = [(i, {'psnr': v['psnr'] * 100, 'niqe': v['niqe']}) for i, v in history]
    assert both == pytest.approx(criterion_scores(scaled, {'psnr': 1.0, 'niqe': 1.0}, DIRS))
    assert both[0] < both[2] and both[0] < both[1]
    # weights move the choice; a missing value counts as the worst seen
    assert max(range(3), key=criterion_scores(history, {'psnr': 3, 'niqe': 1}, DIRS).__getitem__) == 1
    holes = criterion_scores(history + [(4, {'psnr': float('nan'), 'niqe': 5.0})], {'psnr': 1}, DIRS)
    assert holes[3] == min(holes)
    assert relative_change(9.0, 10.0, -1) == pytest.approx(0.1) and relative_change(None, 1.0, 1) == 0.0


def _hacking_history(n=6, noise=0.0, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):  # guide +8 %/validation, judges -3 % (PSNR) and -2 % (SSIM) from the second one on
        k = max(i - 1, 0)
        out.append(((i + 1) * 100, {'musiq': 40 * (1 + 0.08 * k) * (1 + rng.gauss(0, noise)),
                                    'psnr': 25 * (1 - 0.03 * k) * (1 + rng.gauss(0, noise)),
                                    'ssim': 0.7 * (1 - 0.02 * k) * (1 + rng.gauss(0, noise))}))
    return out


def test_guard_fires_after_patience_suspicious_validations_and_not_on_noise():
    cfg = GuardConfig(guide=('musiq',), judges=('psnr', 'ssim'), guide_margin=0.05, judge_margin=0.02, patience=3)
    judges = {'psnr': 1.0, 'ssim': 1.0}
    reports = evaluate_guard(_hacking_history(), cfg, DIRS, judges)
    # change since the best (= the first validations, judges only get worse): guide +8k %, judges -2.5k %
    assert [r.reference_iteration for r in reports] == [100] + [200] * 5  # ties go to the later (100 = 200)
    assert [r.suspicious for r in reports] == [False, False, True, True, True, True]
    assert [r.streak for r in reports] == [0, 0, 1, 2, 3, 4] and [r.fired for r in reports][3:] == [False, True, True]
    assert reports[4].guide_change == pytest.approx(0.24) and reports[4].judge_change == pytest.approx(-0.075)
    assert 'guide +' in reports[4].describe(cfg) and 'patience 3' in reports[4].describe(cfg)
    # one quiet validation resets the streak
    broken = _hacking_history()
    broken[4] = (500, dict(broken[4][1], psnr=26.0, ssim=0.8))
    assert not any(r.fired for r in evaluate_guard(broken, cfg, DIRS, judges)[:6])
    # judges improving with the guide (normal training) never fire, whatever the guide does
    normal = [(i, {'musiq': 40 + 5 * i, 'psnr': 20 + i, 'ssim': 0.6 + 0.01 * i}) for i in range(10)]
    assert not any(r.suspicious for r in evaluate_guard(normal, cfg, DIRS, judges))
    # noise of 1 % (about the run-to-run spread measured in the README) never fires with the defaults
    flat = [(i, {'musiq': 40.0, 'psnr': 25.0, 'ssim': 0.7}) for i in range(30)]
    for seed in range(20):
        rng = random.Random(seed)
        noisy = [(i, {k: v * (1 + rng.gauss(0, 0.01)) for k, v in values.items()}) for i, values in flat]
        assert not any(r.fired for r in evaluate_guard(noisy, GuardConfig(('musiq',), ('psnr', 'ssim')), DIRS,
                                                       judges))
    start = evaluate_guard(_hacking_history(), GuardConfig(('musiq',), ('psnr', 'ssim'), reference='start',
                                                           patience=2), DIRS, judges)
    assert all(r.reference_iteration == 100 for r in start) and start[3].fired


def test_seed_spread_is_the_largest_difference_between_runs():
    from nriqa_basicsr.guard import seed_spread

    cfg = GuardConfig(('musiq',), ('psnr',), reference='start')
    a = [(1, {'musiq': 40.0, 'psnr': 25.0}), (2, {'musiq': 42.0, 'psnr': 25.5})]
    b = [(1, {'musiq': 40.0, 'psnr': 25.0}), (2, {'musiq': 40.4, 'psnr': 24.5}), (3, {'musiq': 1.0, 'psnr': 1.0})]
    spread = seed_spread([a, b], cfg, DIRS, {'psnr': 1.0})
    assert spread['musiq'] == pytest.approx(0.04) and spread['psnr'] == pytest.approx(0.04)  # iteration 3: not common
    assert spread['guide'] == spread['musiq'] and spread['judges'] == spread['psnr']


# ------------------------------------------------------------------------------------------ options
def _val_opt(**blocks):
    return {'val_freq': 2, 'save_img': False, 'metrics': {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False, 'better': 'higher'},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': False, 'better': 'higher'},
        'musiq': {'type': 'calculate_nriqa', 'metric': 'musiq'},
        'piqe': {'type': 'calculate_nriqa', 'metric': 'piqe'}}, **blocks}


def test_guard_options_default_from_the_objective_and_refuse_a_guide_as_judge():
    from nriqa_basicsr.options import OptionsError, prepare_options

    opt = {'train': {'iqa_opt': {'type': 'NRIQALoss', 'metrics': {'musiq': 1.0}},
                     'gt_selection': {'policy': 'amo', 'metrics': {'piqe': 1.0}}},
           'val': _val_opt(guard={'stop': True})}
    assert check_guard_options(opt) == []
    guard, best = opt['val']['guard'], opt['val']['best']
    assert guard['guide'] == ['musiq', 'piqe'] and guard['judges'] == ['psnr', 'ssim']
    assert best['criterion'] == {'psnr': 1.0, 'ssim': 1.0} and 'keep' not in best  # best = the judges by default
    bad = {'train': opt['train'], 'val': _val_opt(guard={'judges': ['psnr', 'piqe', 'lpips'], 'patiense': 2,
                                                         'reference': 'worst'}, best={'criterion': 'psrn', 'keep': 0})}
    problems = check_guard_options(bad)
    text = '\n'.join(problems)
    assert 'val.guard.judges: "piqe" is a guide metric' in text
    assert 'val.guard.judges: "lpips" is not computed at validation' in text
    assert 'val.guard.patiense: unknown option (did you mean patience?)' in text
    assert "val.guard.reference: \"best\" or \"start\", got 'worst'" in text
    assert 'val.best.criterion: "psrn" is not computed at validation (did you mean psnr?)' in text
    assert 'val.best.keep: how many best checkpoints to keep' in text
    missing = {'train': {'iqa_opt': {'type': 'NRIQALoss', 'metrics': {'niqe': 1.0}}}, 'val': _val_opt(guard={})}
    assert any('training optimises "niqe"' in p and 'add val.metrics.niqe' in p for p in check_guard_options(missing))
    with pytest.raises(OptionsError, match='is a guide metric'):  # refused at start-up through prepare_options
        prepare_options(copy.deepcopy(bad))


# ------------------------------------------------------------------------------------------ bookkeeping
def _writer(folder):
    def write(name):
        torch.save({'params': {'w': torch.ones(1)}}, osp.join(folder, name))
    return write


def test_best_checkpoints_keep_the_top_k_and_resume_drops_later_entries(tmp_path):
    models = tmp_path / 'exp' / 'models'
    models.mkdir(parents=True)
    book = BestCheckpoints(str(models), {'psnr': 1.0}, DIRS, keep=2)
    book.load(None)
    for it, psnr in ((2, 20.0), (4, 23.0), (6, 21.0), (8, 22.0), (10, 19.0)):
        book.record(it, {'psnr': psnr, 'musiq': 50.0}, _writer(str(models)))
    assert book.kept == [4, 8]
    assert sorted(p.name for p in models.iterdir()) == ['best.json', 'net_g_best_4.pth', 'net_g_best_8.pth']
    index = json.loads((models / 'best.json').read_text())
    assert [(e['rank'], e['iter'], e['values']['psnr']) for e in index['best']] == [(1, 4, 23.0), (2, 8, 22.0)]
    assert [e['iter'] for e in index['history']] == [2, 4, 6, 8, 10]
    assert resolve_checkpoint(str(tmp_path / 'exp')) == str(models / 'net_g_best_4.pth')
    assert resolve_checkpoint(str(models), 'best2') == str(models / 'net_g_best_8.pth')
    with pytest.raises(FileNotFoundError, match='2 best checkpoint'):
        resolve_checkpoint(str(tmp_path / 'exp'), 'best3')
    # resumed from iteration 6: the validations at 8 and 10 happen again; an orphan of a killed save goes
    (models / 'net_g_best_12.pth').write_bytes(b'x')
    again = BestCheckpoints(str(models), {'psnr': 1.0}, DIRS, keep=2)
    again.load(6)
    assert again.kept == [4] and [i for i, _ in again.history] == [2, 4, 6]
    assert sorted(p.name for p in models.iterdir()) == ['best.json', 'net_g_best_4.pth']
    # the architecture comes from the run's copied option file
    (tmp_path / 'exp' / 'run.yml').write_text(json.dumps({'network_g': NET_G}))
    assert resolve_model_spec(str(tmp_path / 'exp') + '@best') == (str(models / 'net_g_best_4.pth'), NET_G)
    assert resolve_model_spec('some.pth') == ('some.pth', None)


# ------------------------------------------------------------------------------------------ in training
def _val_loader(root):
    from basicsr.data.paired_image_dataset import PairedImageDataset

    ds = PairedImageDataset({'name': 'demo_val', 'dataroot_gt': osp.join(root, 'val', 'images', 'original'),
                             'dataroot_lq': osp.join(root, 'val', 'lq_x4'), 'io_backend': {'type': 'disk'},
                             'phase': 'val', 'scale': 4, 'filename_tmpl': '{}'})
    return torch.utils.data.DataLoader(ds, batch_size=1)


def _ft_opt(root, scores, tmp_path, weight, **guard):
    opt = _model_opt(root, scores, 'original', tmp_path)
    opt['train']['iqa_opt'] = {'type': 'NRIQALoss', 'metrics': {'guard_sharpness': 1.0}, 'loss_weight': weight}
    opt['network_g'] = dict(MSRRESNET)  # starts as bilinear upscaling: a "trained" model to fine-tune
    opt['train']['optim_g']['lr'] = 1e-2
    opt['train']['total_iter'] = 100  # the tracker clamps to it (BasicSR's final validation passes total + 1)
    metrics = _val_opt()['metrics']
    metrics.pop('piqe')
    metrics['sharpness'] = metrics.pop('musiq')
    metrics['sharpness']['metric'] = 'guard_sharpness'
    opt['val'] = {'val_freq': 2, 'save_img': False, 'metrics': metrics, 'guard': guard, 'best': {'keep': 1}}
    return opt


def _train_in_process(model, root, scores, iters, val_every=2):
    loader = _val_loader(root)
    batch = _batch(root, scores)
    for it in range(1, iters + 1):
        model.feed_data(batch)
        model.optimize_parameters(it)
        if it % val_every == 0:
            model.validation(loader, it, None, False)


def test_guard_stops_a_run_that_fools_its_guide_and_keeps_the_best(data, tmp_path, basicsr_log):
    """A huge weight on a foolable guide (gradient magnitude): it soars while PSNR/SSIM fall."""
    from basicsr.archs.srresnet_arch import MSRResNet

    root, scores = data
    model = _build(_ft_opt(root, scores, tmp_path, weight=50.0, stop=True, patience=2))
    with pytest.raises(GuardStop) as info:
        _train_in_process(model, root, scores, 20)
    assert info.value.code == GUARD_EXIT_CODE == 3
    fired_at = int(re.search(r'at iter (\d+)', str(info.value)).group(1))
    log = basicsr_log.text
    assert fired_at < 20 and 'Reward-hacking guard FIRED' in log and re.search(r'sharpness \+\d+', log)
    models = tmp_path / 'models'
    index = json.loads((models / 'best.json').read_text())
    best = index['best'][0]
    assert best['iter'] < fired_at  # the best by the judges predates the hacking
    history = {e['iter']: e['values'] for e in index['history']}
    assert history[fired_at]['sharpness'] > best['values']['sharpness'] and \
        history[fired_at]['psnr'] < best['values']['psnr']
    path = resolve_checkpoint(str(tmp_path))
    assert path == str(models / f'net_g_best_{best["iter"]}.pth') and f'is {path}' in str(info.value)
    stock = MSRResNet(**{k: v for k, v in MSRRESNET.items() if k != 'type'})
    stock.load_state_dict(load_torch_file(path)['params_ema'], strict=True)
    # nriqa-upscale picks it from the run folder (architecture from the run's option file)
    from nriqa_basicsr.upscale import main as upscale

    (tmp_path / 'run.yml').write_text(json.dumps({'network_g': MSRRESNET}))
    lr_dir = osp.join(root, 'val', 'lq_x4')
    assert upscale(['-i', lr_dir, '-o', str(tmp_path / 'sr'), '--model', f'{tmp_path}@best', '--scale', '4']) == 0
    assert len(os.listdir(tmp_path / 'sr')) == len(os.listdir(lr_dir))
    assert (tmp_path / 'summary.png').stat().st_size > 1000
    summary = (tmp_path / 'summary.md').read_text()
    assert 'Guard: FIRED' in summary and f'| {best["iter"]} |' in summary


def test_a_normal_run_with_the_defaults_does_not_fire(data, tmp_path, basicsr_log):
    root, scores = data
    model = _build(_ft_opt(root, scores, tmp_path, weight=0.01, stop=True))
    _train_in_process(model, root, scores, 10)
    reports = model.val_tracker.reports
    assert len(reports) == 5 and not any(r.fired for r in reports) and 'FIRED' not in basicsr_log.text
    assert len(os.listdir(tmp_path / 'models')) == 2  # best.json + the one best checkpoint


def test_ft_best_checkpoint_holds_merged_stock_weights(data, tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from test_model import _stage_one

    root, scores = data
    base = _stage_one(data, tmp_path)
    opt = _model_opt(root, scores, 'original', tmp_path / 'ft', lora={'rank': 2}, pretrain=base)
    opt['val'] = {'val_freq': 2, 'save_img': False, 'metrics': {k: v for k, v in _val_opt()['metrics'].items()
                                                                if k in ('psnr', 'ssim')}, 'best': {}}
    model = _build(opt)
    for p in model.net_g.parameters():  # adapters away from zero, so merging matters
        if p.requires_grad:
            p.data.normal_(0, 0.1)
    model.model_ema(0)
    _train_in_process(model, root, scores, 2)
    saved = load_torch_file(resolve_checkpoint(str(tmp_path / 'ft')))
    x = torch.rand(1, 3, 16, 16)
    for key, net in (('params', model.net_g), ('params_ema', model.net_g_ema)):
        stock = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
        stock.load_state_dict(saved[key], strict=True)
        with torch.no_grad():
            assert (stock(x) - net.eval()(x)).abs().max() <= 1e-5


def _val_dataset(root):
    return {'name': 'demo_val', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
            'dataroot_gt': osp.join(root, 'val', 'images', 'original'), 'dataroot_lq': osp.join(root, 'val', 'lq_x4'),
            'filename_tmpl': '{}'}


@pytest.mark.slow
def test_train_py_exits_with_the_guard_status_keeping_the_best(data, tmp_path, run_names):
    root, scores = data
    name = f'pytest_guard_stop_{uuid.uuid4().hex[:6]}'
    run_names.append(name)
    ft = _ft_opt(root, scores, tmp_path, weight=50.0, stop=True, patience=2)
    opt = _cli_opt(root, scores, name, 'original')
    opt.update(network_g=ft['network_g'], val=ft['val'], custom_iqa={'guard_sharpness': {'class': PLUGIN}})
    opt['train'].update(iqa_opt=ft['train']['iqa_opt'], optim_g=ft['train']['optim_g'], total_iter=40)
    opt['datasets']['val'] = _val_dataset(root)
    path = tmp_path / 'stop.yml'
    path.write_text(__import__('yaml').safe_dump(opt))
    out = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'nriqa_basicsr', 'train.py'), '-opt', str(path)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == GUARD_EXIT_CODE, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert 'Training stopped by the reward-hacking guard' in text and 'Exit status 3' in text
    exp = osp.join(REPO_ROOT, 'experiments', name)
    best = resolve_checkpoint(exp)
    assert osp.isfile(best) and not osp.isfile(osp.join(exp, 'models', 'net_g_latest.pth'))  # stopped early
    assert 'Guard: FIRED' in open(osp.join(exp, 'summary.md')).read()


# ------------------------------------------------------------------------------------------ SIGKILL + resume
@pytest.mark.slow
def test_best_checkpoints_survive_sigkill_and_auto_resume(data, tmp_path, run_names):
    import yaml
    from test_reliability import run_under_harness

    root, scores = data
    name = f'pytest_guard_kill_{uuid.uuid4().hex[:6]}'
    run_names.append(name)
    opt = _cli_opt(root, scores, name, 'original')
    opt['network_g'] = dict(MSRRESNET)
    opt['datasets']['val'] = _val_dataset(root)
    opt['val'] = dict(_val_opt(best={'keep': 2}), val_freq=2)
    for key in ('piqe', 'musiq'):
        opt['val']['metrics'].pop(key)
    opt['train']['total_iter'] = 1000
    opt['logger']['save_checkpoint_freq'] = 2
    yml = tmp_path / 'kill.yml'
    yml.write_text(yaml.safe_dump(opt))
    exp = osp.join(REPO_ROOT, 'experiments', name)
    models = osp.join(exp, 'models')
    # renames per interval of 2: net_g, state, (first validation: best.json), a best file when kept, best.json,
    # summary.png, summary.md; the kills land inside those, then at a random moment
    for mode, count in (('before_rename', 4), ('before_rename', 6), ('random', 0), ('finish', 0)):
        returncode, text = run_under_harness(mode, count, yml, tmp_path / f'console_{mode}_{count}.txt',
                                             'Best checkpoints', random.Random(1).uniform(0.0, 1.0),
                                             ['--force_yml', 'train:total_iter=12'] if mode == 'finish' else [])
        assert returncode == (0 if mode == 'finish' else -signal.SIGKILL), text[-3000:]
        index = json.loads(open(osp.join(models, 'best.json')).read())
        iters = [e['iter'] for e in index['history']]
        # in order, once each; a kill inside the validation of a checkpointed iteration loses that one entry
        # (BasicSR saves before it validates, and the resumed run starts after it)
        assert iters == sorted(set(iters)) and all(i % 2 == 0 for i in iters), iters
        for entry in index['best']:  # every file the index names exists and loads
            load_torch_file(osp.join(models, entry['file']))
    assert 'Resuming training from epoch' in text
    assert iters[-1] == 12 and len(iters) >= 4 and set(iters) <= set(range(2, 13, 2))  # final validation = 12
    assert not [f for f in os.listdir(exp) + os.listdir(models) if f.startswith('.tmp-')]
    on_disk = sorted(f for f in os.listdir(models) if f.startswith('net_g_best_'))
    assert on_disk == sorted(e['file'] for e in index['best']) and len(on_disk) == 2
    assert resolve_checkpoint(exp) == osp.join(models, index['best'][0]['file'])
