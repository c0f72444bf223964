"""Offline NR-IQA scores of every GT variant (``nriqa-score-gts``), stored safely and checked on load.

This module owns the format: the header a scoring run writes (:func:`score_header`) and the checks a dataset
applies when it reads the file (:meth:`ScoreTable.check_dataset`).

A score file is an ``.npz`` read with ``allow_pickle=False``:

* ``meta`` — JSON text: format, metrics (pyiqa name, version, weight files and SHA-256, options), variants,
  dataset root, layout and fingerprint (names), ``content`` fingerprint (size, first and last 8 KiB of each
  image file: another dataset with the same names, or resized images, is refused), grid stride/crop;
* ``groups`` — ``(N,)`` group names;
* ``scores__<metric>`` — ``(N, K)`` qualities (higher is better; lower-better metrics negated);
* ``grid__<metric>`` — ``(N, K, rows, cols)`` qualities of the crops of size ``grid.crop`` whose top-left
  corners lie on the grid ``(r·stride, c·stride)`` (only with ``--grid``).
"""

from __future__ import annotations

import hashlib
import json
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nriqa_basicsr.atomic import atomic_path

__all__ = ['FORMAT', 'RESUME_KEYS', 'ScoreFileError', 'ScoreTable', 'content_fingerprint', 'dataset_fingerprint',
           'grid_positions', 'load_score_table', 'metric_record', 'save_score_table', 'score_header',
           'source_content_fingerprint']

_SAMPLE = 8192  # bytes hashed at each end of a file: the header (image size) and the tail of the pixel data

FORMAT = 'nriqa-gt-scores/1'


class ScoreFileError(ValueError):
    """A score file is unreadable, or does not belong to the dataset it is used with."""


def grid_positions(length: int, crop: int, stride: int) -> list[int]:
    """Top (or left) coordinates of the grid crops along one side: ``0, stride, ...`` while the crop fits."""
    if crop > length:
        return []
    return list(range(0, length - crop + 1, stride))


def dataset_fingerprint(groups: Sequence[str], variants: Sequence[str]) -> str:
    """SHA-256 of the variant names and sorted group names: identifies a dataset's content listing."""
    h = hashlib.sha256()
    h.update(json.dumps([list(variants), sorted(groups)]).encode())
    return h.hexdigest()


def content_fingerprint(paths: Sequence[str]) -> str:
    """SHA-256 over each file's size and its first and last 8 KiB, in the given order: cheap (16 KiB read per
    image) yet different for other images with the same names, and for resized or re-encoded ones."""
    h = hashlib.sha256()
    for path in paths:
        size = osp.getsize(path)
        h.update(f'{size}:'.encode())
        with open(path, 'rb') as f:
            h.update(f.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                f.seek(-_SAMPLE, 2)
                h.update(f.read(_SAMPLE))
            else:
                h.update(f.read())
    return h.hexdigest()


def source_content_fingerprint(source: Any) -> str | None:
    """:func:`content_fingerprint` of a :class:`~nriqa_basicsr.data.multigt_source.MultiGTSource` on disk (sorted
    groups, all variants); None for LMDB sources, whose score files are checked by names only."""
    if source.backend != 'disk':
        return None
    return content_fingerprint([source.path(name, k) for name in sorted(source.groups)
                                for k in range(len(source.variants))])


# header fields that must match for a scoring run to resume another one's partial log
RESUME_KEYS = ('metrics', 'variants', 'fingerprint', 'content', 'grid')


def metric_record(scorer: Any) -> dict[str, Any]:
    """What the header records of one metric (an :class:`~nriqa_basicsr.iqa.IQAScorer`): pyiqa version, direction,
    options and the SHA-256 of every weight file, so scores from other weights are recognisable."""
    import pyiqa

    from nriqa_basicsr.iqa.releases import file_sha256

    custom = {'custom_model': type(scorer.net).__module__ + ':' + type(scorer.net).__qualname__} \
        if scorer.info.custom else {}
    return {'pyiqa_version': pyiqa.__version__, 'lower_better': scorer.lower_better, **custom,
            'stored_as': 'quality (higher is better; lower-better metrics negated)',
            'options': {k: str(v) for k, v in scorer.metric_opts.items()},
            'weight_files': {osp.basename(p): file_sha256(p) for p in scorer.weight_files}}


def score_header(source: Any, scorers: dict[str, Any], grid: tuple[int, int] | None = None) -> dict[str, Any]:
    """The ``meta`` header of a score file of ``source`` (a
    :class:`~nriqa_basicsr.data.multigt_source.MultiGTSource`) scored by ``scorers``; ``grid`` is
    ``(stride, crop)`` of the crop scores, if any."""
    return {
        'format': FORMAT, 'metrics': {m: metric_record(s) for m, s in scorers.items()},
        'variants': source.variants, 'layout': source.layout, 'dataset_root': osp.abspath(source.root),
        'io_backend': source.backend, 'fingerprint': dataset_fingerprint(source.groups, source.variants),
        'content': source_content_fingerprint(source),  # other images with the same names are refused on load
        'grid': {'stride': grid[0], 'crop': grid[1]} if grid else None,
    }


@dataclass
class ScoreTable:
    meta: dict[str, Any]
    groups: list[str]
    scores: dict[str, np.ndarray]
    grids: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return list(self.scores)

    def index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.groups)}

    def check_dataset(self, path: str, groups: Sequence[str], variants: Sequence[str],
                      content: str | None = None) -> None:
        """Refuse the table for a dataset it was not computed on (foreign, stale, or missing groups); with
        ``content`` (:func:`content_fingerprint` of the dataset's files) also for other images with the same
        names. Files written before content fingerprints existed are checked by names only."""
        self._check_listing(path, groups, variants)
        stored = self.meta.get('content')
        if content is not None and stored is not None and stored != content:
            raise ScoreFileError(f'{path}: the images differ from the ones scored (same names, other content: '
                                 f'another dataset with the same file names, or images changed since scoring; '
                                 f'scored root {self.meta.get("dataset_root")}). Rescore with nriqa-score-gts '
                                 f'--overwrite.')

    def _check_listing(self, path: str, groups: Sequence[str], variants: Sequence[str]) -> None:
        if list(self.meta.get('variants', [])) != list(variants):
            raise ScoreFileError(f'{path}: scored variants {self.meta.get("variants")} but the dataset has '
                                 f'{list(variants)}; rescore with nriqa-score-gts.')
        known = set(self.groups)
        missing = [g for g in groups if g not in known]
        if not missing and self.meta.get('fingerprint') == dataset_fingerprint(groups, variants):
            return
        if len(missing) == len(groups):
            raise ScoreFileError(f'{path}: belongs to another dataset (root {self.meta.get("dataset_root")}); '
                                 f'none of this dataset\'s groups were scored. Point score_file at the right '
                                 f'file or run nriqa-score-gts on this dataset.')
        if missing:
            raise ScoreFileError(f'{path}: {len(missing)} of {len(groups)} groups have no scores (e.g. '
                                 f'"{missing[0]}"); the file is stale. Rerun nriqa-score-gts with the same '
                                 f'--output to score them.')
        raise ScoreFileError(f'{path}: was computed on a different listing of this dataset ({len(self.groups)} '
                             f'groups scored, {len(groups)} now); it is stale. Rerun nriqa-score-gts.')


