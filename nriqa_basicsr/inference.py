"""Loading trained generators and running them on images, with tiling for large inputs."""

from __future__ import annotations

import os
import os.path as osp
import sys
from typing import Any

import numpy as np
import torch

from nriqa_basicsr.archs.detect import AUTO_ARCH, load_network_file, network_scale, resolve_auto_network_g
from nriqa_basicsr.checkpoint import ADAPTER_FILE, INFERENCE_KEY, LATEST_FILE, PARAMS_EMA, build_generator
from nriqa_basicsr.checkpoint import base_key as key_of_base
from nriqa_basicsr.precision import Precision
from nriqa_basicsr.yaml_io import load_option_file

__all__ = ['FTResultNotFoundError', 'adapted_generator', 'checked_scale', 'ft_result', 'load_generator',
           'load_generator_and_arch', 'upscale_image']

_REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


class FTResultNotFoundError(FileNotFoundError):
    """An FT option file (``network_g_lora``) was given as a model, but its run left no tuned generator."""


def _experiment_dirs(opt: dict[str, Any], spec: str) -> list[str]:
    """Where BasicSR put the run of option file ``spec``: ``path.experiments_root``, else ``experiments/<name>``
    under the repository root (``train.py``'s root) or the current directory."""
    explicit = (opt.get('path') or {}).get('experiments_root')
    if explicit:
        return [osp.abspath(osp.expanduser(str(explicit)))]
    name = opt.get('name')
    if not name:
        raise ValueError(f'{spec}: an FT option file (network_g_lora) needs "name" to find its run\'s results.')
    dirs = [osp.join(_REPO_ROOT, 'experiments', str(name)), osp.abspath(osp.join('experiments', str(name)))]
    return list(dict.fromkeys(dirs))


def ft_result(opt: dict[str, Any], spec: str) -> tuple[str, str]:
    """The tuned result of FT option file ``spec``: ``('merged', net_g_latest.pth)`` of the finished run, else
    ``('adapters', net_g_lora_<latest iter>.pth)``; :class:`FTResultNotFoundError` saying what to pass if neither.

    ``path.pretrain_network_g`` of an FT option file is the *untuned* stage-one generator, so evaluating it under
    the FT run's name would report the base's numbers.
    """
    searched = _experiment_dirs(opt, spec)
    for exp in searched:
        models = osp.join(exp, 'models')
        merged = osp.join(models, LATEST_FILE)
        if osp.isfile(merged):  # written once, at the end of training: adapters merged into stock keys
            return 'merged', merged
        adapters = [f for f in (os.listdir(models) if osp.isdir(models) else []) if ADAPTER_FILE.fullmatch(f)]
        if adapters:
            def iteration(f: str) -> float:
                it = ADAPTER_FILE.fullmatch(f).group(1)
                return float('inf') if it == 'latest' else int(it)
            return 'adapters', osp.join(models, max(adapters, key=iteration))
    base = (opt.get('path') or {}).get('pretrain_network_g')
    raise FTResultNotFoundError(
        f'{spec} is an FT option file (network_g_lora): its path.pretrain_network_g ({base}) is the untuned base, '
        f'and no tuned result was found (looked for net_g_latest.pth or net_g_lora_<iter>.pth in '
        f'{", ".join(osp.join(d, "models") for d in searched)}). Train it first, or pass the FT run\'s merged '
        f'checkpoint as --model (experiments/<name>/models/net_g_latest.pth), or keep this option file and add '
        f'--adapters net_g_lora_<iter>.pth; to evaluate the untuned base on purpose, pass {base} as --model.')


def _note(message: str) -> None:
    print(f'note: {message}', file=sys.stderr, flush=True)  # which file really gets evaluated, for the CLIs' logs


def adapted_generator(network_g: dict[str, Any], lora_opt: dict[str, Any], base: str, base_key: str | None,
                      adapters: str, adapter_key: str) -> torch.nn.Module:
    """Base checkpoint (``base_key``: the FT option file's ``param_key_g``, else ``params``) + LoRA injection + the
    adapter set ``adapter_key`` of an FT run's ``net_g_lora_<iter>.pth`` (the key rule:
    :mod:`nriqa_basicsr.checkpoint`)."""
    return build_generator(network_g, base, key_of_base(base_key), True, lora_opt, adapters, adapter_key)


def load_generator(spec: str, network_g: dict[str, Any] | None = None, param_key: str | None = None,
                   device: str | torch.device = 'cpu', adapters: str | None = None) -> torch.nn.Module:
    """A generator in eval mode from a BasicSR option file (``network_g`` + ``path.pretrain_network_g``) or from a
    checkpoint ``.pth``. ``param_key`` defaults to the option file's ``param_key_g`` (else ``params``, as training
    reads it) and, for a ``.pth`` alone, to ``params_ema``; every key falls back to ``params``.

    Without ``network_g`` (a ``.pth`` alone, or ``network_g: {type: auto}`` in the option file) the architecture
    is detected from the weights (:mod:`nriqa_basicsr.archs.detect`). ``adapters`` (an FT run's
    ``net_g_lora_<iter>.pth``) needs an option file with ``network_g_lora``: the base checkpoint is loaded, LoRA
    injected and the adapters (same ``param_key``) loaded on top. An FT option file without ``adapters`` evaluates
    its run's tuned result (:func:`ft_result`), never the untuned base."""
    return load_generator_and_arch(spec, network_g, param_key, device, adapters)[0]


