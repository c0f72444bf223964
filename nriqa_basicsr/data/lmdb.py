"""Pack a multi-GT dataset (HGGT or generic layout) into LMDBs that ``MultiGTDataset`` reads with
``io_backend: {type: lmdb}`` (``nriqa-create-lmdb``).

    nriqa-create-lmdb --dataroot datasets/demo/train/images --layout hggt \
        -o datasets/demo/train/images_lmdb [--dataroot-lq datasets/demo/train/lq_x4]

Writes ``<output>/<variant>.lmdb`` per GT variant (keys = file stems, BasicSR's ``meta_info.txt``) and, with
``--dataroot-lq``, ``<output>/lq.lmdb``. Image bytes are stored as they are on disk (PNG stays PNG). Everything is built
in a temporary folder next to ``<output>`` and renamed into place at the end, so an interrupted run never leaves
an LMDB that looks complete. ``<output>`` is marked as this tool's output; ``--overwrite`` replaces only such a
folder (an earlier result of this tool), never one holding anything else, and ``<output>`` may never be or
contain the source images, labels or LQ folder (``nriqa_basicsr.output_guard``). Labels stay where they are
(point ``dataroot_label`` at them).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
from collections.abc import Sequence

import cv2
import numpy as np
from basicsr.utils.lmdb_util import LmdbMaker

from nriqa_basicsr import cli
from nriqa_basicsr.data.multigt_source import MultiGTSource, add_source_arguments, source_from_args
from nriqa_basicsr.output_guard import OutputPathError, claim_output_dir, guard_output_dir, remove_own_output_dir

__all__ = ['build_parser', 'create_lmdb', 'main']

TOOL = 'create_lmdb_multigt.py'  # owner name in the output markers: earlier outputs stay recognised


def _shape(buf: bytes, source: str) -> tuple[int, int, int]:
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'{source}: cannot be decoded (corrupt or truncated image).')
    return (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])


def _pack(maker_path: str, items: list[tuple[str, str]], desc: str, progress: bool) -> None:
    from tqdm import tqdm

    # One LMDB per variant; map_size is virtual (sparse) on Linux, so 1 TiB costs nothing.
    maker = LmdbMaker(maker_path, map_size=1 << 40, batch=1000)
    try:
        for key, path in tqdm(items, desc=desc, disable=not progress, unit='img'):
            with open(path, 'rb') as f:
                buf = f.read()
            maker.put(buf, key, _shape(buf, path))
    finally:
        maker.close()


def _check_keys(keys: list[str], what: str) -> None:
    """BasicSR's LMDB writer and reader encode keys as ASCII and its listing is one line per key: refuse names
    that cannot round-trip before anything is written (instead of a crash half way, or merged groups)."""
    bad = [k for k in keys if not k.isascii() or '\n' in k or '\r' in k]
    if bad:
        raise ValueError(f'{what}: {len(bad)} file name(s) cannot be LMDB keys (BasicSR stores keys as ASCII, one '
                         f'line each), e.g. {bad[0]!r}. Rename those files to ASCII names, or train from the '
                         f'folders with io_backend: {{type: disk}}.')


def create_lmdb(source: MultiGTSource, out: str, lq_root: str | None = None, lq_tmpl: str = '{}',
                lq_ext: str = '.png', overwrite: bool = False, progress: bool = True) -> str:
    """Write the LMDBs of ``source`` (and of the LQ folder ``lq_root``) to ``out``; returns ``out``."""
    if source.backend != 'disk':
        raise ValueError('the source must be on disk (io_backend disk).')
    # before any work: out must not hold the inputs, and may replace only an earlier output of this tool
    guard_output_dir(out, TOOL, [source.root, source.label_root, lq_root], overwrite)
    for k, variant in enumerate(source.variants):
        _check_keys([source.stem(name, k) for name in source.groups], f'{source.root}/{variant}')
    if lq_root:
        _check_keys([lq_tmpl.format(name) for name in source.groups], lq_root)
    parent = osp.dirname(osp.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.lmdb-tmp-')
    try:
        for k, variant in enumerate(source.variants):
            items = [(source.stem(name, k), source.path(name, k)) for name in source.groups]
            _pack(osp.join(tmp, f'{variant}.lmdb'), items, f'{variant}.lmdb', progress)
        if lq_root:
            items = []
            for name in source.groups:
                path = osp.join(lq_root, lq_tmpl.format(name) + lq_ext)
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{path}: LQ image of group "{name}" missing.')
                items.append((lq_tmpl.format(name), path))
            _pack(osp.join(tmp, 'lq.lmdb'), items, 'lq.lmdb', progress)
        remove_own_output_dir(out, TOOL)
        os.replace(tmp, out)
        claim_output_dir(out, TOOL, made_now=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='nriqa-create-lmdb', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_arguments(parser, lmdb=False)
    # BasicSR's dataroot_lq: an input folder like --dataroot (not build_multigt's --lq, which picks an LR kind)
    parser.add_argument('--dataroot-lq', metavar='DIR', help='folder of LQ images named like the originals (optional)')
    parser.add_argument('--lq-filename-tmpl', default='{}', help='stem template of the LQ files (default: {})')
    parser.add_argument('--lq-ext', default='.png', help='file extension of the LQ files (default: .png)')
    cli.add_output(parser, required=True, help='output folder for the .lmdb folders')
    cli.add_overwrite(parser)
    cli.add_no_progress(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-create-lmdb`` / ``scripts/create_lmdb_multigt.py``."""
    args = build_parser().parse_args(argv)
    try:
        source = source_from_args(args)
        out = create_lmdb(source, args.output, args.dataroot_lq, args.lq_filename_tmpl, args.lq_ext, args.overwrite,
                          progress=not args.no_progress)
    except (ValueError, FileNotFoundError, FileExistsError, OutputPathError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {out}: {len(source.groups)} groups x {len(source.variants)} variants')
    return 0