def save_score_table(path: str, table: ScoreTable) -> None:
    """Write atomically (temporary file + rename): an interrupted save never leaves a partial score file."""
    arrays = {'meta': np.array(json.dumps(table.meta)), 'groups': np.array(table.groups, dtype=str)}
    for name, values in table.scores.items():
        arrays[f'scores__{name}'] = np.asarray(values, np.float32)
    for name, values in table.grids.items():
        arrays[f'grid__{name}'] = np.asarray(values, np.float32)
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez(f, **arrays)


def load_score_table(path: str) -> ScoreTable:
    """Load without unpickling; errors name the file and say how to fix it."""
    if not osp.isfile(path):
        raise ScoreFileError(f'score_file {path}: no such file; make it with nriqa-score-gts.')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        raise ScoreFileError(f'{path}: refused, it needs pickle to load (only plain arrays are accepted): '
                             f'{exc}') from exc
    except Exception as exc:  # zipfile/OSError/EOFError for truncated or foreign files
        raise ScoreFileError(f'{path}: not a readable score file ({type(exc).__name__}: {exc}).') from exc
    if 'meta' not in arrays or 'groups' not in arrays:
        raise ScoreFileError(f'{path}: not a score file of nriqa-score-gts (no meta/groups arrays).')
    try:
        meta = json.loads(str(arrays['meta']))
    except ValueError as exc:
        raise ScoreFileError(f'{path}: its meta header is not JSON ({exc}); rescore with '
                             f'nriqa-score-gts.') from exc
    if not isinstance(meta, dict):
        raise ScoreFileError(f'{path}: its meta header is not a mapping; rescore with nriqa-score-gts.')
    if meta.get('format') != FORMAT:
        raise ScoreFileError(f'{path}: format {meta.get("format")!r}, expected {FORMAT!r}.')
    if not isinstance(meta.get('variants'), list):
        raise ScoreFileError(f'{path}: its meta header has no list of variants; rescore with nriqa-score-gts.')
    groups = [str(g) for g in arrays['groups']]
    scores = {k[len('scores__'):]: v for k, v in arrays.items() if k.startswith('scores__')}
    grids = {k[len('grid__'):]: v for k, v in arrays.items() if k.startswith('grid__')}
    for name, values in scores.items():
        if values.shape != (len(groups), len(meta['variants'])):
            raise ScoreFileError(f'{path}: scores of "{name}" have shape {values.shape}, expected '
                                 f'({len(groups)}, {len(meta["variants"])}).')
    return ScoreTable(meta, groups, scores, grids)
