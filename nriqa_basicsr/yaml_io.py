"""Reading option files without running code from them.

BasicSR's ``ordered_yaml()`` returns PyYAML's full ``Loader``, which builds arbitrary Python objects from tags
such as ``!!python/object/apply:os.system [...]`` — the command runs while the file is read. Every option file
is read here instead, with :class:`SafeOrderedLoader`: PyYAML's safe loader (plain data only: mappings, lists,
strings, numbers, booleans, null, timestamps; BasicSR's ``!!float 2e-4`` is a standard tag and keeps working),
mappings as ``OrderedDict`` in file order as BasicSR expects, and a duplicate key in one mapping is an error
(PyYAML keeps the last one silently). Errors are :class:`OptionFileError` naming the file and line.

``nriqa_basicsr.pipeline`` replaces ``basicsr.utils.options.ordered_yaml`` with :func:`ordered_yaml` while a
pipeline runs, so BasicSR's own ``parse_options`` reads with this loader too.
"""

from __future__ import annotations

import os.path as osp
from collections import OrderedDict
from typing import Any

import yaml

__all__ = ['OptionFileError', 'SafeOrderedDumper', 'SafeOrderedLoader', 'load_option_file', 'load_yaml', 'ordered_yaml']

try:  # the C parser when available (BasicSR's choice too); construction stays in Python either way
    _SafeBase = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _SafeBase = yaml.SafeLoader


class OptionFileError(ValueError):
    """An option file that is missing, not YAML, not plain data, or has a duplicate key."""


def _where(mark: Any) -> str:
    if mark is None:
        return ''
    return f'{mark.name}:{mark.line + 1}'


class SafeOrderedLoader(_SafeBase):
    """Safe loader with ordered mappings and duplicate-key refusal."""


def _construct_mapping(loader: SafeOrderedLoader, node: yaml.MappingNode) -> OrderedDict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == 'tag:yaml.org,2002:merge':  # `<<: *anchor` may be overridden by explicit keys
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError('while constructing a mapping', node.start_mark,
                                                    f'unhashable key {key!r}', key_node.start_mark) from None
        if key in seen:
            raise OptionFileError(
                f'{_where(key_node.start_mark)}: duplicate key "{key}" (first at line {seen[key].start_mark.line + 1}'
                f'); YAML would silently keep only the last value. Remove one of them.')
        seen[key] = key_node
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node, deep=True))


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _explain(exc: yaml.YAMLError, path: str) -> OptionFileError:
    mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
    where = _where(mark) or path
    problem = getattr(exc, 'problem', None) or str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError) and 'constructor for the tag' in str(problem):
        tag = str(problem).split("tag '")[-1].rstrip("'").replace('tag:yaml.org,2002:', '!!')
        return OptionFileError(
            f'{where}: tag {tag} refused. Option files may hold only plain data (mappings, lists, strings, numbers, '
            f'true/false, null); a Python tag would construct objects or run code while the file is read. Remove '
            f'the tag and write the value itself.')
    return OptionFileError(f'{where}: not valid YAML ({problem}).')


def load_yaml(path: str, what: str = 'option file') -> Any:
    """The content of the YAML file ``path`` read safely (see the module docstring); ``what`` names its role."""
    if not osp.isfile(path):
        raise OptionFileError(f'{what} {path}: no such file' + (' (it is a folder).' if osp.isdir(path) else '.'))
    try:
        with open(path, encoding='utf-8') as f:
            return yaml.load(f, Loader=SafeOrderedLoader)
    except yaml.YAMLError as exc:
        raise _explain(exc, path) from None
    except UnicodeDecodeError as exc:
        raise OptionFileError(f'{what} {path}: not a UTF-8 text file ({exc}).') from None


def load_option_file(path: str, what: str = 'option file') -> OrderedDict:
    """:func:`load_yaml` for a file that must hold a mapping (every BasicSR option file does)."""
    opt = load_yaml(path, what)
    if opt is None:
        raise OptionFileError(f'{what} {path}: the file is empty; it must be a mapping of options (name:, '
                              f'model_type:, network_g:, ...).')
    if not isinstance(opt, dict):
        raise OptionFileError(f'{what} {path}: the top level is a {type(opt).__name__}, not a mapping of options '
                              f'(name:, model_type:, network_g:, ...).')
    return opt


class SafeOrderedDumper(yaml.SafeDumper):
    """Writes ``OrderedDict`` as a plain mapping in its order (what BasicSR's ordered dumper does)."""


SafeOrderedDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def ordered_yaml() -> tuple[type, type]:
    """Drop-in for ``basicsr.utils.options.ordered_yaml``: (safe ordered loader, ordered dumper)."""
    return SafeOrderedLoader, SafeOrderedDumper
