import glob
import os.path as osp

import pytest
import yaml
from basicsr.utils.options import ordered_yaml
from conftest import REPO_ROOT

from nriqa_basicsr.data.degradation import REALESRGAN_X4PLUS
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


def _load(rel: str) -> dict:
    with open(osp.join(REPO_ROOT, 'options', rel)) as f:
        return yaml.safe_load(f)


def test_documented_entry_point_is_the_amo_run_and_says_so():
    """options/train_rrdb_nriqa.yml is train/train_RRDB_AMO.yml under its documented name, not a silent copy."""
    assert _load('train_rrdb_nriqa.yml') == _load(osp.join('train', 'train_RRDB_AMO.yml'))
    with open(osp.join(REPO_ROOT, 'options', 'train_rrdb_nriqa.yml')) as f:
        header = ''.join(line for line in f if line.startswith('#'))
    assert 'options/train/train_RRDB_AMO.yml' in header and 'tests/test_option_files.py' in header


FULL_RUN = {'original': 'Ori', 'upos': 'UPos', 'sma': 'SMA', 'smp': 'SMP', 'amo': 'AMO'}


@pytest.mark.parametrize('policy', sorted(FULL_RUN))
def test_selection_fragment_equals_its_full_run(policy):
    """The header of each fragment says it holds the blocks of train_RRDB_<policy>.yml: keep that true."""
    fragment = _load(osp.join('train', 'gt_selection', f'{policy}.yml'))
    full = _load(osp.join('train', f'train_RRDB_{FULL_RUN[policy]}.yml'))
    assert fragment['train']['gt_selection'] == full['train']['gt_selection']
    ours, theirs = dict(fragment['datasets']['train']), dict(full['datasets']['train'])
    ours.pop('name'), theirs.pop('name')
    for key in ('betag_range', 'betap_range'):  # spelled out in the full files at the kernel sampler's default
        if key not in ours:
            assert theirs.pop(key) == REALESRGAN_X4PLUS[key]
    assert ours == theirs
    with open(osp.join(REPO_ROOT, 'options', 'train', 'gt_selection', f'{policy}.yml')) as f:
        assert f'options/train/train_RRDB_{FULL_RUN[policy]}.yml' in f.read(500)


def test_options_readme_lists_every_file():
    with open(osp.join(REPO_ROOT, 'options', 'README.md')) as f:
        listed = {line.split('|')[1].strip().strip('`') for line in f if line.startswith('| `')}
    on_disk = {osp.relpath(p, osp.join(REPO_ROOT, 'options')).replace(osp.sep, '/')
               for p in glob.glob(osp.join(REPO_ROOT, 'options', '**', '*.yml'), recursive=True)}
    assert listed == on_disk, f'options/README.md: add {sorted(on_disk - listed)}, drop {sorted(listed - on_disk)}'
