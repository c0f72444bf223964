"""NRIQAModel reproduces the GAN of the BasicSR model an option file comes from (train.gan_formulation)."""

import copy
import logging

import pytest
import torch

from nriqa_basicsr.config.sections import parse_gan_formulation
from nriqa_basicsr.options import OptionsError, prepare_options

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 2}
# UNetDiscriminatorSN: spectral norm updates on every training-mode call, so the call order is tested too
NET_D = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8, 'skip_connection': True}
LOSS_KEYS = ('l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake')


def _opt(model_type, tmp_path, formulation=None, ema=0.0):
    train = {'ema_decay': ema, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
             'optim_d': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
             'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 10,
             'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
             'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                         'loss_weight': 0.1},
             'net_d_iters': 1, 'net_d_init_iters': 0}
    if formulation is not None:
        train['gan_formulation'] = formulation
    return {'name': 'gan', 'model_type': model_type, 'scale': 2, 'num_gpu': 0, 'manual_seed': 0, 'is_train': True,
            'dist': False, 'rank': 0, 'world_size': 1, 'auto_resume': False, 'datasets': {},
            'network_g': dict(NET_G), 'network_d': dict(NET_D),
            'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                     'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
            'train': train, 'logger': {'print_freq': 1}}


def _model(opt, like=None):
    from basicsr.models import build_model

    torch.manual_seed(0)
    model = build_model(copy.deepcopy(prepare_options(opt)))
    if like is not None:  # identical starting weights (incl. the spectral-norm state of D)
        model.net_g.load_state_dict(like.net_g.state_dict())
        model.net_d.load_state_dict(like.net_d.state_dict())
    return model


def _losses(model, batches):
    out = []
    for it, batch in enumerate(batches, 1):
        torch.manual_seed(it)
        model.feed_data(batch)
        model.optimize_parameters(it)
        out.append({k: float(model.log_dict[k]) for k in LOSS_KEYS})
    return out


@pytest.fixture(scope='module')
def batches():
    g = torch.Generator().manual_seed(0)
    return [{'lq': torch.rand(2, 3, 16, 16, generator=g), 'gt': torch.rand(2, 3, 32, 32, generator=g)}
            for _ in range(3)]


@pytest.mark.parametrize('reference, formulation', [('ESRGANModel', 'relativistic'), ('SRGANModel', None)])
def test_losses_equal_the_basicsr_model_converted_from(tmp_path, batches, reference, formulation):
    """An ESRGAN (SRGAN) option file with model_type NRIQAModel gives ESRGANModel's (SRGANModel's) loss values on
    the same batches, over three steps (so the gradients and optimizer steps agree too)."""
    ref = _model(_opt(reference, tmp_path), None)
    ours = _model(_opt('NRIQAModel', tmp_path, formulation), ref)
    expected, got = _losses(ref, batches), _losses(ours, batches)
    for step, (e, g) in enumerate(zip(expected, got), 1):
        for key in LOSS_KEYS:
            assert g[key] == pytest.approx(e[key], rel=1e-5, abs=1e-6), (step, key, g, e)


def test_the_two_formulations_differ_and_the_log_names_the_one_used(tmp_path, batches, caplog):
    """The formulation matters (D's real loss differs at iteration 1), and the log says which one runs."""
    standard = _model(_opt('NRIQAModel', tmp_path))
    with caplog.at_level(logging.INFO, logger='basicsr'):
        relativistic = _model(_opt('NRIQAModel', tmp_path, 'relativistic'), standard)
    assert 'GAN formulation: relativistic' in caplog.text
    first_std, first_rel = _losses(standard, batches[:1])[0], _losses(relativistic, batches[:1])[0]
    assert abs(first_std['l_d_real'] - first_rel['l_d_real']) > 0.1


def test_bad_or_misplaced_formulation_is_refused(tmp_path):
    with pytest.raises(OptionsError, match='gan_formulation.*not one of'):
        prepare_options(_opt('NRIQAModel', tmp_path, 'relativistc'))
    with pytest.raises(OptionsError, match='set model_type: NRIQAModel and train.gan_formulation: relativistic'):
        prepare_options(dict(_opt('ESRGANModel', tmp_path), train=dict(
            _opt('ESRGANModel', tmp_path)['train'], iqa_opt={'type': 'NRIQALoss', 'metrics': {'niqe': 1.0}})))
    assert parse_gan_formulation(None) == 'standard'
    assert parse_gan_formulation('SRGANModel') == parse_gan_formulation('RealESRGANModel') == 'standard'
    assert parse_gan_formulation('ESRGANModel') == 'relativistic'
