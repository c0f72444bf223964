"""The demo's guide switch: CNNIQA-LIVE when its weights file is there, NIQE otherwise (no training run here)."""

import os.path as osp

import pytest
import torch

from nriqa_basicsr.iqa.cnniqa import CNNIQALive


@pytest.fixture
def cnniqa_dir(tmp_path) -> str:
    (tmp_path / 'cnniqa').mkdir()
    torch.save(CNNIQALive().state_dict(), tmp_path / 'cnniqa' / 'CNNIQA-LIVE', _use_new_zipfile_serialization=False)
    return str(tmp_path)


def test_guide_is_cnniqa_when_its_weights_are_found_else_niqe(cnniqa_dir, tmp_path):
    from nriqa_basicsr.demo.run import choose_guide

    empty = tmp_path / 'empty'
    empty.mkdir()
    assert choose_guide(str(empty)) == ('niqe', ['piqe'])
    assert choose_guide(cnniqa_dir) == ('cnniqa_live', ['niqe', 'piqe'])  # held-out metrics exclude the guide
    assert choose_guide(cnniqa_dir, 'niqe') == ('niqe', ['piqe'])
    with pytest.raises(SystemExit, match='no CNNIQA-LIVE weights'):
        choose_guide(str(empty), 'cnniqa_live')


def test_guided_option_files_pass_the_start_up_checks(cnniqa_dir, tmp_path):
    import yaml

    from nriqa_basicsr.demo.run import write_options
    from nriqa_basicsr.options import prepare_options

    paths = write_options(str(tmp_path / 'out'), 'cnniqa_live', cnniqa_dir)
    amo = yaml.safe_load(open(paths['train_demo_amo.yml']))
    assert amo['train']['gt_selection']['metrics'] == {'cnniqa_live': 1.0}
    assert amo['train']['gt_selection']['metric_opts'] == {'cnniqa_live': {'weights_dir': cnniqa_dir}}
    ft = yaml.safe_load(open(paths['train_demo_amo_ft.yml']))
    assert ft['train']['iqa_opt']['metrics'] == {'cnniqa_live': 1.0} and ft['train']['iqa_opt']['weights_dir']
    ori = yaml.safe_load(open(paths['train_demo_ori.yml']))
    assert ori['train']['gt_selection'] == {'policy': 'original'} and 'iqa_opt' not in ori['train']
    for opt in (amo, ft):
        prepare_options(opt)
    niqe = yaml.safe_load(open(write_options(str(tmp_path / 'niqe'), 'niqe', None)['train_demo_amo_ft.yml']))
    assert niqe['train']['iqa_opt']['metrics'] == {'niqe': 1.0} and 'weights_dir' not in niqe['train']['iqa_opt']


def test_report_names_the_guide_and_the_held_out_metrics(tmp_path):
    from nriqa_basicsr.demo.run import write_report

    rows = [{'model': 'Bicubic', 'psnr': 29.0, 'ssim': 0.79, 'cnniqa_live': 60.0, 'niqe': 8.8, 'piqe': 85.0},
            {'model': 'AMO (cnniqa_live)', 'psnr': 25.0, 'ssim': 0.76, 'cnniqa_live': 41.5, 'niqe': 9.1,
             'piqe': 78.0}]
    hr = {'cnniqa_live': 20.0, 'niqe': 5.0, 'piqe': 40.0}
    path = write_report(str(tmp_path), rows, {}, hr, [None] * 2, 'cnniqa_live', ['niqe', 'piqe'])
    text = open(path).read()
    assert '| AMO (cnniqa_live) | 25.00 | 0.7600 | 41.50 | 9.100 | 78.00 |' in text
    assert 'CNNIQA_LIVE ↓ (trained on) | NIQE ↓ (held out) | PIQE ↓ (held out)' in text
    assert 'CNNIQA-LIVE guided the AMO selection' in text
    assert open(osp.join(tmp_path, 'metrics.csv')).readline().strip() == 'model,psnr,ssim,cnniqa_live,niqe,piqe'
