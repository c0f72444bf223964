#!/usr/bin/env python
"""Convert original IQA parameter releases into the files pyiqa loads, under pyiqa's file names.

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

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from nriqa_basicsr.iqa.weights import _atomic_write, project_weights_dir  # noqa: E402

PYIQA_BRISQUE = {'gamma': 0.05, 'rho': -153.591}


def read_libsvm_model(path: str) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """Header, ``sv_coef (N,)`` and dense ``sv (N, D)`` of a libsvm text model (1-based feature indices)."""
    header: dict[str, str] = {}
    coefs, rows = [], []
    with open(path, encoding='ascii') as f:
        lines = iter(f.read().splitlines())
        for line in lines:
            if line.strip() == 'SV':
                break
            key, _, value = line.strip().partition(' ')
            header[key] = value
        else:
            raise ValueError(f'{path}: no "SV" section; not a libsvm model file.')
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            coefs.append(float(parts[0]))
            rows.append({int(k): float(v) for k, v in (p.split(':') for p in parts[1:])})
    if not rows:
        raise ValueError(f'{path}: the SV section is empty.')
    dim = max(max(r) for r in rows if r)
    sv = np.zeros((len(rows), dim))
    for i, row in enumerate(rows):
        for k, v in row.items():
            sv[i, k - 1] = v
    if 'total_sv' in header and int(header['total_sv']) != len(rows):
        raise ValueError(f'{path}: header says {header["total_sv"]} support vectors, found {len(rows)}.')
    return header, np.asarray(coefs), sv


def read_svm_scale_range(path: str) -> tuple[tuple[float, float], np.ndarray]:
    """Target range and per-feature ``(min, max)`` rows of an svm-scale range file."""
    with open(path, encoding='ascii') as f:
        lines = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    if not lines or lines[0] != ['x']:
        raise ValueError(f'{path}: expected an svm-scale range file starting with "x".')
    target = (float(lines[1][0]), float(lines[1][1]))
    ranges = np.array([[float(a), float(b)] for _, a, b in lines[2:]])
    return target, ranges


def convert_brisque(model_path: str, range_path: str | None, out_dir: str) -> str:
    import torch

    header, sv_coef, sv = read_libsvm_model(model_path)
    if header.get('svm_type') != 'epsilon_svr' or header.get('kernel_type') != 'rbf':
        raise ValueError(f'{model_path}: expected an epsilon_svr RBF model, got {header.get("svm_type")} / '
                         f'{header.get("kernel_type")}.')
    for key, expected in PYIQA_BRISQUE.items():
        if abs(float(header[key]) - expected) > 1e-9:
            raise ValueError(f'{model_path}: {key} = {header[key]}, but pyiqa\'s BRISQUE hard-codes {expected}; '
                             f'this model cannot be loaded through pyiqa.')
    if sv.shape[1] != 36:
        raise ValueError(f'{model_path}: expected 36 BRISQUE features, got {sv.shape[1]}.')
    if range_path is not None:
        from pyiqa.archs.brisque_arch import scale_features

        target, ranges = read_svm_scale_range(range_path)
        # scale_features maps each feature range to [-1, 1]; recover its table from the range end points.
        probe = torch.tensor(ranges.T, dtype=torch.float64)
        scaled = scale_features(probe).numpy()
        if target != (-1.0, 1.0) or not np.allclose(scaled, [[-1.0] * 36, [1.0] * 36], atol=1e-4):
            raise ValueError(f'{range_path}: feature ranges differ from the ones hard-coded in pyiqa\'s BRISQUE.')
    path = osp.join(out_dir, 'brisque_svm_weights.pth')
    payload = (torch.from_numpy(sv_coef), torch.from_numpy(sv))
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def convert_niqe(src: str, out_dir: str) -> str:
    import scipy.io

    if src.endswith('.npz'):
        data = np.load(src)
        mu, cov = data['mu_pris_param'], data['cov_pris_param']
    else:
        data = scipy.io.loadmat(src)
        mu, cov = data['mu_prisparam'], data['cov_prisparam']
    mu = np.asarray(mu, dtype=np.float64).reshape(1, -1)
    cov = np.asarray(cov, dtype=np.float64)
    if mu.shape != (1, 36) or cov.shape != (36, 36):
        raise ValueError(f'{src}: expected a 36-feature NIQE model, got mu {mu.shape} and cov {cov.shape}.')
    path = osp.join(out_dir, 'niqe_modelparameters.mat')
    _atomic_write(path, lambda tmp: scipy.io.savemat(tmp, {'mu_prisparam': mu, 'cov_prisparam': cov}))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=['brisque', 'niqe'])
    parser.add_argument('src', help='original parameter file')
    parser.add_argument('--range', dest='range_path', help='brisque: svm-scale range file (checked against pyiqa)')
    parser.add_argument('--out', default=project_weights_dir(), help='output directory (default: %(default)s)')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        parser.error(f'{args.src}: no such file')
    os.makedirs(args.out, exist_ok=True)
    try:
        path = (convert_brisque(args.src, args.range_path, args.out) if args.kind == 'brisque'
                else convert_niqe(args.src, args.out))
    except (ValueError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
