"""The checkpoint layout: file names, param keys, which key each network reads, saving and loading.

Training, resume (:mod:`nriqa_basicsr.pipeline`), inference, the best checkpoints and ``nriqa-merge-lora`` all
name and read checkpoints through this module. Files of a run (BasicSR's names; ``<iter>`` is the iteration,
``latest`` the end of training):

* ``models/net_g_<iter>.pth``, ``net_g_latest.pth``: the generator, ``{params, params_ema}`` (``params_ema``
  with ``train.ema_decay`` only);
* FT runs (``network_g_lora``): ``models/net_g_lora_<iter>.pth`` / ``net_g_lora_latest.pth`` hold the LoRA
  adapters only (same keys); ``net_g_latest.pth`` holds the adapters merged into the base under the stock
  architecture's keys (loads with ``strict=True``);
* ``models/net_g_best_<iter>.pth``: a best validation (:mod:`nriqa_basicsr.best_checkpoint`), deployable like
  ``net_g_latest.pth``;
* ``models/net_d_<iter>.pth``: the discriminator (``params``);
* ``training_states/<iter>.state``: optimizers, schedulers, RNGs, scaler, step-guard counters.

Every file is written atomically (:mod:`nriqa_basicsr.atomic`) and read without unpickling code
(:mod:`nriqa_basicsr.safe_load`).

**Which key is read** (``params`` holds the trained network, ``params_ema`` its EMA copy):

* a *base*, a generator file the run did not write (``path.pretrain_network_g`` of a fresh run, the stage-one
  generator of an FT run, also when it resumes, ``--base`` of ``nriqa-merge-lora``, a model given to
  inference), is read with **one key** for every network built on it: the generator, its EMA copy and every
  adapter set put on it. Named in an option file (``path.pretrain_network_g``, also through ``nriqa-merge-lora``
  and the inference tools reading an FT option file), that key is ``param_key_g`` (``--param-key``,
  ``--base-key``) when given, else BasicSR's default ``params`` (:func:`base_key`), so a BasicSR option file
  keeps its meaning. (One deviation from BasicSR, which always starts the EMA copy from ``params_ema``: the
  EMA copy reads the same key as the generator, because under LoRA both must share one frozen base.) A bare
  ``.pth`` given to an inference tool without an option file is read as released models are meant to be used:
  ``--param-key``, else ``params_ema`` (:data:`INFERENCE_KEY`);
* a run's *own* files are read by set: on resume ``params`` into the generator and ``params_ema`` into its EMA
  copy (adapters alike); evaluating a run's file reads its ``params_ema`` set;
* every key falls back to ``params``, then ``params_ema``, when a file lacks it (runs without EMA, releases with
  the EMA set only).
"""

from __future__ import annotations

import os.path as osp
import re
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import torch
from basicsr.archs import build_network

from nriqa_basicsr.archs.lora import inject_lora, load_lora_state_dict, lora_state_dict, merged_state_dict
from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.safe_load import load_torch_file

__all__ = ['ADAPTER_FILE', 'BEST_FILE', 'CheckpointMismatchError', 'INFERENCE_KEY', 'ITER_FILE',
           'LATEST_ADAPTER_FILE', 'LATEST_FILE', 'PARAMS', 'PARAMS_EMA', 'adapter_file', 'base_key', 'best_file',
           'build_generator',
           'deployable_state', 'generator_files', 'load_checkpoint_params', 'load_matching', 'merge_adapters',
           'network_file', 'network_state', 'resume_network_files', 'save_checkpoint', 'state_file',
           'state_iterations']

PARAMS, PARAMS_EMA = 'params', 'params_ema'
LATEST_FILE = 'net_g_latest.pth'
LATEST_ADAPTER_FILE = 'net_g_lora_latest.pth'
ITER_FILE = re.compile(r'net_g_(\d+)\.pth')
BEST_FILE = re.compile(r'net_g_best_(\d+)\.pth')
ADAPTER_FILE = re.compile(r'net_g_lora_(\d+|latest)\.pth')
_STATE_FILE = re.compile(r'(\d+)\.state')


class CheckpointMismatchError(ValueError):
    """A pretrained checkpoint does not fit the configured network."""


# ------------------------------------------------------------------------------------------ names and keys
def network_file(net: str, iteration: int) -> str:
    """``net_<net>_<iter>.pth`` (``net``: ``g``, ``d``, ``g_lora``); iteration -1 is ``latest``."""
    return f'net_{net}_{"latest" if iteration == -1 else iteration}.pth'


def adapter_file(iteration: int) -> str:
    return network_file('g_lora', iteration)


def best_file(iteration: int) -> str:
    return f'net_g_best_{iteration}.pth'


def state_file(iteration: int) -> str:
    return f'{iteration}.state'


