"""``NRIQAModel``: SR training with NR-IQA-guided GT selection, an NR-IQA loss term and LoRA fine-tuning.

The model orchestrates one training step: :meth:`~NRIQAModel.feed_data` (LR, K candidate GTs) → GT selection →
losses → optimizer steps. The method's logic and the training infrastructure live in their own modules:

* GT selection per sample (``train.gt_selection``) → :mod:`nriqa_basicsr.data.selection`; AMO scores the K
  candidate crops of the whole batch in one no-grad pass of the model's own scorers (:mod:`nriqa_basicsr.iqa`);
* the NR-IQA loss (``train.iqa_opt``) → :class:`nriqa_basicsr.losses.nriqa_loss.NRIQALoss`; HGGT's negative
  loss (``train.neg_opt``) → :mod:`nriqa_basicsr.losses.negative_loss`; the GAN terms → :mod:`.gan`;
* LoRA on a frozen generator (``network_g_lora``) → :mod:`nriqa_basicsr.archs.lora`;
* blind LR synthesis on the device (dataset ``lq_mode: realesrgan``) → :mod:`nriqa_basicsr.data.degradation`;
* skipping non-finite steps (``train.max_consecutive_nonfinite``) → :mod:`nriqa_basicsr.step_guard`;
  ``train.amp`` / ``channels_last`` / ``compile`` → :mod:`nriqa_basicsr.precision`;
* checkpoint names, keys, loading and atomic saving → :mod:`nriqa_basicsr.checkpoint`.

Base class: BasicSR's ``SRModel``, whose validation, testing and visuals are reused as they are. ``SRGANModel``
would add only its GAN set-up, step and save, all of which this model replaces (the GAN is optional, in two
formulations, under the step guard), so the GAN parts live here. ``SRModel.__init__`` is not called: it wraps
the generator for the device before loading it, and LoRA must be injected in between (DDP registers the
parameters it synchronises), so the generator is built here after ``BaseModel.__init__``.

Without ``network_d`` the model trains GAN-free (the FT stage). With it, ``train.gan_formulation`` picks the GAN
of the BasicSR model an option file comes from: ``standard`` (``SRGANModel`` / ``RealESRGANModel``, the
default) or ``relativistic`` (``ESRGANModel``'s relativistic average).
"""

from __future__ import annotations

import os.path as osp
from collections import OrderedDict
from typing import Any

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from nriqa_basicsr import checkpoint as ckpt
from nriqa_basicsr.archs.lora import parameter_counts
from nriqa_basicsr.best_checkpoint import TrackedValidation
from nriqa_basicsr.config.schema import decode_or_raise
from nriqa_basicsr.config.sections import LoRAOptions, NRIQATrainOptions
from nriqa_basicsr.data.degradation import degrade_realesrgan
from nriqa_basicsr.data.multigt_source import HGGT_VARIANTS
from nriqa_basicsr.data.selection import combine_scores, select, zscore_stats
from nriqa_basicsr.iqa.scorer import private_scorers
from nriqa_basicsr.losses.negative_loss import negative_loss, negative_weight_map, pick_negative_pairs
from nriqa_basicsr.models.gan import discriminator_losses, generator_loss
from nriqa_basicsr.precision import Precision, compile_in_place
from nriqa_basicsr.rng_state import capture_rng_state, restore_rng_state
from nriqa_basicsr.step_guard import StepGuard, nonfinite_terms

__all__ = ['NRIQAModel']


