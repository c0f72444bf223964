"""The real-model reproduction (``nriqa_basicsr.reproduce``): arm definitions, fixed-seed test LR, the computed
reading, the committed GPU option files, and the whole pipeline in its quick mode (needs ../shared)."""

import csv
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import yaml

from nriqa_basicsr import reproduce as rp

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
PATHS = {'train': 'T/images', 'val_gt': 'V/gt', 'val_lq': 'V/lq', 'pretrained': 'P.pth'}


def _options(profile: str = 'cpu') -> dict[str, dict]:
    cfg = rp.ReproduceConfig(profile=rp.PROFILES[profile])
    return {a.key: rp.arm_options(cfg, a, PATHS) for a in rp.ARMS if a.policy is not None}


def test_arms_differ_only_in_selection_and_iqa_loss():
    opts = _options()
    assert set(opts) == {'A1', 'A2', 'A3', 'A4'}

    def common(o: dict) -> dict:
        t = o['train']
        return {'seed': o['manual_seed'], 'iters': t['total_iter'], 'lr': t['optim_g']['lr'],
                'lora': o['network_g_lora'], 'batch': o['datasets']['train']['batch_size_per_gpu'],
                'gt': o['datasets']['train']['gt_size'], 'deg': o['degradation'], 'pix': t['pixel_opt'],
                'net': o['network_g'], 'base': o['path']}
    assert all(common(o) == common(opts['A1']) for o in opts.values())
    policy = {k: o['train']['gt_selection']['policy'] for k, o in opts.items()}
    assert policy == {'A1': 'original', 'A2': 'amo', 'A3': 'original', 'A4': 'amo'}
    assert {k for k, o in opts.items() if 'iqa_opt' in o['train']} == {'A3', 'A4'}
    guide = rp.ReproduceConfig().guide
    assert opts['A4']['train']['iqa_opt']['metrics'] == opts['A4']['train']['gt_selection']['metrics'] == {guide: 1}
    # the guide's held-out judges never include the guide; no VGG term offline
    val = opts['A1']['val']['metrics']
    assert guide in val and 'psnr' in val and 'ssim' in val
    assert guide not in rp.PROFILES['cpu'].judges
    assert all('perceptual_opt' not in o['train'] for o in opts.values())
    assert opts['A1']['train']['ema_decay'] == 0
    # Real-ESRGAN's second order: the dataset draws both kernels, the model applies both stages
    assert 'kernel_list2' in opts['A1']['datasets']['train'] and 'noise_range2' in opts['A1']['degradation']
    assert not set(opts['A1']['degradation']) & set(opts['A1']['datasets']['train'])
    with pytest.raises(ValueError, match='released model'):
        rp.arm_options(rp.ReproduceConfig(), rp.ARMS[0], PATHS)


def test_gpu_profile_is_paper_scale():
    opts = _options('gpu')['A4']
    assert opts['datasets']['train']['gt_size'] == 256 and opts['datasets']['train']['batch_size_per_gpu'] == 12
    assert 'perceptual_opt' in opts['train'] and opts['num_gpu'] == 'auto'


def test_committed_gpu_option_files_are_generated(tmp_path):
    """options/reproduce/gpu/ is what ``nriqa-reproduce --profile gpu --write-options`` writes (one owner)."""
    committed = osp.join(REPO, 'options', 'reproduce', 'gpu')
    assert rp.main(['--profile', 'gpu', '--write-options', str(tmp_path)]) == 0
    written = sorted(os.listdir(tmp_path))
    assert written == sorted(os.listdir(committed))
    for name in written:
        assert open(osp.join(committed, name)).read() == open(osp.join(tmp_path, name)).read(), name
        opt = yaml.safe_load(open(osp.join(committed, name)))
        assert opt['train'].get('gt_selection', {}).get('metrics', {'musiq': 1}) == {'musiq': 1.0}


