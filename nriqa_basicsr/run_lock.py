"""One owner per experiment folder: a lock taken before BasicSR archives or creates anything.

BasicSR's ``make_exp_dirs`` renames an existing ``experiments/<name>`` to ``<name>_archived_<time>`` — also when
that folder belongs to a run that is still training, which then keeps writing into the new run's folder. The
pipeline therefore takes :func:`experiment_lock` right after the options are parsed, before the resume state is
looked up (which also removes leftover temporary files) and before any folder is archived or made.

Mechanism: ``fcntl.flock`` on ``<parent>/.<name>.lock`` (beside the folder, not inside it: a lock inside would
move with the archived folder). The kernel drops an flock when its process dies, however it dies (SIGKILL, OOM,
power loss of a local disk), so a crashed run can never leave a lock that blocks its own ``--auto_resume``; the
PID, host and command written into the file only serve the refusal message and the "reclaimed" notice. We use
``fcntl`` rather than the ``filelock`` package (installed as a torch dependency; it also uses ``flock`` on
Unix) because we need the holder's PID in the file for the message, and reading it back under ``filelock``
would mean a second file. On file systems without ``flock`` support (some network mounts) the lock falls back
to the PID in the file: a lock whose PID is alive on this host refuses, one whose PID is dead is reclaimed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

__all__ = ['ExperimentLockedError', 'RunLock', 'experiment_lock', 'lock_path_for']


class ExperimentLockedError(RuntimeError):
    """Another live process owns the experiment folder."""


def lock_path_for(folder: str) -> str:
    """The lock file guarding ``folder`` (a hidden file beside it)."""
    folder = osp.abspath(folder)
    return osp.join(osp.dirname(folder), f'.{osp.basename(folder)}.lock')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode() or '{}')
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get('pid'):
        return 'another process'
    started = holder.get('started')
    when = time.strftime(' since %Y-%m-%d %H:%M:%S', time.localtime(started)) if started else ''
    return f'PID {holder["pid"]} on host {holder.get("host", "?")}{when} ({holder.get("command", "")})'


class RunLock:
    """An acquired lock on ``folder``; :meth:`release` (or process exit) frees it."""

    def __init__(self, folder: str, what: str = 'experiment folder') -> None:
        self.folder = osp.abspath(folder)
        self.path = lock_path_for(folder)
        self.what = what
        self.reclaimed_from: dict[str, Any] | None = None
        self._fd: int | None = None
        self._acquire()

    def _refuse(self, holder: dict[str, Any]) -> ExperimentLockedError:
        pid = holder.get('pid')
        stop = f'stop it (kill {pid}) and rerun with --auto_resume to continue it, ' if pid else ''
        return ExperimentLockedError(
            f'{self.what} {self.folder} is in use by {_describe(holder)}. Starting here would archive or overwrite '
            f'the files of that run. Wait for it to finish, {stop}or give this run another name (the option '
            f'file\'s name:). Lock file: {self.path}.')

    def _acquire(self) -> None:
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        for _ in range(20):  # retried only when a releasing run unlinked the file under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise self._refuse(holder) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                holder = _read_holder(fd)  # no flock here: trust the PID written in the file
                if (holder.get('pid') and holder.get('host') == socket.gethostname()
                        and holder['pid'] != os.getpid() and _pid_alive(int(holder['pid']))):
                    os.close(fd)
                    raise self._refuse(holder) from None
            # The file may have been unlinked by a run releasing between our open and flock: lock the path's file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_holder(fd)
            if previous.get('pid') and previous.get('pid') != os.getpid():
                self.reclaimed_from = previous  # its process died without releasing (crash, SIGKILL)
            record = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': time.time(),
                      'command': ' '.join(sys.argv)[:500]}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
            self._fd = fd
            return
        raise ExperimentLockedError(f'{self.path}: could not take the lock (the file keeps being replaced).')

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlink then unlock: a waiting process that opened the old file notices it is gone and retries."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                os.remove(self.path)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def experiment_lock(folder: str, what: str = 'experiment folder') -> Iterator[RunLock]:
    """Hold the lock on ``folder`` for the block; raises :class:`ExperimentLockedError` naming the holder."""
    lock = RunLock(folder, what)
    try:
        yield lock
    finally:
        lock.release()
