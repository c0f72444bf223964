import os.path as osp

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric, calculate_psnr

from nriqa_basicsr.iqa import build_scorer
from nriqa_basicsr.metrics.nriqa_metric import image_to_tensor


@pytest.fixture
def bgr_pair():
    rng = np.random.default_rng(0)
    gt = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
    gt = np.kron(gt, np.ones((6, 6, 1))).astype(np.uint8)  # 144x144, blocky but natural-ish statistics
    noisy = np.clip(gt.astype(np.int16) + rng.integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
    return noisy, gt


def test_image_to_tensor_converts_basicsr_layout():
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    t = image_to_tensor(img)
    assert t.shape == (1, 3, 4, 5)
    assert torch.equal(t[0, 2], torch.ones(4, 5)) and t[0, :2].abs().sum() == 0
    assert image_to_tensor(img, crop_border=1).shape == (1, 3, 2, 3)
    assert image_to_tensor(img.transpose(2, 0, 1), input_order='CHW').shape == (1, 3, 4, 5)
    assert image_to_tensor(np.zeros((4, 5), np.uint8)).shape == (1, 1, 4, 5)


def test_calculate_nriqa_through_basicsr_registry(bgr_pair):
    sr, gt = bgr_pair
    value = calculate_metric({'img': sr, 'img2': gt},
                             {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': 4, 'better': 'lower'})
    expected = build_scorer('niqe', device=None).raw(image_to_tensor(sr, crop_border=4))
    assert isinstance(value, float) and value == pytest.approx(float(expected), rel=1e-6)


def test_calculate_fr_iqa_psnr_matches_basicsr(bgr_pair):
    sr, gt = bgr_pair
    value = calculate_metric({'img': sr, 'img2': gt}, {'type': 'calculate_fr_iqa', 'metric': 'psnr', 'crop_border': 4})
    assert value == pytest.approx(calculate_psnr(sr, gt, crop_border=4), abs=1e-3)


def test_calculate_fr_iqa_lpips_with_local_weights(bgr_pair, lpips_weights):
    sr, gt = bgr_pair
    opts = {'type': 'calculate_fr_iqa', 'metric': 'lpips', 'weights_dir': lpips_weights}
    same = calculate_metric({'img': gt, 'img2': gt}, dict(opts))
    diff = calculate_metric({'img': sr, 'img2': gt}, dict(opts))
    assert same == pytest.approx(0.0, abs=1e-6) and diff > same


def test_fr_metric_without_ground_truth_is_refused(bgr_pair):
    from nriqa_basicsr.metrics.nriqa_metric import calculate_fr_iqa, calculate_nriqa

    with pytest.raises(ValueError, match='needs ground truth'):
        calculate_fr_iqa(bgr_pair[0], None, metric='psnr')
    with pytest.raises(ValueError, match='needs the pyiqa metric name'):
        calculate_nriqa(bgr_pair[0])


def test_brisque_live_release_converts_and_loads(shared_dir, tmp_path):
    """The LIVE BRISQUE libsvm model → pyiqa's file format, then scored through the normal weights search."""
    import cv2

    from scripts.convert_iqa_weights import main as convert

    src = osp.join(shared_dir, 'iqa_weights', 'brisque')
    assert convert(['brisque', osp.join(src, 'allmodel'), '--range', osp.join(src, 'allrange'),
                    '--out', str(tmp_path)]) == 0
    sv_coef, sv = torch.load(tmp_path / 'brisque_svm_weights.pth', weights_only=True)
    assert sv_coef.shape == (774,) and sv.shape == (774, 36)
    from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa

    # Sanity values of the LIVE model on Set5 HR (../shared/iqa_weights/README.md, grey-level re-implementation;
    # pyiqa scores the YIQ luma, hence the tolerance) and the blur response.
    for name, expected, blurred in [('baby', 6.5, 60), ('butterfly', 10.1, 47), ('bird', 29.7, 67)]:
        img = cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set5', 'HR', f'{name}.png'))
        score = calculate_nriqa(img, metric='brisque', weights_dir=str(tmp_path))
        blur = calculate_nriqa(cv2.GaussianBlur(img, (0, 0), 2), metric='brisque', weights_dir=str(tmp_path))
        assert abs(score - expected) < 3.5, (name, score)
        assert abs(blur - blurred) < 3.5 and blur > score + 15, (name, blur)


def test_brisque_conversion_refuses_foreign_model(tmp_path):
    from scripts.convert_iqa_weights import main as convert

    model = tmp_path / 'model'
    model.write_text('svm_type c_svc\nkernel_type rbf\ngamma 0.05\nrho 1\nSV\n1 1:0.5\n')
    assert convert(['brisque', str(model), '--out', str(tmp_path / 'out')]) == 1
    assert not (tmp_path / 'out' / 'brisque_svm_weights.pth').exists()
