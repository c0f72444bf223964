"""Multi-GT data from an HR folder (nriqa_basicsr.data.build_multigt), its enhancers and the seeded degradation."""

import json
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize

from nriqa_basicsr.data.build_multigt import (
    BUILD_INFO,
    TOOL,
    BuildError,
    MultiGTBuildConfig,
    build_multigt,
    main,
    texture_ok,
)
from nriqa_basicsr.data.degradation import degrade_image
from nriqa_basicsr.data.enhancers import EnhancerError, build_enhancer, parse_spec
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.output_guard import OutputPathError, marker_path, owner_of


def _images(tree):
    """{relative path: pixels} of every image under ``tree``."""
    out = {}
    for folder, _, files in os.walk(tree):
        for name in files:
            if name.endswith('.png'):
                out[osp.relpath(osp.join(folder, name), tree)] = cv2.imread(osp.join(folder, name),
                                                                            cv2.IMREAD_UNCHANGED)
    return out


@pytest.fixture(scope='module')
def hr_dir(tmp_path_factory):
    """Five HR images: three textured crops, a flat one (always rejected), one smaller than a 32px patch and a
    grey-scale PNG (read as three equal channels)."""
    from skimage import data

    root = tmp_path_factory.mktemp('hr')
    astro, coffee = data.astronaut()[..., ::-1], data.coffee()[..., ::-1]
    cv2.imwrite(str(root / 'astro.png'), astro[100:180, 180:280])
    cv2.imwrite(str(root / 'coffee.png'), coffee[100:172, 200:300])
    cv2.imwrite(str(root / 'flat.png'), np.full((64, 64, 3), 128, np.uint8))
    cv2.imwrite(str(root / 'tiny.png'), astro[:20, :30])
    cv2.imwrite(str(root / 'grey.png'), data.camera()[200:264, 200:296])
    (root / 'notes.txt').write_text('not an image')
    return str(root)


def _config(hr_dir, out, **kw):
    opt = dict(hr_dirs=(hr_dir,), out=str(out), patch_size=32, step=24, enhancers=('unsharp', 'clahe'))
    opt.update(kw)
    return MultiGTBuildConfig(**opt)


def test_layout_is_read_by_the_dataset_and_lq_is_matlab_bicubic(hr_dir, tmp_path):
    summary = build_multigt(_config(hr_dir, tmp_path / 'mgt'))
    root = str(tmp_path / 'mgt')
    assert summary.variants == ['original', '01', '02'] and summary.groups > 5
    assert summary.skipped_small == ['tiny (30x20)'] and summary.images == 5
    assert summary.groups == summary.candidates == summary.grid_patches - summary.rejected_texture
    assert sorted(os.listdir(osp.join(root, 'images'))) == ['01', '02', 'original']
    originals = sorted(os.listdir(osp.join(root, 'images', 'original')))
    assert not any(n.startswith(('flat', 'tiny')) for n in originals)  # flat: every patch fails the thresholds
    assert sorted(os.listdir(osp.join(root, 'images', '02'))) == [n.replace('.png', '_02.png') for n in originals]
    info = json.load(open(osp.join(root, BUILD_INFO)))
    assert info['config']['patch_size'] == 32 and info['summary']['groups'] == summary.groups
    assert owner_of(root) == TOOL and osp.isfile(marker_path(root))  # output_guard's marker, beside the folder

    opt = dict(summary.dataset_options(), name='built', phase='train', scale=4, gt_size=32, use_hflip=False,
               use_rot=False, report_counts=False)
    opt.pop('type')
    ds = MultiGTDataset(opt)
    assert len(ds) == summary.groups and ds.lq_mode == 'paired'
    item = ds[0]
    assert item['gts'].shape == (3, 3, 32, 32) and item['lq'].shape == (3, 8, 8)
    name = osp.splitext(originals[0])[0]
    stem, x, y = name.rsplit('-', 2)
    hr = cv2.imread(osp.join(hr_dir, f'{stem}.png'))
    patch = hr[int(y):int(y) + 32, int(x):int(x) + 32]  # names hold the patch position in the HR image
    assert np.array_equal(cv2.imread(osp.join(root, 'images', 'original', originals[0])), patch)
    lq = np.clip(imresize(patch / 255.0, 1 / 4) * 255, 0, 255).round().astype(np.uint8)
    assert np.array_equal(cv2.imread(osp.join(root, 'lq_x4', originals[0])), lq)
    assert np.array_equal(cv2.imread(osp.join(root, 'images', '01', f'{name}_01.png')),
                          build_enhancer('unsharp')(patch))


