"""Generated blocks of a README: the text between a begin and an end marker, read, replaced or checked.

The option reference (:mod:`nriqa_basicsr.config.reference`) and the CLI flag table (:mod:`nriqa_basicsr.cli`)
are written into README.md this way, and their tests compare the block with what the code generates.
"""

from __future__ import annotations

import sys

__all__ = ['read_block', 'replace_block', 'write_or_check']


def _span(text: str, begin: str, end: str, what: str) -> tuple[int, int]:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f'the markers {begin} ... {end} are missing; add them around the generated {what}.')
    return start + len(begin), stop


def read_block(text: str, begin: str, end: str, what: str = 'text') -> str:
    """The block between the markers, without its surrounding blank lines."""
    start, stop = _span(text, begin, end, what)
    return text[start:stop].strip('\n')


def replace_block(text: str, begin: str, end: str, content: str, what: str = 'text', pad: str = '\n') -> str:
    """``text`` with the block between the markers replaced by ``content`` (``pad`` on both sides); nothing
    else changes."""
    start, stop = _span(text, begin, end, what)
    return text[:start] + pad + content + pad + text[stop:]


def write_or_check(path: str, begin: str, end: str, content: str, check: bool, regenerate: str,
                   what: str = 'text', pad: str = '\n') -> int:
    """Write ``content`` into the block of file ``path``, or (``check``) return 1 with a message naming the
    ``regenerate`` command when the file's block differs. Raises ``ValueError`` without the markers."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    updated = replace_block(text, begin, end, content, what, pad)
    if check:
        if updated != text:
            print(f'{path}: the {what} is stale; run {regenerate} {path}', file=sys.stderr)
            return 1
        return 0
    if updated != text:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(updated)
    return 0
