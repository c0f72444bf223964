"""Where the K ground-truth variants of each group live, and reading them (disk or LMDB).

Two layouts:

* ``hggt`` — HGGT's release: ``<dataroot_gt>/{original,01,02,03,04}/<name>[_0k].png`` and optional labels
  ``<dataroot_label>/{A,B,C}/<name>.json``; variant ``0k`` files carry the suffix ``_0k``.
* ``generic`` — any K variants named in ``gt_variants`` (the first is the original), one folder each,
  ``<dataroot_gt>/<variant>/<stem>.png`` with ``stem = filename_tmpl.format(name=..., variant=...)`` for the
  non-original variants (default ``'{name}'``); labels optional, in HGGT's JSON format.

With ``io_backend: {type: lmdb}`` ``dataroot_gt`` holds ``<variant>.lmdb`` folders made by
``nriqa-create-lmdb`` (keys = file stems, BasicSR's ``meta_info.txt``).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from basicsr.utils import FileClient

from nriqa_basicsr.data.image_io import decode_image, is_image_file
from nriqa_basicsr.data.labels import NO_LABEL, effective_labels, read_hggt_label_file

__all__ = ['HGGT_VARIANTS', 'LmdbReadError', 'MultiGTSource', 'MultiGTLayoutError', 'add_source_arguments',
           'check_lmdb_size', 'lmdb_get', 'open_lmdb_client', 'source_from_args']

HGGT_VARIANTS = ('original', '01', '02', '03', '04')


class MultiGTLayoutError(ValueError):
    """The data on disk does not match the configured multi-GT layout."""


# BasicSR's meta_info line: "<key>.png (h,w,c) <compression>"; the key may contain spaces, so parse from the right.
_META_LINE = re.compile(r'^(?P<file>.+?) \((?P<shape>\d+,\d+,\d+)\) (?P<level>-?\d+)$')


def _read_meta_info(lmdb_path: str) -> list[str]:
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise MultiGTLayoutError(f'{meta}: missing; build LMDBs with nriqa-create-lmdb.')
    keys = []
    with open(meta, encoding='utf-8') as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            match = _META_LINE.match(line.rstrip('\n'))
            if match is None:
                raise MultiGTLayoutError(f'{meta}:{number}: not a BasicSR meta_info line ("<key>.png (h,w,c) '
                                         f'<level>"): {line.strip()!r}. Rebuild with nriqa-create-lmdb.')
            keys.append(match['file'].rsplit('.', 1)[0])
    return keys


def _check_meta_info_complete(lmdb_path: str, keys: set[str]) -> None:
    """The listing must cover every record of the LMDB: a line lost from the original's listing would
    silently drop that group (the groups are the original's keys)."""
    import lmdb

    meta = osp.join(lmdb_path, 'meta_info.txt')
    try:
        env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as exc:
        raise MultiGTLayoutError(f'{lmdb_path}: cannot be opened as an LMDB ({exc}); rebuild it with '
                                 f'nriqa-create-lmdb.') from exc
    try:
        check_lmdb_size(env, lmdb_path)
        if env.stat()['entries'] == len(keys):
            return
        with env.begin() as txn:
            stored = {k.decode('ascii', 'replace') for k in txn.cursor().iternext(values=False)}
    finally:
        env.close()
    unlisted, absent = sorted(stored - keys), sorted(keys - stored)
    detail = (f'{len(unlisted)} stored key(s) are missing from it, e.g. "{unlisted[0]}"' if unlisted else
              f'it lists {len(absent)} key(s) the LMDB does not hold, e.g. "{absent[0]}"' if absent else
              'it lists keys more than once')
    raise MultiGTLayoutError(f'{meta}: does not match {lmdb_path} ({detail}); the listing is damaged. Rebuild with '
                             f'nriqa-create-lmdb.')


class LmdbReadError(MultiGTLayoutError, OSError):
    """An LMDB that cannot be opened or read (damaged or truncated file, failing disk); names the LMDB and key."""


_LMDB_FIX = ('Check the disk (free space, `dmesg` for I/O errors, an interrupted copy) and rebuild the LMDB with '
             'nriqa-create-lmdb (or copy it again).')


def check_lmdb_size(env: Any, lmdb_path: str) -> None:
    """Refuse a truncated ``data.mdb`` (an interrupted copy, a full disk): lmdb maps the file, and reading a page
    past its end kills the process with SIGBUS, without any message."""
    data = osp.join(lmdb_path, 'data.mdb')
    needed = (env.info()['last_pgno'] + 1) * env.stat()['psize']
    size = osp.getsize(data)
    if size < needed:
        raise LmdbReadError(f'{data}: truncated ({size} bytes; its pages need {needed}). {_LMDB_FIX}')


def open_lmdb_client(paths: dict[str, str], **opt: Any) -> FileClient:
    """BasicSR's LMDB ``FileClient`` over ``{client_key: lmdb_path}``; an open error or a truncated file names the
    LMDB (BasicSR passes lmdb's bare message on)."""
    import lmdb

    try:
        client = FileClient('lmdb', db_paths=list(paths.values()), client_keys=list(paths), **opt)
    except lmdb.Error as exc:
        bad = ', '.join(p for p in paths.values() if str(exc).startswith(f'{p}:')) or ', '.join(paths.values())
        raise LmdbReadError(f'{bad}: cannot open the LMDB ({exc}). {_LMDB_FIX}') from exc
    for key, path in paths.items():
        check_lmdb_size(client.client._client[key], path)
    return client


def lmdb_get(client: FileClient, key: str, client_key: str, lmdb_path: str) -> bytes | None:
    """``client.get`` with lmdb's errors (e.g. "Input/output error") turned into one naming the LMDB and key."""
    import lmdb

    try:
        return client.get(key, client_key)
    except lmdb.Error as exc:
        raise LmdbReadError(f'{lmdb_path}: reading key "{key}" failed ({exc}). {_LMDB_FIX}') from exc


class MultiGTSource:
    """Lists groups and reads their K variants; picklable, opens its file client lazily (per worker)."""

    def __init__(self, dataroot_gt: str, layout: str = 'generic', gt_variants: Sequence[str] | None = None,
                 filename_tmpl: str | None = None, io_backend: dict[str, Any] | None = None,
                 dataroot_label: str | None = None) -> None:
        if layout not in ('hggt', 'generic'):
            raise MultiGTLayoutError(f'layout must be "hggt" or "generic", got "{layout}".')
        if layout == 'hggt':
            gt_variants = list(gt_variants or HGGT_VARIANTS)
            filename_tmpl = filename_tmpl or '{name}_{variant}'
        elif not gt_variants:
            raise MultiGTLayoutError('layout "generic" needs gt_variants: [original, <variant>, ...] '
                                     '(the first one is the original).')
        if len(gt_variants) < 1 or len(set(gt_variants)) != len(gt_variants):
            raise MultiGTLayoutError(f'gt_variants must be distinct names, got {list(gt_variants)}.')
        self.root = osp.expanduser(dataroot_gt)
        self.layout = layout
        self.variants = [str(v) for v in gt_variants]
        self.filename_tmpl = filename_tmpl or '{name}'
        self.io_opt = dict(io_backend or {'type': 'disk'})
        self.backend = self.io_opt.get('type', 'disk')
        if self.backend not in ('disk', 'lmdb'):
            raise MultiGTLayoutError(f'io_backend type must be "disk" or "lmdb", got "{self.backend}".')
        self.label_root = osp.expanduser(dataroot_label) if dataroot_label else None
        self._client: FileClient | None = None
        self._ext: dict[str, str] = {}
        self.groups = self._list_groups()

    # ----------------------------------------------------------------------------------------------- listing
    def stem(self, name: str, k: int) -> str:
        return name if k == 0 else self.filename_tmpl.format(name=name, variant=self.variants[k])

    def _lmdb_path(self, variant: str) -> str:
        return osp.join(self.root, f'{variant}.lmdb')

    def _list_groups(self) -> list[str]:
        if not osp.isdir(self.root):
            raise MultiGTLayoutError(f'dataroot_gt {self.root}: no such folder.')
        if self.backend == 'lmdb':
            keys = {v: set(_read_meta_info(self._lmdb_path(v))) for v in self.variants}
            names = sorted(keys[self.variants[0]])
            for k, variant in enumerate(self.variants[1:], start=1):
                missing = [n for n in names if self.stem(n, k) not in keys[variant]]
                if missing:
                    raise MultiGTLayoutError(
                        f'{self._lmdb_path(variant)}: {len(missing)} group(s) have no key, e.g. '
                        f'"{self.stem(missing[0], k)}". Rebuild it with nriqa-create-lmdb.')
            for variant in self.variants:
                _check_meta_info_complete(self._lmdb_path(variant), keys[variant])
            return names
        folders = {v: osp.join(self.root, v) for v in self.variants}
        for variant, folder in folders.items():
            if not osp.isdir(folder):
                raise MultiGTLayoutError(f'{folder}: missing variant folder (gt_variants lists "{variant}").')
        stems_by_variant = {}
        for variant, folder in folders.items():
            stems = {}
            for entry in os.scandir(folder):
                if is_image_file(entry.name) and entry.is_file():
                    stems[osp.splitext(entry.name)[0]] = entry.name
            stems_by_variant[variant] = stems
        names = sorted(stems_by_variant[self.variants[0]])
        if not names:
            raise MultiGTLayoutError(f'{folders[self.variants[0]]}: no images found.')
        for k, variant in enumerate(self.variants):
            missing = [n for n in names if self.stem(n, k) not in stems_by_variant[variant]]
            if missing:
                raise MultiGTLayoutError(
                    f'{folders[variant]}: missing {len(missing)} variant file(s), e.g. "{self.stem(missing[0], k)}.*" '
                    f'for group "{missing[0]}". Every group needs all of {self.variants} (check filename_tmpl '
                    f'"{self.filename_tmpl}").')
        self._files = {v: stems_by_variant[v] for v in self.variants}
        return names

    # ----------------------------------------------------------------------------------------------- reading
    def path(self, name: str, k: int) -> str:
        """File path (disk) or ``<variant>.lmdb/<key>`` (LMDB) of variant ``k`` of group ``name``."""
        variant, stem = self.variants[k], self.stem(name, k)
        if self.backend == 'lmdb':
            return osp.join(self._lmdb_path(variant), stem)
        return osp.join(self.root, variant, self._files[variant][stem])

    def _get_client(self) -> FileClient:
        if self._client is None:
            if self.backend == 'lmdb':
                opt = {k: v for k, v in self.io_opt.items() if k != 'type'}
                self._client = open_lmdb_client({v: self._lmdb_path(v) for v in self.variants}, **opt)
            else:
                self._client = FileClient('disk')
        return self._client

    def read_bytes(self, name: str, k: int) -> bytes | None:
        client = self._get_client()
        if self.backend == 'lmdb':
            return lmdb_get(client, self.stem(name, k), self.variants[k], self._lmdb_path(self.variants[k]))
        path = self.path(name, k)
        try:
            return client.get(path, 'gt')
        except FileNotFoundError:
            return None

    def read(self, name: str, k: int) -> np.ndarray:
        """Variant ``k`` of group ``name`` as float32 BGR ``(H, W, 3)`` in [0, 1]."""
        return decode_image(self.read_bytes(name, k), self.path(name, k))

    def read_group(self, name: str) -> list[np.ndarray]:
        """All K variants; refuses groups whose variants differ in size."""
        imgs = [self.read(name, k) for k in range(len(self.variants))]
        shapes = {img.shape[:2] for img in imgs}
        if len(shapes) != 1:
            detail = ', '.join(f'{self.variants[k]} {img.shape[1]}x{img.shape[0]}' for k, img in enumerate(imgs))
            raise MultiGTLayoutError(f'group "{name}" ({self.path(name, 0)}): variants differ in size ({detail}); '
                                     f'all GT variants of a group must be pixel-aligned and equally sized.')
        return imgs

    # ------------------------------------------------------------------------------------------------ labels
    def annotators(self) -> list[str]:
        if self.label_root is None:
            return []
        if not osp.isdir(self.label_root):
            raise MultiGTLayoutError(f'dataroot_label {self.label_root}: no such folder.')
        # hidden folders (.ipynb_checkpoints, .git) are not annotators
        names = sorted(e.name for e in os.scandir(self.label_root) if e.is_dir() and not e.name.startswith('.'))
        if not names:
            raise MultiGTLayoutError(f'dataroot_label {self.label_root}: no annotator folders (e.g. A/, B/, C/).')
        return names

    def read_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Effective label codes and counts ``(N, K)`` for all groups (``NO_LABEL`` / 0 without labels)."""
        n, k = len(self.groups), len(self.variants)
        annotators = self.annotators()
        if not annotators:
            return np.full((n, k), NO_LABEL, np.int64), np.zeros((n, k), np.int64)
        codes, counts = np.empty((n, k), np.int64), np.empty((n, k), np.int64)
        for i, name in enumerate(self.groups):
            votes = [read_hggt_label_file(osp.join(self.label_root, a, f'{name}.json'), self.variants)
                     for a in annotators]
            codes[i], counts[i] = effective_labels(votes)
        return codes, counts


def add_source_arguments(parser: argparse.ArgumentParser, lmdb: bool = True) -> None:
    """The command-line options that locate a multi-GT dataset (shared by the scripts)."""
    parser.add_argument('--dataroot', required=True,
                        help='folder with one sub-folder' + (' (or <variant>.lmdb)' if lmdb else '') + ' per GT')
    parser.add_argument('--layout', choices=['hggt', 'generic'], default='hggt')
    parser.add_argument('--variants', nargs='+', help='GT variant names, original first (generic layout)')
    parser.add_argument('--filename-tmpl', help="stem template of non-original variants, e.g. '{name}_{variant}'")
    if lmdb:
        parser.add_argument('--io-backend', choices=['disk', 'lmdb'], default='disk')


def source_from_args(args: argparse.Namespace) -> MultiGTSource:
    return MultiGTSource(args.dataroot, args.layout, args.variants, args.filename_tmpl,
                         {'type': getattr(args, 'io_backend', 'disk')})
