"""Atomic file replacement: write to a temporary file beside the target, flush it to disk, rename it over.

A crash, a kill or a full disk during the write leaves the previous file (or none) in place, never a partial one.
Temporary files are named ``.tmp-<pid>-<name>`` (the extension stays last, for writers that look at it);
``nriqa_basicsr.pipeline`` removes leftovers of killed training runs when a run (re)starts.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
from collections.abc import Iterator

__all__ = ['TMP_PREFIX', 'atomic_path']

TMP_PREFIX = '.tmp-'


def _fsync(path: str, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if directory else 0))
    except OSError:  # e.g. directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` only if the block succeeds.

    Example: ``with atomic_path('models/net_g_1000.pth') as tmp: torch.save(state, tmp)``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'{TMP_PREFIX}{os.getpid()}-{osp.basename(path)}')
    try:
        yield tmp
        if not osp.isfile(tmp):
            raise FileNotFoundError(f'{tmp}: the writer produced no file (target {path} left unchanged).')
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(folder, directory=True)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
