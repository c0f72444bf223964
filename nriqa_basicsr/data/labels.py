"""Human labels of enhanced ground truths (HGGT): reading annotator files and voting effective labels."""

from __future__ import annotations

import json
import os.path as osp
from collections import Counter
from collections.abc import Sequence

__all__ = ['LABEL_CODES', 'LABEL_NAMES', 'NO_LABEL', 'ORIGINAL', 'POSITIVE', 'SIMILAR', 'NEGATIVE', 'LabelError',
           'effective_label', 'effective_labels', 'read_hggt_label_file']

# Integer codes in tensors, as in HGGT (Original 0, Positive 1, Similar 2, Negative 3), plus "no label".
NO_LABEL, ORIGINAL, POSITIVE, SIMILAR, NEGATIVE = -1, 0, 1, 2, 3
LABEL_CODES = {'Original': ORIGINAL, 'Positive': POSITIVE, 'Similar': SIMILAR, 'Negative': NEGATIVE}
LABEL_NAMES = {code: name for name, code in LABEL_CODES.items()} | {NO_LABEL: 'none'}
_VOTES = ('Positive', 'Similar', 'Negative')


class LabelError(ValueError):
    """A label file is missing, malformed or holds an unknown label."""


def effective_label(votes: Sequence[str]) -> tuple[int, int]:
    """Majority vote of the annotators' labels for one EGT: ``(code, count)``.

    The effective label is the one chosen by more than half of the annotators; otherwise it is Similar (HGGT's
    rule for three annotators, generalised to any number). ``count`` is the number of annotators who voted
    the effective label (HGGT's ``label_num``; 1 when three annotators all differ).
    """
    if not votes:
        raise LabelError('effective_label needs at least one vote.')
    bad = sorted({v for v in votes if v not in _VOTES})
    if bad:
        raise LabelError(f'unknown label(s) {bad}; expected one of {list(_VOTES)}.')
    tally = Counter(votes)
    label, count = tally.most_common(1)[0]
    if count * 2 > len(votes):
        return LABEL_CODES[label], count
    return SIMILAR, tally['Similar']


def effective_labels(per_annotator: Sequence[Sequence[str | None]]) -> tuple[list[int], list[int]]:
    """Effective codes and counts for K variants from ``per_annotator[a][k]``; variant 0 is the original.

    Returns ``(codes, counts)``, each of length K; the original gets ``ORIGINAL`` and the number of annotators.
    """
    if not per_annotator:
        raise LabelError('no annotators given.')
    num_variants = len(per_annotator[0])
    if any(len(row) != num_variants for row in per_annotator):
        raise LabelError('annotators labelled different numbers of variants.')
    codes, counts = [], []
    for k in range(num_variants):
        if k == 0:
            codes.append(ORIGINAL)
            counts.append(len(per_annotator))
            continue
        code, count = effective_label([row[k] for row in per_annotator])
        codes.append(code)
        counts.append(count)
    return codes, counts


def _pictures_by_file(path: str, pictures: list[dict], variants: Sequence[str]) -> dict[str, dict]:
    """``File`` → entry, when the entries name the variants they label; ``{}`` to match by position.

    A variant named twice (or an entry naming an unknown variant beside entries naming known ones) would make
    one variant's label stand for another's, so it is an error, not a silent last-one-wins."""
    files = [None if p.get('File') is None else str(p.get('File')) for p in pictures]
    if not any(f in variants for f in files):
        return {}  # File holds something else (or nothing): positional matching, as documented
    seen: dict[str, int] = {}
    for i, name in enumerate(files):
        if name not in variants:
            raise LabelError(f'{path}: Picture_{i + 1} has File {name!r}, which is not one of the variants '
                             f'{list(variants)} named by the other entries; fix the entry.')
        if name in seen:
            raise LabelError(f'{path}: variant "{name}" is named by Picture_{seen[name] + 1} and Picture_{i + 1}; '
                             f'each variant must be labelled exactly once (one of them should name another '
                             f'variant).')
        seen[name] = i
    return {name: pictures[i] for name, i in seen.items()}


def read_hggt_label_file(path: str, variants: Sequence[str]) -> list[str | None]:
    """One annotator's labels for the K ``variants`` of a group from an HGGT JSON file.

    HGGT files hold ``Picture_1`` .. ``Picture_K`` objects ``{'Name', 'File', 'Label'}``; ``File`` names the
    variant folder (``original``, ``01`` ...). Entries are matched by ``File`` when present, else by position
    (``Picture_{k+1}`` ↔ ``variants[k]``). The original's label is ``None``.
    """
    if not osp.isfile(path):
        raise LabelError(f'{path}: label file missing.')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f'{path}: not a readable JSON label file ({exc}).') from exc
    if not isinstance(data, dict):
        raise LabelError(f'{path}: expected a JSON object with keys Picture_1 .. Picture_{len(variants)}.')
    pictures = [data.get(f'Picture_{i + 1}') for i in range(len(variants))]
    missing = [f'Picture_{i + 1}' for i, p in enumerate(pictures) if not isinstance(p, dict)]
    if missing:
        raise LabelError(f'{path}: missing or malformed {missing}.')
    by_file = _pictures_by_file(path, pictures, variants)
    labels: list[str | None] = []
    for k, variant in enumerate(variants):
        entry = by_file.get(variant, pictures[k]) if by_file else pictures[k]
        label = entry.get('Label')
        if k == 0:
            labels.append(None)
            continue
        if label not in _VOTES:
            raise LabelError(f'{path}: {variant} has label {label!r}; expected one of {list(_VOTES)}.')
        labels.append(label)
    return labels
