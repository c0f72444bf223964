"""Start-up check (nriqa-check / train.py): every missing file in one report, with its source; nothing written."""

import os
import os.path as osp
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT

from nriqa_basicsr.preflight import (
    HGGT_TRAIN,
    KNOWN_RELEASES,
    PreflightError,
    check_option_file,
    check_run_files,
    collect_requirements,
    load_option_file,
    main,
    run_warnings,
)

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 4}
# kind of file -> a line of the report that names its source
SOURCES = {
    'dataset': HGGT_TRAIN,
    'labels': 'HGGT training archive',
    'score file': 'nriqa-score-gts --dataroot datasets/HGGT/Train/images/0-20193 --layout hggt',
    'pretrained network': KNOWN_RELEASES['RealESRNet_x4plus.pth'],
    'VGG weights': 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth',
    'IQA weights': 'https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/musiq_koniq_ckpt-e95806b9.pth',
    'torchvision backbone': 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
}


def _option_file(folder, **train_extra):
    """A training file (HGGT paths, relative) that needs every kind of file in SOURCES."""
    opt = {
        'name': 'preflight_probe', 'model_type': 'NRIQAModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'hggt', 'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_size': 64,
                      'dataroot_gt': 'datasets/HGGT/Train/images/0-20193',
                      'dataroot_label': 'datasets/HGGT/Train/labels/0-20193',
                      'score_file': 'datasets/HGGT/train_scores_musiq.npz', 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None}},
        'network_g': dict(NET_G),
        'path': {'pretrain_network_g': 'experiments/pretrained_models/RealESRNet_x4plus.pth', 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': 10, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'perceptual_opt': {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1}, 'vgg_type': 'vgg19',
                                     'perceptual_weight': 1.0, 'style_weight': 0},
                  'gt_selection': {'policy': 'sma', 'tau': 1.0}, **train_extra},
        'val': {'val_freq': 5, 'metrics': {'lpips': {'type': 'calculate_fr_iqa', 'metric': 'lpips'},
                                           'musiq': {'type': 'calculate_nriqa', 'metric': 'musiq'}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 5, 'use_tb_logger': True},
    }
    path = osp.join(folder, 'probe.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def _tree(*roots):
    """Every path under ``roots`` (to prove that nothing was created); in the repository's shared run folders
    (other tests write there at the same time) only this test's run name."""
    paths = {osp.join(d, n) for r in roots if osp.isdir(r) for d, dirs, files in os.walk(r) for n in dirs + files}
    repo = osp.join(REPO_ROOT, '')
    return {p for p in paths if not p.startswith(repo) or 'preflight_probe' in p}


def _watched(tmp_path):
    return (str(tmp_path), os.environ['TORCH_HOME'], os.environ['NRIQA_CACHE_DIR'],
            osp.join(REPO_ROOT, 'experiments'), osp.join(REPO_ROOT, 'tb_logger'))


def _assert_every_kind_reported(text):
    for kind, source in SOURCES.items():
        assert f'[{kind}]' in text, kind
        assert source in text, (kind, source)
    assert 'asked for by: val.metrics.musiq' in text and 'asked for by: path.pretrain_network_g' in text


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A torch hub cache without the AlexNet backbone that other tests (LPIPS) may have put into the session's."""
    home = tmp_path / 'torch_home'
    home.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(home))
    return home


def test_check_command_reports_every_missing_kind_at_once_and_writes_nothing(tmp_path, empty_torch_home):
    """The done-when test: seven kinds of missing files, one run of the command, all with sources."""
    opt_file = _option_file(tmp_path)
    before = _tree(*_watched(tmp_path))
    result = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'scripts', 'check.py'), '-opt', opt_file],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 1, result.stderr[-3000:]
    _assert_every_kind_reported(result.stdout)
    assert 'save as: experiments/pretrained_models/RealESRNet_x4plus.pth' in result.stdout
    assert 'musiq_koniq_ckpt-e95806b9.pth' in result.stdout and 'LPIPS_v0.1_alex-df73285e.pth' in result.stdout
    assert _tree(*_watched(tmp_path)) == before


