"""``NRIQAModel``: SR training with NR-IQA-guided GT selection, an NR-IQA loss term and LoRA fine-tuning.

Built on BasicSR's ``SRGANModel`` (discriminator, EMA, schedulers, saving, validation are reused). What it adds
is orchestration; the method's logic lives in its own modules:

* GT selection per sample (``train.gt_selection``) → :mod:`nriqa_basicsr.data.selection`; AMO scores the K
  candidate crops of the whole batch in one no-grad pass of the scorer (:mod:`nriqa_basicsr.iqa`);
* the NR-IQA loss (``train.iqa_opt``) → :class:`nriqa_basicsr.losses.nriqa_loss.NRIQALoss`;
* HGGT's negative loss (``train.neg_opt``) → :mod:`nriqa_basicsr.losses.negative_loss`;
* LoRA on a frozen generator (``network_g_lora``) → :mod:`nriqa_basicsr.archs.lora`;
* blind LR synthesis on the device (dataset ``lq_mode: realesrgan``) → :mod:`nriqa_basicsr.data.degradation`.

The GAN is optional: without ``network_d`` the model trains GAN-free (the FT stage). With it,
``train.gan_formulation`` picks the GAN of the BasicSR model an option file comes from: ``standard``
(``SRGANModel`` / ``RealESRGANModel``, the default) or ``relativistic`` (``ESRGANModel``'s relativistic average).
"""

from __future__ import annotations

import contextlib
import os.path as osp
from collections import OrderedDict
from copy import deepcopy
from typing import Any

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from nriqa_basicsr.archs.lora import (
    inject_lora,
    load_lora_state_dict,
    lora_state_dict,
    merged_state_dict,
    parameter_counts,
)
from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.data.degradation import degrade_realesrgan
from nriqa_basicsr.data.selection import combine_scores, parse_selection_options, select, zscore_stats
from nriqa_basicsr.iqa import build_scorer
from nriqa_basicsr.losses.negative_loss import negative_loss, negative_weight_map, pick_negative_pairs
from nriqa_basicsr.rng_state import capture_rng_state, restore_rng_state
from nriqa_basicsr.safe_load import load_torch_file

__all__ = ['GAN_FORMULATIONS', 'NRIQAModel', 'CheckpointMismatchError', 'NonFiniteTrainingError',
           'parse_gan_formulation']

# train.gan_formulation: how the discriminator's outputs enter the GAN losses. BasicSR model names are accepted
# so that a converted option file can say where it comes from: SRGANModel / RealESRGANModel use the standard GAN
# (D(x) against the real/fake label), ESRGANModel the relativistic average GAN (D(x) - mean D(other side)).
GAN_FORMULATIONS = {'standard': 'standard', 'SRGANModel': 'standard', 'RealESRGANModel': 'standard',
                    'relativistic': 'relativistic', 'ESRGANModel': 'relativistic'}


def parse_gan_formulation(value: Any) -> str:
    """``train.gan_formulation`` (default ``standard``) as ``'standard'`` or ``'relativistic'``."""
    if value is None:
        return 'standard'
    if value not in GAN_FORMULATIONS:
        raise ValueError(f'train.gan_formulation: {value!r} is not one of {sorted(GAN_FORMULATIONS)} (standard = '
                         f'SRGANModel / RealESRGANModel, relativistic = ESRGANModel\'s relativistic average GAN).')
    return GAN_FORMULATIONS[value]


class CheckpointMismatchError(ValueError):
    """A pretrained checkpoint does not fit the configured network."""


class NonFiniteTrainingError(RuntimeError):
    """Too many optimizer steps in a row met a NaN/inf (``train.max_consecutive_nonfinite``)."""


