"""Issue 12 leftovers: one output guard for the multi-GT builder and the demo data, LoRA target messages, LMDB
read errors naming the LMDB and key."""

import json
import os
import os.path as osp

import cv2
import lmdb
import numpy as np
import pytest
from torch import nn

from nriqa_basicsr.archs.lora import inject_lora, lora_state_dict
from nriqa_basicsr.data.build_multigt import BUILD_INFO, TOOL, MultiGTBuildConfig, build_multigt
from nriqa_basicsr.data.lmdb import create_lmdb
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.data.multigt_source import LmdbReadError, MultiGTLayoutError, MultiGTSource, open_lmdb_client
from nriqa_basicsr.demo.data import make_demo_data
from nriqa_basicsr.output_guard import OutputExistsError, OutputPathError, marker_path, owner_of

OLD_MARKER = '.nriqa-build-multigt.json'  # where earlier versions marked their output (inside it)


# ------------------------------------------------------------------------------------ 1. one output guard
@pytest.fixture(scope='module')
def hr_dir(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp('hr')
    cv2.imwrite(str(root / 'astro.png'), data.astronaut()[100:164, 180:244, ::-1])
    return str(root)


def _build(hr_dir, out, **kw):
    opt = dict(hr_dirs=(hr_dir,), out=str(out), patch_size=32, step=32, enhancers=('unsharp',), lq='none',
               max_patches=2)
    opt.update(kw)
    return build_multigt(MultiGTBuildConfig(**opt))


def _old_output(folder, marker=None, readme=None):
    """A folder as an earlier version left it: an image, the old marker inside and/or a README, nothing beside."""
    os.makedirs(folder / 'images' / 'original')
    cv2.imwrite(str(folder / 'images' / 'original' / 'old.png'), np.zeros((8, 8, 3), np.uint8))
    if marker is not None:
        (folder / OLD_MARKER).write_text(marker if isinstance(marker, str) else json.dumps(marker))
    if readme is not None:
        (folder / 'README.md').write_text(readme)
    assert owner_of(str(folder)) is None


def test_builder_and_demo_data_use_output_guard_and_keep_old_outputs_replaceable(hr_dir, tmp_path):
    out = tmp_path / 'mgt'
    _build(hr_dir, out)
    assert owner_of(str(out)) == TOOL and osp.isfile(marker_path(str(out)))  # the marker is beside, not inside
    info = json.load(open(out / BUILD_INFO))
    assert info['config']['patch_size'] == 32 and info['summary']['groups'] == 2 and not (out / OLD_MARKER).exists()
    with pytest.raises(OutputExistsError, match='pass --overwrite'):
        _build(hr_dir, out)
    # the demo script and the builder are different tools: neither replaces the other's output
    with pytest.raises(OutputPathError, match=f'was made by {TOOL}; --overwrite replaces only make_demo_data.py'):
        make_demo_data(str(out), num_train=2, num_val=1, size=64, overwrite=True)
    assert owner_of(str(out)) == TOOL and json.load(open(out / BUILD_INFO))['summary']['groups'] == 2

    # a build of the previous version (marker inside): refused without --overwrite, replaced with it
    old = tmp_path / 'old_build'
    _old_output(old, {'tool': 'nriqa_basicsr.data.build_multigt', 'config': {}})
    with pytest.raises(OutputExistsError):
        _build(hr_dir, old)
    _build(hr_dir, old, overwrite=True)
    assert owner_of(str(old)) == TOOL and not (old / OLD_MARKER).exists()
    assert 'old.png' not in os.listdir(old / 'images' / 'original')

    # an old marker naming the demo script is the demo script's; an unreadable one is nobody's
    old_demo = tmp_path / 'old_demo_marker'
    _old_output(old_demo, {'tool': 'scripts/make_demo_data.py'})
    with pytest.raises(OutputPathError, match='was made by make_demo_data.py'):
        _build(hr_dir, old_demo, overwrite=True)
    torn = tmp_path / 'torn'
    _old_output(torn, '{"tool": "nriqa_basi')
    with pytest.raises(OutputPathError, match=f'was not made by {TOOL}'):
        _build(hr_dir, torn, overwrite=True)
    assert (torn / OLD_MARKER).exists() and os.listdir(torn / 'images' / 'original') == ['old.png']

    make_demo_data(str(old_demo), num_train=2, num_val=1, size=64, overwrite=True)
    assert owner_of(str(old_demo)) == 'make_demo_data.py' and json.load(open(old_demo / BUILD_INFO))['seed'] == 0
    # a demo folder from before any marker, recognised by its README; any other README is not enough
    readme = tmp_path / 'readme_demo'
    _old_output(readme, readme='# nriqa_basicsr demo data (synthetic labels and EGTs)\n')
    make_demo_data(str(readme), num_train=2, num_val=1, size=64, overwrite=True)
    assert owner_of(str(readme)) == 'make_demo_data.py' and sorted(os.listdir(readme)) == [
        'README.md', BUILD_INFO, 'train', 'val']
    thesis = tmp_path / 'thesis'
    _old_output(thesis, readme='# my thesis data\n')
    with pytest.raises(OutputPathError, match='was not made by make_demo_data.py'):
        make_demo_data(str(thesis), num_train=2, num_val=1, size=64, overwrite=True)
    assert sorted(os.listdir(thesis)) == ['README.md', 'images']
    assert not [n for n in os.listdir(tmp_path) if n.startswith(('.tmp-', '.old-'))]


# ------------------------------------------------------------------------------------ 2. LoRA targets
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_first = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2))
        self.temporal = nn.Conv1d(8, 8, 1)
        self.fc = nn.Linear(8, 8)
        self.upsample = nn.PixelShuffle(2)


