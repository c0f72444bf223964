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
    sr, gt = (np.concatenate([img, img[::-1]]) for img in bgr_pair)  # 288x144: two NIQE blocks after the crop
    value = calculate_metric({'img': sr, 'img2': gt},
                             {'type': 'calculate_nriqa', 'metric': 'niqe', 'crop_border': 4, 'better': 'lower'})
    # metric: niqe in validation is the MATLAB NIQE (custom metric niqe_matlab_y), see tests/test_niqe_matlab.py
    expected = build_scorer('niqe_matlab_y', device=None).raw(image_to_tensor(sr, crop_border=4))
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

    from nriqa_basicsr.iqa.convert import main as convert

    src = osp.join(shared_dir, 'iqa_weights', 'brisque')
    assert convert(['brisque', osp.join(src, 'allmodel'), '--range', osp.join(src, 'allrange'),
                    '--output', str(tmp_path)]) == 0
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
    from nriqa_basicsr.iqa.convert import main as convert

    model = tmp_path / 'model'
    model.write_text('svm_type c_svc\nkernel_type rbf\ngamma 0.05\nrho 1\nSV\n1 1:0.5\n')
    assert convert(['brisque', str(model), '--output', str(tmp_path / 'out')]) == 1
    assert not (tmp_path / 'out' / 'brisque_svm_weights.pth').exists()


def _set5(shared_dir, name):
    import cv2

    return cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set5', 'HR', f'{name}.png'))


def test_brisque_scores_set5_straight_from_the_release_folder(shared_dir):
    """No conversion step: the weights dir holds brisque/allmodel (+ allrange), as ../shared/iqa_weights does."""
    import cv2

    from nriqa_basicsr.iqa import clear_scorer_cache
    from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa

    clear_scorer_cache()
    weights = osp.join(shared_dir, 'iqa_weights')
    scorer = build_scorer('brisque', device='cpu', weights_dir=weights)
    assert 'derived' in scorer.weight_files[0] and scorer.weight_files[0].endswith('brisque_svm_weights.pth')
    # sanity values of ../shared/iqa_weights/README.md (LIVE allmodel; its re-implementation uses MATLAB
    # rgb2gray, pyiqa the YIQ luma, hence the tolerance, as in the conversion test above)
    for name, expected, blurred in [('baby', 6.5, 60), ('butterfly', 10.1, 47)]:
        img = _set5(shared_dir, name)
        score = calculate_nriqa(img, metric='brisque', weights_dir=weights)
        blur = calculate_nriqa(cv2.GaussianBlur(img, (0, 0), 2), metric='brisque', weights_dir=weights)
        assert abs(score - expected) < 3.5 and abs(blur - blurred) < 3.5, (name, score, blur)


def test_release_files_are_found_flat_or_in_their_subfolder_and_checked(tmp_path):
    import scipy.io

    from nriqa_basicsr.iqa.releases import ReleaseFormatError
    from nriqa_basicsr.iqa.weights import WeightsNotFoundError, resolve_weight_file

    cell = np.empty((1, 4), dtype=object)
    for k, shape in enumerate([(1, 430), (430, 430), (468, 1), (468, 430)]):
        cell[0, k] = np.zeros(shape)
    (tmp_path / 'ilniqe').mkdir()
    scipy.io.savemat(tmp_path / 'ilniqe' / 'templateModel.mat', {'templateModel': cell})
    found = resolve_weight_file('ILNIQE_templateModel.mat', 'ilniqe', [str(tmp_path)])
    assert found == str(tmp_path / 'ilniqe' / 'templateModel.mat')  # loaded in place: same format as pyiqa's
    flat = tmp_path / 'flat'
    flat.mkdir()
    scipy.io.savemat(flat / 'templateModel.mat', {'templateModel': cell[:, :3]})
    with pytest.raises(ReleaseFormatError, match='not the IL-NIQE templateModel'):
        resolve_weight_file('ILNIQE_templateModel.mat', 'ilniqe', [str(flat)])
    # BRISQUE: the libsvm text model is converted once into the cache and loads without unpickling objects
    rng = np.random.default_rng(0)
    lines = ['svm_type epsilon_svr', 'kernel_type rbf', 'gamma 0.05', 'nr_class 2', 'total_sv 3', 'rho -153.591',
             'SV'] + [f'{c:.3f} ' + ' '.join(f'{i + 1}:{v:.4f}' for i, v in enumerate(rng.random(36)))
                      for c in (1.5, -2.0, 0.5)]
    (flat / 'brisque').mkdir()
    (flat / 'brisque' / 'allmodel').write_text('\r\n'.join(lines) + '\r\n')  # CRLF, as the LIVE release
    path = resolve_weight_file('brisque_svm_weights.pth', 'brisque', [str(flat)])
    sv_coef, sv = torch.load(path, weights_only=True)
    assert sv_coef.tolist() == [1.5, -2.0, 0.5] and sv.shape == (3, 36)
    assert resolve_weight_file('brisque_svm_weights.pth', 'brisque', [str(flat)]) == path  # cached
    with pytest.raises(WeightsNotFoundError, match='allmodel'):
        resolve_weight_file('brisque_svm_weights.pth', 'brisque', [str(tmp_path / 'ilniqe')])


@pytest.mark.slow
def test_ilniqe_scores_set5_from_the_release_file(shared_dir):
    """IL-NIQE (templateModel.mat, pyiqa's ILNIQE_templateModel.mat) from the weights dir, no renaming; the
    README has no reference value for it, so check that blur is judged worse (about 20 s of CPU per image)."""
    import cv2

    from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa

    weights = osp.join(shared_dir, 'iqa_weights')
    img = _set5(shared_dir, 'baby')
    score = calculate_nriqa(img, metric='ilniqe', weights_dir=weights)
    blur = calculate_nriqa(cv2.GaussianBlur(img, (0, 0), 2), metric='ilniqe', weights_dir=weights)
    assert np.isfinite(score) and 15 < score < 40 and blur > score + 30, (score, blur)


def test_start_up_file_check_accepts_the_brisque_release(tmp_path):
    """nriqa-check / train.py's preflight must not call BRISQUE missing when only allmodel is there."""
    from nriqa_basicsr.preflight import collect_requirements

    opt = {'val': {'metrics': {'brisque': {'type': 'calculate_nriqa', 'metric': 'brisque',
                                           'weights_dir': str(tmp_path)}}}}
    missing = [r.path for r in collect_requirements(opt, cwd=str(tmp_path), is_train=False, offline=True).missing]
    assert 'brisque_svm_weights.pth' in missing
    (tmp_path / 'brisque').mkdir()
    (tmp_path / 'brisque' / 'allmodel').write_text('svm_type epsilon_svr\n')
    missing = [r.path for r in collect_requirements(opt, cwd=str(tmp_path), is_train=False, offline=True).missing]
    assert 'brisque_svm_weights.pth' not in missing