def load_generator_and_arch(spec: str, network_g: dict[str, Any] | None = None, param_key: str | None = None,
                            device: str | torch.device = 'cpu', adapters: str | None = None
                            ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`load_generator` plus the BasicSR ``network_g`` it built (given or detected), e.g. for its scale."""
    lora_opt = None
    if spec.endswith(('.yml', '.yaml')):
        opt = load_option_file(spec, '--model')  # safe loader: no Python tags, no duplicate keys
        if network_g:
            opt['network_g'] = network_g
        lora_opt = opt.get('network_g_lora')
        path = (opt.get('path') or {}).get('pretrain_network_g')
        param_key = param_key or (opt.get('path') or {}).get('param_key_g')
        if not path:
            raise ValueError(f'{spec}: path.pretrain_network_g is not set (which checkpoint to evaluate?).')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{spec}: path.pretrain_network_g {path}: checkpoint not found.')
        network_g = resolve_auto_network_g(opt, spec).get('network_g')
        if not network_g:
            raise ValueError(f'{spec}: no network_g; give the architecture, or network_g: {{type: {AUTO_ARCH}}} to '
                             f'read it from path.pretrain_network_g.')
        if lora_opt is not None and adapters is None:
            kind, found = ft_result(opt, spec)
            if kind == 'merged':  # stock architecture keys: load like any checkpoint of network_g
                _note(f'{spec} is an FT option file: evaluating its run\'s merged result {found}.')
                # the run's own file: its EMA set (else params), not the base's param_key_g
                net = build_generator(network_g, found, PARAMS_EMA)
                return net.eval().to(device), dict(network_g)
            _note(f'{spec} is an FT option file: evaluating base {path} + its run\'s adapters {found}.')
            adapters = found
    else:
        path = spec
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: checkpoint not found.')
    if network_g and network_g.get('type') == AUTO_ARCH:  # --network-g '{"type": "auto", ...}' with a .pth
        network_g = resolve_auto_network_g({'network_g': dict(network_g),
                                            'path': {'pretrain_network_g': path, 'param_key_g': param_key}},
                                           '--network-g')['network_g']
    if adapters is not None:
        if lora_opt is None:
            raise ValueError(f'--adapters {adapters} needs an option file with network_g_lora (the FT option file).')
        # the base of an FT run is the stage-one checkpoint named in its option file, with its own param key
        net = adapted_generator(network_g, lora_opt, path, param_key, adapters, PARAMS_EMA)
    elif network_g is None:  # a checkpoint alone: read its architecture from the weights
        net, network_g = load_network_file(path, param_key)
    else:
        # an option file's base is read as training reads it (param_key_g, else params); a bare .pth as released
        net = build_generator(network_g, path, key_of_base(param_key) if path != spec else param_key or INFERENCE_KEY)
    return net.eval().to(device), dict(network_g)


def checked_scale(network_g: dict[str, Any], scale: int | None, where: str = '--scale') -> int:
    """The network's upscaling factor; ``scale`` (a user's ``--scale``) must agree with it when both are known."""
    own = network_scale(network_g)
    if own is not None and scale is not None and own != scale:
        raise ValueError(f'{where} {scale} disagrees with the network ({network_g["type"]} upscales x{own}); '
                         f'drop {where} or pick the x{scale} model.')
    if own is None and scale is None:
        raise ValueError(f'{network_g["type"]}: its upscaling factor is unknown; give {where}.')
    return own if own is not None else scale


@torch.no_grad()
def upscale_image(net: torch.nn.Module, lr: np.ndarray, scale: int, tile: int = 0, tile_pad: int = 16,
                  amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """Super-resolve a BGR uint8 ``(h, w, 3)`` image to ``(h·scale, w·scale, 3)``.

    With ``tile > 0`` the LR image is processed in ``tile``-pixel tiles, each with ``tile_pad`` pixels of context
    that are cut from the output, so memory stays bounded and seams disappear for nets whose receptive field is
    within the padding.
    """
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1], dtype=np.float32) / 255).permute(2, 0, 1)[None]
    x = x.to(device)

    precision = Precision(amp_dtype if device.type == 'cuda' else None)

    def run(inp: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return net(inp).float()

    if tile <= 0:
        out = run(x)
    else:
        _, _, h, w = x.shape
        out = x.new_zeros(1, 3, h * scale, w * scale)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                t0, l0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
                t1, l1 = min(top + tile + tile_pad, h), min(left + tile + tile_pad, w)
                piece = run(x[:, :, t0:t1, l0:l1])
                bottom, right = min(top + tile, h), min(left + tile, w)
                out[:, :, top * scale:bottom * scale, left * scale:right * scale] = piece[
                    :, :, (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]
    sr = out.clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy()[..., ::-1]
    return (sr * 255.0).round().astype(np.uint8)
