"""options/test/*.yml read the documented benchmark layout (HR/ + LR_bicubic/X4/<name>x4.png): run one on ../shared."""

import glob
import os
import os.path as osp
import sys

import cv2
import torch
import yaml
from conftest import REPO_ROOT

TEST_FILE = osp.join(REPO_ROOT, 'options', 'test', 'test_MSRResNet_x4_nriqa.yml')


def test_test_option_file_runs_on_the_shared_benchmarks(shared_dir, tmp_path, monkeypatch, capsys):
    """The file's own dataset blocks, with ``datasets/`` pointing at ../shared/benchmarks: every Set5/Set14 pair is
    found, the uncropped HR is cropped to 4x the LR, and the outputs have the LR's size times 4."""
    from basicsr.archs.srresnet_arch import MSRResNet

    from nriqa_basicsr.pipeline import test_main
    from nriqa_basicsr.preflight import check_option_file

    os.symlink(osp.join(shared_dir, 'benchmarks'), tmp_path / 'datasets')
    with open(TEST_FILE) as f:
        opt = yaml.safe_load(f)
    # a small random generator under the file's checkpoint name: what is tested is the data layout, not the net
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['num_gpu'] = 0
    opt['val']['metrics'] = {k: opt['val']['metrics'][k] for k in ('psnr', 'ssim')}  # no weight files needed
    torch.manual_seed(0)
    net = MSRResNet(**{k: v for k, v in opt['network_g'].items() if k != 'type'})
    ckpt = tmp_path / opt['path']['pretrain_network_g']
    ckpt.parent.mkdir(parents=True)
    torch.save({'params': net.state_dict()}, ckpt)
    opt_file = tmp_path / 'test.yml'
    opt_file.write_text(yaml.safe_dump(opt, sort_keys=False))

    monkeypatch.chdir(tmp_path)
    report = check_option_file(str(opt_file), is_train=False)
    assert report.ok, report.format()
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(opt_file)])
    test_main(str(tmp_path))

    for name, count in (('Set5', 5), ('Set14', 14)):
        outputs = sorted(glob.glob(str(tmp_path / 'results' / opt['name'] / 'visualization' / name / '*.png')))
        assert len(outputs) == count, name
        for out in outputs:
            lr_name = osp.basename(out).split('_')[0]  # BasicSR names outputs <lq name>_<run name>.png
            lr = cv2.imread(osp.join(shared_dir, 'benchmarks', name, 'LR_bicubic', 'X4', f'{lr_name}.png'))
            assert cv2.imread(out).shape[:2] == (lr.shape[0] * 4, lr.shape[1] * 4), out
    # PSNR/SSIM against the cropped HR ran without a shape error (calculate_psnr refuses mismatched sizes); the
    # log file is not checked: BasicSR writes it only when its logger was not initialised earlier in the process


def test_no_test_option_file_uses_the_old_layout():
    for path in glob.glob(osp.join(REPO_ROOT, 'options', 'test', '*.yml')):
        with open(path) as f:
            datasets = yaml.safe_load(f)['datasets']
        for key, block in datasets.items():
            roots = [block.get('dataroot_gt', ''), block.get('dataroot_lq', '')]
            assert not any(r.endswith(('GTmod12', 'LRbicx4')) for r in roots), (path, key)
            if block.get('dataroot_lq', '').endswith('LR_bicubic/X4'):
                assert block.get('filename_tmpl') == '{}x4', (path, key)