def test_train_py_refuses_before_creating_any_folder(tmp_path, monkeypatch, capsys, empty_torch_home):
    from nriqa_basicsr.pipeline import train_main

    opt_file = _option_file(tmp_path)
    root = tmp_path / 'root'
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', opt_file])
    before = _tree(*_watched(tmp_path))
    with pytest.raises(SystemExit) as exc:
        train_main(str(root))
    assert exc.value.code == 2
    _assert_every_kind_reported(capsys.readouterr().err)
    assert _tree(*_watched(tmp_path)) == before  # no experiments/, tb_logger/, archived folders, lock, log


def test_files_on_disk_are_found_and_downloads_count_only_offline(tmp_path, musiq_weights, lpips_weights):
    opt = load_option_file(_option_file(tmp_path))
    for folder in ('datasets/HGGT/Train/images/0-20193/original', 'datasets/HGGT/Train/labels/0-20193',
                   'experiments/pretrained_models'):
        os.makedirs(tmp_path / folder)
    (tmp_path / 'datasets/HGGT/train_scores_musiq.npz').write_bytes(b'')
    (tmp_path / 'experiments/pretrained_models/RealESRNet_x4plus.pth').write_bytes(b'')
    opt['val']['metrics']['musiq']['weights_dir'] = osp.dirname(musiq_weights)
    opt['val']['metrics']['lpips']['weights_dir'] = lpips_weights

    offline = collect_requirements(opt, cwd=str(tmp_path), offline=True)
    assert [r.kind for r in offline.missing] == ['VGG weights']  # no VGG19 anywhere in the isolated caches
    (tmp_path / 'experiments/pretrained_models/vgg19-dcbb9e9d.pth').write_bytes(b'')  # BasicSR's CWD-relative path
    assert check_run_files(opt, cwd=str(tmp_path)).ok

    del opt['val']['metrics']['musiq']['weights_dir']
    online = collect_requirements(opt, cwd=str(tmp_path), offline=False)
    assert online.ok and [r.path for r in online.downloads] == ['musiq_koniq_ckpt-e95806b9.pth']
    with pytest.raises(PreflightError, match='musiq_koniq_ckpt-e95806b9.pth'):
        check_run_files(opt, cwd=str(tmp_path))  # the tests run offline


def test_hggt_layout_without_variant_folders_is_reported(tmp_path):
    opt = load_option_file(_option_file(tmp_path))
    os.makedirs(tmp_path / 'datasets/HGGT/Train/images/0-20193/elsewhere')
    report = collect_requirements(opt, cwd=str(tmp_path), offline=True)
    assert any(r.path.endswith(osp.join('0-20193', 'original')) for r in report.missing)


def test_custom_metric_weights_are_checked(tmp_path):
    """Custom metrics (nriqa_basicsr.iqa.custom) are resolved by their registered file name, never downloaded."""
    pytest.importorskip('nriqa_basicsr.iqa.cnniqa')
    opt = load_option_file(_option_file(tmp_path, iqa_opt={'type': 'NRIQALoss', 'metrics': {'cnniqa_live': 1.0}}))
    report = collect_requirements(opt, cwd=str(tmp_path), offline=False)
    cnniqa = [r for r in report.missing if r.path == 'CNNIQA-LIVE']
    assert cnniqa and cnniqa[0].options == ['train.iqa_opt.metrics.cnniqa_live'] and 'lidq92/CNNIQA' in cnniqa[0].source
    weights = tmp_path / 'w' / 'cnniqa'
    weights.mkdir(parents=True)
    (weights / 'CNNIQA-LIVE').write_bytes(b'')
    opt['train']['iqa_opt']['weights_dir'] = str(tmp_path / 'w')  # found in the registered sub-folder
    report = collect_requirements(opt, cwd=str(tmp_path), offline=False)
    assert not [r for r in report.requirements if r.path == 'CNNIQA-LIVE' and not r.found]


