"""One command-line vocabulary for every ``nriqa-*`` tool.

A flag that two tools share is added through this module, so it has one spelling and one meaning everywhere;
:data:`VOCABULARY` documents each once, and the README's flag table is generated from the tools' own parsers
(:func:`flag_table`; a test compares the two). Every tool module exposes ``build_parser()`` and
``main(argv=None) -> int`` and is listed in :data:`COMMANDS`.

``nriqa-train`` / ``nriqa-test`` are BasicSR's own command lines (``-opt``, ``--launcher``, ``--auto_resume``,
``--debug``, ``--local_rank``, ``--force_yml``) and are not listed here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from nriqa_basicsr.readme_block import read_block, replace_block, write_or_check

__all__ = ['COMMANDS', 'README_BEGIN', 'README_END', 'RETIRED', 'VOCABULARY', 'add_batch_size', 'add_dataroot',
           'add_device', 'add_network_g', 'add_no_progress', 'add_opt', 'add_output', 'add_overwrite',
           'add_param_key', 'add_scale', 'add_seed', 'add_tile', 'add_weights_dir', 'build_parser_of', 'existing_file',
           'flag_table',
           'main', 'parse_network_g', 'readme_table', 'readme_with_table', 'resolve_device']

# Shared flags: the meaning every tool gives them (tool-specific detail goes into the tool's --help only).
VOCABULARY: dict[str, str] = {
    '-opt': 'a BasicSR option file (YAML)',
    '--output': 'where the tool writes its results (a file or a folder, see the tool); `-o` for short',
    '--overwrite': 'replace results an earlier run of the same tool wrote (never files it did not write)',
    '--no-progress': 'no progress bars (for logs and CI)',
    '--device': 'torch device: `auto` (CUDA when available), `cpu`, `cuda`, `cuda:N`',
    '--batch-size': 'images per forward pass / training batch',
    '--seed': 'random seed (runs with the same seed and inputs make the same data on the same machine)',
    '--weights-dir': 'extra folder(s) searched first for IQA weight files (also `$NRIQA_WEIGHTS_DIR`)',
    '--iqa-plugin': 'register custom NR-IQA models: `package.module[:Class]` or `file.py[:Class]` (repeatable)',
    '--network-g': 'architecture of a `.pth` model: an arch name with its stock defaults or a JSON `network_g` '
                   '(default: read from the weights)',
    '--param-key': 'checkpoint key of the weights (default `params_ema`, falling back to `params`)',
    '--scale': 'upscaling factor (of a network: checked against its own, which is the default)',
    '--model': 'a generator: checkpoint `.pth`, option file `.yml` or training run `experiments/NAME[@best|@latest]`',
    '--dataroot': 'the input dataset folder the tool reads (never written to)',
    '--layout': 'multi-GT folder layout: `hggt` (HGGT\'s file names) or `generic` (`--variants`, `--filename-tmpl`)',
    '--variants': 'GT variant names, original first (generic layout)',
    '--filename-tmpl': 'stem template of the non-original variants, e.g. `{name}_{variant}` (generic layout)',
    '--lq-filename-tmpl': 'LQ (LR) file stem from the GT (HR) stem, e.g. `{}x4`',
    '--demo-data': 'the demo data folder: read when present, made there (`nriqa-make-demo-data`) when missing',
    '--adapters': 'an FT run\'s LoRA adapters `net_g_lora_<iter>.pth` (with the FT option file)',
    '--guide': 'the NR-IQA metric that guides training (AMO selection and the NR-IQA loss)',
    '--metrics': 'IQA metric names (pyiqa names, `niqe_matlab_y`, or registered custom models)',
    '--tile': 'LR tile size for large images (0: the whole image at once)',
    '--tile-pad': 'overlap of neighbouring tiles, in LR pixels',
    '--iters': 'timed (or trained) iterations',
    '--warmup': 'untimed iterations before timing',
    '--gt-size': 'GT (HR) crop size in pixels',
    '--amp': 'autocast precision on CUDA: `bf16` or `fp16`',
    '--groups': 'number of multi-GT groups (samples) to generate',
    '--size': 'image / patch size in pixels',
    '--workers': 'data-loader worker processes',
    '--compile': '`torch.compile` the networks',
    '--bf16': 'autocast in bfloat16 on CUDA',
}

# Spellings replaced by the vocabulary above; no tool may use them again.
RETIRED = {'--out': '--output', '--batch': '--batch-size', '--data': '--dataroot', '--quiet': '--no-progress',
           '--json': '--output'}

# console script -> module with build_parser() and main(); the same list as setup.py's entry points (tested)
COMMANDS: dict[str, str] = {
    'nriqa-analyze-iqa': 'nriqa_basicsr.analysis',
    'nriqa-bench-dataset': 'nriqa_basicsr.bench.dataset',
    'nriqa-bench-precision': 'nriqa_basicsr.bench.precision',
    'nriqa-bench-scoring': 'nriqa_basicsr.bench.scoring',
    'nriqa-bench-step': 'nriqa_basicsr.bench.step',
    'nriqa-benchmark': 'nriqa_basicsr.benchmark',
    'nriqa-build-multigt': 'nriqa_basicsr.data.build_multigt',
    'nriqa-check': 'nriqa_basicsr.preflight',
    'nriqa-convert-iqa-weights': 'nriqa_basicsr.iqa.convert',
    'nriqa-create-lmdb': 'nriqa_basicsr.data.lmdb',
    'nriqa-demo': 'nriqa_basicsr.demo.run',
    'nriqa-detect-arch': 'nriqa_basicsr.archs.detect',
    'nriqa-guard-noise': 'nriqa_basicsr.guard_noise',
    'nriqa-make-demo-data': 'nriqa_basicsr.demo.data',
    'nriqa-merge-lora': 'nriqa_basicsr.merge_lora',
    'nriqa-reproduce': 'nriqa_basicsr.reproduce',
    'nriqa-score-gts': 'nriqa_basicsr.data.scoring',
    'nriqa-upscale': 'nriqa_basicsr.upscale',
}


def existing_file(path: str) -> str:
    """argparse ``type`` of a file the tool reads: refused at parse time, with the flag named by argparse."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f'{path}: no such file')
    return path