def test_degraded_test_set_is_fixed_and_kept(tmp_path):
    hr = tmp_path / 'HR'
    hr.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        cv2.imwrite(str(hr / f'{name}.png'), rng.integers(0, 256, (70, 66, 3), dtype=np.uint8))
    one = rp.degrade_test_set(str(hr), str(tmp_path / 'one'), seed=3)
    two = rp.degrade_test_set(str(hr), str(tmp_path / 'two'), seed=3)
    other = rp.degrade_test_set(str(hr), str(tmp_path / 'other'), seed=4)
    for name in ('a', 'b'):
        x = cv2.imread(osp.join(one, f'{name}x4.png'))
        assert x.shape == (70 // 4, 64 // 4, 3)
        assert np.array_equal(x, cv2.imread(osp.join(two, f'{name}x4.png')))
    assert not np.array_equal(cv2.imread(osp.join(one, 'ax4.png')), cv2.imread(osp.join(other, 'ax4.png')))
    # an existing file is kept (written once), not regenerated
    cv2.imwrite(osp.join(one, 'ax4.png'), np.zeros((17, 16, 3), np.uint8))
    rp.degrade_test_set(str(hr), one, seed=3)
    assert cv2.imread(osp.join(one, 'ax4.png')).max() == 0


def test_reading_states_what_moved(monkeypatch):
    rows = [{'model': 'A0-released', 'dataset': 'Set5', 'psnr': 25.0, 'ssim': 0.70, 'g': 20.0, 'niqe': 5.0,
             'piqe': 30.0},
            {'model': 'A1-FT-Ori', 'dataset': 'Set5', 'psnr': 26.0, 'ssim': 0.72, 'g': 25.0, 'niqe': 6.0,
             'piqe': 40.0},
            {'model': 'A3-FT-Ori+IQA', 'dataset': 'Set5', 'psnr': 24.5, 'ssim': 0.69, 'g': 15.0, 'niqe': 5.5,
             'piqe': 25.0}]
    lower = {'g': True, 'niqe': True, 'piqe': True}
    monkeypatch.setattr(rp, '_lower_better', lambda m: lower.get(m, False))
    lines = rp.reading(rows, ['Set5'], 'g', ['niqe', 'piqe'])
    vs_a0 = next(line for line in lines if 'A3-FT-Ori+IQA vs A0' in line)
    assert 'guide g 20.00 → 15.00 (better)' in vs_a0 and 'PSNR-Y -0.50 dB' in vs_a0
    assert 'judges better: piqe; worse: niqe' in vs_a0
    vs_a1 = next(line for line in lines if 'A3-FT-Ori+IQA vs A1' in line)
    assert 'judges better: niqe, piqe; worse: none' in vs_a1 and 'PSNR-Y -1.50 dB' in vs_a1


def test_missing_inputs_reported_at_once(tmp_path, capsys):
    assert rp.main(['--quick', '--shared', str(tmp_path / 'nowhere'), '--output', str(tmp_path / 'o'),
                    '--work', str(tmp_path / 'w')]) == 1
    err = capsys.readouterr().err
    for what in ('released generator', 'IQA weights folder', 'training photos BSD200', 'benchmark Set5'):
        assert what in err
    assert not osp.exists(tmp_path / 'o') and not osp.exists(tmp_path / 'w')


def test_quick_pipeline_end_to_end(shared_dir, tmp_path, run_names):
    """The whole experiment at toy size on the real model and data: five arms, both LR kinds, a report."""
    run_names.append('reproduce_quick_')
    out, work = tmp_path / 'out', tmp_path / 'work'
    assert rp.main(['--quick', '--shared', shared_dir, '--output', str(out), '--work', str(work)]) == 0
    with open(out / 'summary.csv') as f:
        rows = list(csv.DictReader(f))
    assert {(r['model'].split('-')[0], r['dataset']) for r in rows} == {
        (a, d) for a in ('A0', 'A1', 'A2', 'A3', 'A4') for d in ('Set5', 'Set5-RealESRGAN')}
    a0 = next(r for r in rows if r['model'].startswith('A0') and r['dataset'] == 'Set5')
    assert 20 < float(a0['psnr']) < 35 and float(a0['cnniqa_live']) > 0
    report = (out / 'report.md').read_text()
    assert '## Set5-RealESRGAN' in report and 'A4-FT-AMO+IQA' in report and '| train A4 |' in report
    assert '## Reward-hacking guard' in report and 'A4-FT-AMO+IQA: Guard:' in report
    for name in ('perception_distortion.png', 'crops_Set5.png', 'crops_Set5-RealESRGAN.png', 'timings.json',
                 'guard_A1.png', 'guard_A4.png'):
        assert (out / name).is_file(), name
    assert len(os.listdir(work / 'benchmarks' / 'Set5' / 'LR_realesrgan_seed0' / 'X4')) == 2
    # the report again from that evaluation, without training or benchmarking
    (out / 'report.md').unlink()
    assert rp.main(['--quick', '--report-only', '--shared', shared_dir, '--output', str(out), '--work', str(work)]) == 0
    assert '## Set5-RealESRGAN' in (out / 'report.md').read_text()


def test_lambda_sweep_adds_a4_arms_with_their_weight():
    cfg = rp.ReproduceConfig(arms=('A0', 'A4'), lambda_q=0.002, lambda_sweep=(0.002, 0.01))
    arms = rp.arms_of(cfg)
    assert [a.key for a in arms] == ['A0', 'A4', 'A4_l0.01']  # the run's own λ is not trained twice
    opt = rp.arm_options(cfg, arms[2], PATHS)
    assert opt['train']['iqa_opt']['loss_weight'] == 0.01 and opt['train']['gt_selection']['policy'] == 'amo'
    assert rp.arm_options(cfg, arms[1], PATHS)['train']['iqa_opt']['loss_weight'] == 0.002
    with pytest.raises(ValueError, match='unknown arm'):
        rp.arms_of(rp.ReproduceConfig(arms=('A9',)))


def test_rank_and_lr_sweeps_change_one_setting_of_a4():
    cfg = rp.ReproduceConfig(arms=('A4',), rank=8, lr=5e-4, rank_sweep=(4, 8), lr_sweep=(1e-3,))
    arms = rp.arms_of(cfg)
    assert [a.key for a in arms] == ['A4', 'A4_r4', 'A4_lr0.001']
    base, r4, lr = (rp.arm_options(cfg, a, PATHS) for a in arms)
    assert base['network_g_lora']['rank'] == 8 and r4['network_g_lora'] == {'rank': 4, 'alpha': 4, 'dropout': 0.0}
    assert r4['train']['optim_g']['lr'] == 5e-4 and lr['train']['optim_g']['lr'] == 1e-3
    assert lr['network_g_lora']['rank'] == 8 and lr['train']['iqa_opt'] == base['train']['iqa_opt']
    assert r4['name'] != base['name'] != lr['name']  # own experiment folders: the main A4 run is not archived


def test_guard_set_is_held_out_and_large_enough_for_niqe(tmp_path):
    folder = tmp_path / 'General100'
    folder.mkdir()
    sizes = {'im_1': (300, 300), 'im_2': (150, 400), 'im_3': (200, 260), 'im_4': (500, 191), 'im_5': (192, 192)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(folder / f'{name}.png'), np.zeros((h, w, 3), np.uint8))
    assert rp.guard_files(str(folder), 2) == ['im_3.png', 'im_5.png']  # the last ones with both sides >= 192
    assert rp.guard_files(str(folder), 9) == ['im_1.png', 'im_3.png', 'im_5.png']
    # the training subset is exactly the other photos, even after an earlier, different hold-out
    dst = tmp_path / 'subset'
    rp._subset(str(folder), str(dst), ['im_1.png', 'im_2.png'])
    rp._subset(str(folder), str(dst), ['im_2.png', 'im_4.png'])
    assert sorted(os.listdir(dst)) == ['im_2.png', 'im_4.png']