@pytest.mark.parametrize('targets, listed, hint', [
    ('upsample', 'upsample (PixelShuffle)', 'point it at such layers instead, e.g. conv_first, body.0, fc'),
    (r'^body\.\d$', 'body.1 (LeakyReLU)', r'it also matches 1 supported layer(s) (body.0)'),
    (['temporal', 'fc'], 'temporal (Conv1d)', 'it also matches 1 supported layer(s) (fc)'),
    ('body', 'body (Sequential)', 'point it at such layers instead'),
])
def test_lora_target_of_an_unsupported_type_names_the_module_and_the_supported_types(targets, listed, hint):
    with pytest.raises(ValueError) as info:
        inject_lora(_Tiny(), {'rank': 2, 'target_modules': targets}, 'Tiny')
    message = str(info.value)
    assert f'network_g_lora.target_modules {targets!r} matches 1 module(s) of Tiny of a type LoRA does not ' \
           f'support here: {listed}.' in message
    assert 'Supported layer types: nn.Conv2d, nn.Linear' in message and hint in message
    assert 'matches no' not in message


def test_lora_targets_that_match_nothing_or_only_supported_layers():
    with pytest.raises(ValueError, match=r"'conv_last' matches no module of Tiny\. .*layers LoRA can adapt here: "
                                         r'conv_first, body\.0, fc\.'):
        inject_lora(_Tiny(), {'rank': 2, 'target_modules': 'conv_last'}, 'Tiny')
    net = inject_lora(_Tiny(), {'rank': 2, 'target_modules': r'^(conv_first|body\.0|fc)$'}, 'Tiny')
    assert {k.split('.lora_')[0] for k in lora_state_dict(net)} == {'conv_first', 'body.0', 'fc'}
    from basicsr.archs.rrdbnet_arch import RRDBNet  # the default targets of a real arch stay valid

    rrdb = inject_lora(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4), {'rank': 2}, 'RRDBNet')
    assert any(k.startswith('body.0.rdb1.conv1.') for k in lora_state_dict(rrdb))
    with pytest.raises(ValueError, match=r'lrelu \(LeakyReLU\)\. Supported layer types: nn\.Conv2d, nn\.Linear; '
                                         r'it also matches 1 supported layer\(s\) \(conv_up1\)'):
        inject_lora(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4),
                    {'rank': 2, 'target_modules': r'^(conv_up1|lrelu)$'}, 'RRDBNet')