@MODEL_REGISTRY.register()
class NRIQAModel(TrackedValidation, SRModel):
    """See the module docstring and the README's option reference."""

    def __init__(self, opt: dict[str, Any]) -> None:
        BaseModel.__init__(self, opt)  # not SRModel's: see the module docstring
        self.lora_opt = (decode_or_raise(LoRAOptions, opt['network_g_lora'], 'network_g_lora')
                         if opt.get('network_g_lora') is not None else None)
        if self.lora_opt is not None and not opt['path'].get('pretrain_network_g'):
            raise ValueError('network_g_lora (FT stage) needs path.pretrain_network_g: LoRA adapts a trained '
                             'generator, it does not train one from scratch.')
        self.net_g = self.model_to_device(self._build_generator(ckpt.PARAMS))
        self.print_network(self.net_g)
        if self.is_train:
            self.init_training_settings()

    # ------------------------------------------------------------------------------------------ set-up
    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """BasicSR's wrapping, plus DistributedDataParallel on CPU (gloo) where BasicSR assumes CUDA."""
        if not (self.opt['dist'] and self.device.type == 'cpu'):
            return super().model_to_device(net)
        return torch.nn.parallel.DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))

    def _build_generator(self, weight_set: str) -> torch.nn.Module:
        """The generator (``weight_set`` ``params``) or its EMA copy (``params_ema``), with the base weights and
        LoRA adapters of ``path`` read by the rule of :mod:`nriqa_basicsr.checkpoint`."""
        path_opt, logger = self.opt['path'], get_root_logger()
        base, adapters = path_opt.get('pretrain_network_g'), path_opt.get('pretrain_network_g_lora')
        # resuming a full (non-FT) run: the base is the run's own net_g_<iter>.pth, read by set
        own = bool(path_opt.get('resume_state')) and self.lora_opt is None
        key = weight_set if own else ckpt.base_key(path_opt.get('param_key_g'))
        net = ckpt.build_generator(self.opt['network_g'], base, key, path_opt.get('strict_load_g', True),
                                   self.lora_opt, adapters, weight_set)
        if base:
            logger.info(f'Loaded generator from {base} [{key}].')
        if adapters and self.lora_opt is not None:
            logger.info(f'Loaded LoRA adapters from {adapters} [{weight_set}].')
        return net

    def init_training_settings(self) -> None:
        train_opt, path_opt, logger = self.opt['train'], self.opt['path'], get_root_logger()
        cfg = decode_or_raise(NRIQATrainOptions, train_opt, 'train')  # our train keys, typed and checked
        self.net_g.train()
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            self.net_g_ema = self._build_generator(ckpt.PARAMS_EMA).to(self.device)
            if not path_opt.get('pretrain_network_g'):
                self.model_ema(0)
            self.net_g_ema.eval().requires_grad_(False)
        self.use_gan = 'network_d' in self.opt
        if self.use_gan:
            self._init_discriminator(train_opt, path_opt, cfg.gan)
        self.net_d_iters = train_opt.get('net_d_iters', 1)
        self.net_d_init_iters = train_opt.get('net_d_init_iters', 0)

        self.cri_pix = build_loss(train_opt['pixel_opt']).to(self.device) if train_opt.get('pixel_opt') else None
        self.cri_perceptual = (build_loss(train_opt['perceptual_opt']).to(self.device)
                               if train_opt.get('perceptual_opt') else None)
        self.cri_iqa = build_loss(dict(train_opt['iqa_opt'], device=str(self.device))) if train_opt.get('iqa_opt') \
            else None
        self.neg_weight = cfg.neg_opt.loss_weight if cfg.neg_opt else 0.0
        if not (self.cri_pix or self.cri_perceptual or self.cri_iqa):
            raise ValueError('NRIQAModel needs at least one of train.pixel_opt, train.perceptual_opt, train.iqa_opt.')

        self.selection = cfg.gt_selection
        self.sel_generator = torch.Generator().manual_seed(int(self.opt.get('manual_seed') or 0) + self.opt['rank'])
        # the model's own scorers (it may compile them); candidates are decoded GT crops, in [0, 1] by
        # construction: no range check (two host syncs a call)
        scorers = private_scorers()
        self.amo_scorers = {m: scorers.get(m, 'NR', self.device,
                                           **{'check_range': False, **self.selection.metric_opts.get(m, {})})
                            for m in (self.selection.metrics if self.selection.policy == 'amo' else {})}

        self.precision = Precision.from_options(cfg.amp, cfg.channels_last, self.device)
        self.scaler = self.precision.grad_scaler()
        self.precision.apply([self.net_g, *([self.net_d] if self.use_gan else []), *self.amo_scorers.values()])
        loss_scorers = self.cri_iqa.scorers(self.device).values() if self.cri_iqa else []
        compile_in_place(self.get_bare_model(self.net_g), [*self.amo_scorers.values(), *loss_scorers],
                         cfg.compile)
        self.step_guard = StepGuard(cfg.max_consecutive_nonfinite, self.device,
                                    bool(self.opt.get('dist')), self.scaler.is_enabled(), path_opt.get('models'))
        self.setup_optimizers()
        self.setup_schedulers()
        trainable, total = parameter_counts(self.get_bare_model(self.net_g))
        logger.info(f'Generator: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%)'
                    + (' — LoRA adapters only' if self.lora_opt is not None else ''))

    def _init_discriminator(self, train_opt: dict[str, Any], path_opt: dict[str, Any], gan_formulation: str) -> None:
        net_d = build_network(self.opt['network_d'])
        if path_opt.get('pretrain_network_d'):
            path, key = path_opt['pretrain_network_d'], path_opt.get('param_key_d', ckpt.PARAMS)
            ckpt.load_matching(net_d, ckpt.load_checkpoint_params(path, key), path, path_opt.get('strict_load_d', True))
            get_root_logger().info(f'Loaded {type(net_d).__name__} from {path} [{key}].')
        self.net_d = self.model_to_device(net_d)
        self.print_network(self.net_d)
        self.net_d.train()
        self.cri_gan = build_loss(train_opt['gan_opt']).to(self.device)
        self.gan_formulation = gan_formulation
        like = 'relativistic average, as ESRGANModel' if self.gan_formulation == 'relativistic' else \
            'standard, as SRGANModel / RealESRGANModel'
        gan = train_opt['gan_opt']
        get_root_logger().info(f'GAN formulation: {self.gan_formulation} ({like}; gan_type {gan.get("type")}/'
                               f'{gan.get("gan_type")}); set train.gan_formulation to choose.')

    def setup_optimizers(self) -> None:
        train_opt = self.opt['train']
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        optim_g = dict(train_opt['optim_g'])
        self.optimizer_g = self.get_optimizer(optim_g.pop('type'), params, **optim_g)
        self.optimizers.append(self.optimizer_g)
        if self.use_gan:
            optim_d = dict(train_opt['optim_d'])
            self.optimizer_d = self.get_optimizer(optim_d.pop('type'), self.net_d.parameters(), **optim_d)
            self.optimizers.append(self.optimizer_d)

    # ------------------------------------------------------------------------------------------ data, selection
    def feed_data(self, data: dict[str, Any]) -> None:
        """A training batch sets ``lq``, ``gts`` (B, K, ...), the selection ``selected`` and its target ``gt``,
        and ``skip_reasons`` (non-empty: the step cannot train, see :meth:`optimize_parameters`)."""
        if self.validating or not self.is_train or 'gts' not in data:
            if 'lq' not in data:
                raise KeyError('validation data needs "lq" (use lq_mode paired or bicubic for validation sets).')
            super().feed_data(data)
            self.selected, self.skip_reasons = None, []  # one GT per sample: nothing to select
            return
        gts = data['gts'].to(self.device, non_blocking=True)
        if 'lq' in data:
            lq = data['lq'].to(self.device, non_blocking=True)
        else:  # blind degradation of the original, on the device
            kernels = {n: data[n].to(self.device) for n in ('kernel1', 'kernel2', 'sinc_kernel') if n in data}
            lq = degrade_realesrgan(gts[:, 0], kernels['kernel1'], kernels['sinc_kernel'],
                                    self.opt.get('degradation') or {}, self.opt['scale'],
                                    kernel2=kernels.get('kernel2'), generator=self.sel_generator)
        self.lq = self.precision.layout(lq)
        self.labels, self.label_counts, self.gts = data['labels'], data['label_counts'], gts
        self.selected, self.skip_reasons = self._select(data, gts)
        self.gt = gts[torch.arange(gts.shape[0], device=self.device), self.selected.to(self.device)]

    @torch.no_grad()
    def score_candidates(self, gts: torch.Tensor) -> torch.Tensor:
        """AMO: quality ``(B, K)`` of all candidate crops of the batch, one scorer pass per metric."""
        batch, k = gts.shape[:2]
        flat = self.precision.layout(gts.flatten(0, 1))
        with self.precision.autocast():
            per_metric = {m: s(flat).float().view(batch, k) for m, s in self.amo_scorers.items()}
        weights = self.selection.metrics
        # several metrics are put on one scale with the batch's own statistics (no dataset-level stats online)
        stats = {m: zscore_stats(v) for m, v in per_metric.items()} if len(weights) > 1 else None
        return combine_scores(per_metric, weights, stats)

    def _select(self, data: dict[str, Any], gts: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """(the GT index of every sample, why the step cannot train: non-finite candidate scores)."""
        policy = self.selection.policy
        scores = None
        if policy in ('sma', 'smp', 'amo_cached'):
            key = 'grid_scores' if policy == 'amo_cached' else 'scores'
            if key not in data:
                raise KeyError(f'policy "{policy}" needs "{key}" in the batch: configure score_file on the training '
                               f'dataset' + (' with a score grid' if key == 'grid_scores' else '') + '.')
            scores = data[key]
        elif policy == 'amo':
            scores = self.score_candidates(gts).cpu()
            bad = nonfinite_terms({f'candidate scores ({", ".join(self.selection.metrics)})': scores})
            if bad:  # the step is skipped; any valid choice keeps the batch well-formed
                return torch.zeros(gts.shape[0], dtype=torch.long), bad
        return select(policy, labels=data['labels'], scores=scores, tau=self.selection.tau,
                      generator=self.sel_generator, include_original=self.selection.include_original,
                      exclude_negatives=self.selection.exclude_negatives, num_variants=gts.shape[1]), []

    # ------------------------------------------------------------------------------------------ losses, steps
    def _negative_term(self, output: torch.Tensor) -> torch.Tensor | None:
        neg_idx, pos_idx, has_neg, has_pos = pick_negative_pairs(self.labels, self.sel_generator)
        if not bool(has_neg.any()):
            return None
        rows = torch.arange(self.gts.shape[0], device=self.device)
        neg_idx, pos_idx = neg_idx.to(self.device), pos_idx.to(self.device)
        negative, positive = self.gts[rows, neg_idx], self.gts[rows, pos_idx]
        counts = self.label_counts.to(self.device)
        weight_map = negative_weight_map(self.gts[:, 0], positive, negative, counts[rows, pos_idx],
                                         counts[rows, neg_idx], has_pos.to(self.device))
        return self.neg_weight * negative_loss(output, negative, weight_map, has_neg)

    def _generator_losses(self, output: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Every generator loss term (``l_*``) and the logged qualities (``iqa_*``) of ``output``."""
        losses: OrderedDict[str, torch.Tensor] = OrderedDict()
        if self.cri_pix:
            losses['l_g_pix'] = self.cri_pix(output, self.gt)
        if self.cri_perceptual:
            percep, style = self.cri_perceptual(output, self.gt)
            if percep is not None:
                losses['l_g_percep'] = percep
            if style is not None:
                losses['l_g_style'] = style
        if self.use_gan:
            losses['l_g_gan'] = generator_loss(self.net_d, self.cri_gan, self.gan_formulation, self.gt, self.output,
                                               self.precision.autocast)
        if self.cri_iqa:
            with self.precision.autocast():  # the metric network runs under the same precision as the generator
                losses['l_g_iqa'] = self.cri_iqa(output).float()
            for name, value in self.cri_iqa.last_quality.items():
                losses[f'iqa_{name}'] = value
        if self.neg_weight:
            term = self._negative_term(output)
            # always logged (0 without negatives): every DDP rank must reduce the same keys
            losses['l_g_neg'] = output.new_zeros(()) if term is None else term
        return losses

    def optimize_parameters(self, current_iter: int) -> None:
        guard = self.step_guard
        if guard.any_rank(self.skip_reasons):  # no target to train towards: skip the whole step
            guard.account(self.skip_reasons or ['candidate scores on another rank'], current_iter)
            self.log_dict = OrderedDict()
            return
        loss_dict: OrderedDict[str, torch.Tensor] = OrderedDict()
        bad: list[str] = []
        if self.use_gan:
            self.net_d.requires_grad_(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.precision.autocast():
            self.output = self.net_g(self.lq)
        if not self.use_gan or (current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters):
            loss_dict = self._generator_losses(self.output.float())
            terms = {n: v for n, v in loss_dict.items() if n.startswith('l_')}
            bad = nonfinite_terms(terms)
            if guard.any_rank(bad):
                bad = bad or ['a loss term on another rank']
            else:
                self.scaler.scale(sum(terms.values())).backward()
                bad = guard.gradients(self.net_g, self.optimizer_g, 'gradients of net_g')
                if not bad:
                    self.scaler.step(self.optimizer_g)
                    self.scaler.update()
        if self.use_gan and not bad:  # a skipped generator step skips the discriminator's too
            bad = self._discriminator_step(loss_dict)
        guard.account(bad, current_iter)
        self._log_selection(loss_dict, current_iter)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _discriminator_step(self, loss_dict: OrderedDict) -> list[str]:
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        l_real, l_fake, real, fake = discriminator_losses(self.net_d, self.cri_gan, self.gan_formulation, self.gt,
                                                          self.output, self.precision.autocast)
        loss_dict.update(l_d_real=l_real, l_d_fake=l_fake, out_d_real=real.detach().mean(),
                         out_d_fake=fake.detach().mean())
        bad = nonfinite_terms({'l_d_real': l_real, 'l_d_fake': l_fake})
        if self.step_guard.any_rank(bad):
            return bad or ['a discriminator loss on another rank']
        self.scaler.scale(l_real + l_fake).backward()
        bad = self.step_guard.gradients(self.net_d, self.optimizer_d, 'gradients of net_d')
        if not bad:
            self.scaler.step(self.optimizer_d)
            self.scaler.update()
        return bad

    def _log_selection(self, loss_dict: OrderedDict, current_iter: int) -> None:
        """Fraction of the batch supervised by each GT variant (``sel_<variant>``), and the scorer's mean
        quality of the SR output (``iqa_<metric>``) when no NR-IQA loss already reports it."""
        if self.selected is None:
            return
        k = self.gts.shape[1]
        counts = torch.bincount(self.selected.cpu(), minlength=k).float() / self.selected.numel()
        names = self.opt['datasets']['train'].get('gt_variants') or (
            HGGT_VARIANTS if k == len(HGGT_VARIANTS) else [str(i) for i in range(k)])
        for name, value in zip(names, counts):
            loss_dict[f'sel_{name}'] = value.to(self.device)
        if self.amo_scorers and not self.cri_iqa and current_iter % self.opt['logger'].get('print_freq', 100) == 0:
            with torch.no_grad():
                for name, scorer in self.amo_scorers.items():
                    loss_dict[f'iqa_{name}'] = scorer(self.output.detach().float().clamp(0, 1)).mean()

    # ------------------------------------------------------------------------------------------ checkpoints
    def _generators(self) -> list[torch.nn.Module]:
        return [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])

    def _save_best(self, filename: str) -> None:
        """A best validation's generator (and EMA), deployable (FT: merged), for :class:`TrackedValidation`."""
        if self.opt['rank'] == 0:
            ckpt.save_checkpoint(ckpt.deployable_state(self._generators(), self.lora_opt is not None),
                                 osp.join(self.opt['path']['models'], filename))

    def save(self, epoch: int, current_iter: int) -> None:
        """The checkpoints of :mod:`nriqa_basicsr.checkpoint` (rank 0 writes): generator files, the
        discriminator, and (not at the end, ``current_iter`` -1) the training state."""
        if self.opt['rank'] != 0:
            return
        models = self.opt['path']['models']
        files = ckpt.generator_files(self._generators(), current_iter, self.lora_opt is not None)
        if self.use_gan:
            files[ckpt.network_file('d', current_iter)] = {ckpt.PARAMS: ckpt.network_state(self.net_d)}
        for name, payload in files.items():
            ckpt.save_checkpoint(payload, osp.join(models, name))
        if current_iter != -1:
            # BasicSR's state plus every RNG (global ones, GT selection), the AMP scaler and the step guard
            state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                     'schedulers': [s.state_dict() for s in self.schedulers],
                     'selection_rng': self.sel_generator.get_state(), 'rng': capture_rng_state(),
                     'scaler': self.scaler.state_dict(), **self.step_guard.state_dict()}
            ckpt.save_checkpoint(state, osp.join(self.opt['path']['training_states'], ckpt.state_file(current_iter)))

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        super().resume_training(resume_state)
        if 'selection_rng' in resume_state:
            self.sel_generator.set_state(resume_state['selection_rng'].cpu())
        if 'rng' in resume_state:
            restore_rng_state(resume_state['rng'])
        if resume_state.get('scaler'):
            self.scaler.load_state_dict(resume_state['scaler'])
        self.step_guard.load_state_dict(resume_state)
        self._resume_iter = int(resume_state['iter'])  # best-checkpoint entries after it are validated again
