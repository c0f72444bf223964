"""The option-schema mechanism: frozen dataclasses whose fields carry a type, a default and a one-line doc.

Why plain ``dataclasses`` and this small decoder rather than msgspec or pydantic: msgspec is not installed and
pydantic only as a transitive dependency, and neither reports problems the way our start-up checks must: every
problem at once, each naming its option path (``datasets.train.gt_size: ...``), the closest valid name for a
typo (difflib) and how to fix it, while ``None`` means "the default" as in BasicSR's YAML files. The decoder is
~150 lines, has no dependency, and the same field metadata renders the README option reference.

A schema is a ``@dataclass(frozen=True)`` subclass of :class:`Section`; fields are declared with :func:`option`,
checks across fields of one section with :func:`rule`. :func:`decode` turns a mapping into an instance (or
``None``) and the list of problems; :func:`decode_or_raise` raises :class:`OptionsError` with all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

__all__ = ['OptionsError', 'Section', 'Spec', 'decode', 'decode_or_raise', 'describe', 'got', 'option', 'rule',
           'section_fields', 'union_members']

S = TypeVar('S', bound='Section')
#: an extra check of a decoded value: ``check(value, path) -> problems``
Check = Callable[[Any, str], Iterable[str]]
#: a custom decoder replacing the type check: ``parse(value, path) -> (decoded value, problems)``
Parse = Callable[[Any, str], tuple[Any, list[str]]]
_LIST_KEYS_UP_TO = 12  # unknown-key messages list the valid keys of sections this small


class OptionsError(ValueError):
    """One or more invalid options; the message lists all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__('Invalid options:\n' + '\n'.join(f'  - {p}' for p in problems))


@dataclass(frozen=True)
class Spec:
    """What :func:`option` records about a field (in ``dataclasses.Field.metadata['spec']``)."""

    doc: str
    required: str | None = None  # what to give when missing (the field has no default)
    check: Check | None = None
    parse: Parse | None = None
    kind: str | None = None  # README type column, when the annotation does not say it well
    shown: str | None = None  # README default column, when the default value does not say it well
    hint: str | None = None  # appended to a wrong type or choice: what the values mean
    group: str | None = None  # README: consecutive fields of one group share a row with this meaning


def option(default: Any = None, doc: str = '', *, factory: Callable[[], Any] | None = None,
           required: str | None = None, check: Check | None = None, parse: Parse | None = None,
           kind: str | None = None, shown: str | None = None, hint: str | None = None,
           group: str | None = None) -> Any:
    """A schema field. ``None`` in a mapping means "not given" (the default); ``required`` says what to give."""
    spec = Spec(doc, required, check, parse, kind, shown, hint, group)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={'spec': spec})
    return dataclasses.field(default=default, metadata={'spec': spec})


def rule(*fields: str) -> Callable[[Callable], Callable]:
    """Mark a method ``(self, where) -> problems`` as a check across ``fields``; it runs only when every one of
    them decoded (a wrong type is reported once, not again by each rule that reads the field)."""
    def mark(fn: Callable) -> Callable:
        fn.__rule_fields__ = fields
        return fn
    return mark


class Section:
    """Base of the option schemas: ``label`` names the section in unknown-key messages, ``open_keys`` lets keys
    that are not fields pass (sections shared with BasicSR, e.g. ``train``)."""

    label: ClassVar[str] = ''
    open_keys: ClassVar[bool] = False


def section_fields(schema: type[Section]) -> list[tuple[dataclasses.Field, Spec, Any]]:
    """``(field, spec, resolved type)`` of every field of ``schema``, in declaration order."""
    hints = typing.get_type_hints(schema)
    return [(f, f.metadata['spec'], hints[f.name]) for f in dataclasses.fields(schema)]


def got(value: Any) -> str:
    """How a wrong value is quoted in a problem: its type and repr."""
    return 'a boolean' if isinstance(value, bool) else f'{type(value).__name__} {value!r}'