def test_paper_size_file_on_cpu_warns(tmp_path):
    opt = load_option_file(osp.join(REPO_ROOT, 'options', 'train_rrdb_nriqa.yml'))
    (warning,) = run_warnings(opt, cuda_available=False)
    assert 'batch 12' in warning and '15 GiB' in warning and 'CPU' in warning
    assert run_warnings(opt, cuda_available=True) == []
    tiny = load_option_file(_option_file(tmp_path))
    assert run_warnings(tiny, cuda_available=False) == []


def test_project_option_file_gets_its_real_sources(tmp_path, monkeypatch, capsys):
    """The canonical option file from an empty folder: HGGT, Real-ESRGAN, VGG19 and pyiqa addresses."""
    monkeypatch.chdir(tmp_path)
    assert main(['-opt', osp.join(REPO_ROOT, 'options', 'train_rrdb_nriqa.yml')]) == 1
    out = capsys.readouterr().out
    for source in (HGGT_TRAIN, KNOWN_RELEASES['RealESRNet_x4plus.pth'], 'vgg19-dcbb9e9d.pth',
                   'NIMA_InceptionV2_ava-b0c77c00.pth', 'timm/inception_resnet_v2.tf_in1k',
                   'LPIPS_v0.1_alex-df73285e.pth'):  # (alexnet may be in this session's cache: lpips fixture)
        assert source in out, source
    assert 'asked for by: train.gt_selection.metrics.musiq, val.metrics.musiq' in out
    report = check_option_file(osp.join(REPO_ROOT, 'options', 'train_rrdb_nriqa.yml'), cwd=str(tmp_path))
    assert not report.option_problems


def test_gpu_bench_has_help_and_refuses_without_cuda(tmp_path):
    import torch

    script = osp.join(REPO_ROOT, 'scripts', 'gpu_bench.sh')
    shown = subprocess.run(['bash', script, '--help'], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and shown.stdout.startswith('Usage:') and 'DRY_RUN' in shown.stdout
    bad = subprocess.run(['bash', script, '--iters', '3'], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and 'unknown argument' in bad.stderr
    if torch.cuda.is_available():
        pytest.skip('CUDA is available: the refusal applies to CPU-only machines')
    out = tmp_path / 'gpu'
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    refused = subprocess.run(['bash', script], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
    assert refused.returncode == 2 and 'no CUDA device' in refused.stderr and not out.exists()


def test_predicted_file_names_are_the_ones_pyiqa_loads(musiq_weights, lpips_weights):
    """The check's static reading of pyiqa agrees with what building the metric really loads."""
    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.preflight import metric_weight_sources

    for name, mode, weights_dir in (('musiq', 'NR', osp.dirname(musiq_weights)), ('lpips', 'FR', lpips_weights)):
        predicted = metric_weight_sources(name, {})[0]
        loaded = {osp.basename(f) for f in build_scorer(name, mode, 'cpu', weights_dir=weights_dir).weight_files}
        # torchvision takes a backbone already in its cache without a download call, so it is not recorded
        cached = {s.file_name for s in predicted if s.hub == 'torchvision'
                  and osp.isfile(osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints', s.file_name))}
        assert {s.file_name for s in predicted} - cached == loaded - cached, (name, predicted, loaded)
        assert loaded, name


def test_check_command_on_malformed_or_missing_option_files(tmp_path, capsys):
    bad = tmp_path / 'bad.yml'
    bad.write_text('name: x\nnum_gpu: 0\ndatasets: [1, 2]\npath: {}\n')
    assert main(['-opt', str(bad)]) == 1
    assert 'datasets: must be a mapping' in capsys.readouterr().out
    assert main(['-opt', str(tmp_path / 'missing.yml')]) == 2
    assert 'missing.yml' in capsys.readouterr().err
