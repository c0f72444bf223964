"""The original parameter releases of classic NR-IQA models, used in place of pyiqa's files by name.

pyiqa asks for its own file names (``brisque_svm_weights.pth``, ``ILNIQE_templateModel.mat``,
``niqe_modelparameters.mat``). Users have the authors' releases instead (``../shared/iqa_weights`` holds them):
the LIVE BRISQUE libsvm model ``allmodel`` (+ ``allrange``), IL-NIQE's ``templateModel.mat`` and LIVE NIQE's
``modelparameters.mat``. :func:`find_release` looks for those files in a weights directory, flat or in the
metric's sub-folder (``<dir>/brisque/allmodel`` ...), checks them, and returns a file pyiqa can load: the release
itself when the format is the same (IL-NIQE, NIQE), else a conversion written once into the cache
(``<cache>/derived/<sha256 of the source>/``, BRISQUE). No manual renaming or conversion step is needed.
"""

from __future__ import annotations

import hashlib
import os.path as osp
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nriqa_basicsr.atomic import atomic_path

__all__ = ['RELEASES', 'Release', 'ReleaseFormatError', 'convert_brisque', 'convert_niqe', 'find_release',
           'read_libsvm_model', 'read_svm_scale_range', 'release_candidates']

# gamma and rho that pyiqa's BRISQUE (version 'original') hard-codes; a model with others cannot be used there.
PYIQA_BRISQUE = {'gamma': 0.05, 'rho': -153.591}


class ReleaseFormatError(ValueError):
    """A release file is not what its name says (wrong model type, shapes or feature ranges)."""


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
            raise ReleaseFormatError(f'{path}: no "SV" section; not a libsvm model file.')
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            coefs.append(float(parts[0]))
            rows.append({int(k): float(v) for k, v in (p.split(':') for p in parts[1:])})
    if not rows:
        raise ReleaseFormatError(f'{path}: the SV section is empty.')
    dim = max(max(r) for r in rows if r)
    sv = np.zeros((len(rows), dim))
    for i, row in enumerate(rows):
        for k, v in row.items():
            sv[i, k - 1] = v
    if 'total_sv' in header and int(header['total_sv']) != len(rows):
        raise ReleaseFormatError(f'{path}: header says {header["total_sv"]} support vectors, found {len(rows)}.')
    return header, np.asarray(coefs), sv


def read_svm_scale_range(path: str) -> tuple[tuple[float, float], np.ndarray]:
    """Target range and per-feature ``(min, max)`` rows of an svm-scale range file."""
    with open(path, encoding='ascii') as f:
        lines = [ln.split() for ln in f.read().splitlines() if ln.strip()]
    if not lines or lines[0] != ['x']:
        raise ReleaseFormatError(f'{path}: expected an svm-scale range file starting with "x".')
    target = (float(lines[1][0]), float(lines[1][1]))
    ranges = np.array([[float(a), float(b)] for _, a, b in lines[2:]])
    return target, ranges


def convert_brisque(model_path: str, range_path: str | None, out_path: str) -> str:
    """LIVE BRISQUE libsvm model → pyiqa's ``(sv_coef, sv)`` float64 tensors at ``out_path`` (atomic)."""
    import torch

    header, sv_coef, sv = read_libsvm_model(model_path)
    if header.get('svm_type') != 'epsilon_svr' or header.get('kernel_type') != 'rbf':
        raise ReleaseFormatError(f'{model_path}: expected an epsilon_svr RBF model, got {header.get("svm_type")} / '
                                 f'{header.get("kernel_type")}.')
    for key, expected in PYIQA_BRISQUE.items():
        if abs(float(header.get(key, 'nan')) - expected) > 1e-9:
            raise ReleaseFormatError(f'{model_path}: {key} = {header.get(key)}, but pyiqa\'s BRISQUE hard-codes '
                                     f'{expected}; this model cannot be loaded through pyiqa.')
    if sv.shape[1] != 36:
        raise ReleaseFormatError(f'{model_path}: expected 36 BRISQUE features, got {sv.shape[1]}.')
    if range_path is not None:
        from pyiqa.archs.brisque_arch import scale_features

        target, ranges = read_svm_scale_range(range_path)
        # scale_features maps each feature range to [-1, 1]; recover its table from the range end points.
        scaled = scale_features(torch.tensor(ranges.T, dtype=torch.float64)).numpy()
        if target != (-1.0, 1.0) or not np.allclose(scaled, [[-1.0] * 36, [1.0] * 36], atol=1e-4):
            raise ReleaseFormatError(f'{range_path}: feature ranges differ from the ones hard-coded in pyiqa\'s '
                                     f'BRISQUE.')
    payload = (torch.from_numpy(sv_coef), torch.from_numpy(sv))
    with atomic_path(out_path) as tmp:
        torch.save(payload, tmp)
    return out_path