# ------------------------------------------------------------------------------------------------ type checks
def union_members(tp: Any) -> tuple[Any, ...]:
    """The types of a union without ``None`` (``(tp,)`` for any other type)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(m for m in typing.get_args(tp) if m is not type(None))
    return (tp,)


def describe(tp: Any) -> str:
    """Type text of problems and of the README (``int or float``, ``str or list``, ``mapping``)."""
    names = []
    for member in union_members(tp):
        origin = typing.get_origin(member) or member
        if origin is Literal:
            names.append('/'.join(f'`{v}`' for v in typing.get_args(member)))
        elif isinstance(origin, type) and issubclass(origin, Section):
            names.append('mapping')
        elif origin is float:
            names.append('int or float')
        else:
            names.append(getattr(origin, '__name__', str(origin)))
    return ' or '.join(names)


def _matches(value: Any, member: Any) -> bool:
    origin = typing.get_origin(member) or member
    if member is Any:
        return True
    if isinstance(value, bool):
        return origin is bool
    if origin is float:
        return isinstance(value, (int, float))
    return isinstance(origin, type) and isinstance(value, origin)


def _decode_value(value: Any, tp: Any, spec: Spec, name: str, path: str) -> tuple[Any, list[str]]:
    if spec.parse is not None:
        return spec.parse(value, path)
    members = union_members(tp)
    hint = f'; {spec.hint}' if spec.hint else ''
    for member in members:
        if typing.get_origin(member) is Literal:
            choices = list(typing.get_args(member))
            if value in choices and not isinstance(value, bool):
                return value, []
            if len(members) == 1:
                close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
                return None, [f'{path}: {value!r} is not one of {choices}'
                              + (f' (did you mean {close[0]!r}?)' if close else '') + f'{hint}.']
        elif isinstance(member, type) and issubclass(member, Section) and isinstance(value, Mapping):
            return decode(member, value, path)
        elif _matches(value, member):
            return (float(value) if member is float else value), []
    return None, [f'{path}: expected {describe(tp)}, got {got(value)}{hint}.']


def _unknown_key(schema: type[Section], key: Any, names: list[str], path: str) -> str:
    label = f'{schema.label} ' if schema.label else ''
    close = difflib.get_close_matches(str(key), names, n=1)
    listed = len(names) <= _LIST_KEYS_UP_TO
    return (f'{path}: unknown {label}option' + (f'; valid keys: {sorted(names)}' if listed else '')
            + (f' (did you mean {close[0]}?)' if close else '')
            + ('' if listed or close else ' (see the README option reference)') + '.')


# ---------------------------------------------------------------------------------------------------- decode
def decode(schema: type[S], value: Any, where: str) -> tuple[S | None, list[str]]:
    """``value`` (a mapping) as a ``schema`` instance and the list of all problems found; the instance is
    ``None`` when there is any. Missing and ``None`` keys take the field default."""
    fields = section_fields(schema)
    names = [f.name for f, _, _ in fields]
    if not isinstance(value, Mapping):
        keys = f' with keys {sorted(names)}' if len(names) <= _LIST_KEYS_UP_TO else ''
        return None, [f'{where}: must be a mapping{keys}, got {got(value)}.']
    problems: list[str] = []
    if not schema.open_keys:
        problems += [_unknown_key(schema, k, names, f'{where}.{k}') for k in value if k not in names]
    values: dict[str, Any] = {}
    failed: set[str] = set()
    for f, spec, tp in fields:
        given = value.get(f.name)
        if given is None or (spec.required and given == ''):
            if spec.required:
                problems.append(f'{where}: missing "{f.name}" ({spec.required}).')
                failed.add(f.name)
            continue
        decoded, found = _decode_value(given, tp, spec, f.name, f'{where}.{f.name}')
        if not found and spec.check is not None:
            found = list(spec.check(decoded, f'{where}.{f.name}'))
        if found:
            problems += found
            failed.add(f.name)
        else:
            values[f.name] = decoded
    instance = schema(**values)
    for attr in dir(schema):
        fn = getattr(schema, attr)
        reads = getattr(fn, '__rule_fields__', None)
        if reads is not None and not failed.intersection(reads):
            problems += list(fn(instance, where) or [])
    return (None if problems else instance), problems


def decode_or_raise(schema: type[S], value: Any, where: str) -> S:
    """:func:`decode`, raising :class:`OptionsError` with every problem; an instance passes through."""
    if isinstance(value, schema):
        return value
    config, problems = decode(schema, value, where)
    if problems:
        raise OptionsError(problems)
    return config
