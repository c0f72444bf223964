"""Custom NR-IQA models (``nriqa_basicsr.iqa.custom``): registered outside the package, then usable everywhere a
pyiqa name is: selection, loss, validation and the scoring/analysis/benchmark scripts, from an option file."""

import copy
import os.path as osp

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT

from nriqa_basicsr.iqa import (
    CustomMetricError,
    UnknownMetricError,
    WeightsNotFoundError,
    build_scorer,
    clear_scorer_cache,
    get_metric_info,
    list_metrics,
    register_nriqa_metric,
)
from nriqa_basicsr.iqa.custom import register_from_import_path, unregister_nriqa_metric

PLUGIN = osp.join(REPO_ROOT, 'tests', 'custom_iqa_plugin.py')
TINY = f'{PLUGIN}:TinySharpness'


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory) -> str:
    import custom_iqa_plugin

    folder = tmp_path_factory.mktemp('tiny_weights')
    custom_iqa_plugin.save_weights(str(folder / 'tiny_sharp.pth'))
    return str(folder)


@pytest.fixture(scope='module')
def demo(tmp_path_factory) -> str:
    from nriqa_basicsr.demo.data import make_demo_data

    root = str(tmp_path_factory.mktemp('custom_demo') / 'demo')
    make_demo_data(root, num_train=3, num_val=1, size=96, seed=3)
    return root


def _sharpness(x: torch.Tensor) -> torch.Tensor:
    """What TinySharpness computes, written independently of it."""
    import custom_iqa_plugin

    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    lap = torch.nn.functional.conv2d(luma, custom_iqa_plugin.LAPLACIAN.view(1, 1, 3, 3), padding=1)
    return lap.abs().mean((1, 2, 3))


def test_registration_by_decorator_and_import_path(tiny_weights):
    spec = register_from_import_path(TINY)
    assert spec.name == 'tiny_sharp' and spec.weights_file == 'tiny_sharp.pth' and not spec.lower_better
    assert 'tiny_sharp' in list_metrics('NR') and 'tiny_blur' in list_metrics('NR')  # the decorator ran on import
    assert get_metric_info('tiny_blur').better == 'lower'
    assert get_metric_info(TINY).name == 'tiny_sharp'  # the import path works as a metric name
    import custom_iqa_plugin  # the same file under its module name: no clash with the file-path import

    assert get_metric_info('custom_iqa_plugin:TinyBlurriness').name == 'tiny_blur'
    scorer = build_scorer('tiny_sharp', device='cpu', weights_dir=tiny_weights)
    x = torch.rand(2, 3, 40, 48, requires_grad=True)
    quality = scorer(x)
    assert quality.shape == (2,) and torch.allclose(quality, _sharpness(x.detach()), atol=1e-6)
    quality.sum().backward()
    assert x.grad.abs().sum() > 0 and not any(p.requires_grad for p in scorer.parameters())
    blur = build_scorer('tiny_blur', device='cpu')  # no weights file to find
    assert torch.allclose(blur(x.detach()), -custom_iqa_plugin.TinyBlurriness()(x.detach()))  # lower-better negated
    with pytest.raises(Exception, match='in \\[0, 1\\]'):
        scorer(x.detach() * 3)  # the scorer's input checks apply to custom models too


def test_bad_registrations_and_missing_weights_are_clear(tmp_path):
    with pytest.raises(CustomMetricError, match='shadow the pyiqa metric'):
        register_nriqa_metric('niqe')(torch.nn.Identity)
    with pytest.raises(CustomMetricError, match='not a torch.nn.Module'):
        register_nriqa_metric('not_a_module')(dict)
    with pytest.raises(UnknownMetricError, match='cannot import module "no_such_pkg.iqa"'):
        get_metric_info('no_such_pkg.iqa:Model')
    with pytest.raises(UnknownMetricError, match='has no attribute "Nope"'):
        get_metric_info(f'{PLUGIN}:Nope')
    broken = tmp_path / 'broken.py'
    broken.write_text('raise RuntimeError("boom")\n')
    with pytest.raises(UnknownMetricError, match='boom'):
        get_metric_info(f'{broken}:X')

    @register_nriqa_metric('tmp_other', override=True)
    class Other(torch.nn.Module):
        pass

    with pytest.raises(CustomMetricError, match='already registered'):
        register_nriqa_metric('tmp_other')(torch.nn.Identity)
    unregister_nriqa_metric('tmp_other')
    clear_scorer_cache()
    register_from_import_path(TINY)
    with pytest.raises(WeightsNotFoundError, match='tiny_sharp.pth') as err:
        build_scorer('tiny_sharp', device='cpu', weights_dir=str(tmp_path))
    assert str(tmp_path) in str(err.value)
    torch.save({'filter.weight': torch.zeros(2, 1, 3, 3)}, tmp_path / 'tiny_sharp.pth')
    with pytest.raises(ValueError, match='do not fit'):
        build_scorer('tiny_sharp', device='cpu', weights_dir=str(tmp_path))


