"""CNNIQA-LIVE (``cnniqa_live``): preprocessing equal to the reference, safe loading, gradients, real values."""

import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from nriqa_basicsr.iqa import WeightsNotFoundError, build_scorer, clear_scorer_cache, get_metric_info
from nriqa_basicsr.iqa.cnniqa import CNNIQALive, cnniqa_patches, local_normalize, pil_luma
from nriqa_basicsr.safe_load import UnsafeFileError


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert('RGB'))).permute(2, 0, 1).unsqueeze(0).float() / 255


@pytest.fixture(scope='module')
def random_weights(tmp_path_factory) -> str:
    """A random-init CNNIQA saved like the release file: legacy (non-zip) torch.save, under weights/cnniqa/."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('iqa_weights')
    (folder / 'cnniqa').mkdir()
    torch.save(CNNIQALive().state_dict(), folder / 'cnniqa' / 'CNNIQA-LIVE', _use_new_zipfile_serialization=False)
    return str(folder)


def test_pil_luma_is_pil_convert_l_and_has_a_gradient():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    rgb[0, :4] = [[255, 255, 255], [0, 0, 0], [1, 2, 3], [128, 127, 129]]
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div(255).requires_grad_(True)
    grey = pil_luma(x)
    expected = np.array(Image.fromarray(rgb).convert('L'), dtype=np.float32)
    assert np.array_equal((grey[0, 0].detach() * 255).round().numpy(), expected)
    grey.sum().backward()
    assert torch.allclose(x.grad[0, :, 0, 0], torch.tensor([0.299, 0.587, 0.114]), atol=1e-4)
    plain = pil_luma(x.detach(), quantize=False)
    assert (plain - grey.detach()).abs().max() <= 0.5 / 255 + 1e-6  # float luma differs by the rounding only


@pytest.mark.parametrize('size,count', [(33, 1), (64, 1), (96, 2), (100, 3), (512, 15)])
def test_patch_grid_has_the_reference_stride_quirk(size, count):
    grey = torch.rand(1, 1, size, 70)
    patches = cnniqa_patches(grey)
    positions = [(i, j) for i in range(0, size - 32, 32) for j in range(0, 70 - 32, 32)]  # the reference loop
    assert patches.shape == (1, len(positions), 32, 32) and len(positions) == count * 2
    for k, (i, j) in enumerate(positions):
        assert torch.equal(patches[0, k], grey[0, 0, i:i + 32, j:j + 32])


def test_too_small_image_is_a_clear_error():
    with pytest.raises(ValueError, match='larger than 32x32'):
        cnniqa_patches(torch.rand(1, 1, 32, 64))


def test_local_normalisation_matches_scipy_symm_convolution():
    from scipy.signal import convolve2d

    patch = np.random.default_rng(1).random((32, 32))
    patch[:8, :8] = 0.5  # a flat corner: sigma 0 there
    kernel = np.ones((3, 3)) / 9
    mu = convolve2d(patch, kernel, boundary='symm', mode='same')
    sigma = np.sqrt(np.maximum(convolve2d(patch ** 2, kernel, boundary='symm', mode='same') - mu ** 2, 0))
    expected = (patch - mu) / (sigma + 1)
    got = local_normalize(torch.from_numpy(patch).float().view(1, 1, 32, 32))[0, 0].numpy()
    assert np.abs(got - expected).max() < 2e-5


def test_scorer_finds_legacy_weights_in_subfolder_is_frozen_batched_and_differentiable(random_weights):
    info = get_metric_info('cnniqa_live', 'NR')
    assert info.custom and info.lower_better and info.better == 'lower'
    scorer = build_scorer('cnniqa_live', device='cpu', weights_dir=random_weights)
    assert scorer.weight_files == [osp.join(random_weights, 'cnniqa', 'CNNIQA-LIVE')]
    scorer.train()
    assert not scorer.net.training and not any(p.requires_grad for p in scorer.parameters())
    x = torch.rand(3, 3, 80, 72, requires_grad=True)
    quality = scorer(x)
    assert quality.shape == (3,)
    singles = torch.stack([scorer.raw(x[i:i + 1].detach())[0] for i in range(3)])
    assert torch.allclose(-quality.detach(), singles, atol=1e-5)  # higher is worse: negated
    quality.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    flat = torch.full((1, 3, 64, 64), 0.5, requires_grad=True)  # sigma 0 everywhere: the gradient stays finite
    scorer(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()
    # weights_path wins over the search path; the directory alone also works (flat layout)
    direct = build_scorer('cnniqa_live', device='cpu',
                          weights_path=osp.join(random_weights, 'cnniqa', 'CNNIQA-LIVE'))
    assert torch.allclose(direct.raw(x.detach()), singles, atol=1e-5)


def test_missing_or_unsafe_weights_fail_clearly(tmp_path):
    clear_scorer_cache()
    with pytest.raises(WeightsNotFoundError, match='CNNIQA-LIVE') as err:
        build_scorer('cnniqa_live', device='cpu', weights_dir=str(tmp_path))
    assert str(tmp_path / 'cnniqa') in str(err.value) and 'never downloaded' in str(err.value)
    bad = tmp_path / 'CNNIQA-LIVE'
    torch.save({'conv1.weight': Image.new('L', (2, 2))}, bad)  # a pickled object, not a tensor
    with pytest.raises(UnsafeFileError, match='cnniqa_live'):
        build_scorer('cnniqa_live', device='cpu', weights_dir=str(tmp_path))


def test_real_weights_reproduce_the_sanity_values(shared_dir):
    path = osp.join(shared_dir, 'iqa_weights', 'cnniqa', 'CNNIQA-LIVE')
    if not osp.isfile(path):
        pytest.skip('CNNIQA-LIVE is not in ../shared/iqa_weights')
    scorer = build_scorer('cnniqa_live', device='cpu', weights_dir=osp.join(shared_dir, 'iqa_weights'))
    # ../shared/iqa_weights/README.md, CNNIQA sanity: HR, Gaussian blur sigma 2 (PIL), bicubic x4 down-up (PIL)
    expected = {'baby': (14.81, 59.7, 55.9), 'butterfly': (12.66, 59.7, 57.8)}
    for name, (hr, blur, down_up) in expected.items():
        img = Image.open(osp.join(shared_dir, 'benchmarks', 'Set5', 'HR', f'{name}.png')).convert('RGB')
        w, h = img.size
        variants = [img, img.filter(ImageFilter.GaussianBlur(2)),
                    img.resize((w // 4, h // 4), Image.BICUBIC).resize((w, h), Image.BICUBIC)]
        with torch.no_grad():
            got = [float(scorer.raw(_to_tensor(v))[0]) for v in variants]
        assert got == pytest.approx([hr, blur, down_up], abs=0.1), (name, got)


def test_option_file_use_as_loss_and_guide(random_weights):
    """train.iqa_opt {type: NRIQALoss, metric: cnniqa_live, weights_dir} and gt_selection pass the start-up checks,
    and the loss pulls the SR output towards a lower predicted DMOS."""
    from basicsr.losses import build_loss

    from nriqa_basicsr.options import prepare_options

    block = {'type': 'NRIQALoss', 'metric': 'cnniqa_live', 'loss_weight': 0.004, 'weights_dir': random_weights}
    opt = {'model_type': 'NRIQAModel', 'scale': 4,
           'datasets': {'train': {'type': 'MultiGTDataset', 'layout': 'hggt', 'dataroot_gt': 'gts', 'gt_size': 64}},
           'train': {'iqa_opt': dict(block), 'gt_selection': {'policy': 'amo', 'metrics': {'cnniqa_live': 1.0},
                                                              'metric_opts': {'cnniqa_live':
                                                                              {'weights_dir': random_weights}}}},
           'val': {'metrics': {'cnniqa': {'type': 'calculate_nriqa', 'metric': 'cnniqa_live'}}}}
    prepare_options(opt)
    assert opt['val']['metrics']['cnniqa']['better'] == 'lower'
    loss = build_loss(dict(block, device='cpu'))
    pred = torch.rand(2, 3, 64, 64, requires_grad=True)
    value = loss(pred)
    value.backward()
    raw = build_scorer('cnniqa_live', device='cpu', weights_dir=random_weights).raw(pred.detach())
    assert value.item() == pytest.approx(0.004 * float(raw.mean()), rel=1e-5)  # -(-DMOS): lower DMOS, lower loss
    assert pred.grad.abs().sum() > 0
