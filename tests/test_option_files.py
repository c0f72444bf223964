import glob
import os.path as osp

import pytest
import yaml
from basicsr.utils.options import ordered_yaml
from conftest import REPO_ROOT

from nriqa_basicsr.options import prepare_options

OPTION_FILES = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'options', '**', '*.yml'), recursive=True)
                      if osp.sep + 'gt_selection' + osp.sep not in p)  # fragments: tests/test_multigt_data.py
REQUIRED = ('name', 'model_type', 'num_gpu', 'datasets', 'path')


def test_option_files_exist():
    assert OPTION_FILES


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_option_file_parses_and_passes_start_up_checks(path):
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    missing = [k for k in REQUIRED if k not in opt]
    assert not missing, f'{path}: missing BasicSR keys {missing}'
    if '/train/' in path:
        for key in ('total_iter', 'scheduler', 'optim_g'):
            assert key in opt['train'], f'{path}: train.{key} missing'
    prepare_options(opt)
    for block in (opt.get('val') or {}).get('metrics', {}).values():
        if block['type'] in ('calculate_nriqa', 'calculate_fr_iqa'):
            assert block['better'] in ('higher', 'lower')