def _option_file(root: str, tmp, weights: str, policy: str, scores: str | None = None) -> dict:
    """A training option file as a user writes it: the custom model declared once, then used by name."""
    name_opts = {'tiny_sharp': {'weights_dir': weights}}
    train_set = {'name': 'demo', 'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_size': 64, 'phase': 'train',
                 'scale': 4, 'dataroot_gt': osp.join(root, 'train', 'images'),
                 'dataroot_lq': osp.join(root, 'train', 'lq_x4'), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 3,
                 'dataset_enlarge_ratio': 1, 'prefetch_mode': None, 'report_counts': False}
    if scores:
        train_set.update(score_file=scores, score_metrics={'tiny_sharp': 1.0})
    text = yaml.safe_dump({
        'name': 'custom_iqa', 'model_type': 'NRIQAModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'custom_iqa': {'tiny_sharp': {'class': TINY, 'weights_file': 'tiny_sharp.pth', 'lower_better': False,
                                      'score_range': [0, 1]}},
        'datasets': {'train': train_set},
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'num_grow_ch': 4, 'scale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'models': str(tmp / 'models'), 'training_states': str(tmp / 'states'), 'experiments_root': str(tmp)},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
                  'gt_selection': ({'policy': 'amo', 'metrics': {'tiny_sharp': 1.0}, 'metric_opts': name_opts}
                                   if policy == 'amo' else {'policy': policy, 'tau': 1e-4}),
                  'iqa_opt': {'type': 'NRIQALoss', 'metric': 'tiny_sharp', 'loss_weight': 0.1, 'weights_dir': weights}},
        'val': {'metrics': {'sharp': {'type': 'calculate_nriqa', 'metric': 'tiny_sharp', 'weights_dir': weights}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    })
    opt = yaml.safe_load(text)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    return opt


def _build(opt):
    from basicsr.models import build_model

    from nriqa_basicsr.options import prepare_options

    torch.manual_seed(0)
    prepare_options(opt)
    return build_model(copy.deepcopy(opt))


def test_option_file_drives_selection_loss_validation_and_scoring(demo, tiny_weights, tmp_path):
    from basicsr.utils.registry import METRIC_REGISTRY

    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
    from nriqa_basicsr.data.score_file import load_score_table
    from nriqa_basicsr.data.scoring import main as score_main

    unregister_nriqa_metric('tiny_sharp')  # known only through the option file from here on
    clear_scorer_cache()
    opt = _option_file(demo, tmp_path / 'amo', tiny_weights, 'amo')
    model = _build(opt)
    assert opt['val']['metrics']['sharp']['better'] == 'higher'  # filled from the custom model's direction
    ds = MultiGTDataset(opt['datasets']['train'])
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    model.feed_data(batch)  # AMO: argmax of the custom metric over the candidate crops
    expected = _sharpness(batch['gts'].flatten(0, 1)).view(3, -1).argmax(1)
    assert torch.equal(model.selected, expected)
    model.optimize_parameters(1)
    log = model.get_current_log()
    quality = float(model.cri_iqa.last_quality['tiny_sharp'])  # the loss scored the SR output with the metric
    assert quality == pytest.approx(float(_sharpness(model.output.detach().clamp(0, 1)).mean()), rel=1e-4)
    assert log['l_g_iqa'] == pytest.approx(-0.1 * quality, rel=1e-4)
    # validation metric block, exactly as BasicSR calls it
    block = dict(opt['val']['metrics']['sharp'])
    block.pop('type')
    img = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    value = METRIC_REGISTRY.get('calculate_nriqa')(img, None, **block)
    rgb = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    assert value == pytest.approx(float(_sharpness(rgb)[0]), rel=1e-5)
    # offline scoring with the CLI, by import path, then SMA from that score file
    scores = str(tmp_path / 'scores.npz')
    assert score_main(['--dataroot', osp.join(demo, 'train', 'images'), '--layout', 'hggt', '--metrics', TINY,
                       '--output', scores, '--weights-dir', tiny_weights, '--workers', '0', '--no-progress']) == 0
    table = load_score_table(scores)
    assert table.metrics == ['tiny_sharp'] and 'custom_model' in table.meta['metrics']['tiny_sharp']
    sma = _option_file(demo, tmp_path / 'sma', tiny_weights, 'sma', scores)
    model = _build(sma)
    ds = MultiGTDataset(sma['datasets']['train'])
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    model.feed_data(batch)
    assert torch.equal(model.selected, batch['scores'].argmax(1))  # tau 1e-4: the softmax is an argmax here


def test_bad_custom_block_is_reported_with_the_option(demo, tiny_weights, tmp_path):
    from nriqa_basicsr.options import OptionsError, prepare_options

    opt = _option_file(demo, tmp_path, tiny_weights, 'amo')
    opt['custom_iqa'] = {'tiny_sharp': {'class': 'no_such_pkg:Model'}, 'other': {'class': TINY, 'colour': 1}}
    with pytest.raises(OptionsError) as err:
        prepare_options(opt)
    text = str(err.value)
    assert 'custom_iqa.tiny_sharp' in text and 'no_such_pkg' in text and 'custom_iqa.other' in text


def test_analyze_iqa_compares_custom_and_pyiqa_metrics(demo, tiny_weights, tmp_path, capsys):
    from nriqa_basicsr.analysis import main as analyze_main

    out = tmp_path / 'analysis'
    code = analyze_main(['labels', '--dataroot', osp.join(demo, 'train', 'images'), '--labels',
                         osp.join(demo, 'train', 'labels'), '--metrics', 'piqe', 'tiny_blur', TINY,
                         '--iqa-plugin', 'custom_iqa_plugin', '--weights-dir', tiny_weights, '--output', str(out)])
    assert code == 0
    alignment = (out / 'alignment.csv').read_text()
    for name in ('piqe', 'tiny_blur', 'tiny_sharp'):
        assert name in alignment


def test_benchmark_reports_a_custom_metric(demo, tmp_path, capsys):
    from nriqa_basicsr.benchmark import main as benchmark_main

    out = tmp_path / 'bench'
    assert benchmark_main(['--model', 'bicubic', '--dataset', f'val={osp.join(demo, "val", "images", "original")}',
                           '--scale', '4', '--metrics', 'psnr', 'tiny_blur', '--iqa-plugin', 'custom_iqa_plugin',
                           '--device', 'cpu', '-o', str(out), '--no-progress']) == 0
    summary = (out / 'summary.csv').read_text()
    assert 'tiny_blur' in summary.splitlines()[0]
