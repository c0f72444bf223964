#!/usr/bin/env python
"""Convert original IQA parameter releases into the files pyiqa loads, under pyiqa's file names.

Not needed any more for the releases in a weights directory: the scorer finds ``allmodel`` (BRISQUE),
``templateModel.mat`` (IL-NIQE) and ``modelparameters.mat`` (NIQE) by themselves and converts them into its cache
(``nriqa_basicsr/iqa/releases.py``). This script writes the converted file to a folder of your choice instead.

The output directory (default ``experiments/pretrained_models/iqa``) is on the scorer's weight search path, so
after conversion ``build_scorer('brisque')`` / ``{type: calculate_nriqa, metric: brisque}`` work offline.

    python scripts/convert_iqa_weights.py brisque ../shared/iqa_weights/brisque/allmodel \
        --range ../shared/iqa_weights/brisque/allrange
    python scripts/convert_iqa_weights.py niqe ../shared/iqa_weights/niqe/modelparameters.mat

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

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from nriqa_basicsr.iqa.releases import convert_brisque, convert_niqe  # noqa: E402
from nriqa_basicsr.iqa.weights import project_weights_dir  # noqa: E402
from nriqa_basicsr.output_guard import guard_output_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=['brisque', 'niqe'])
    parser.add_argument('src', help='original parameter file')
    parser.add_argument('--range', dest='range_path', help='brisque: svm-scale range file (checked against pyiqa)')
    parser.add_argument('--out', default=project_weights_dir(), help='output directory (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing converted file in --out')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        parser.error(f'{args.src}: no such file')
    os.makedirs(args.out, exist_ok=True)
    try:
        # an earlier conversion (or the source itself) is never replaced silently
        target = osp.join(args.out, 'brisque_svm_weights.pth' if args.kind == 'brisque' else 'niqe_modelparameters.mat')
        guard_output_files([target], 'convert_iqa_weights.py', [args.src, args.range_path], args.overwrite)
        path = (convert_brisque(args.src, args.range_path, target) if args.kind == 'brisque'
                else convert_niqe(args.src, target))
    except (ValueError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