def add_opt(parser: argparse.ArgumentParser, required: bool = True, help: str | None = None,
            must_exist: bool = False) -> None:
    """``-opt FILE``; ``must_exist``: refused by argparse when the file is missing (tools that report a missing
    file their own way leave it off)."""
    parser.add_argument('-opt', '--opt', dest='opt', required=required, metavar='FILE',
                        type=existing_file if must_exist else str, help=help or VOCABULARY['-opt'])


def add_output(parser: argparse.ArgumentParser, required: bool = False, default: str | None = None,
               help: str | None = None) -> None:
    parser.add_argument('-o', '--output', required=required, default=default, metavar='PATH',
                        help=help or VOCABULARY['--output'])


def add_overwrite(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument('--overwrite', action='store_true', help=help or VOCABULARY['--overwrite'])


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--no-progress', action='store_true', help=VOCABULARY['--no-progress'])


def add_device(parser: argparse.ArgumentParser, default: str = 'auto') -> None:
    parser.add_argument('--device', default=default, help=f'{VOCABULARY["--device"]} (default: {default})')


def add_batch_size(parser: argparse.ArgumentParser, default: int | None = None, help: str | None = None) -> None:
    parser.add_argument('--batch-size', type=int, default=default, metavar='N',
                        help=(help or VOCABULARY['--batch-size']) + (f' (default: {default})' if default else ''))


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument('--seed', type=int, default=default, help=f'{VOCABULARY["--seed"]} (default: {default})')


def add_weights_dir(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument('--weights-dir', action='append', metavar='DIR', help=help or VOCABULARY['--weights-dir'])


def add_network_g(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--network-g', metavar='ARCH|JSON', help=VOCABULARY['--network-g'])


def add_scale(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument('--scale', type=int, metavar='N', help=help or VOCABULARY['--scale'])


def add_param_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--param-key', metavar='KEY', help=VOCABULARY['--param-key'])


def add_tile(parser: argparse.ArgumentParser, tile_pad: int = 16) -> None:
    """``--tile`` and ``--tile-pad`` (inference in overlapping LR tiles)."""
    parser.add_argument('--tile', type=int, default=0, metavar='N', help=VOCABULARY['--tile'] + ' (default: 0)')
    parser.add_argument('--tile-pad', type=int, default=tile_pad, metavar='N',
                        help=f'{VOCABULARY["--tile-pad"]} (default: {tile_pad})')


def add_dataroot(parser: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
    parser.add_argument('--dataroot', required=required, metavar='DIR', help=help or VOCABULARY['--dataroot'])


def resolve_device(value: str | None) -> str:
    """``--device`` as torch takes it: ``auto`` (or None) is CUDA when available, else the CPU."""
    if value in (None, '', 'auto'):
        import torch

        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return value


# stock hyper-parameters of ``--network-g NAME`` (the released x``scale`` models of each family)
_STOCK: dict[str, dict[str, Any]] = {
    'RRDBNet': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 23, 'num_grow_ch': 32},
    'SwinIR': {'img_size': 64, 'window_size': 8, 'img_range': 1.0, 'depths': [6] * 6, 'embed_dim': 180,
               'num_heads': [6] * 6, 'mlp_ratio': 2, 'upsampler': 'pixelshuffle', 'resi_connection': '1conv'},
    'MSRResNet': {'num_in_ch': 3, 'num_out_ch': 3},
}
_SCALE_KEY = {'RRDBNet': 'scale', 'SwinIR': 'upscale', 'MSRResNet': 'upscale'}


def parse_network_g(value: str, scale: int | None, flag: str = '--network-g') -> dict[str, Any]:
    """``--network-g``: a JSON ``network_g`` mapping, or an arch name with its stock defaults at ``scale``.

    Raises ``ValueError`` naming ``flag`` for malformed JSON, a JSON value that is not a mapping with ``type``,
    or a stock arch name without ``scale``.
    """
    text = value.strip()
    if text.startswith('{'):
        try:
            opt = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{flag}: not valid JSON ({exc.msg} at character {exc.pos}); give an arch name '
                             f'(e.g. {flag} RRDBNet) or a JSON mapping with "type".') from None
        if not isinstance(opt, dict) or not isinstance(opt.get('type'), str):
            raise ValueError(f'{flag}: the JSON must be a mapping with a "type" (e.g. {{"type": "RRDBNet", ...}}).')
        return opt
    if not text.isidentifier():
        raise ValueError(f'{flag} {value!r}: neither an arch name (e.g. RRDBNet) nor a JSON mapping.')
    if text in _SCALE_KEY and scale is None:
        raise ValueError(f'{flag} {text}: stock defaults need --scale (or give the JSON network_g).')
    stock = dict(_STOCK.get(text, {}))
    if text in _SCALE_KEY:
        stock[_SCALE_KEY[text]] = scale
    return {'type': text, **stock}


def build_parser_of(command: str) -> argparse.ArgumentParser:
    """The parser of console script ``command`` (from :data:`COMMANDS`)."""
    return importlib.import_module(COMMANDS[command]).build_parser()


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option flag (its long spelling, or ``-opt``) -> help of that tool."""
    out = {}
    for action in parser._actions:  # argparse has no public accessor for its actions
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings
        key = '-opt' if '-opt' in names else next((n for n in names if n.startswith('--')), names[0])
        out[key] = (action.help or '').replace('|', '/')
    return out


README_BEGIN, README_END = '<!-- cli-flags:begin -->', '<!-- cli-flags:end -->'


def readme_with_table(text: str, table: str | None = None) -> str:
    """``text`` (the README) with the block between :data:`README_BEGIN` / :data:`README_END` replaced by
    ``table`` (default: :func:`flag_table`); nothing else changes."""
    return replace_block(text, README_BEGIN, README_END, flag_table() if table is None else table, 'flag table')


def readme_table(text: str) -> str:
    """The flag table as the README holds it (between the markers)."""
    return read_block(text, README_BEGIN, README_END, 'flag table')


def flag_table(commands: Sequence[str] | None = None) -> str:
    """The README's CLI flag table: shared flags with their one meaning and the tools that take them, then each
    tool's own flags."""
    commands = sorted(COMMANDS) if commands is None else list(commands)
    per_tool = {c: _flags(build_parser_of(c)) for c in commands}
    users: dict[str, list[str]] = {}
    for command, flags in per_tool.items():
        for flag in flags:
            users.setdefault(flag, []).append(command)
    lines = ['| flag | meaning | tools |', '|---|---|---|']
    for flag in sorted(f for f in users if f in VOCABULARY):
        meaning = VOCABULARY[flag].replace('|', '\\|')  # a bare | would end the table cell, even in `code`
        lines.append(f'| `{flag}` | {meaning} | {", ".join(f"`{c}`" for c in users[flag])} |')
    lines += ['', '| tool | its own flags |', '|---|---|']
    for command, flags in per_tool.items():
        own = [f'`{f}`' for f in flags if f not in VOCABULARY]
        lines.append(f'| `{command}` | {", ".join(own) or "–"} |')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nriqa_basicsr.cli``: print the flag table, or write it into a README (``--write-readme``) or
    check that the README's copy is current (``--check``)."""
    parser = argparse.ArgumentParser(prog='python -m nriqa_basicsr.cli', description=main.__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--write-readme', metavar='FILE', help=f'replace the {README_BEGIN} block of FILE')
    group.add_argument('--check', metavar='FILE', help="exit 1 when FILE's block differs from the tools' parsers")
    args = parser.parse_args(argv)
    path = args.write_readme or args.check
    if path:
        try:
            status = write_or_check(path, README_BEGIN, README_END, flag_table(), bool(args.check),
                                    'python -m nriqa_basicsr.cli --write-readme', 'flag table')
        except ValueError as exc:
            parser.error(f'{"--check" if args.check else "--write-readme"} {path}: {exc}')
        if not args.check:
            print(f'{path}: flag table written')
        return status
    print(flag_table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
