import os
import os.path as osp
import time

import pytest
import torch

from nriqa_basicsr.iqa import (
    IQAInputError,
    IQAScorer,
    WeightsNotFoundError,
    build_scorer,
    clear_scorer_cache,
    search_dirs,
)
from nriqa_basicsr.iqa.weights import project_weights_dir


@pytest.fixture
def images():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 12, 12), size=(128, 128), mode='bicubic')
    return (smooth + 0.05 * torch.rand(2, 3, 128, 128)).clamp(0, 1)


def test_niqe_works_offline_from_basicsr_parameters(images):
    scorer = build_scorer('niqe', device='cpu')
    raw = scorer.raw(images)
    assert raw.shape == (2,) and torch.isfinite(raw).all() and (raw > 0).all()
    # lower-better metric -> quality is the negated score
    assert torch.allclose(scorer(images), -raw)
    # the generated parameter file went to the project cache, atomically, under pyiqa's file name
    assert osp.isfile(osp.join(os.environ['NRIQA_CACHE_DIR'], 'niqe_modelparameters.mat'))


def test_single_image_batch_has_shape_b(images):
    assert build_scorer('niqe', device='cpu')(images[:1]).shape == (1,)


def test_normalised_quality_uses_documented_range(images):
    raw = build_scorer('niqe', device='cpu').raw(images)
    normed = build_scorer('niqe', device='cpu', normalize=True)(images)
    assert torch.allclose(normed, (100 - raw) / 100)  # pyiqa documents NIQE as ~0..~100, lower better
    custom = build_scorer('niqe', device='cpu', normalize=True, score_range=[0, 20])(images)
    assert torch.allclose(custom, (20 - raw) / 20)


def test_normalize_without_bounded_range_is_refused():
    with pytest.raises(ValueError, match='"pi" has no bounded score range in pyiqa'):
        IQAScorer('pi', device='cpu', normalize=True)  # pyiqa documents PI as '~0, ~'
    with pytest.raises(ValueError, match=r'must be \[low, high\] with high > low'):
        IQAScorer('niqe', device='cpu', normalize=True, score_range=[5, 1])


def test_instances_are_cached_per_name_device_and_options():
    a = build_scorer('niqe', device='cpu')
    assert build_scorer('niqe', device='cpu') is a
    assert build_scorer('niqe', device='cpu', normalize=True) is not a
    clear_scorer_cache()
    assert build_scorer('niqe', device='cpu') is not a


def test_scorer_stays_in_eval_mode_and_frozen(musiq_weights):
    scorer = build_scorer('musiq', device='cpu', weights_path=musiq_weights)
    parent = torch.nn.Sequential(scorer)
    parent.train()
    assert not scorer.training and not scorer.net.training
    assert all(not m.training for m in scorer.net.modules())
    assert all(not p.requires_grad for p in scorer.parameters())


def test_gradient_flows_to_input_through_learned_metric(musiq_weights):
    scorer = build_scorer('musiq', device='cpu', weights_path=musiq_weights)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    quality = scorer(x)
    assert quality.shape == (2,)
    quality.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs() > 0).float().mean() > 0.9  # MUSIQ sees every pixel
    assert all(p.grad is None for p in scorer.parameters())
    with torch.no_grad():
        assert not scorer(x).requires_grad


def test_weights_dir_finds_file_by_pyiqa_name(musiq_weights, images):
    """The path a user's downloaded file takes: pyiqa file name in a weights directory, no explicit path."""
    by_path = build_scorer('musiq', device='cpu', weights_path=musiq_weights)
    by_dir = build_scorer('musiq', device='cpu', weights_dir=osp.dirname(musiq_weights))
    with torch.no_grad():
        assert torch.allclose(by_path(images), by_dir(images))
        assert not torch.allclose(by_path(images), by_path(images.flip(-1) * 0.5))


def test_env_weights_dir_is_searched(musiq_weights, monkeypatch):
    monkeypatch.setenv('NRIQA_WEIGHTS_DIR', osp.dirname(musiq_weights))
    assert osp.dirname(musiq_weights) in search_dirs()
    assert search_dirs('/x/first')[0] == '/x/first'
    assert project_weights_dir() in search_dirs()
    IQAScorer('musiq', device='cpu')  # builds without weights_path or weights_dir


def test_project_weights_dir_is_under_the_working_directory(musiq_weights, tmp_path, monkeypatch):
    """Not under the package's own folder: an installed (non-editable) package finds weights where it runs."""
    import shutil

    import nriqa_basicsr

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / 'experiments' / 'pretrained_models' / 'iqa'
    assert project_weights_dir() == str(folder)
    assert search_dirs()[0] == str(folder)  # after explicit dirs and $NRIQA_WEIGHTS_DIR (unset here)
    assert not project_weights_dir().startswith(osp.dirname(osp.dirname(nriqa_basicsr.__file__)) + os.sep)
    folder.mkdir(parents=True)
    shutil.copy(musiq_weights, folder)
    assert osp.join(str(folder), osp.basename(musiq_weights)) in IQAScorer('musiq', device='cpu').weight_files


