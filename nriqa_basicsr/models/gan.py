"""The adversarial loss terms of :class:`~nriqa_basicsr.models.nriqa_model.NRIQAModel`, in the formulation of the
BasicSR model an option file comes from (``train.gan_formulation``).

``standard`` is ``SRGANModel`` / ``RealESRGANModel`` (D(x) against the real/fake label), ``relativistic`` is
``ESRGANModel``'s relativistic average GAN (D(x) − mean D(other side)). The discriminator is called in the same
order as in those models (its spectral norm updates its power-iteration state on every training-mode call), so
the values equal theirs on the same batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

__all__ = ['discriminator_losses', 'generator_loss']

Autocast = Callable[[], contextlib.AbstractContextManager]


def generator_loss(net_d: torch.nn.Module, cri_gan: torch.nn.Module, formulation: str, real: torch.Tensor,
                   fake: torch.Tensor, autocast: Autocast) -> torch.Tensor:
    """The generator's adversarial loss for SR output ``fake`` (gradients reach it) and GT ``real``."""
    if formulation == 'relativistic':  # ESRGANModel.optimize_parameters
        with autocast():
            d_real = net_d(real).detach().float()
            d_fake = net_d(fake).float()
        l_real = cri_gan(d_real - torch.mean(d_fake), False, is_disc=False)
        l_fake = cri_gan(d_fake - torch.mean(d_real), True, is_disc=False)
        return (l_real + l_fake) / 2
    with autocast():  # SRGANModel.optimize_parameters
        d_fake = net_d(fake).float()
    return cri_gan(d_fake, True, is_disc=False)


def discriminator_losses(net_d: torch.nn.Module, cri_gan: torch.nn.Module, formulation: str, real: torch.Tensor,
                         fake: torch.Tensor, autocast: Autocast
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(l_d_real, l_d_fake, D(real), D(fake))`` for the discriminator's step (``fake`` is detached here)."""
    fake = fake.detach()
    if formulation == 'relativistic':  # ESRGANModel: halves, each against the other side's mean
        with autocast():
            fake_ref = net_d(fake).detach().float()
            d_real = net_d(real).float()
            d_fake = net_d(fake).float()
        l_real = cri_gan(d_real - torch.mean(fake_ref), True, is_disc=True) * 0.5
        l_fake = cri_gan(d_fake - torch.mean(d_real.detach()), False, is_disc=True) * 0.5
        return l_real, l_fake, d_real, d_fake
    with autocast():
        d_real = net_d(real).float()
        d_fake = net_d(fake).float()
    return cri_gan(d_real, True, is_disc=True), cri_gan(d_fake, False, is_disc=True), d_real, d_fake
