"""Architecture and hyper-parameters of a released SR checkpoint, read from its state dict alone.

Users reuse BasicSR / Real-ESRGAN releases without knowing ``num_block`` or ``num_grow_ch``.
:func:`detect_network_g` maps a state dict to a BasicSR ``network_g`` dict (an ``ARCH_REGISTRY`` name plus
kwargs), because training, LoRA injection and resume all build BasicSR's own arch classes. Recognised:

* ``RRDBNet``: BasicSR / Real-ESRGAN keys (``conv_first``, ``body.N.rdbM``; ``scale`` 2 and 1 through
  pixel-unshuffle, seen as 4x / 16x the input channels in ``conv_first``), and the older ESRGAN layouts
  (``model.0``, ``model.1.sub.N.RDBM`` and ``RRDB_trunk`` / ``trunk_conv``), whose x4 files are renamed to BasicSR
  keys by :func:`to_basicsr_layout`;
* ``SRVGGNetCompact`` (Real-ESRGAN's compact / anime-video models), ``MSRResNet``, ``EDSR``, ``RCAN``, ``SwinIR``.

A few hyper-parameters leave no trace in the weights (EDSR/RCAN ``res_scale``, ``img_range``, ``rgb_mean``;
SRVGGNetCompact's ``act_type`` when it has no PReLU). They default to BasicSR's released configurations
(:data:`ASSUMED_KEYS`) and can be given explicitly. Anything else raises :class:`UnknownArchitectureError`,
which names the keys that were found.

``python -m nriqa_basicsr.archs.detect FILE [--convert OUT]`` prints a file's ``network_g`` (and writes it in
BasicSR's key layout).

A small own detector was preferred to spandrel: spandrel builds its own module trees (ESRGAN as ``model.N``
sequentials), whose names neither BasicSR's training and resume nor our LoRA target lists know, so we would
still need this mapping to BasicSR kwargs; it would also add a dependency for six architectures.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ['ASSUMED_KEYS', 'AUTO_ARCH', 'UnknownArchitectureError', 'build_parser', 'detect_network_g',
           'extract_state_dict', 'load_network_file', 'main', 'network_scale', 'resolve_auto_network_g',
           'to_basicsr_layout']

AUTO_ARCH = 'auto'  # network_g: {type: auto} asks for the architecture of path.pretrain_network_g

# Hyper-parameters the weights do not determine, per arch: the values BasicSR's released option files use.
ASSUMED_KEYS: dict[str, dict[str, Any]] = {
    'EDSR': {'res_scale': None, 'img_range': 255.0, 'rgb_mean': [0.4488, 0.4371, 0.4040]},  # res_scale: see _edsr
    'RCAN': {'res_scale': 1, 'img_range': 255.0, 'rgb_mean': [0.4488, 0.4371, 0.4040]},
    'SwinIR': {'img_range': 1.0},
    'SRVGGNetCompact': {'act_type': None},  # None: PReLU when the file has its weights, else must be given
}


class UnknownArchitectureError(ValueError):
    """The state dict matches none of the recognised architectures (or not uniquely)."""


def extract_state_dict(obj: Any, param_key: str | None = None, where: str = 'checkpoint') -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: ``obj[param_key]`` when given, else ``params_ema``, then ``params``, else
    ``obj`` itself (a bare state dict); a DataParallel ``module.`` prefix is removed. A missing ``params_ema`` /
    ``params`` falls back to the other, as BasicSR's loaders do; any other missing key is an error."""
    if not isinstance(obj, Mapping):
        raise UnknownArchitectureError(f'{where}: holds a {type(obj).__name__}, not a state dict.')
    if param_key in ('params', 'params_ema') and param_key not in obj:
        param_key = None
    if param_key is not None and param_key not in obj and not _is_state_dict(obj):
        raise KeyError(f'{where}: no key {param_key!r}; top-level keys: {_few(list(obj))}.')
    if param_key is not None and param_key in obj:
        obj = obj[param_key]
    else:
        obj = next((obj[k] for k in ('params_ema', 'params') if isinstance(obj.get(k), Mapping)), obj)
    if not _is_state_dict(obj):
        raise UnknownArchitectureError(
            f'{where}: not a state dict of tensors (top-level keys: {_few(list(obj))}); expected BasicSR\'s '
            f'{{"params_ema": ...}} / {{"params": ...}} or a bare state dict; pass the key with --param-key.')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in obj.items()}


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _few(items: list, n: int = 6) -> str:
    return ', '.join(map(str, items[:n])) + (f' ... ({len(items)} in all)' if len(items) > n else '')