def test_every_variant_passes_the_texture_thresholds(hr_dir, tmp_path):
    # a strong denoiser flattens the texture of some patches: with texture_check 'all' those groups go
    flattening = ('denoise_unsharp:h=40,h_color=40,amount=0',)
    loose = build_multigt(_config(hr_dir, tmp_path / 'orig', enhancers=flattening, texture_check='original',
                                  min_lapvar=60))
    strict = build_multigt(_config(hr_dir, tmp_path / 'all', enhancers=flattening, min_lapvar=60))
    assert 0 < strict.groups < loose.groups
    kept = _images(tmp_path / 'all' / 'images')
    assert all(texture_ok(img, 20, 60) for img in kept.values())
    assert not all(texture_ok(img, 20, 60) for img in _images(tmp_path / 'orig' / 'images').values())
    # with a subset, variants are checked on the drawn patches only, and failures are replaced by others
    sub = build_multigt(_config(hr_dir, tmp_path / 'sub', enhancers=flattening, min_lapvar=60,
                                max_patches=strict.groups - 1))
    assert sub.groups == strict.groups - 1
    assert set(_images(tmp_path / 'sub' / 'images')) < set(kept)
    with pytest.raises(BuildError, match='no patch of 32px passed'):
        build_multigt(_config(hr_dir, tmp_path / 'none', min_std=200))
    assert not osp.exists(tmp_path / 'none')


def test_seeded_grid_subset_and_determinism(hr_dir, tmp_path):
    a = build_multigt(_config(hr_dir, tmp_path / 'a', seed=1, max_patches=4))
    b = build_multigt(_config(hr_dir, tmp_path / 'b', seed=1, max_patches=4))
    c = build_multigt(_config(hr_dir, tmp_path / 'c', seed=2))
    assert a.groups == 4 and a.candidates > 4
    images_a = _images(tmp_path / 'a')
    assert images_a.keys() == _images(tmp_path / 'b').keys()
    assert all(np.array_equal(v, _images(tmp_path / 'b')[k]) for k, v in images_a.items())
    names_c = set(os.listdir(tmp_path / 'c' / 'images' / 'original'))
    assert set(os.listdir(tmp_path / 'a' / 'images' / 'original')) - names_c  # other offsets with another seed
    assert b.groups == 4 and c.groups == c.candidates


def test_realesrgan_lq_is_seeded_per_patch_and_leaves_global_rngs_alone(hr_dir, tmp_path):
    np.random.seed(123)
    torch.manual_seed(123)
    np_state, torch_state, py_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone(), random.getstate()
    full = build_multigt(_config(hr_dir, tmp_path / 'full', lq='realesrgan', seed=5, enhancers=('unsharp',), step=40))
    sub = build_multigt(_config(hr_dir, tmp_path / 'sub', lq='realesrgan', seed=5, enhancers=('unsharp',), step=40,
                                max_patches=3))
    assert np.array_equal(np.random.get_state()[1], np_state) and torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state  # basicsr's kernel functions also draw from Python's random
    lq_full, lq_sub = _images(tmp_path / 'full' / 'lq_x4'), _images(tmp_path / 'sub' / 'lq_x4')
    assert full.groups > 3 and sub.groups == 3 and lq_sub.keys() < lq_full.keys()
    assert all(np.array_equal(v, lq_full[k]) for k, v in lq_sub.items())  # a patch's LR ignores the others
    patch = cv2.imread(osp.join(tmp_path, 'full', 'images', 'original', next(iter(lq_full))))
    assert next(iter(lq_full.values())).shape == (8, 8, 3)
    again = degrade_image(patch, 4, [5, 0])
    assert np.array_equal(again, degrade_image(patch, 4, [5, 0]))
    assert not all(np.array_equal(again, degrade_image(patch, 4, [5, s])) for s in (1, 2, 3))
    bicubic = np.clip(imresize(patch / 255.0, 1 / 4) * 255, 0, 255).round()
    assert np.abs(again.astype(float) - bicubic).mean() > 1  # actually degraded, not a resize