# ------------------------------------------------------------------------------------ 3. LMDB read errors
@pytest.fixture
def lmdb_data(tmp_path):
    """Two groups of two variants on disk, their LMDBs (with lq.lmdb) made by create_lmdb_multigt.py."""
    rng = np.random.default_rng(0)
    for variant in ('original', 'v1'):
        os.makedirs(tmp_path / 'images' / variant)
        for name in ('g1', 'g2'):
            cv2.imwrite(str(tmp_path / 'images' / variant / f'{name}.png'), rng.integers(0, 255, (32, 32, 3), np.uint8))
    os.makedirs(tmp_path / 'lq')
    for name in ('g1', 'g2'):
        cv2.imwrite(str(tmp_path / 'lq' / f'{name}.png'), rng.integers(0, 255, (8, 8, 3), np.uint8))
    source = MultiGTSource(str(tmp_path / 'images'), 'generic', ['original', 'v1'])
    return create_lmdb(source, str(tmp_path / 'lmdb'), str(tmp_path / 'lq'), progress=False)


def _lmdb_source(root):
    return MultiGTSource(root, 'generic', ['original', 'v1'], io_backend={'type': 'lmdb'})


def test_lmdb_read_error_names_the_lmdb_and_the_key(lmdb_data, monkeypatch):
    from basicsr.utils.file_client import LmdbBackend

    source = _lmdb_source(lmdb_data)
    assert source.read('g1', 1).shape == (32, 32, 3)

    real_get, failing = LmdbBackend.get, {'v1'}

    def failing_get(self, filepath, client_key):  # what lmdb raises on a failing disk
        if client_key not in failing:
            return real_get(self, filepath, client_key)
        raise lmdb.Error(f'{self.db_paths[list(self._client).index(client_key)]}: Input/output error')

    monkeypatch.setattr(LmdbBackend, 'get', failing_get)
    with pytest.raises(LmdbReadError) as info:
        source.read('g2', 1)
    message = str(info.value)
    assert message.startswith(f'{osp.join(lmdb_data, "v1.lmdb")}: reading key "g2" failed (')
    assert 'Input/output error' in message and 'Check the disk' in message and 'nriqa-create-lmdb' in message
    assert isinstance(info.value, OSError) and isinstance(info.value, MultiGTLayoutError)

    ds = MultiGTDataset({'name': 'l', 'phase': 'train', 'scale': 4, 'layout': 'generic', 'gt_size': 32,
                         'gt_variants': ['original', 'v1'], 'dataroot_gt': lmdb_data, 'io_backend': {'type': 'lmdb'},
                         'dataroot_lq': osp.join(lmdb_data, 'lq.lmdb'), 'use_hflip': False, 'use_rot': False,
                         'report_counts': False})
    failing.clear()
    assert ds[0]['lq'].shape == (3, 8, 8)
    failing.add('lq')
    with pytest.raises(LmdbReadError, match=r'lq\.lmdb: reading key "g\d" failed \(.*Input/output error'):
        ds[0]


def test_truncated_or_garbage_lmdb_is_refused_before_any_read(lmdb_data):
    data = osp.join(lmdb_data, 'v1.lmdb', 'data.mdb')
    whole = open(data, 'rb').read()
    with open(data, 'r+b') as f:  # an interrupted copy: reading past the end would kill the process (SIGBUS)
        f.truncate(len(whole) // 2)
    with pytest.raises(LmdbReadError, match=rf'{data}: truncated \({len(whole) // 2} bytes; its pages need \d+\)\. '
                                            r'Check the disk .*nriqa-create-lmdb'):
        _lmdb_source(lmdb_data)
    paths = {v: osp.join(lmdb_data, f'{v}.lmdb') for v in ('original', 'v1')}
    with pytest.raises(LmdbReadError, match='v1.lmdb/data.mdb: truncated'):  # a worker opening it later
        open_lmdb_client(paths)
    with open(data, 'wb') as f:
        f.write(b'\x00' * 100)
    with pytest.raises(LmdbReadError, match=rf'^{paths["v1"]}: cannot open the LMDB \(.*\)\. Check the disk'):
        open_lmdb_client(paths)
    with pytest.raises(MultiGTLayoutError, match='v1.lmdb: cannot be opened as an LMDB'):
        _lmdb_source(lmdb_data)
