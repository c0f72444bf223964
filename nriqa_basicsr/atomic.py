"""Atomic file replacement: write to a temporary file beside the target, flush it to disk, rename it over.

A crash, a kill or a full disk during the write leaves the previous file (or none) in place, never a partial one.
Temporary files are named ``.tmp-<pid>-<name>`` (the extension stays last, for writers that look at it);
``nriqa_basicsr.pipeline`` removes leftovers of killed training runs when a run (re)starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import os.path as osp
import shutil
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


# What torch.save's zip writer raises when a write fails (a full disk, a quota, an I/O error), instead of OSError.
_TORCH_WRITE_FAILURES = ('unexpected pos', 'file write failed', 'PytorchStreamWriter failed')


def _write_error(exc: RuntimeError, path: str, folder: str) -> Exception:
    """torch's writer errors as the ``OSError`` naming the file that callers handle; other errors unchanged."""
    text = str(exc)
    if not any(marker in text for marker in _TORCH_WRITE_FAILURES):
        return exc
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = -1
    full = 0 <= free < 64 << 20
    detail = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return OSError(errno.ENOSPC if full else errno.EIO,
                   f'writing {path} failed ({detail}); ' + (f'the disk is full ({free >> 20} MiB free). '
                                                            if full else 'the disk may be full or failing. ')
                   + 'The previous file is unchanged; free space and rerun.', path)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` only if the block succeeds.

    Example: ``with atomic_path('models/net_g_1000.pth') as tmp: torch.save(state, tmp)``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'{TMP_PREFIX}{os.getpid()}-{osp.basename(path)}')
    try:
        try:
            yield tmp
        except RuntimeError as exc:
            raise _write_error(exc, path, folder) from exc
        if not osp.isfile(tmp):
            raise FileNotFoundError(f'{tmp}: the writer produced no file (target {path} left unchanged).')
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(folder, directory=True)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
