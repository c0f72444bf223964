"""A faster forward pass for pyiqa's MUSIQ, on the same module and weights.

pyiqa's ``MUSIQ.forward`` rebuilds the multi-scale token positions on the CPU side for every call (a tensor
concatenated into the patch data and sliced out again) and computes attention as explicit
``softmax(QKᵀ)·V`` with a masked-fill. For a batch of equally sized crops — the K candidates of AMO, the GT
variants of ``score_gts.py``, the SR outputs of the IQA loss — the positions and the padding mask depend only
on the crop size, so :func:`musiq_forward` computes them once per size and device, runs the per-patch
convolution stem in channels-last layout (the token flattening then needs no copy) and attention through
``torch.nn.functional.scaled_dot_product_attention`` (fused kernels on GPU, also under bf16 autocast). Every
layer is pyiqa's own module; outputs match pyiqa's forward to float rounding (tests: relative difference
≤ 1e-3 in fp32, measured ~1e-6; gradients equal up to the routing of tied max-pool maxima).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from pyiqa.archs.arch_util import dist_to_mos
from pyiqa.data.multiscale_trans_util import extract_image_patches, get_hashed_spatial_pos_emb_index

__all__ = ['is_musiq', 'musiq_forward', 'musiq_layout']


def is_musiq(net: torch.nn.Module) -> bool:
    from pyiqa.archs.musiq_arch import MUSIQ

    return isinstance(net, MUSIQ)


@functools.lru_cache(maxsize=32)
def musiq_layout(h: int, w: int, patch_size: int, patch_stride: int, grid: int, longer_side_lengths: tuple,
                 max_seq_len_from_original_res: int | None) -> tuple[tuple, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token layout of an ``h × w`` input: per scale ``(rh, rw, max_len)`` (``rh = 0``: original resolution),
    and the spatial-position index, scale index and keep-mask of every token (CPU tensors, length L)."""
    scales, spatial, scale_ids, keep = [], [], [], []
    sizes = [(round(h * s / max(h, w)), round(w * s / max(h, w)), int(-(-s // patch_stride)) ** 2)
             for s in sorted(longer_side_lengths)]
    if max_seq_len_from_original_res is not None:
        sizes.append((h, w, max_seq_len_from_original_res))
    for scale_id, (rh, rw, max_len) in enumerate(sizes):
        count_h, count_w = -(-rh // patch_stride), -(-rw // patch_stride)
        n = count_h * count_w
        max_len = n if max_len < 0 else max_len
        pos = get_hashed_spatial_pos_emb_index(grid, count_h, count_w).reshape(-1).long()
        used = min(n, max_len)
        # pyiqa pads with all-zero columns: spatial 0, scale 0, mask 0
        spatial.append(torch.cat([pos[:used], torch.zeros(max_len - used, dtype=torch.long)]))
        scale_ids.append(torch.cat([torch.full((used,), scale_id), torch.zeros(max_len - used, dtype=torch.long)]))
        keep.append(torch.arange(max_len) < used)
        is_original = max_seq_len_from_original_res is not None and scale_id == len(sizes) - 1
        scales.append((0 if is_original else rh, rw, max_len))
    return tuple(scales), torch.cat(spatial), torch.cat(scale_ids), torch.cat(keep)


def _patches(x: torch.Tensor, scales: tuple, patch_size: int, patch_stride: int) -> torch.Tensor:
    """``(N, L, 3·p·p)`` patch vectors of every scale, zero-padded to each scale's maximum length."""
    out = []
    for rh, rw, max_len in scales:
        image = x if rh == 0 else F.interpolate(x, (rh, rw), mode='bicubic', align_corners=False)
        p = extract_image_patches(image, patch_size, patch_stride)[..., :max_len]
        out.append(F.pad(p, (0, max_len - p.shape[-1])))
    return torch.cat(out, dim=-1).transpose(1, 2)


def _attention(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    b, n, c = x.shape
    heads = module.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, n, heads, c // heads).transpose(1, 2)

    y = F.scaled_dot_product_attention(split(module.query(x)), split(module.key(x)), split(module.value(x)),
                                       attn_mask=mask, scale=module.scale)
    return module.out(y.transpose(1, 2).reshape(b, n, c))


def musiq_forward(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` for a pyiqa ``MUSIQ`` in eval mode and an ``(N, 3, H, W)`` batch in [0, 1]; returns ``(N, 1)``."""
    opts = net.data_preprocess_opts
    n, _, h, w = x.shape
    scales, spatial, scale_ids, keep = musiq_layout(
        h, w, opts['patch_size'], opts['patch_stride'], opts['hse_grid_size'], tuple(opts['longer_side_lengths']),
        opts['max_seq_len_from_original_res'])
    tokens = _patches((x - 0.5) * 2, scales, opts['patch_size'], opts['patch_stride'])
    seq_len = tokens.shape[1]
    # channels-last patches: the convolution stem runs in NHWC and the token flattening below needs no copy
    t = tokens.reshape(-1, 3, net.patch_size, net.patch_size).contiguous(memory_format=torch.channels_last)
    t = net.block1(net.root_pool(net.gn_root(net.conv_root(t))))
    t = net.embedding(t.permute(0, 2, 3, 1).reshape(n, seq_len, -1))

    enc = net.transformer_encoder
    device = t.device
    t = t + enc.posembed_input.position_emb[0][spatial.to(device)]
    if enc.use_scale_emb:
        t = t + enc.scaleembed_input.scale_emb[scale_ids.to(device)]
    t = torch.cat([enc.cls.expand(n, -1, -1).to(t.dtype), t], dim=1)
    # padding tokens are never attended to (pyiqa: logits filled with -1e3); none exist for square crops
    mask = None if bool(keep.all()) else torch.cat([torch.ones(1, dtype=torch.bool), keep]).to(device)[None, None, None]
    for block in enc.transformer.values():
        t = t + _attention(block.attention, block.norm1(t), mask)
        t = t + block.mlp(block.norm2(t))
    t = enc.encoder_norm(t)
    return dist_to_mos(net.head(t[:, 0]))
