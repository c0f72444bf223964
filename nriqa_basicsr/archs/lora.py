"""LoRA adapters on a frozen SR generator (the paper's FT stage), through peft.

peft's LoRA covers both layer kinds we need: ``nn.Conv2d`` (RRDBNet: a k×k conv to ``rank`` channels followed by a
zero-initialised 1×1 conv back, scaled by ``alpha / rank``) and ``nn.Linear`` (SwinIR). Injection freezes every
non-adapter parameter. For export, adapters are merged into the base weights and the LoRA wrappers removed, so
the state dict has the stock architecture's keys and loads into BasicSR's ``RRDBNet`` / ``SwinIR`` with
``strict=True``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nriqa_basicsr.config.schema import decode_or_raise
from nriqa_basicsr.config.sections import LoRAOptions

__all__ = ['DEFAULT_TARGETS', 'SUPPORTED_LAYERS', 'inject_lora', 'load_lora_state_dict', 'lora_state_dict',
           'lora_targets', 'merged_state_dict', 'parameter_counts']

# RRDB: every 3x3 conv of the residual dense blocks, the trunk conv and the upsampling convs; SwinIR: attention
# and MLP projections. Regexes are matched against full module names (peft semantics).
DEFAULT_TARGETS = {
    'RRDBNet': r'^(body\.\d+\.rdb\d\.conv\d|conv_body|conv_up1|conv_up2|conv_hr)$',
    'SwinIR': r'^layers\.\d+\.residual_group\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)$',
}
SUPPORTED_LAYERS = (nn.Conv2d, nn.Linear)  # the layer types adapters are made, merged and tested for here


def lora_targets(config: LoRAOptions, arch: str | None) -> str | list[str]:
    """``target_modules`` of a decoded ``network_g_lora``, or the default of ``arch``."""
    if config.target_modules:
        return config.target_modules
    if arch not in DEFAULT_TARGETS:
        raise ValueError(f'network_g_lora.target_modules: no default for arch {arch}; give a regex or a list of '
                         f'module-name suffixes (defaults exist for {sorted(DEFAULT_TARGETS)}).')
    return DEFAULT_TARGETS[arch]


def inject_lora(net: nn.Module, opt: Mapping[str, Any] | LoRAOptions, arch: str | None = None) -> nn.Module:
    """Add LoRA adapters to ``net`` in place (base weights frozen); returns ``net``. ``opt``: the
    ``network_g_lora`` block, decoded here when given as a mapping."""
    from peft import LoraConfig, inject_adapter_in_model

    config = decode_or_raise(LoRAOptions, opt, 'network_g_lora')
    targets = lora_targets(config, arch)
    peft_config = LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, lora_dropout=config.dropout,
                             target_modules=targets, bias='none')
    _check_targets(net, peft_config, targets, arch)
    try:
        inject_adapter_in_model(peft_config, net)
    except ValueError as exc:  # peft's own refusals that _check_targets does not foresee
        raise ValueError(f'network_g_lora.target_modules {targets!r} on {arch}: {exc}') from exc
    return net


def _check_targets(net: nn.Module, config: Any, targets: str | list[str], arch: str | None) -> None:
    """Refuse ``targets`` that match no layer, or a module LoRA does not support here, naming what matched.

    peft would wrap more types (Conv1d, Conv3d, Embedding, ...), but the adapters of the SR generators, their
    export (:func:`merged_state_dict`) and the tests cover ``nn.Conv2d`` and ``nn.Linear``; anything else (a
    ``PixelShuffle``, an activation, a container such as an RRDB block) is a regex that reaches too far."""
    from peft.tuners.tuners_utils import check_target_module_exists  # peft's own matching rule

    def names(found: list[str]) -> str:
        return ', '.join(found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')

    matched = [(name, m) for name, m in net.named_modules() if name and check_target_module_exists(config, name)]
    layers = [name for name, m in net.named_modules() if isinstance(m, SUPPORTED_LAYERS)]
    what = f'network_g_lora.target_modules {targets!r}'
    if not matched:
        raise ValueError(f'{what} matches no module of {arch}. A regex must match whole module names, a list '
                         f'entry a name or its last parts; layers LoRA can adapt here: {names(layers) or "none"}.')
    bad = [f'{name} ({type(m).__name__})' for name, m in matched if not isinstance(m, SUPPORTED_LAYERS)]
    if bad:
        good = [name for name, m in matched if isinstance(m, SUPPORTED_LAYERS)]
        hint = (f'it also matches {len(good)} supported layer(s) ({names(good)}): narrow it to those (a regex '
                f'ending in their names, e.g. ...conv\\d$, or a list of just those names)' if good else
                f'point it at such layers instead, e.g. {names(layers) or "none"}')
        raise ValueError(f'{what} matches {len(bad)} module(s) of {arch} of a type LoRA does not support here: '
                         f'{names(bad)}. Supported layer types: nn.Conv2d, nn.Linear; {hint}.')


def _lora_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(name, m) for name, m in net.named_modules() if isinstance(m, LoraLayer)]


def lora_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Adapter weights only (peft's naming without the adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(net).items()}


def load_lora_state_dict(net: nn.Module, state: dict[str, torch.Tensor], source: str = 'checkpoint') -> None:
    """Load adapter weights; refuses a state dict that does not cover exactly this net's adapters."""
    from peft import set_peft_model_state_dict

    expected = set(lora_state_dict(net))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f'{source}: LoRA adapters do not match network_g_lora (missing {missing[:3]}'
                         f'{" ..." if len(missing) > 3 else ""}, unexpected {unexpected[:3]}'
                         f'{" ..." if len(unexpected) > 3 else ""}); check rank and target_modules.')
    set_peft_model_state_dict(net, state)


def merged_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of ``net`` with adapters merged into the base weights, under the stock architecture's keys."""
    merged = copy.deepcopy(net).cpu()
    for name, layer in _lora_layers(merged):
        layer.merge(safe_merge=True)
        parent_name, _, child = name.rpartition('.')
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, child, layer.get_base_layer())
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def parameter_counts(net: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(net.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
