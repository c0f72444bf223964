"""Loading trained generators and running them on images, with tiling for large inputs."""

from __future__ import annotations

import os.path as osp
from typing import Any

import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml

from nriqa_basicsr.archs.lora import inject_lora, load_lora_state_dict
from nriqa_basicsr.models.nriqa_model import load_checkpoint_params, load_matching

__all__ = ['adapted_generator', 'load_generator', 'upscale_image']


def adapted_generator(network_g: dict[str, Any], lora_opt: dict[str, Any], base: str, base_key: str | None,
                      adapters: str, adapter_key: str) -> torch.nn.Module:
    """Base checkpoint + LoRA injection + adapter weights (an FT run's ``net_g_lora_<iter>.pth``)."""
    net = build_network(dict(network_g))
    load_matching(net, load_checkpoint_params(base, base_key or 'params_ema'), base, strict=True)
    inject_lora(net, lora_opt, network_g['type'])
    load_lora_state_dict(net, load_checkpoint_params(adapters, adapter_key), f'{adapters} [{adapter_key}]')
    return net


def load_generator(spec: str, network_g: dict[str, Any] | None = None, param_key: str | None = None,
                   device: str | torch.device = 'cpu', adapters: str | None = None) -> torch.nn.Module:
    """A generator in eval mode from a BasicSR option file (``network_g`` + ``path.pretrain_network_g``) or from a
    checkpoint ``.pth`` plus ``network_g``. ``param_key`` defaults to ``params_ema`` (falls back to ``params``).

    ``adapters`` (an FT run's ``net_g_lora_<iter>.pth``) needs an option file with ``network_g_lora``: the base
    checkpoint is loaded, LoRA injected and the adapters (same ``param_key``) loaded on top."""
    lora_opt = None
    if spec.endswith(('.yml', '.yaml')):
        with open(spec) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
        network_g = network_g or opt.get('network_g')
        lora_opt = opt.get('network_g_lora')
        path = (opt.get('path') or {}).get('pretrain_network_g')
        param_key = param_key or (opt.get('path') or {}).get('param_key_g')
        if not path:
            raise ValueError(f'{spec}: path.pretrain_network_g is not set (which checkpoint to evaluate?).')
    else:
        path = spec
    if not network_g:
        raise ValueError(f'{spec}: the architecture is unknown; pass network_g (e.g. an option file with it).')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: checkpoint not found.')
    if adapters is not None:
        if lora_opt is None:
            raise ValueError(f'--adapters {adapters} needs an option file with network_g_lora (the FT option file).')
        # the base of an FT run is the stage-one checkpoint named in its option file, with its own param key
        net = adapted_generator(network_g, lora_opt, path, param_key, adapters, 'params_ema')
    else:
        net = build_network(dict(network_g))
        load_matching(net, load_checkpoint_params(path, param_key or 'params_ema'), path, strict=True)
    return net.eval().to(device)


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

    def run(inp: torch.Tensor) -> torch.Tensor:
        if amp_dtype is not None and device.type == 'cuda':
            with torch.autocast('cuda', dtype=amp_dtype):
                return net(inp).float()
        return net(inp)

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
