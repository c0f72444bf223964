"""``nriqa-merge-lora``: merge LoRA adapters (an FT run's ``net_g_lora_<iter>.pth``) into a full generator
checkpoint that stock BasicSR archs load with ``strict=True``.

    nriqa-merge-lora -opt options/train/train_RRDB_AMO_FT.yml \\
        --adapters experiments/train_RRDB_AMO_FT/models/net_g_lora_20000.pth -o net_g_merged.pth

The option file gives ``network_g``, ``network_g_lora`` and the base checkpoint (``path.pretrain_network_g`` /
``param_key_g``). The output holds ``params`` (and ``params_ema`` when the adapter file has EMA adapters), each
merged from the base weights and the matching adapters; the base is read with one key for both
(:mod:`nriqa_basicsr.checkpoint`). Written atomically. An existing ``--output`` is refused unless
``--overwrite`` is given, and ``--output`` may never be one of the inputs (:mod:`nriqa_basicsr.output_guard`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from nriqa_basicsr import cli
from nriqa_basicsr.checkpoint import merge_adapters, save_checkpoint
from nriqa_basicsr.output_guard import guard_output_files
from nriqa_basicsr.yaml_io import load_option_file

__all__ = ['build_parser', 'main', 'merge']

_TOOL = 'nriqa-merge-lora'


def merge(opt: dict[str, Any], adapters: str, base: str | None = None, base_key: str | None = None
          ) -> dict[str, dict[str, Any]]:
    """The merged checkpoint of FT option file ``opt`` and ``adapters``; ``base`` / ``base_key`` default to
    ``path.pretrain_network_g`` / ``path.param_key_g``."""
    path_opt = opt.get('path') or {}
    return merge_adapters(opt['network_g'], opt['network_g_lora'], base or path_opt['pretrain_network_g'], adapters,
                          base_key or path_opt.get('param_key_g'))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_TOOL, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_opt(parser, help='the FT option file (network_g, network_g_lora, path.pretrain_network_g)')
    parser.add_argument('--adapters', required=True, help='net_g_lora_<iter>.pth of the FT run')
    parser.add_argument('--base', help='base checkpoint (default: path.pretrain_network_g of the option file)')
    parser.add_argument('--base-key', help='param key of the base (default: path.param_key_g, else params; '
                                           'params when the base has no such key)')
    cli.add_output(parser, required=True, help='the merged checkpoint (.pth)')
    cli.add_overwrite(parser, help='replace an existing --output')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        opt = load_option_file(args.opt, '-opt')
        if 'network_g_lora' not in opt:
            raise ValueError(f'{args.opt} has no network_g_lora section (merge_lora needs the FT option file).')
        base = args.base or (opt.get('path') or {}).get('pretrain_network_g')
        guard_output_files([args.output], _TOOL, [args.opt, args.adapters, base], args.overwrite)
        merged = merge(opt, args.adapters, args.base, args.base_key)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    save_checkpoint(merged, args.output)
    print(f'wrote {args.output} ({", ".join(merged)}), loadable by stock {opt["network_g"]["type"]} with '
          f'strict=True')
    return 0


if __name__ == '__main__':
    sys.exit(main())
