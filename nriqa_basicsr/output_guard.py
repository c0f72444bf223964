"""One rule for every tool that writes outputs: never destroy what it reads or what it did not make.

* An output may not be, or contain, one of the tool's inputs (``upscale.py -i lr/ -o lr/``,
  ``create_lmdb_multigt.py --dataroot D/images -o D``): refused, whatever the flags.
* An existing output is refused unless ``--overwrite`` is given (no silent replacement of earlier results).
* A *folder* a tool replaces or updates as a whole has a marker file naming the tool, written by
  :func:`claim_output_dir` when the tool creates it: ``<parent>/.<folder>`` + :data:`MARKER`, *beside* the
  folder, so that the folder holds only the outputs (BasicSR lists every file of an image folder, a stray JSON
  would break a dataset built from it). ``--overwrite`` replaces only a folder with the same tool's marker (or an
  empty one); anything else is refused, so ``--overwrite`` cannot delete a user's folder.

API (call the ``guard_*`` functions before any work, so a refusal costs nothing):

* :func:`guard_output_dir` (``out``, ``tool``, ``inputs``, ``overwrite``; ``inside_inputs``, ``legacy_owner``) —
  a folder the tool (re)creates;
* :func:`guard_output_files` (``targets``, ``tool``, ``inputs``, ``overwrite``, ``folder``) — individual files;
* :func:`claim_output_dir` — write the marker into a folder the tool made (or found empty);
* :func:`remove_own_output_dir` — delete a folder only if it carries the tool's marker.

All refusals raise :class:`OutputPathError` (a ``ValueError``) naming the path and what to do.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import shutil
import time
from collections.abc import Callable, Iterable

__all__ = ['MARKER', 'OutputExistsError', 'OutputPathError', 'claim_output_dir', 'guard_output_dir',
           'guard_output_files', 'marker_path', 'owner_of', 'remove_own_output_dir']

MARKER = '.nriqa-output.json'


def marker_path(folder: str) -> str:
    """Where the marker of ``folder`` lives (a hidden file beside it)."""
    folder = osp.abspath(folder).rstrip(os.sep)
    return osp.join(osp.dirname(folder), f'.{osp.basename(folder)}{MARKER}')


class OutputPathError(ValueError):
    """An output path that would destroy an input or a file the tool did not write."""


class OutputExistsError(OutputPathError, FileExistsError):
    """The output exists and ``--overwrite`` was not given (also a ``FileExistsError``)."""


def _real(path: str) -> str:
    return osp.realpath(osp.abspath(osp.expanduser(path)))


def _contains(folder: str, path: str) -> bool:
    """``path`` is ``folder`` or lies inside it (after resolving links)."""
    folder, path = _real(folder), _real(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_inputs(out: str, inputs: Iterable[str | None], tool: str, is_dir: bool) -> None:
    for inp in inputs:
        if not inp:
            continue
        if (_contains(out, inp) if is_dir else _real(out) == _real(inp)):
            same = _real(out) == _real(inp)
            raise OutputPathError(
                f'{tool}: output {out} {"is" if same else "contains"} the input {inp}; writing there would '
                f'{"overwrite" if same else "delete or overwrite"} what the tool reads. Choose an output outside '
                f'the inputs.')


def owner_of(folder: str) -> str | None:
    """The tool named by ``folder``'s marker, or None (no marker, unreadable marker)."""
    if not osp.isdir(folder):
        return None
    try:
        with open(marker_path(folder), encoding='utf-8') as f:
            return json.load(f).get('tool')
    except (OSError, ValueError, AttributeError):
        return None


