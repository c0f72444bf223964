"""NIQE in validation and reports is the MATLAB NIQE SR papers report; pyiqa's stays available by option."""

import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics.niqe import calculate_niqe

from nriqa_basicsr.evaluation import MetricSuite, bicubic_upscale
from nriqa_basicsr.iqa import build_scorer
from nriqa_basicsr.iqa.niqe_matlab import NIQE_MATLAB
from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa, report_metric

MATLAB_BABOON = 5.72957338  # MATLAB R2021a, BasicSR's baboon.png (= Set14 baboon[:, :492]), Y, no crop


def _bicubic_sr(shared_dir: str, name: str) -> np.ndarray:
    lr = cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set5', 'LR_bicubic', 'X4', f'{name}x4.png'))
    return bicubic_upscale(lr, 4)


def test_default_niqe_matches_matlab_anchor(shared_dir):
    img = cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set14', 'HR', 'baboon.png'))[:, :492]
    assert calculate_nriqa(img, metric='niqe') == pytest.approx(MATLAB_BABOON, abs=0.01)


@pytest.mark.parametrize('name', ['head', 'butterfly'])  # pyiqa's NIQE is 0.49 / 0.17 off on these
def test_niqe_on_sr_outputs_matches_basicsr_port_and_pyiqa_variant_differs(shared_dir, name):
    sr = _bicubic_sr(shared_dir, name)
    reference = calculate_niqe(sr, 4)
    assert calculate_nriqa(sr, metric='niqe', crop_border=4) == pytest.approx(reference, abs=0.01)
    pyiqa = calculate_nriqa(sr, metric='niqe', crop_border=4, niqe_variant='pyiqa')
    assert abs(pyiqa - reference) > 0.1  # the option really selects pyiqa's implementation


def test_metric_suite_reports_matlab_niqe_under_its_name(shared_dir):
    sr, hr = _bicubic_sr(shared_dir, 'head'), cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set5', 'HR', 'head.png'))
    matlab = MetricSuite(['psnr', 'niqe'], 4, device='cpu')
    pyiqa = MetricSuite(['niqe'], 4, device='cpu', niqe_variant='pyiqa')
    assert matlab.names == ['psnr', 'niqe'] and matlab.better['niqe'] == 'lower'
    assert matlab(sr, hr)['niqe'] == pytest.approx(calculate_niqe(sr, 4), abs=1e-4)
    assert pyiqa(sr, None)['niqe'] == pytest.approx(calculate_nriqa(sr, metric='niqe', crop_border=4,
                                                                     niqe_variant='pyiqa'), abs=1e-4)


def test_bad_niqe_options_name_the_fix():
    img = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='niqe_variant: pyiqa'):
        calculate_nriqa(img, metric='niqe', color_space='ycbcr')
    with pytest.raises(ValueError, match='niqe_variant must be one of'):
        report_metric('niqe', 'octave')
    assert report_metric('musiq') == 'musiq' and report_metric('NIQE') == NIQE_MATLAB
    assert calculate_nriqa(img, metric='niqe', color_space='ycbcr', niqe_variant='pyiqa') > 0


def test_guides_keep_differentiable_pyiqa_niqe():
    x = torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    guide = build_scorer('niqe', 'NR', 'cpu')  # what NRIQALoss / AMO build for "niqe"
    assert not guide.info.custom
    guide(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(TypeError, match='not differentiable'):
        build_scorer(NIQE_MATLAB, 'NR', 'cpu')(x)


def test_option_check_refuses_pyiqa_niqe_options_without_the_variant_before_training():
    from nriqa_basicsr.options import _check_metric_arguments

    def problems(block: dict) -> list[str]:
        found: list[str] = []
        _check_metric_arguments({'val': {'metrics': {'niqe': {'type': 'calculate_nriqa', 'metric': 'niqe',
                                                              'crop_border': 4, **block}}}}, found)
        return found

    assert problems({}) == [] and problems({'niqe_variant': 'pyiqa', 'color_space': 'ycbcr'}) == []
    assert 'add niqe_variant: pyiqa' in problems({'color_space': 'ycbcr'})[0]
    assert 'niqe_variant must be one of' in problems({'niqe_variant': 'octave'})[0]


def test_too_small_for_two_blocks_is_a_clear_error_not_a_linalg_crash():
    img = np.random.default_rng(0).integers(0, 256, (144, 144, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='at least two 96x96 blocks, got a 136x136 image'):
        calculate_nriqa(img, metric='niqe', crop_border=4)
