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
from collections.abc import Sequence
from typing import Any

__all__ = ['COMMANDS', 'VOCABULARY', 'add_batch_size', 'add_device', 'add_network_g', 'add_no_progress',
           'add_opt', 'add_output', 'add_overwrite', 'add_seed', 'add_weights_dir', 'build_parser_of',
           'flag_table', 'parse_network_g']

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
    '--scale': 'upscaling factor; checked against the network\'s own (default: the network\'s)',
    '--model': 'a generator: checkpoint `.pth`, option file `.yml` or training run `experiments/NAME[@best|@latest]`',
    '--dataroot': 'the input dataset folder the tool reads (never written to)',
    '--metrics': 'IQA metric names (pyiqa names, `niqe_matlab_y`, or registered custom models)',
    '--tile': 'LR tile size for large images (0: the whole image at once)',
    '--tile-pad': 'overlap of neighbouring tiles, in LR pixels',
    '--iters': 'timed (or trained) iterations',
    '--warmup': 'untimed iterations before timing',
    '--gt-size': 'GT (HR) crop size in pixels',
    '--amp': 'autocast precision on CUDA: `bf16`, `fp16` or `off`',
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
    'nriqa-make-demo-data': 'nriqa_basicsr.demo.data',
    'nriqa-merge-lora': 'nriqa_basicsr.merge_lora',
    'nriqa-reproduce': 'nriqa_basicsr.reproduce',
    'nriqa-score-gts': 'nriqa_basicsr.data.scoring',
    'nriqa-upscale': 'nriqa_basicsr.upscale',
}


def add_opt(parser: argparse.ArgumentParser, required: bool = True, help: str | None = None) -> None:
    parser.add_argument('-opt', '--opt', dest='opt', required=required, metavar='FILE',
                        help=help or VOCABULARY['-opt'])


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
        lines.append(f'| `{flag}` | {VOCABULARY[flag]} | {", ".join(f"`{c}`" for c in users[flag])} |')
    lines += ['', '| tool | its own flags |', '|---|---|']
    for command, flags in per_tool.items():
        own = [f'`{f}`' for f in flags if f not in VOCABULARY]
        lines.append(f'| `{command}` | {", ".join(own) or "–"} |')
    return '\n'.join(lines)