def _indices(sd: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = _indices(sd, pattern)
    if found != list(range(len(found))):
        raise UnknownArchitectureError(f'indices of {pattern!r} are not contiguous from 0: {found}.')
    return len(found)


def _pow2_upsample(sd: Mapping[str, torch.Tensor], prefix: str, num_feat: int) -> int:
    """Scale of BasicSR's ``Upsample`` (conv + PixelShuffle pairs) under ``prefix``."""
    convs = _indices(sd, rf'{re.escape(prefix)}\.(\d+)\.weight')
    if len(convs) == 1 and sd[f'{prefix}.0.weight'].shape[0] == 9 * num_feat:
        return 3
    return 2 ** len(convs)


# ------------------------------------------------------------------------------------------ old ESRGAN layouts
def _old_esrgan_map(sd: Mapping[str, torch.Tensor]) -> dict[str, str] | None:
    """Old key -> BasicSR key for ESRGAN's ``model.N`` layout and the ``RRDB_trunk`` layout (x4 only: BasicSR's
    RRDBNet always upsamples twice); None when ``sd`` is in neither layout."""
    if 'model.0.weight' in sd and 'model.1.sub.0.RDB1.conv1.0.weight' in sd:
        nb = _count(sd, r'model\.1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight')
        tops = _indices(sd, r'model\.(\d+)\.weight')
        if tops != [0, 3, 6, 8, 10]:
            ups = len([i for i in tops if i >= 3]) - 2
            raise UnknownArchitectureError(
                f'old-layout ESRGAN with {ups} upsampling step(s) (x{2 ** ups}; top-level convs model.{tops}): '
                f'BasicSR\'s RRDBNet upsamples exactly twice (x4; x2/x1 through pixel-unshuffle), so only x4 files '
                f'of this layout can be converted.')
        mapping = {'model.0': 'conv_first', f'model.1.sub.{nb}': 'conv_body', 'model.3': 'conv_up1',
                   'model.6': 'conv_up2', 'model.8': 'conv_hr', 'model.10': 'conv_last'}
        body = (r'model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)', r'body.\1.rdb\2.conv\3.\4')
    elif 'RRDB_trunk.0.RDB1.conv1.weight' in sd and 'trunk_conv.weight' in sd:
        if 'upconv2.weight' not in sd:
            raise UnknownArchitectureError('RRDB_trunk-layout RRDBNet without upconv2 (x2): BasicSR\'s RRDBNet '
                                           'upsamples exactly twice, so only x4 files of this layout convert.')
        mapping = {'conv_first': 'conv_first', 'trunk_conv': 'conv_body', 'upconv1': 'conv_up1',
                   'upconv2': 'conv_up2', 'HRconv': 'conv_hr', 'conv_last': 'conv_last'}
        body = (r'RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)', r'body.\1.rdb\2.conv\3.\4')
    else:
        return None
    out = {}
    for key in sd:
        module, _, kind = key.rpartition('.')
        if module in mapping:
            out[key] = f'{mapping[module]}.{kind}'
        elif re.fullmatch(body[0], key):
            out[key] = re.sub(body[0], body[1], key)
        else:
            raise UnknownArchitectureError(f'old-layout ESRGAN file with an unexpected key {key!r} (ESRGAN+ or a '
                                           f'variant BasicSR has no arch for).')
    return out


def to_basicsr_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with old ESRGAN key names renamed to BasicSR's RRDBNet names; other dicts unchanged."""
    mapping = _old_esrgan_map(state_dict)
    if mapping is None:
        return dict(state_dict)
    return {mapping[k]: v for k, v in state_dict.items()}


# ------------------------------------------------------------------------------------------ per-arch readers
def _rrdbnet(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    first, last = sd['conv_first.weight'], sd['conv_last.weight']
    in_ch, out_ch = first.shape[1], last.shape[0]
    # scale 2 / 1 feed pixel-unshuffled input: conv_first sees 4x / 16x the image channels
    scale, num_in_ch = {1: (4, in_ch), 4: (2, out_ch), 16: (1, out_ch)}.get(
        in_ch // out_ch if in_ch % out_ch == 0 else 0, (4, in_ch))
    return {'type': 'RRDBNet', 'num_in_ch': num_in_ch, 'num_out_ch': out_ch, 'scale': scale,
            'num_feat': first.shape[0], 'num_block': _count(sd, r'body\.(\d+)\.rdb1\.conv1\.weight'),
            'num_grow_ch': sd['body.0.rdb1.conv1.weight'].shape[0]}


def _srvgg(sd: Mapping[str, torch.Tensor], assumed: Mapping[str, Any]) -> dict[str, Any]:
    convs = [i for i in _indices(sd, r'body\.(\d+)\.weight') if sd[f'body.{i}.weight'].ndim == 4]
    prelu = [i for i in _indices(sd, r'body\.(\d+)\.weight') if sd[f'body.{i}.weight'].ndim == 1]
    if convs != list(range(0, 2 * len(convs), 2)):
        raise UnknownArchitectureError(f'SRVGGNetCompact-like body with convolutions at body.{convs}.')
    first, last = sd['body.0.weight'], sd[f'body.{convs[-1]}.weight']
    in_ch, num_feat = first.shape[1], first.shape[0]
    upscale = math.isqrt(last.shape[0] // in_ch)
    if upscale * upscale * in_ch != last.shape[0]:
        raise UnknownArchitectureError(f'SRVGGNetCompact-like: last conv has {last.shape[0]} outputs, not '
                                       f'{in_ch}·scale² (input channels {in_ch}).')
    act = assumed.get('act_type')
    if prelu:
        if act not in (None, 'prelu'):
            raise UnknownArchitectureError(f'SRVGGNetCompact: the file has PReLU weights, but act_type {act!r} '
                                           f'was given.')
        act = 'prelu'
    elif act not in ('relu', 'leakyrelu'):
        raise UnknownArchitectureError('SRVGGNetCompact without PReLU weights: ReLU and LeakyReLU leave no trace '
                                       'in the file; give act_type (relu or leakyrelu) in network_g.')
    return {'type': 'SRVGGNetCompact', 'num_in_ch': in_ch, 'num_out_ch': in_ch, 'num_feat': num_feat,
            'num_conv': len(convs) - 2, 'upscale': upscale, 'act_type': act}


def _msrresnet(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    first, nf = sd['conv_first.weight'], sd['conv_first.weight'].shape[0]
    if 'upconv2.weight' in sd:
        upscale = 4
    else:
        upscale = math.isqrt(sd['upconv1.weight'].shape[0] // nf)
    return {'type': 'MSRResNet', 'num_in_ch': first.shape[1], 'num_out_ch': sd['conv_last.weight'].shape[0],
            'num_feat': nf, 'num_block': _count(sd, r'body\.(\d+)\.conv1\.weight'), 'upscale': upscale}


def _edsr(sd: Mapping[str, torch.Tensor], assumed: Mapping[str, Any]) -> dict[str, Any]:
    first, nf = sd['conv_first.weight'], sd['conv_first.weight'].shape[0]
    defaults = ASSUMED_KEYS['EDSR']
    # BasicSR's EDSR-L release (256 features) trains with res_scale 0.1, EDSR-M (64) with 1
    res_scale = assumed.get('res_scale', 0.1 if nf >= 256 else 1)
    return {'type': 'EDSR', 'num_in_ch': first.shape[1], 'num_out_ch': sd['conv_last.weight'].shape[0],
            'num_feat': nf, 'num_block': _count(sd, r'body\.(\d+)\.conv1\.weight'),
            'upscale': _pow2_upsample(sd, 'upsample', nf), 'res_scale': res_scale,
            'img_range': assumed.get('img_range', defaults['img_range']),
            'rgb_mean': list(assumed.get('rgb_mean', defaults['rgb_mean']))}


def _rcan(sd: Mapping[str, torch.Tensor], assumed: Mapping[str, Any]) -> dict[str, Any]:
    first, nf = sd['conv_first.weight'], sd['conv_first.weight'].shape[0]
    squeezed = sd['body.0.residual_group.0.rcab.3.attention.1.weight'].shape[0]
    defaults = ASSUMED_KEYS['RCAN']
    return {'type': 'RCAN', 'num_in_ch': first.shape[1], 'num_out_ch': sd['conv_last.weight'].shape[0],
            'num_feat': nf, 'num_group': _count(sd, r'body\.(\d+)\.conv\.weight'),
            'num_block': _count(sd, r'body\.0\.residual_group\.(\d+)\.rcab\.0\.weight'),
            'squeeze_factor': nf // squeezed, 'upscale': _pow2_upsample(sd, 'upsample', nf),
            'res_scale': assumed.get('res_scale', defaults['res_scale']),
            'img_range': assumed.get('img_range', defaults['img_range']),
            'rgb_mean': list(assumed.get('rgb_mean', defaults['rgb_mean']))}


def _swinir(sd: Mapping[str, torch.Tensor], assumed: Mapping[str, Any]) -> dict[str, Any]:
    first = sd['conv_first.weight']
    embed_dim, in_ch = first.shape[0], first.shape[1]
    num_layers = _count(sd, r'layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight')
    depths = [_count(sd, rf'layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight') for i in range(num_layers)]
    tables = [sd[f'layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table'] for i in range(num_layers)]
    window_size = (math.isqrt(tables[0].shape[0]) + 1) // 2  # the table has (2·ws − 1)² rows
    mask = next((v for k, v in sd.items() if k.endswith('.attn_mask')), None)
    if mask is not None:  # (windows, ws², ws²) for the img_size the model was built with
        img_size = math.isqrt(mask.shape[0]) * window_size
    elif 'absolute_pos_embed' in sd:
        img_size = math.isqrt(sd['absolute_pos_embed'].shape[1])
    else:
        img_size = 64
    if 'conv_before_upsample.0.weight' in sd and 'conv_up1.weight' in sd:
        upsampler, upscale = 'nearest+conv', 4
    elif 'conv_before_upsample.0.weight' in sd:
        upsampler, upscale = 'pixelshuffle', _pow2_upsample(sd, 'upsample', sd['conv_last.weight'].shape[1])
    elif 'upsample.0.weight' in sd:
        upsampler, upscale = 'pixelshuffledirect', math.isqrt(sd['upsample.0.weight'].shape[0] // in_ch)
    else:
        upsampler, upscale = '', 1
    return {'type': 'SwinIR', 'upscale': upscale, 'in_chans': in_ch, 'img_size': img_size,
            'window_size': window_size, 'img_range': assumed.get('img_range', ASSUMED_KEYS['SwinIR']['img_range']),
            'depths': depths, 'embed_dim': embed_dim, 'num_heads': [t.shape[1] for t in tables],
            'mlp_ratio': sd['layers.0.residual_group.blocks.0.mlp.fc1.weight'].shape[0] / embed_dim,
            'qkv_bias': 'layers.0.residual_group.blocks.0.attn.qkv.bias' in sd,
            'ape': 'absolute_pos_embed' in sd, 'patch_norm': 'patch_embed.norm.weight' in sd,
            'upsampler': upsampler,
            'resi_connection': '3conv' if 'conv_after_body.0.weight' in sd else '1conv'}


# Signature keys of each arch (all must be present), checked in this order.
_SIGNATURES: list[tuple[str, tuple[str, ...]]] = [
    ('SwinIR', ('conv_first.weight', 'layers.0.residual_group.blocks.0.attn.relative_position_bias_table')),
    ('RRDBNet', ('conv_first.weight', 'body.0.rdb1.conv1.weight', 'conv_body.weight', 'conv_up1.weight',
                 'conv_up2.weight', 'conv_hr.weight', 'conv_last.weight')),
    ('RCAN', ('conv_first.weight', 'body.0.residual_group.0.rcab.0.weight',
              'body.0.residual_group.0.rcab.3.attention.1.weight', 'conv_after_body.weight', 'upsample.0.weight',
              'conv_last.weight')),
    ('EDSR', ('conv_first.weight', 'body.0.conv1.weight', 'conv_after_body.weight', 'upsample.0.weight',
              'conv_last.weight')),
    ('MSRResNet', ('conv_first.weight', 'body.0.conv1.weight', 'upconv1.weight', 'conv_hr.weight',
                   'conv_last.weight')),
    ('SRVGGNetCompact', ('body.0.weight', 'body.0.bias', 'body.2.weight')),
]


def _identify(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The first arch of :data:`_SIGNATURES` whose signature keys are all in ``sd`` (BasicSR layout)."""
    return next((arch for arch, keys in _SIGNATURES if all(k in sd for k in keys)), None)


_READERS = {'RRDBNet': lambda sd, _: _rrdbnet(sd), 'MSRResNet': lambda sd, _: _msrresnet(sd), 'SwinIR': _swinir,
            'RCAN': _rcan, 'EDSR': _edsr, 'SRVGGNetCompact': _srvgg}


def detect_network_g(state_dict: Mapping[str, torch.Tensor], assumed: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """BasicSR ``network_g`` (``type`` + kwargs) of a state dict (BasicSR keys or an old ESRGAN layout; a
    ``params_ema`` / ``params`` wrapper is unwrapped).

    ``assumed`` sets the hyper-parameters the weights do not determine (:data:`ASSUMED_KEYS`). Raises
    :class:`UnknownArchitectureError` naming the keys found when no recognised architecture matches."""
    assumed = dict(assumed or {})
    sd = to_basicsr_layout(extract_state_dict(state_dict))
    arch = _identify(sd)
    if arch is None:
        raise UnknownArchitectureError(
            f'no recognised SR architecture (RRDBNet incl. ESRGAN layouts, SRVGGNetCompact, MSRResNet, EDSR, '
            f'RCAN, SwinIR) matches these {len(sd)} tensors: {_describe(sd)}. Give network_g explicitly '
            f'(--network-g or the option file).')
    unknown = set(assumed) - set(ASSUMED_KEYS.get(arch, {}))
    if unknown:
        raise UnknownArchitectureError(f'{arch}: {sorted(unknown)} are read from the weights and cannot be set; '
                                       f'settable: {sorted(ASSUMED_KEYS.get(arch, {})) or "none"}.')
    try:
        return _READERS[arch](sd, assumed)
    except KeyError as exc:  # the signature matched but a key the reader needs is missing
        raise UnknownArchitectureError(f'looks like {arch} but lacks {exc}; keys found: {_describe(sd)}.') from exc


def _describe(sd: Mapping[str, torch.Tensor]) -> str:
    return _few([f'{k} {tuple(v.shape)}' for k, v in sd.items()], 8)


def _init_params(arch: str) -> set[str]:
    from basicsr.utils.registry import ARCH_REGISTRY

    return set(inspect.signature(ARCH_REGISTRY.get(arch).__init__).parameters) - {'self', 'kwargs'}


def network_scale(network_g: Mapping[str, Any]) -> int | None:
    """Upscaling factor of a BasicSR ``network_g`` (``scale`` or ``upscale``, else the arch's default)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    for key in ('scale', 'upscale'):
        if key in network_g:
            return int(network_g[key])
    try:
        params = inspect.signature(ARCH_REGISTRY.get(network_g['type']).__init__).parameters
    except KeyError:
        return None
    for key in ('scale', 'upscale'):
        if key in params and isinstance(params[key].default, int):
            return params[key].default
    return None


def _read(path: str, param_key: str | None) -> tuple[dict[str, torch.Tensor], bool]:
    """(BasicSR-layout tensors of ``path``, whether they had to be renamed from an old layout)."""
    from nriqa_basicsr.safe_load import load_torch_file

    raw = extract_state_dict(load_torch_file(path, 'cpu', 'checkpoint'), param_key, path)
    converted = to_basicsr_layout(raw)
    return converted, set(converted) != set(raw)


def load_network_file(path: str, param_key: str | None = None, device: str | torch.device = 'cpu',
                      assumed: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(network in eval mode with the weights of ``path`` loaded strictly, its BasicSR ``network_g``).

    ``param_key``: ``None`` takes ``params_ema``, then ``params``, else the file as a bare state dict."""
    from basicsr.archs import build_network

    from nriqa_basicsr.checkpoint import load_matching

    sd, _ = _read(path, param_key)
    try:
        network_g = detect_network_g(sd, assumed)
    except UnknownArchitectureError as exc:
        raise UnknownArchitectureError(f'{path}: {exc}') from None
    net = build_network(copy.deepcopy(network_g))
    load_matching(net, sd, path, strict=True)
    return net.eval().to(device), network_g


def resolve_auto_network_g(opt: dict[str, Any], where: str = 'options') -> dict[str, Any]:
    """Replace ``network_g: {type: auto}`` in a parsed option dict by the detected ``network_g`` of
    ``path.pretrain_network_g`` (in place; returns ``opt``). Other keys of the block are checks: hyper-parameters
    read from the weights must equal them; those of :data:`ASSUMED_KEYS` are taken as given."""
    block = opt.get('network_g')
    if not isinstance(block, dict) or block.get('type') != AUTO_ARCH:
        return opt
    path_opt = opt.get('path') or {}
    path = path_opt.get('pretrain_network_g')
    if not path:
        raise ValueError(f'{where}: network_g type "{AUTO_ARCH}" reads the architecture from '
                         f'path.pretrain_network_g, which is not set.')
    given = {k: v for k, v in block.items() if k != 'type'}
    sd, converted = _read(path, path_opt.get('param_key_g'))
    if converted:
        raise ValueError(f'{where}: {path} uses the old ESRGAN key layout, which BasicSR\'s loaders do not read; '
                         f'write a BasicSR-layout copy with `python -m nriqa_basicsr.archs.detect {path} --convert '
                         f'NEW.pth` and point path.pretrain_network_g at it.')
    settable = set(ASSUMED_KEYS.get(_identify(sd) or '', {}))
    try:
        detected = detect_network_g(sd, {k: v for k, v in given.items() if k in settable})
    except UnknownArchitectureError as exc:
        raise ValueError(f'{where}: network_g type "{AUTO_ARCH}": {path}: {exc}') from None
    wrong = [f'{k}: {v!r} given, the file has {detected[k]!r}' for k, v in given.items()
             if k not in settable and k in detected and detected[k] != v]
    # keys the weights say nothing about (e.g. SwinIR's use_checkpoint) pass through when the arch takes them
    extra = {k: v for k, v in given.items() if k not in detected}
    accepted = _init_params(detected['type'])
    wrong += [f'{k}: not an argument of {detected["type"]}' for k in extra if k not in accepted]
    if wrong:
        raise ValueError(f'{where}: network_g (type "{AUTO_ARCH}") disagrees with {path} ({detected["type"]}): '
                         + '; '.join(wrong) + '. Remove these keys or fix path.pretrain_network_g.')
    opt['network_g'] = {**detected, **extra}
    return opt


def build_parser() -> argparse.ArgumentParser:
    """``nriqa-detect-arch``'s command line."""
    from nriqa_basicsr import cli

    parser = argparse.ArgumentParser(prog='nriqa-detect-arch',
                                     description='Detect the BasicSR network_g of an SR checkpoint.')
    parser.add_argument('checkpoint', help='the .pth / .safetensors file')
    cli.add_param_key(parser)
    parser.add_argument('--convert', metavar='FILE', help='also write {"params_ema": state dict} with BasicSR keys to '
                        'FILE (old ESRGAN key layouts)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the detected ``network_g`` of a checkpoint; ``--convert FILE`` writes it with BasicSR keys."""
    import json

    import nriqa_basicsr  # noqa: F401  (compat shims before basicsr)

    args = build_parser().parse_args(argv)
    try:
        sd, _ = _read(args.checkpoint, args.param_key)
        print(json.dumps(detect_network_g(sd)))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f'error: {args.checkpoint}: {exc}', file=sys.stderr)
        return 1
    if args.convert:
        from nriqa_basicsr.atomic import atomic_path

        with atomic_path(args.convert) as tmp:
            torch.save({'params_ema': sd}, tmp)
        print(f'wrote {args.convert}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