def nonfinite_terms(values: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors holding a NaN or an infinity."""
    return [name for name, value in values.items() if not bool(torch.isfinite(value).all())]


def load_checkpoint_params(path: str, param_key: str | None) -> dict[str, torch.Tensor]:
    """Tensors of a BasicSR checkpoint (``param_key`` falls back to ``params``), loaded without unpickling code."""
    state = load_torch_file(path, 'cpu', 'pretrained checkpoint')
    if param_key is not None and isinstance(state, dict) and (param_key in state or 'params' in state):
        state = state[param_key if param_key in state else 'params']
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}


def load_matching(net: torch.nn.Module, state: dict[str, torch.Tensor], path: str, strict: bool = True) -> None:
    """``load_state_dict`` with an error that shows a few missing / unexpected / mis-shaped keys."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
              if k in state and state[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        def few(items: list[str]) -> str:
            return ', '.join(items[:4]) + (f' ... ({len(items)} in all)' if len(items) > 4 else '') or 'none'
        raise CheckpointMismatchError(
            f'{path} does not fit {type(net).__name__}: missing keys: {few(missing)}; unexpected keys: '
            f'{few(unexpected)}; shape mismatches: {few(shapes)}. Check network_g against the checkpoint '
            f'(arch, num_block, num_feat, scale) and param_key_g.')
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


@MODEL_REGISTRY.register()
class NRIQAModel(SRGANModel):
    """See the module docstring and the README's option reference."""

    def __init__(self, opt: dict[str, Any]) -> None:
        BaseModel.__init__(self, opt)
        self.lora_opt = opt.get('network_g_lora')
        if self.lora_opt is not None and not opt['path'].get('pretrain_network_g'):
            raise ValueError('network_g_lora (FT stage) needs path.pretrain_network_g: LoRA adapts a trained '
                             'generator, it does not train one from scratch.')
        self.net_g = self.model_to_device(self._build_generator(opt['path'].get('param_key_g', 'params'), 'params'))
        self.print_network(self.net_g)
        self._validating = False
        if self.is_train:
            self.init_training_settings()

    # ------------------------------------------------------------------------------------------ networks
    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """BasicSR's wrapping, plus DistributedDataParallel on CPU (gloo) where BasicSR assumes CUDA."""
        if not (self.opt['dist'] and self.device.type == 'cpu'):
            return super().model_to_device(net)
        return torch.nn.parallel.DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))

    def _build_generator(self, base_key: str, adapter_key: str) -> torch.nn.Module:
        """Generator with pretrained base weights, then LoRA adapters (when configured) and their checkpoint."""
        net = build_network(deepcopy(self.opt['network_g']))
        path_opt = self.opt['path']
        if path_opt.get('pretrain_network_g'):
            path = path_opt['pretrain_network_g']
            load_matching(net, load_checkpoint_params(path, base_key), path, path_opt.get('strict_load_g', True))
            get_root_logger().info(f'Loaded generator from {path} [{base_key}].')
        if self.lora_opt is not None:
            inject_lora(net, self.lora_opt, self.opt['network_g']['type'])
            adapters = path_opt.get('pretrain_network_g_lora')
            if adapters:
                load_lora_state_dict(net, load_checkpoint_params(adapters, adapter_key), adapters)
                get_root_logger().info(f'Loaded LoRA adapters from {adapters} [{adapter_key}].')
        return net

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        logger = get_root_logger()
        self.net_g.train()
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            has_base = bool(self.opt['path'].get('pretrain_network_g'))
            self.net_g_ema = self._build_generator('params_ema' if has_base else 'params', 'params_ema')
            self.net_g_ema = self.net_g_ema.to(self.device)
            if not has_base:
                self.model_ema(0)
            self.net_g_ema.eval()
            self.net_g_ema.requires_grad_(False)

        self.use_gan = 'network_d' in self.opt
        if self.use_gan:
            self.net_d = self.model_to_device(build_network(self.opt['network_d']))
            self.print_network(self.net_d)
            if self.opt['path'].get('pretrain_network_d'):
                self.load_network(self.net_d, self.opt['path']['pretrain_network_d'],
                                  self.opt['path'].get('strict_load_d', True),
                                  self.opt['path'].get('param_key_d', 'params'))
            self.net_d.train()
            self.cri_gan = build_loss(train_opt['gan_opt']).to(self.device)
            self.gan_formulation = parse_gan_formulation(train_opt.get('gan_formulation'))
            logger.info(f'GAN formulation: {self.gan_formulation} ('
                        + ('relativistic average, as ESRGANModel' if self.gan_formulation == 'relativistic'
                           else 'standard, as SRGANModel / RealESRGANModel') + f'; gan_type '
                        f'{train_opt["gan_opt"].get("type")}/{train_opt["gan_opt"].get("gan_type")}); set '
                        f'train.gan_formulation to choose.')
        self.net_d_iters = train_opt.get('net_d_iters', 1)
        self.net_d_init_iters = train_opt.get('net_d_init_iters', 0)

        self.cri_pix = build_loss(train_opt['pixel_opt']).to(self.device) if train_opt.get('pixel_opt') else None
        self.cri_perceptual = (build_loss(train_opt['perceptual_opt']).to(self.device)
                               if train_opt.get('perceptual_opt') else None)
        self.cri_iqa = build_loss(dict(train_opt['iqa_opt'], device=str(self.device))) if train_opt.get('iqa_opt') \
            else None
        self.neg_weight = float((train_opt.get('neg_opt') or {}).get('loss_weight', 0.0))
        if not (self.cri_pix or self.cri_perceptual or self.cri_iqa):
            raise ValueError('NRIQAModel needs at least one of train.pixel_opt, train.perceptual_opt, train.iqa_opt.')

        self.selection, problems = parse_selection_options(train_opt.get('gt_selection') or {'policy': 'original'})
        if problems:
            raise ValueError('\n'.join(problems))
        self.sel_generator = torch.Generator().manual_seed(int(self.opt.get('manual_seed') or 0) + self.opt['rank'])
        # candidates are decoded GT crops, in [0, 1] by construction: skip the range check (two host syncs a call)
        self.amo_scorers = {m: build_scorer(m, 'NR', self.device,
                                            **{'check_range': False, **self.selection.metric_opts.get(m, {})})
                            for m in (self.selection.metrics if self.selection.policy == 'amo' else {})}

        self._setup_precision(train_opt)
        self._setup_compile(train_opt.get('compile', False))
        self.nonfinite_skips = self.nonfinite_streak = 0
        self.nonfinite_limit = int(train_opt.get('max_consecutive_nonfinite', 5))
        self._bad_scores: list[str] = []
        self.setup_optimizers()
        self.setup_schedulers()
        trainable, total = parameter_counts(self.get_bare_model(self.net_g))
        logger.info(f'Generator: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f}%)'
                    + (' — LoRA adapters only' if self.lora_opt is not None else ''))

    def _setup_precision(self, train_opt: dict[str, Any]) -> None:
        amp = train_opt.get('amp', False)
        amp = {True: 'bf16', 'false': False, None: False}.get(amp, amp)
        if amp not in (False, 'bf16', 'fp16'):
            raise ValueError(f'train.amp must be bf16, fp16 or false, got {amp!r}.')
        on_cuda = self.device.type == 'cuda'
        if (amp or train_opt.get('channels_last')) and not on_cuda:
            get_root_logger().info('train.amp / train.channels_last apply on CUDA only; ignored on this device.')
        self.amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp) if on_cuda else None
        self.scaler = torch.amp.GradScaler('cuda', enabled=on_cuda and amp == 'fp16')
        self.channels_last = bool(train_opt.get('channels_last')) and on_cuda
        if self.channels_last:
            for net in [self.net_g] + ([self.net_d] if self.use_gan else []):
                net.to(memory_format=torch.channels_last)
            for scorer in self.amo_scorers.values():
                scorer.to(memory_format=torch.channels_last)

    def _setup_compile(self, opt: bool | dict[str, Any]) -> None:
        """``train.compile``: ``torch.compile`` the generator (and the scorers) in place, so checkpoints keep
        their keys. Options: ``mode``, ``backend``, ``dynamic``, ``fullgraph``, ``scorers`` (default true)."""
        if not opt:
            return
        kwargs = dict(opt) if isinstance(opt, dict) else {}
        with_scorers = kwargs.pop('scorers', True)
        self.get_bare_model(self.net_g).compile(**kwargs)
        if with_scorers:
            loss_scorers = self.cri_iqa.scorers(self.device).values() if self.cri_iqa else []
            for scorer in [*self.amo_scorers.values(), *loss_scorers]:
                scorer.compile(**kwargs)
        get_root_logger().info(f'torch.compile: generator{" and scorers" if with_scorers else ""} '
                               f'({kwargs or "default settings"}).')

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast('cuda', dtype=self.amp_dtype)

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

    # ------------------------------------------------------------------------------------------ data
    def validation(self, dataloader, current_iter, tb_logger, save_img=False):  # noqa: ANN001
        """BasicSR's validation; a guard stop on rank 0 (the only rank that validates under DDP) stops all ranks."""
        from nriqa_basicsr.guard import GuardStop

        stopped = None
        try:
            super().validation(dataloader, current_iter, tb_logger, save_img)
        except GuardStop as exc:
            stopped = exc
        if self._on_any_rank(['guard'] if stopped else []) and stopped is None:
            stopped = GuardStop(f'iter {current_iter}: training stopped by the reward-hacking guard on rank 0 '
                                f'(its log has the numbers).')
        if stopped is not None:
            raise stopped

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):  # noqa: ANN001
        self._validating = True
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self._validating = False
        self._track_validation(dataloader.dataset.opt['name'], current_iter, tb_logger)

    def _track_validation(self, dataset_name: str, current_iter: int, tb_logger) -> None:  # noqa: ANN001
        """``val.best`` / ``val.guard``: keep the best checkpoints, watch for reward hacking (may stop the run,
        :class:`~nriqa_basicsr.guard.GuardStop`); see :mod:`nriqa_basicsr.best_checkpoint`."""
        val = self.opt.get('val') or {}
        if not self.is_train or not getattr(self, 'metric_results', None) or not ('best' in val or 'guard' in val):
            return
        if getattr(self, 'val_tracker', None) is None:
            from nriqa_basicsr.best_checkpoint import ValidationTracker

            self.val_tracker = ValidationTracker(self.opt, getattr(self, '_resume_iter', None))
        self.val_tracker.update(dataset_name, current_iter, self.metric_results, self._save_best, tb_logger)

    def _save_best(self, filename: str) -> None:
        """The validated generator (and its EMA) as a deployable BasicSR file; FT runs store merged weights."""
        nets = [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])
        if self.lora_opt is not None:
            states = [merged_state_dict(n) for n in nets]
        else:
            states = [{k: v.detach().cpu() for k, v in n.state_dict().items()} for n in nets]
        self._atomic_save(dict(zip(['params', 'params_ema'], states)), filename)

    def feed_data(self, data: dict[str, Any]) -> None:
        if self._validating or not self.is_train or 'gts' not in data:
            if 'lq' not in data:
                raise KeyError('validation data needs "lq" (use lq_mode paired or bicubic for validation sets).')
            SRModel.feed_data(self, data)
            return
        gts = data['gts'].to(self.device, non_blocking=True)
        batch = gts.shape[0]
        if 'lq' in data:
            self.lq = data['lq'].to(self.device, non_blocking=True)
        else:  # blind degradation of the original, on the device
            kernels = {n: data[n].to(self.device) for n in ('kernel1', 'kernel2', 'sinc_kernel') if n in data}
            self.lq = degrade_realesrgan(gts[:, 0], kernels['kernel1'], kernels['sinc_kernel'],
                                         self.opt.get('degradation') or {}, self.opt['scale'],
                                         kernel2=kernels.get('kernel2'), generator=self.sel_generator)
        if self.channels_last:
            self.lq = self.lq.contiguous(memory_format=torch.channels_last)
        self.labels = data['labels']
        self.label_counts = data['label_counts']
        self.gts = gts
        self.selected = self._select(data, gts)
        self.gt = gts[torch.arange(batch, device=self.device), self.selected.to(self.device)]

    @torch.no_grad()
    def score_candidates(self, gts: torch.Tensor) -> torch.Tensor:
        """AMO: quality ``(B, K)`` of all candidate crops of the batch, one scorer pass per metric."""
        batch, k = gts.shape[:2]
        flat = gts.flatten(0, 1)
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            per_metric = {m: s(flat).float().view(batch, k) for m, s in self.amo_scorers.items()}
        weights = self.selection.metrics
        # several metrics are put on one scale with the batch's own statistics (no dataset-level stats online)
        stats = {m: zscore_stats(v) for m, v in per_metric.items()} if len(weights) > 1 else None
        return combine_scores(per_metric, weights, stats)

    def _select(self, data: dict[str, Any], gts: torch.Tensor) -> torch.Tensor:
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
            self._bad_scores = nonfinite_terms({f'candidate scores ({", ".join(self.selection.metrics)})': scores})
            if self._bad_scores:  # this step is skipped; any valid choice keeps the batch well-formed
                self.candidate_scores = scores
                return torch.zeros(gts.shape[0], dtype=torch.long)
        self.candidate_scores = scores
        return select(policy, labels=data['labels'], scores=scores, tau=self.selection.tau,
                      generator=self.sel_generator, include_original=self.selection.include_original,
                      exclude_negatives=self.selection.exclude_negatives, num_variants=gts.shape[1])

    # ------------------------------------------------------------------------------------------ training
    def _negative_term(self, output: torch.Tensor) -> torch.Tensor | None:
        neg_idx, pos_idx, has_neg, has_pos = pick_negative_pairs(self.labels, self.sel_generator)
        if not bool(has_neg.any()):
            return None
        rows = torch.arange(self.gts.shape[0], device=self.device)
        original = self.gts[:, 0]
        negative, positive = self.gts[rows, neg_idx.to(self.device)], self.gts[rows, pos_idx.to(self.device)]
        counts = self.label_counts.to(self.device)
        weight_map = negative_weight_map(original, positive, negative, counts[rows, pos_idx.to(self.device)],
                                         counts[rows, neg_idx.to(self.device)], has_pos.to(self.device))
        return self.neg_weight * negative_loss(output, negative, weight_map, has_neg)

    def optimize_parameters(self, current_iter: int) -> None:
        loss_dict: OrderedDict[str, torch.Tensor] = OrderedDict()
        if self._on_any_rank(self._bad_scores):  # no target to train towards: skip the whole step
            bad, self._bad_scores = self._bad_scores or ['candidate scores on another rank'], []
            self._account_nonfinite(bad, current_iter)
            self.log_dict = OrderedDict()
            return
        bad = []
        g_step = not self.use_gan or (current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters)
        if self.use_gan:
            self.net_d.requires_grad_(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        with self._autocast():
            self.output = self.net_g(self.lq)
        output = self.output.float()
        if g_step:
            l_total = output.new_zeros(())
            if self.cri_pix:
                loss_dict['l_g_pix'] = self.cri_pix(output, self.gt)
            if self.cri_perceptual:
                percep, style = self.cri_perceptual(output, self.gt)
                if percep is not None:
                    loss_dict['l_g_percep'] = percep
                if style is not None:
                    loss_dict['l_g_style'] = style
            if self.use_gan:
                loss_dict['l_g_gan'] = self._generator_gan_term()
            if self.cri_iqa:
                with self._autocast():  # the metric network runs under the same precision as the generator
                    loss_dict['l_g_iqa'] = self.cri_iqa(output).float()
                for name, value in self.cri_iqa.last_quality.items():
                    loss_dict[f'iqa_{name}'] = value
            if self.neg_weight:
                term = self._negative_term(output)
                # always logged (0 without negatives): every DDP rank must reduce the same keys
                loss_dict['l_g_neg'] = output.new_zeros(()) if term is None else term
            terms = {n: v for n, v in loss_dict.items() if n.startswith('l_')}
            bad += nonfinite_terms(terms)
            if self._on_any_rank(bad):
                bad = bad or ['a loss term on another rank']
            else:
                l_total = l_total + sum(terms.values())
                self.scaler.scale(l_total).backward()
                bad += self._nonfinite_grads(self.net_g, self.optimizer_g, 'gradients of net_g')
                if not bad:
                    self.scaler.step(self.optimizer_g)
                    self.scaler.update()
        if self.use_gan and not bad:  # a skipped generator step skips the discriminator's too
            bad += self._discriminator_step(loss_dict)
        self._account_nonfinite(bad, current_iter)
        self._log_selection(loss_dict, current_iter)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _on_any_rank(self, bad: list[str]) -> bool:
        """Whether any process found non-finite values: under DDP every rank must skip the same steps, or the
        others would wait forever in the gradient all-reduce."""
        if not (self.opt.get('dist') and torch.distributed.is_initialized()):
            return bool(bad)
        flag = torch.tensor([float(bool(bad))], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _nonfinite_grads(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, name: str) -> list[str]:
        """``[name]`` (and the gradients cleared) when a gradient holds NaN/inf; fp16's scaler handles its own."""
        if self.scaler.is_enabled():
            return []
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        if not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return []
        optimizer.zero_grad(set_to_none=True)
        return [name]

    def _account_nonfinite(self, bad: list[str], current_iter: int) -> None:
        """Count a step skipped for non-finite ``bad`` terms; stop after too many in a row."""
        if not bad:
            self.nonfinite_streak = 0
            return
        self.nonfinite_skips += 1
        self.nonfinite_streak += 1
        get_root_logger().warning(f'iter {current_iter}: non-finite {", ".join(bad)}; optimizer step skipped '
                                  f'({self.nonfinite_streak} in a row, {self.nonfinite_skips} in all).')
        if self.nonfinite_limit and self.nonfinite_streak >= self.nonfinite_limit:
            raise NonFiniteTrainingError(
                f'iter {current_iter}: {self.nonfinite_streak} steps in a row were skipped for non-finite values, '
                f'last: {", ".join(bad)}. Training stopped (train.max_consecutive_nonfinite = '
                f'{self.nonfinite_limit}); no weights were changed by these steps and the checkpoints in '
                f'{self.opt["path"].get("models")} are intact. Lower the learning rate or the weight of the named '
                f'term (or fix the data it points to), then resume with --auto_resume.')

    def _generator_gan_term(self) -> torch.Tensor:
        """The generator's adversarial loss, in the formulation of ``train.gan_formulation``.

        The discriminator is called in the same order as in BasicSR's models (its spectral norm updates its
        power-iteration state on every training-mode call), so the values equal theirs on the same batch.
        """
        if self.gan_formulation == 'relativistic':  # ESRGANModel.optimize_parameters
            with self._autocast():
                real = self.net_d(self.gt).detach().float()
                fake = self.net_d(self.output).float()
            l_real = self.cri_gan(real - torch.mean(fake), False, is_disc=False)
            l_fake = self.cri_gan(fake - torch.mean(real), True, is_disc=False)
            return (l_real + l_fake) / 2
        with self._autocast():  # SRGANModel.optimize_parameters
            fake = self.net_d(self.output).float()
        return self.cri_gan(fake, True, is_disc=False)

    def _discriminator_losses(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(l_d_real, l_d_fake, D(real), D(fake))`` in the formulation of ``train.gan_formulation``."""
        if self.gan_formulation == 'relativistic':  # ESRGANModel: halves, each against the other side's mean
            with self._autocast():
                fake_ref = self.net_d(self.output.detach()).detach().float()
                real = self.net_d(self.gt).float()
                fake = self.net_d(self.output.detach()).float()
            l_real = self.cri_gan(real - torch.mean(fake_ref), True, is_disc=True) * 0.5
            l_fake = self.cri_gan(fake - torch.mean(real.detach()), False, is_disc=True) * 0.5
            return l_real, l_fake, real, fake
        with self._autocast():
            real = self.net_d(self.gt).float()
            fake = self.net_d(self.output.detach()).float()
        return self.cri_gan(real, True, is_disc=True), self.cri_gan(fake, False, is_disc=True), real, fake

    def _discriminator_step(self, loss_dict: OrderedDict) -> list[str]:
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad(set_to_none=True)
        l_real, l_fake, real, fake = self._discriminator_losses()
        loss_dict.update(l_d_real=l_real, l_d_fake=l_fake, out_d_real=real.detach().mean(),
                         out_d_fake=fake.detach().mean())
        bad = nonfinite_terms({'l_d_real': l_real, 'l_d_fake': l_fake})
        if self._on_any_rank(bad):
            return bad or ['a discriminator loss on another rank']
        self.scaler.scale(l_real + l_fake).backward()
        bad = self._nonfinite_grads(self.net_d, self.optimizer_d, 'gradients of net_d')
        if not bad:
            self.scaler.step(self.optimizer_d)
            self.scaler.update()
        return bad

    def _log_selection(self, loss_dict: OrderedDict, current_iter: int) -> None:
        """Fraction of the batch supervised by each GT variant (``sel_<variant>``), and the scorer's mean
        quality of the SR output (``iqa_<metric>``) when no NR-IQA loss already reports it."""
        if getattr(self, 'selected', None) is None:
            return
        k = self.gts.shape[1]
        counts = torch.bincount(self.selected.cpu(), minlength=k).float() / self.selected.numel()
        names = self.opt['datasets']['train'].get('gt_variants') or (
            ['original', '01', '02', '03', '04'] if k == 5 else [str(i) for i in range(k)])
        for name, value in zip(names, counts):
            loss_dict[f'sel_{name}'] = value.to(self.device)
        print_freq = self.opt['logger'].get('print_freq', 100)
        if self.amo_scorers and not self.cri_iqa and current_iter % print_freq == 0:
            with torch.no_grad():
                for name, scorer in self.amo_scorers.items():
                    loss_dict[f'iqa_{name}'] = scorer(self.output.detach().float().clamp(0, 1)).mean()

    def load_network(self, net, load_path: str, strict: bool = True, param_key: str = 'params') -> None:  # noqa: ANN001
        """BasicSR's loader for the other networks (net_d), with safe loading and key/shape diagnostics."""
        load_matching(self.get_bare_model(net), load_checkpoint_params(load_path, param_key), load_path, strict)
        get_root_logger().info(f'Loaded {type(self.get_bare_model(net)).__name__} from {load_path} [{param_key}].')

    # ------------------------------------------------------------------------------------------ saving
    def save(self, epoch: int, current_iter: int) -> None:
        if self.lora_opt is None:
            (SRGANModel.save if self.use_gan else SRModel.save)(self, epoch, current_iter)
            return
        nets = [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if self.ema_decay > 0 else [])
        keys = ['params', 'params_ema'][:len(nets)]
        label = 'latest' if current_iter == -1 else current_iter
        self._atomic_save({k: lora_state_dict(n) for k, n in zip(keys, nets)}, f'net_g_lora_{label}.pth')
        if current_iter == -1:
            # the deployable result: adapters merged, stock architecture keys (loads with strict=True)
            self._atomic_save({k: merged_state_dict(n) for k, n in zip(keys, nets)}, 'net_g_latest.pth')
        if self.use_gan:
            self.save_network(self.net_d, 'net_d', current_iter)
        self.save_training_state(epoch, current_iter)

    def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:  # noqa: ANN001
        """BasicSR's checkpoint format, written to a temporary file and renamed (never a half-written file)."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        payload = {key: {(k[7:] if k.startswith('module.') else k): v.cpu()
                         for k, v in self.get_bare_model(n).state_dict().items()} for n, key in zip(nets, keys)}
        label = 'latest' if current_iter == -1 else current_iter
        self._atomic_save(payload, f'{net_label}_{label}.pth')

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's state plus every RNG (global ones, GT selection) and the AMP scaler, written atomically."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers],
                 'selection_rng': self.sel_generator.get_state(), 'rng': capture_rng_state(),
                 'scaler': self.scaler.state_dict(),
                 'nonfinite_skips': self.nonfinite_skips, 'nonfinite_streak': self.nonfinite_streak}
        self._atomic_save(state, f'{current_iter}.state', folder=self.opt['path']['training_states'])

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        super().resume_training(resume_state)
        if 'selection_rng' in resume_state:
            self.sel_generator.set_state(resume_state['selection_rng'].cpu())
        if 'rng' in resume_state:
            restore_rng_state(resume_state['rng'])
        if resume_state.get('scaler'):
            self.scaler.load_state_dict(resume_state['scaler'])
        self.nonfinite_skips = resume_state.get('nonfinite_skips', 0)
        self.nonfinite_streak = resume_state.get('nonfinite_streak', 0)
        self._resume_iter = int(resume_state['iter'])  # best-checkpoint entries after it are validated again

    def _atomic_save(self, payload: dict[str, Any], filename: str, folder: str | None = None) -> None:
        if self.opt['rank'] != 0:
            return
        with atomic_path(osp.join(folder or self.opt['path']['models'], filename)) as tmp:
            torch.save(payload, tmp)