def guard_output_dir(out: str, tool: str, inputs: Iterable[str | None] = (), overwrite: bool = False, *,
                     inside_inputs: bool = True, legacy_owner: Callable[[str], str | None] | None = None) -> bool:
    """Check a folder ``tool`` is about to create or replace as a whole; True if it exists (and may be replaced).

    Allowed: ``out`` absent; with ``overwrite``, ``out`` empty or carrying ``tool``'s marker. Refused: ``out``
    being or containing an input (with ``inside_inputs=False`` also ``out`` inside an input: for tools that promise
    never to write into their input folders), a file at ``out``, any other existing folder. ``legacy_owner``
    names the tool that made a folder without a marker in an older format (e.g. a marker file inside it), so
    outputs of earlier versions stay replaceable with ``overwrite``."""
    inputs = [i for i in inputs if i]
    _check_inputs(out, inputs, tool, is_dir=True)
    if not inside_inputs:
        for inp in inputs:
            if _contains(inp, out):
                raise OutputPathError(f'{tool}: output {out} lies inside the input {inp}; {tool} never writes into '
                                      f'its input folders. Choose an output outside the inputs.')
    if not osp.lexists(out):
        return False
    if not osp.isdir(out) or osp.islink(out):
        raise OutputPathError(f'{tool}: output {out} exists and is not a folder {tool} made; choose another path.')
    if not os.listdir(out):
        if not overwrite:
            raise OutputExistsError(f'{tool}: output {out} exists (empty); pass --overwrite to use it.')
        return True
    owner = owner_of(out)
    if owner is None and legacy_owner is not None:
        owner = legacy_owner(out)
    if owner != tool:
        made = f'was made by {owner}' if owner else f'was not made by {tool} (no marker {marker_path(out)})'
        raise OutputPathError(
            f'{tool}: output {out} exists and {made}; --overwrite replaces only {tool}\'s own earlier output. '
            f'Choose a new or empty folder, or remove {out} yourself if you are sure.')
    if not overwrite:
        raise OutputExistsError(f'{tool}: output {out} holds an earlier result of {tool}; pass --overwrite to replace '
                              f'it, or choose another folder.')
    return True


def guard_output_files(targets: Iterable[str], tool: str, inputs: Iterable[str | None] = (),
                       overwrite: bool = False, folder: str | None = None) -> list[str]:
    """Check files ``tool`` is about to write; returns those that exist (and will be replaced).

    A target that is an input is always refused; an existing target only with ``overwrite``. With ``folder``
    (the folder the files go to) ``overwrite`` also needs ``folder`` to carry ``tool``'s marker, so files in a
    folder the tool did not make are never replaced."""
    inputs = [i for i in inputs if i]
    targets = list(targets)
    for target in targets:
        _check_inputs(target, inputs, tool, is_dir=False)
    existing = [t for t in targets if osp.lexists(t)]
    if not existing:
        return []
    listed = ', '.join(existing[:3]) + (f' and {len(existing) - 3} more' if len(existing) > 3 else '')
    if not overwrite:
        raise OutputExistsError(f'{tool}: {listed} already exist(s); pass --overwrite to replace them, or choose '
                              f'another output.')
    if folder is not None and owner_of(folder) != tool:
        raise OutputPathError(f'{tool}: {listed} exist(s) in {folder}, which {tool} did not make (no marker '
                              f'{marker_path(folder)}); --overwrite replaces only {tool}\'s own outputs. Choose '
                              f'another folder.')
    return existing


def claim_output_dir(folder: str, tool: str, made_now: bool = False) -> None:
    """Create ``folder`` if needed and mark it as ``tool``'s output: when it is new or empty, already ``tool``'s,
    or ``made_now`` (the caller just built it, e.g. renamed a finished temporary folder into place). A folder
    holding someone else's files is never claimed."""
    os.makedirs(folder, exist_ok=True)
    if not made_now and os.listdir(folder) and owner_of(folder) != tool:
        return
    with open(marker_path(folder), 'w', encoding='utf-8') as f:
        json.dump({'tool': tool, 'created': time.strftime('%Y-%m-%d %H:%M:%S')}, f)


def remove_own_output_dir(folder: str, tool: str) -> None:
    """Delete ``folder`` if it is empty or carries ``tool``'s marker; raise :class:`OutputPathError` otherwise."""
    if not osp.lexists(folder):
        return
    if osp.isdir(folder) and not osp.islink(folder) and (not os.listdir(folder) or owner_of(folder) == tool):
        shutil.rmtree(folder)
        return
    raise OutputPathError(f'{tool}: refusing to delete {folder}: {tool} did not make it.')