def test_output_rules_overwrite_only_own_folders_never_inputs(hr_dir, tmp_path):
    out = tmp_path / 'out'
    build_multigt(_config(hr_dir, out, max_patches=2))
    with pytest.raises(FileExistsError, match='--overwrite'):
        build_multigt(_config(hr_dir, out))
    rebuilt = build_multigt(_config(hr_dir, out, overwrite=True, max_patches=3))
    assert rebuilt.groups == 3 and len(os.listdir(out / 'images' / 'original')) == 3
    before = _images(out)
    with pytest.raises(BuildError, match='no patch'):  # a failed rebuild keeps the earlier build
        build_multigt(_config(hr_dir, out, overwrite=True, min_std=1000))
    assert _images(out).keys() == before.keys() and json.load(open(out / BUILD_INFO))['summary']['groups'] == 3
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'thesis.tex').write_text('keep me')
    with pytest.raises(OutputPathError, match=f'was not made by {TOOL}'):
        build_multigt(_config(hr_dir, foreign, overwrite=True))
    assert os.listdir(foreign) == ['thesis.tex']
    with pytest.raises(OutputPathError, match='lies inside the input'):
        build_multigt(_config(hr_dir, osp.join(hr_dir, 'mgt')))
    with pytest.raises(OutputPathError, match='contains the input'):
        build_multigt(_config(hr_dir, osp.dirname(hr_dir), overwrite=True))
    with pytest.raises(OutputPathError, match='is the input'):
        build_multigt(_config(hr_dir, hr_dir, overwrite=True))
    with pytest.raises(EnhancerError, match='unknown enhancer "sharpen"'):
        build_multigt(_config(hr_dir, tmp_path / 'bad', enhancers=('sharpen',)))
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith('.') and not n.endswith('.nriqa-output.json')]
    assert not osp.exists(tmp_path / 'bad') and not leftovers
    assert sorted(os.listdir(hr_dir)) == ['astro.png', 'coffee.png', 'flat.png', 'grey.png', 'notes.txt', 'tiny.png']


def test_enhancer_specs():
    assert parse_spec('unsharp:sigma=2,amount=0.5') == ('unsharp', {'sigma': 2.0, 'amount': 0.5})
    assert parse_spec('net.pth') == ('model', {'path': 'net.pth'})
    assert parse_spec('model:path=a.pth,mode=x1,tile=64') == ('model', {'path': 'a.pth', 'mode': 'x1', 'tile': 64})
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert not np.array_equal(build_enhancer('unsharp:amount=2')(img), build_enhancer('unsharp')(img))
    with pytest.raises(EnhancerError, match=r"unknown option\(s\) \['radius'\]; clahe takes \['clip', 'tiles'\]"):
        build_enhancer('clahe:radius=3')
    with pytest.raises(EnhancerError, match='"tiles" is not key=value'):
        build_enhancer('clahe:tiles')
    with pytest.raises(EnhancerError, match='tiles must be an integer'):
        build_enhancer('clahe:tiles=big')
    with pytest.raises(EnhancerError, match='checkpoint missing.pth not found'):
        build_enhancer('missing.pth')


@pytest.fixture(scope='module')
def tiny_sr(tmp_path_factory):
    """A random-init x4 SRVGGNetCompact and a x1 RRDBNet in BasicSR's release format (params_ema)."""
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from basicsr.archs.srvgg_arch import SRVGGNetCompact

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp('sr')
    x4, x1 = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4), RRDBNet(3, 3, scale=1, num_feat=8, num_block=1,
                                                                          num_grow_ch=4)
    torch.save({'params_ema': x4.state_dict()}, root / 'x4.pth')
    torch.save({'params_ema': x1.state_dict()}, root / 'x1.pth')
    return str(root / 'x4.pth'), x4.eval(), str(root / 'x1.pth'), x1.eval()


