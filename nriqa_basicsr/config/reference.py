"""The README option reference, generated from the schemas (:mod:`nriqa_basicsr.config.sections`).

``python -m nriqa_basicsr.config.reference --write README.md`` replaces the text between
``<!-- options:begin -->`` and ``<!-- options:end -->``; ``--check README.md`` exits with status 1 when it
differs (``tests/test_option_reference.py`` does the same). Each subsection is the schema's docstring (first
paragraph above the table, the others below) and one row per field: key, type, default, meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from typing import Any, Literal

from nriqa_basicsr.config.schema import Section, section_fields, union_members
from nriqa_basicsr.config.sections import (
    CompileOptions,
    DegradationOptions,
    GTSelectionOptions,
    LoRAOptions,
    MetricOptions,
    MultiGTOptions,
    NegativeLossOptions,
    NRIQALossOptions,
    NRIQATrainOptions,
)
from nriqa_basicsr.readme_block import replace_block, write_or_check

__all__ = ['BEGIN', 'END', 'REFERENCE', 'render', 'replace_between_markers']

BEGIN, END = '<!-- options:begin -->', '<!-- options:end -->'

#: (heading, schema, key prefix) of each generated subsection, in README order
REFERENCE: tuple[tuple[str, type[Section], str], ...] = (
    ('Validation metrics (`val.metrics.<key>`)', MetricOptions, ''),
    ('`NRIQALoss` (`LOSS_REGISTRY`)', NRIQALossOptions, ''),
    ('`MultiGTDataset` (`datasets.<phase>`)', MultiGTOptions, ''),
    ('GT selection (`train.gt_selection`)', GTSelectionOptions, ''),
    ('`NRIQAModel` sections (`train`)', NRIQATrainOptions, 'train.'),
    ('`torch.compile` (`train.compile`)', CompileOptions, ''),
    ('Negative loss (`train.neg_opt`)', NegativeLossOptions, ''),
    ('LoRA (`network_g_lora`)', LoRAOptions, ''),
    ('Blind degradation (`degradation`)', DegradationOptions, ''),
)


def _type_text(tp: Any) -> str:
    names = []
    for member in union_members(tp):
        origin = typing.get_origin(member) or member
        if member is Any:
            return ''
        if origin is Literal:
            names.append('/'.join(f'`{v}`' for v in typing.get_args(member)))
        elif isinstance(origin, type) and issubclass(origin, Section):
            names.append('dict')
        else:
            names.append(origin.__name__)
    return '/'.join(names)


def _default_text(f: dataclasses.Field, spec: Any) -> str:
    if spec.shown is not None:
        return spec.shown
    if spec.required:
        return 'required'
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is None:
        return '—'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`'{value}'`" if not value.isidentifier() else f'`{value}`'
    return str(value)


def _cell(text: str) -> str:
    return text.replace('|', '\\|')


def _markdown(text: str) -> str:
    """A docstring paragraph in README markdown: one line, rST literals and roles as code spans."""
    text = re.sub(r':(?:mod|class|func|data):`~?([^`]+)`', r'`\1`', ' '.join(text.split()))
    return text.replace('``', '`')


def _rows(schema: type[Section], prefix: str) -> list[str]:
    rows, fields = [], section_fields(schema)
    i = 0
    while i < len(fields):
        f, spec, tp = fields[i]
        if spec.group is not None:  # consecutive fields of one group share a row
            end = i
            while end < len(fields) and fields[end][1].group == spec.group:
                end += 1
            group = fields[i:end]
            keys = ', '.join(f'`{prefix}{g[0].name}`' for g in group)
            rows.append(f'| {keys} | | unset | {_cell(spec.group)} |')
            i += len(group)
            continue
        kind = spec.kind if spec.kind is not None else _type_text(tp)
        rows.append(f'| `{prefix}{f.name}` | {kind} | {_default_text(f, spec)} | {_cell(spec.doc)} |')
        i += 1
    return rows


def render() -> str:
    """The markdown of every generated subsection (what goes between the markers)."""
    parts = []
    for heading, schema, prefix in REFERENCE:
        paragraphs = [_markdown(p) for p in inspect.cleandoc(schema.__doc__ or '').split('\n\n')]
        parts.append(f'### {heading}')
        parts.append(paragraphs[0])
        parts.append('\n'.join(['| key | type | default | meaning |', '|---|---|---|---|', *_rows(schema, prefix)]))
        parts.extend(paragraphs[1:])
    return '\n\n'.join(parts)


def replace_between_markers(text: str, generated: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``generated``."""
    return replace_block(text, BEGIN, END, generated, 'option reference', pad='\n\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--write', metavar='README', help='replace the generated part of this file')
    group.add_argument('--check', metavar='README', help='exit with status 1 when its generated part differs')
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(render())
        return 0
    return write_or_check(args.write or args.check, BEGIN, END, render(), bool(args.check),
                          'python -m nriqa_basicsr.config.reference --write', 'option reference', pad='\n\n')


if __name__ == '__main__':
    sys.exit(main())
