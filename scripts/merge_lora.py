#!/usr/bin/env python
"""Merge LoRA adapters (an FT run's ``net_g_lora_<iter>.pth``) into a full generator checkpoint that stock
BasicSR archs load with ``strict=True``.

    python scripts/merge_lora.py -opt options/train/train_RRDB_AMO_FT.yml \
        --adapters experiments/train_RRDB_AMO_FT/models/net_g_lora_20000.pth --out net_g_merged.pth

The option file gives ``network_g``, ``network_g_lora`` and the base checkpoint (``path.pretrain_network_g`` /
``param_key_g``). The output holds ``params`` (and ``params_ema`` when the adapter file has EMA adapters), each
merged from the base weights and the matching adapters. Written atomically. An existing ``--out`` is refused
unless ``--overwrite`` is given, and ``--out`` may never be one of the inputs (``nriqa_basicsr.output_guard``).
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
from nriqa_basicsr.archs.lora import merged_state_dict  # noqa: E402
from nriqa_basicsr.atomic import atomic_path  # noqa: E402
from nriqa_basicsr.inference import adapted_generator  # noqa: E402
from nriqa_basicsr.output_guard import guard_output_files  # noqa: E402
from nriqa_basicsr.safe_load import load_torch_file  # noqa: E402
from nriqa_basicsr.yaml_io import load_option_file  # noqa: E402


def merge(opt: dict, adapters: str, base: str | None = None, base_key: str | None = None) -> dict:
    base = base or opt['path']['pretrain_network_g']
    base_key = base_key or opt['path'].get('param_key_g', 'params')
    keys = [k for k in ('params', 'params_ema') if k in load_torch_file(adapters, 'cpu', 'adapters')]
    if not keys:
        raise ValueError(f'{adapters}: no params / params_ema adapter sets.')
    return {key: merged_state_dict(adapted_generator(opt['network_g'], opt['network_g_lora'], base, base_key,
                                                     adapters, key)) for key in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='the FT option file')
    parser.add_argument('--adapters', required=True, help='net_g_lora_<iter>.pth of the FT run')
    parser.add_argument('--base', help='base checkpoint (default: path.pretrain_network_g of the option file)')
    parser.add_argument('--base-key', help='param key of the base (default: path.param_key_g)')
    parser.add_argument('--out', required=True)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    args = parser.parse_args(argv)
    try:
        opt = load_option_file(args.opt, '-opt')
        if 'network_g_lora' not in opt:
            raise ValueError(f'{args.opt} has no network_g_lora section (merge_lora needs the FT option file).')
        base = args.base or (opt.get('path') or {}).get('pretrain_network_g')
        guard_output_files([args.out], 'merge_lora.py', [args.opt, args.adapters, base], args.overwrite)
        merged = merge(opt, args.adapters, args.base, args.base_key)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    with atomic_path(args.out) as tmp:
        torch.save(merged, tmp)
    print(f'wrote {args.out} ({", ".join(merged)}), loadable by stock {opt["network_g"]["type"]} with strict=True')
    return 0


if __name__ == '__main__':
    sys.exit(main())