def _run(net, img):
    x = torch.from_numpy(img[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()[..., ::-1]
    return (y * 255).round().astype(np.uint8)


def test_model_enhancers_run_at_x1_and_on_a_down_up_copy(tiny_sr, hr_dir, tmp_path):
    x4_path, x4, x1_path, x1 = tiny_sr
    patch = cv2.imread(osp.join(hr_dir, 'astro.png'))[:32, :32]
    down_up = build_enhancer(f'model:path={x4_path}')  # auto: an x4 net runs on the down-up copy
    assert (down_up.mode, down_up.scale, down_up.network_g['type']) == ('downup', 4, 'SRVGGNetCompact')
    lr = np.clip(imresize(patch / 255.0, 1 / 4) * 255, 0, 255).round().astype(np.uint8)
    assert np.array_equal(down_up(patch), _run(x4, lr))
    at_x1 = build_enhancer(f'model:path={x4_path},mode=x1')
    assert at_x1(patch).shape == patch.shape
    same_size = build_enhancer(x1_path)
    assert (same_size.mode, same_size.scale) == ('x1', 1)
    assert np.array_equal(same_size(patch), _run(x1, patch))
    with pytest.raises(EnhancerError, match='downup needs an SR net'):
        build_enhancer(f'model:path={x1_path},mode=downup')

    summary = build_multigt(_config(hr_dir, tmp_path / 'm', enhancers=('clahe', f'model:path={x4_path}'),
                                    max_patches=2))
    assert summary.variants == ['original', '01', '02'] and summary.groups == 2
    name = sorted(os.listdir(tmp_path / 'm' / 'images' / 'original'))[0]
    original = cv2.imread(str(tmp_path / 'm' / 'images' / 'original' / name))
    egt = cv2.imread(str(tmp_path / 'm' / 'images' / '02' / name.replace('.png', '_02.png')))
    assert np.array_equal(egt, down_up(original))


def test_score_file_is_accepted_by_the_dataset(hr_dir, tmp_path):
    summary = build_multigt(_config(hr_dir, tmp_path / 's', patch_size=64, step=32, score_metrics=('piqe',)))
    assert summary.score_file == str(tmp_path / 's' / 'scores_piqe.npz') and osp.isfile(summary.score_file)
    opt = dict(summary.dataset_options(), name='s', phase='train', scale=4, gt_size=64, report_counts=False)
    opt.pop('type')
    ds = MultiGTDataset(opt)
    assert ds.scores.shape == (summary.groups, 3) and np.isfinite(ds.scores).all()


def test_cli(hr_dir, tmp_path, capsys):
    out = str(tmp_path / 'cli')
    assert main(['--dataroot', hr_dir, '--output', out, '--patch-size', '32', '--enhancers', 'detail', '--lq', 'none',
                 '--max-patches', '2', '--no-progress']) == 0
    printed = capsys.readouterr().out
    assert '2 groups of 2 variants from 5 images' in printed and 'dataroot_gt: ' in printed
    assert sorted(os.listdir(out)) == [BUILD_INFO, 'images']
    assert main(['--dataroot', hr_dir, '--output', out, '--patch-size', '30', '--no-progress']) == 1
    assert 'patch_size 30 must be ≥ 8 and a multiple of scale 4' in capsys.readouterr().err
    assert main(['--dataroot', str(tmp_path / 'nope'), '--output', str(tmp_path / 'x'), '--no-progress']) == 1
    assert 'nope: no such folder' in capsys.readouterr().err


def test_console_script_is_declared_and_stems_must_be_unique(hr_dir, tmp_path):
    import importlib
    import re

    from conftest import REPO_ROOT

    setup = open(osp.join(REPO_ROOT, 'setup.py')).read()
    module, func = re.search(r"'nriqa-build-multigt = ([\w.]+):(\w+)'", setup).groups()
    assert getattr(importlib.import_module(module), func) is main
    other = tmp_path / 'other'
    other.mkdir()
    cv2.imwrite(str(other / 'astro.jpg'), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(BuildError, match='same stem "astro"'):
        build_multigt(MultiGTBuildConfig(hr_dirs=(hr_dir, str(other)), out=str(tmp_path / 'o'), patch_size=32))
