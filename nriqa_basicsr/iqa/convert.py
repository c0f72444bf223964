"""Convert original IQA parameter releases into the files pyiqa loads, under pyiqa's file names
(``nriqa-convert-iqa-weights``).

Not needed any more for the releases in a weights directory: the scorer finds ``allmodel`` (BRISQUE),
``templateModel.mat`` (IL-NIQE) and ``modelparameters.mat`` (NIQE) by themselves and converts them into its cache
(``nriqa_basicsr/iqa/releases.py``). This tool writes the converted file to a folder of your choice instead.

The output folder (``-o``, default ``experiments/pretrained_models/iqa`` under the current directory) is on the
scorer's weight search path, so after conversion ``build_scorer('brisque')`` /
``{type: calculate_nriqa, metric: brisque}`` work offline.

    nriqa-convert-iqa-weights brisque ../shared/iqa_weights/brisque/allmodel \
        --range ../shared/iqa_weights/brisque/allrange
    nriqa-convert-iqa-weights niqe ../shared/iqa_weights/niqe/modelparameters.mat

* ``brisque``: the LIVE BRISQUE release (libsvm ``epsilon_svr`` text model + svm-scale range file) →
  ``brisque_svm_weights.pth`` = ``(sv_coef (N,), sv (N, 36))`` float64 tensors, the format of pyiqa's
  ``brisque`` (version 'original', whose gamma 0.05, rho -153.591 and feature ranges are hard-coded in pyiqa;
  they are checked against the release files and a mismatch is refused).
* ``niqe``: the LIVE NIQE ``modelparameters.mat`` or basicsr's ``niqe_pris_params.npz`` →
  ``niqe_modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Sequence

from nriqa_basicsr import cli

__all__ = ['OUTPUT_NAMES', 'build_parser', 'main']

TOOL = 'convert_iqa_weights.py'  # owner name in the output markers of earlier conversions
OUTPUT_NAMES = {'brisque': 'brisque_svm_weights.pth', 'niqe': 'niqe_modelparameters.mat'}  # pyiqa's file names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='nriqa-convert-iqa-weights', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=sorted(OUTPUT_NAMES))
    parser.add_argument('src', help='original parameter file')
    parser.add_argument('--range', dest='range_path', help='brisque: svm-scale range file (checked against pyiqa)')
    cli.add_output(parser, help='output folder (default: experiments/pretrained_models/iqa under the current '
                   'directory, on the scorer\'s weight search path)')
    cli.add_overwrite(parser, help='replace an existing converted file in --output')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-convert-iqa-weights`` / ``scripts/convert_iqa_weights.py``."""
    from nriqa_basicsr.iqa.releases import convert_brisque, convert_niqe
    from nriqa_basicsr.iqa.weights import project_weights_dir
    from nriqa_basicsr.output_guard import guard_output_files

    parser = build_parser()
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        parser.error(f'src {args.src}: no such file')
    out = args.output or project_weights_dir()
    os.makedirs(out, exist_ok=True)
    try:
        # an earlier conversion (or the source itself) is never replaced silently
        target = osp.join(out, OUTPUT_NAMES[args.kind])
        guard_output_files([target], TOOL, [args.src, args.range_path], args.overwrite)
        path = (convert_brisque(args.src, args.range_path, target) if args.kind == 'brisque'
                else convert_niqe(args.src, target))
    except (ValueError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {path}')
    return 0
