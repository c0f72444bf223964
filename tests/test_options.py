import pytest

from nriqa_basicsr.options import OptionsError, prepare_options
from nriqa_basicsr.pipeline import normalize_argv


def test_local_rank_spellings_are_normalised():
    argv = ['train.py', '-opt', 'x.yml', '--local-rank=3', '--auto_resume']
    assert normalize_argv(argv) == ['train.py', '-opt', 'x.yml', '--local_rank=3', '--auto_resume']
    assert normalize_argv(['t', '--local-rank', '1']) == ['t', '--local_rank', '1']
    assert normalize_argv(['t', '--local_rank=0']) == ['t', '--local_rank=0']


def test_better_is_filled_from_metric_direction():
    opt = {'val': {'metrics': {
        'niqe': {'type': 'calculate_nriqa', 'metric': 'niqe'},
        'musiq': {'type': 'calculate_nriqa', 'metric': 'musiq'},
        'lpips': {'type': 'calculate_fr_iqa', 'metric': 'lpips', 'better': 'lower'},
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4},
    }}}
    metrics = prepare_options(opt)['val']['metrics']
    assert metrics['niqe']['better'] == 'lower'
    assert metrics['musiq']['better'] == 'higher'
    assert metrics['lpips']['better'] == 'lower'
    assert 'better' not in metrics['psnr']  # not ours: untouched


def test_all_problems_reported_at_once():
    opt = {
        'val': {'metrics': {
            'a': {'type': 'calculate_nriqa', 'metric': 'lpips'},
            'b': {'type': 'calculate_fr_iqa'},
            'c': {'type': 'calculate_nriqa', 'metric': 'niqe', 'better': 'higher'},
            'd': {'type': 'calculate_nriqa', 'metric': 'niqe', 'better': 'up'},
        }},
        'train': {'iqa_opt': {'type': 'NRIQALoss', 'metrics': {'musiqq': 1.0}}},
    }
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    problems = info.value.problems
    assert len(problems) == 5
    text = str(info.value)
    assert 'val.metrics.a: "lpips" is a full-reference metric' in text
    assert 'val.metrics.b: missing "metric"' in text
    assert 'val.metrics.c.better: "niqe" is lower-is-better' in text
    assert 'val.metrics.d.better: must be "higher" or "lower"' in text
    assert 'train.iqa_opt.metrics: Unknown IQA metric "musiqq". Did you mean: musiq' in text


def _multigt_opt(**selection):
    return {
        'scale': 4,
        'datasets': {'train': {'type': 'MultiGTDataset', 'dataroot_gt': 'x', 'layout': 'hggt', 'gt_size': 64}},
        'train': {'gt_selection': selection},
    }


def test_gt_selection_and_multigt_dataset_checks():
    prepare_options(_multigt_opt(policy='amo', metrics={'niqe': 1.0}, tau=2))
    opt = _multigt_opt(policy='smp', tau=0, temperature=3, metrics={'lpips': 1})
    opt['datasets']['train'].update({'gt_sise': 64, 'layout': 'generic'})
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    assert 'train.gt_selection.temperature: unknown option' in text
    assert 'train.gt_selection.tau: must be > 0' in text
    assert 'datasets.train.gt_sise: unknown MultiGTDataset option (did you mean gt_size?)' in text
    assert 'datasets.train.gt_variants: required with layout generic' in text
    opt = _multigt_opt(policy='smp', metrics={'lpips': 1})
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    assert 'train.gt_selection.metrics: "lpips" is a full-reference metric' in text
    assert 'policy "smp" needs human labels; set datasets.train.dataroot_label' in text
    assert 'policy "smp" needs offline scores; set datasets.train.score_file' in text
    with pytest.raises(OptionsError, match='policy "amo" scores candidates online; name the NR metric'):
        prepare_options(_multigt_opt(policy='amo'))
    with pytest.raises(OptionsError, match='needs datasets.train of type MultiGTDataset'):
        prepare_options({'datasets': {'train': {'type': 'PairedImageDataset'}},
                         'train': {'gt_selection': {'policy': 'upos'}}})
    with pytest.raises(OptionsError, match='gt_size: 66 is not a multiple of scale 4'):
        opt = _multigt_opt(policy='original')
        opt['datasets']['train']['gt_size'] = 66
        prepare_options(opt)


def test_types_scale_and_model_combinations_are_checked():
    opt = _multigt_opt(policy='original')
    opt['datasets']['train'].update(gt_size='64', use_hflip='yes', lq_mode='bicubc', score_norm='minmax')
    opt.update(model_type='NRIQAModel', network_g={'type': 'RRDBNet', 'scale': 2},
               network_g_lora={'rank': 4}, path={})
    opt['train'].update(pixel_opt={'type': 'L1Loss'}, max_consecutive_nonfinite=-1,
                        iqa_opt={'type': 'NRIQALoss', 'metrics': {'musiq': 1}, 'loss_weight': 'big',
                                 'reduction': 'avg', 'clamp': 1})
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    for expected in ["datasets.train.gt_size: expected int, got str '64'",
                     "datasets.train.use_hflip: expected bool, got str 'yes'",
                     "datasets.train.lq_mode: 'bicubc' is not one of ['paired', 'bicubic', 'realesrgan']",
                     "datasets.train.score_norm: 'minmax' is not one of ['raw', 'zscore']",
                     'network_g.scale is 2 but scale is 4',
                     'network_g_lora (FT stage) needs path.pretrain_network_g',
                     'train.max_consecutive_nonfinite: a count >= 0',
                     "train.iqa_opt.loss_weight: expected int or float, got str 'big'",
                     "train.iqa_opt.reduction: 'avg' is not one of ['none', 'mean', 'sum']",
                     'train.iqa_opt.clamp: expected bool, got int 1']:
        assert expected in text, expected
    assert len(info.value.problems) == 10


def test_metric_block_types_are_checked():
    opt = {'val': {'metrics': {'niqe': {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': '4',
                                        'normalize': 'yes'}}}}
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    assert "val.metrics.niqe.crop_border: expected int, got str '4'" in str(info.value)
    assert "val.metrics.niqe.normalize: expected bool, got str 'yes'" in str(info.value)