def state_iterations(names: Sequence[str]) -> list[int]:
    """Iterations of the training-state files among ``names``, newest first."""
    return sorted((int(m.group(1)) for n in names if (m := _STATE_FILE.fullmatch(n))), reverse=True)


def base_key(param_key: str | None) -> str:
    """The key a base named in an option file is read with, for every network built on it: ``param_key``
    (``path.param_key_g``) or BasicSR's default ``params``."""
    return param_key or PARAMS


#: the key a bare checkpoint given to an inference tool is read with when ``--param-key`` is not given
INFERENCE_KEY = PARAMS_EMA


def resume_network_files(opt: dict[str, Any], iteration: int) -> list[str]:
    """Checkpoint files a resume from ``iteration`` loads: one per ``network_*`` (FT runs: the adapters
    instead of the generator, whose base stays the stage-one file)."""
    names = [k[len('network_'):] for k in opt if k.startswith('network_')]
    if 'g_lora' in names:
        names.remove('g')
    return [osp.join(opt['path']['models'], network_file(n, iteration)) for n in names]


# ------------------------------------------------------------------------------------------ loading
def load_checkpoint_params(path: str, param_key: str | None) -> dict[str, torch.Tensor]:
    """Tensors of a BasicSR checkpoint, loaded without unpickling code: the ``param_key`` set, falling back to
    ``params`` and then ``params_ema`` when the file lacks it (released models such as Real-ESRGAN x4plus hold
    ``params_ema`` only), else the file as a bare state dict."""
    state = load_torch_file(path, 'cpu', 'pretrained checkpoint')
    if param_key is not None and isinstance(state, dict):
        key = next((k for k in (param_key, PARAMS, PARAMS_EMA) if k in state), None)
        state = state if key is None else state[key]
    return {k.removeprefix('module.'): v for k, v in state.items()}


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


def build_generator(network_g: dict[str, Any], base: str | None = None, key: str | None = None,
                    strict: bool = True, lora_opt: dict[str, Any] | None = None, adapters: str | None = None,
                    adapter_key: str = PARAMS) -> torch.nn.Module:
    """``network_g`` with the weights of ``base`` (``key``), then LoRA injected (``lora_opt``) and the adapter set
    ``adapter_key`` of ``adapters`` loaded: base weights first, adapters on top, as FT trains them."""
    net = build_network(deepcopy(network_g))
    if base:
        load_matching(net, load_checkpoint_params(base, key), base, strict)
    if lora_opt is not None:
        inject_lora(net, lora_opt, network_g['type'])
        if adapters:
            load_lora_state_dict(net, load_checkpoint_params(adapters, adapter_key), f'{adapters} [{adapter_key}]')
    return net


def merge_adapters(network_g: dict[str, Any], lora_opt: dict[str, Any], base: str, adapters: str,
                   param_key: str | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Every adapter set of ``adapters`` (``params``, ``params_ema``) merged into the base (read with
    :func:`base_key` of ``param_key``): a checkpoint stock ``network_g`` loads with ``strict=True``."""
    keys = [k for k in (PARAMS, PARAMS_EMA) if k in load_torch_file(adapters, 'cpu', 'adapters')]
    if not keys:
        raise ValueError(f'{adapters}: no params / params_ema adapter sets.')
    return {k: merged_state_dict(build_generator(network_g, base, base_key(param_key), True, lora_opt, adapters, k))
            for k in keys}


# ------------------------------------------------------------------------------------------ saving
def network_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s tensors on the CPU under the bare network's keys (no ``module.`` of a DDP wrapper)."""
    return {k.removeprefix('module.'): v.detach().cpu() for k, v in net.state_dict().items()}


def deployable_state(nets: Sequence[torch.nn.Module], lora: bool) -> dict[str, dict[str, torch.Tensor]]:
    """``{params, params_ema}`` of the generator and its EMA copy as stock weights (FT: adapters merged)."""
    return {k: merged_state_dict(n) if lora else network_state(n) for k, n in zip((PARAMS, PARAMS_EMA), nets)}


def generator_files(nets: Sequence[torch.nn.Module], iteration: int, lora: bool
                    ) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """File name → content of the generator checkpoints a save at ``iteration`` (-1: the end) writes, for the
    generator and its EMA copy ``nets``: full weights, or for FT the adapters and, at the end, the merged result."""
    if not lora:
        return {network_file('g', iteration): deployable_state(nets, lora=False)}
    files = {adapter_file(iteration): {k: lora_state_dict(n) for k, n in zip((PARAMS, PARAMS_EMA), nets)}}
    if iteration == -1:
        files[LATEST_FILE] = deployable_state(nets, lora=True)
    return files


def save_checkpoint(payload: dict[str, Any], path: str) -> None:
    """``torch.save`` to a temporary file renamed into place: never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