def convert_niqe(src: str, out_path: str) -> str:
    """LIVE NIQE ``modelparameters.mat`` or basicsr's ``niqe_pris_params.npz`` → pyiqa's ``.mat`` (atomic)."""
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
        raise ReleaseFormatError(f'{src}: expected a 36-feature NIQE model, got mu {mu.shape} and cov {cov.shape}.')
    with atomic_path(out_path) as tmp:
        scipy.io.savemat(tmp, {'mu_prisparam': mu, 'cov_prisparam': cov})
    return out_path


def _check_niqe_mat(path: str) -> None:
    import scipy.io

    data = scipy.io.loadmat(path)
    if np.shape(data.get('mu_prisparam')) != (1, 36) or np.shape(data.get('cov_prisparam')) != (36, 36):
        raise ReleaseFormatError(f'{path}: not the LIVE NIQE model (needs mu_prisparam 1x36, cov_prisparam 36x36).')


def _check_ilniqe_mat(path: str) -> None:
    import scipy.io

    cell = scipy.io.loadmat(path).get('templateModel')
    shapes = [np.shape(cell[0, k]) for k in range(4)] if cell is not None and np.shape(cell) == (1, 4) else None
    if shapes != [(1, 430), (430, 430), (468, 1), (468, 430)]:
        raise ReleaseFormatError(f'{path}: not the IL-NIQE templateModel (a 1x4 cell of mu 1x430, cov 430x430, '
                                 f'mean 468x1, PCA 468x430); found {shapes}.')


@dataclass(frozen=True)
class Release:
    """Where a pyiqa file's original release lives and how to turn it into that file.

    ``derive(source, out_path)`` writes the pyiqa file; ``None`` means the release is loaded as is after
    ``check(source)``.
    """

    files: tuple[str, ...]
    subdirs: tuple[str, ...]
    check: Callable[[str], None] | None = None
    derive: Callable[[str, str], str] | None = None


def _derive_brisque(src: str, out_path: str) -> str:
    rng = osp.join(osp.dirname(src), 'allrange')
    return convert_brisque(src, rng if osp.isfile(rng) else None, out_path)


RELEASES: dict[str, Release] = {
    'brisque_svm_weights.pth': Release(('allmodel',), ('brisque',), derive=_derive_brisque),
    'ILNIQE_templateModel.mat': Release(('templateModel.mat',), ('ilniqe',), check=_check_ilniqe_mat),
    'niqe_modelparameters.mat': Release(('modelparameters.mat',), ('niqe',), check=_check_niqe_mat),
}


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (weight files, score-file provenance)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def release_candidates(file_name: str, dirs: Sequence[str]) -> list[str]:
    """Paths where the release of pyiqa's ``file_name`` is looked for, in order (for error messages too)."""
    release = RELEASES.get(file_name)
    if release is None:
        return []
    return [osp.join(d, *([sub] if sub else []), name) for d in dirs for sub in ('', *release.subdirs)
            for name in release.files]


def find_release(file_name: str, dirs: Sequence[str], cache: str) -> str | None:
    """A loadable file for pyiqa's ``file_name`` made from its original release in ``dirs``, or ``None``."""
    release = RELEASES.get(file_name)
    for src in release_candidates(file_name, dirs):
        if not osp.isfile(src):
            continue
        if release.derive is None:
            release.check(src)
            return src
        target = osp.join(cache, 'derived', file_sha256(src)[:16], file_name)
        if not osp.isfile(target):
            release.derive(src, target)
        return target
    return None