def test_missing_weights_offline_fail_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as info:
        IQAScorer('musiq', device='cpu', weights_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert 'Weights for IQA metric "musiq" not found' in message
    assert '"musiq_koniq_ckpt-e95806b9.pth"' in message
    assert str(tmp_path) in message and project_weights_dir() in message
    assert 'NRIQA_WEIGHTS_DIR' in message and 'https://' in message


def test_missing_torchvision_backbone_offline_names_file(tmp_path, lpips_weights, monkeypatch):
    # LPIPS heads are given, but the ImageNet AlexNet backbone is fetched by torchvision: refused at once.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    heads = osp.join(lpips_weights, 'LPIPS_v0.1_alex-df73285e.pth')
    with pytest.raises(WeightsNotFoundError, match=r'"lpips" not found: expected a file named "alexnet-owt-7be5be79'):
        IQAScorer('lpips', mode='FR', device='cpu', weights_path=heads)
    # the same backbone file is found on the project search path and served to torchvision
    scorer = IQAScorer('lpips', mode='FR', device='cpu', weights_dir=lpips_weights)
    x = torch.rand(1, 3, 64, 64)
    assert float(scorer.raw(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(scorer.raw(x, 1 - x)) > 0


def test_weights_path_on_metric_without_it_explains_alternative(tmp_path):
    torch.save({}, tmp_path / 'piqe.pth')  # a loadable file: weight files are checked for safety before pyiqa
    with pytest.raises(ValueError, match='"piqe" does not accept weights_path'):
        IQAScorer('piqe', device='cpu', weights_path=str(tmp_path / 'piqe.pth'))


def test_bad_inputs_have_clear_errors(images):
    scorer = build_scorer('niqe', device='cpu')
    with pytest.raises(IQAInputError, match=r'must be RGB in \[0, 1\], got values in \[0, 255\]'):
        scorer(images * 255)
    with pytest.raises(IQAInputError, match='3 \\(RGB\\) or 1 \\(grey\\) channels, got 4'):
        scorer(torch.rand(1, 4, 128, 128))
    with pytest.raises(IQAInputError, match='4-D tensor'):
        scorer(images[0])


def test_grey_input_scored_as_replicated_rgb(images):
    scorer = build_scorer('niqe', device='cpu')
    grey = images[:, :1]
    assert torch.allclose(scorer(grey), scorer(grey.repeat(1, 3, 1, 1)))


def test_full_reference_scorer_needs_reference(images):
    scorer = build_scorer('psnr', mode='FR', device='cpu')
    assert torch.allclose(scorer(images, images.flip(0)), scorer(images.flip(0), images))
    with pytest.raises(IQAInputError, match='full-reference'):
        scorer(images)


def test_niqe_matches_basicsr_on_photo(photo):
    """pyiqa NIQE (LIVE model from basicsr's npz) vs basicsr.metrics.calculate_niqe on a natural photo."""
    import numpy as np
    from basicsr.metrics import calculate_niqe

    from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa

    bgr = (photo[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
    ours = calculate_nriqa(bgr, metric='niqe')
    ref = calculate_niqe(bgr, 0, input_order='HWC', convert_to='y')
    assert abs(ours - ref) < 0.01, (ours, ref)


def test_niqe_matlab_reference_on_baboon(shared_dir):
    """MATLAB R2021a NIQE of BasicSR's baboon.png (= Set14 baboon, left 492 columns) is 5.72957."""
    import cv2

    from nriqa_basicsr.metrics.nriqa_metric import calculate_nriqa

    img = cv2.imread(osp.join(shared_dir, 'benchmarks', 'Set14', 'HR', 'baboon.png'))[:, :492]
    assert abs(calculate_nriqa(img, metric='niqe') - 5.72957) < 0.01
    assert abs(calculate_nriqa(img, metric='niqe', color_space='ycbcr', niqe_variant='pyiqa') - 5.72957) < 0.01


def test_weights_dir_is_honoured_on_every_build(images, tmp_path):
    """pyiqa imports arch modules lazily; a later build with another weights_dir must still see that dir."""
    import numpy as np
    import scipy.io

    default = IQAScorer('niqe', device='cpu').raw(images)
    params = scipy.io.loadmat(osp.join(os.environ['NRIQA_CACHE_DIR'], 'niqe_modelparameters.mat'))
    shifted = {'mu_prisparam': params['mu_prisparam'] * 1.5, 'cov_prisparam': np.asarray(params['cov_prisparam'])}
    scipy.io.savemat(tmp_path / 'niqe_modelparameters.mat', shifted)
    custom = IQAScorer('niqe', device='cpu', weights_dir=str(tmp_path)).raw(images)
    assert not torch.allclose(default, custom)
    assert torch.allclose(IQAScorer('niqe', device='cpu').raw(images), default)


def test_missing_weights_path_file_is_named(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match=f'weights_path for IQA metric "musiq": no such file {missing}'):
        IQAScorer('musiq', device='cpu', weights_path=str(missing))
