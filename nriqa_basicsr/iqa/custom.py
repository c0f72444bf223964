"""Registry of custom NR-IQA models: torch modules that are not in pyiqa but work wherever a pyiqa name does.

A custom metric is an ``nn.Module`` class whose ``forward(x)`` takes RGB ``(B, 3, H, W)`` in [0, 1] and returns
the model's own score ``(B,)`` (or ``(B, 1)``). It is registered with its metadata, either by decorator

.. code-block:: python

    from nriqa_basicsr.iqa import register_nriqa_metric

    @register_nriqa_metric('my_iqa', weights_file='my_iqa.pth', lower_better=False, score_range=(0, 100))
    class MyIQA(torch.nn.Module): ...

or by import path (``package.module:Class`` or ``path/to/file.py:Class``), given as the metric name itself, in the
``custom_iqa`` block of an option file, or in ``$NRIQA_IQA_PLUGINS`` (comma-separated modules or import paths,
imported on first lookup, e.g. for the scripts). :class:`~nriqa_basicsr.iqa.scorer.IQAScorer` then builds
it like a pyiqa metric: weights found by file name in the weights directories (or ``weights_path``), loaded with
:func:`~nriqa_basicsr.safe_load.load_torch_file`, frozen, eval mode, quality higher-is-better.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import os.path as osp
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from nriqa_basicsr.iqa.scores import parse_score_range

__all__ = ['CustomMetricError', 'CustomMetricSpec', 'add_plugin_argument', 'custom_metric_names',
           'find_custom_weights', 'get_custom_metric', 'load_plugins', 'register_from_import_path',
           'register_from_options', 'register_nriqa_metric', 'register_plugins', 'unregister_nriqa_metric']

PLUGINS_ENV = 'NRIQA_IQA_PLUGINS'
# Keys of one entry of the option file's ``custom_iqa`` block.
SPEC_KEYS = frozenset({'class', 'weights_file', 'weights_subdirs', 'lower_better', 'score_range', 'url'})


class CustomMetricError(ValueError):
    """A custom metric cannot be registered or imported (bad import path, name clash, bad metadata)."""


@dataclass(frozen=True)
class CustomMetricSpec:
    """What the scorer needs to build a custom metric.

    Attributes:
        name: the metric name (lower case) used in options and on the command line.
        cls: the ``nn.Module`` class; built as ``cls(**metric_opts)``.
        lower_better: direction of the model's own score (``True`` for e.g. DMOS, NIQE-like scores).
        score_range: ``(low, high)`` of the raw score, used by ``normalize: true``; ``None`` if unbounded.
        weights_file: file name searched in the weights directories; ``None`` for a model without weights.
        weights_subdirs: sub-folders of each weights directory also searched (e.g. ``cnniqa``).
        url: where users obtain the weights (shown when they are missing).
    """

    name: str
    cls: type
    lower_better: bool = False
    score_range: tuple[float, float] | None = None
    weights_file: str | None = None
    weights_subdirs: tuple[str, ...] = ()
    url: str | None = None
    mode: str = 'NR'

    @property
    def import_path(self) -> str:
        return f'{self.cls.__module__}:{self.cls.__qualname__}'


_REGISTRY: dict[str, CustomMetricSpec] = {}
_PLUGINS_LOADED: set[str] = set()


def _pyiqa_names() -> set[str]:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return {n.lower() for n in DEFAULT_CONFIGS}


def _make_spec(name: str, cls: Any, lower_better: Any, score_range: Any, weights_file: Any,
               weights_subdirs: Any, url: Any) -> CustomMetricSpec:
    if not isinstance(name, str) or not name or ':' in name or name != name.strip():
        raise CustomMetricError(f'Custom IQA metric name must be a non-empty string without ":", got {name!r}.')
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CustomMetricError(f'Custom IQA metric "{name}": {cls!r} is not a torch.nn.Module subclass.')
    if not isinstance(lower_better, bool):
        raise CustomMetricError(f'Custom IQA metric "{name}": lower_better must be true or false, got '
                                f'{lower_better!r}.')
    if weights_file is not None and (not isinstance(weights_file, str) or not weights_file):
        raise CustomMetricError(f'Custom IQA metric "{name}": weights_file must be a file name, got '
                                f'{weights_file!r}.')
    if isinstance(weights_subdirs, str):
        weights_subdirs = (weights_subdirs,)
    rng = None
    if score_range is not None:
        text = score_range if isinstance(score_range, str) else None
        try:
            rng = (parse_score_range(text) if text is not None
                   else (float(score_range[0]), float(score_range[1])) if len(score_range) == 2 else None)
        except (TypeError, ValueError):
            rng = None
        if rng is None or not rng[1] > rng[0]:
            raise CustomMetricError(f'Custom IQA metric "{name}": score_range must be [low, high] with high > low, '
                                    f'got {score_range!r}.')
    return CustomMetricSpec(name.lower(), cls, lower_better, rng, weights_file, tuple(weights_subdirs or ()), url)


def _same_definition(a: type, b: type) -> bool:
    if a is b:
        return True
    try:
        return a.__qualname__ == b.__qualname__ and osp.samefile(inspect.getfile(a), inspect.getfile(b))
    except (TypeError, OSError):
        return False


def _register(spec: CustomMetricSpec, override: bool) -> CustomMetricSpec:
    old = _REGISTRY.get(spec.name)
    if old is not None and _same_definition(old.cls, spec.cls):
        # The same class imported again (module reloaded, or by file path and by module name): newest wins.
        override = True
    if not override:
        if old is not None:
            raise CustomMetricError(f'Custom IQA metric "{spec.name}" is already registered by {old.import_path}; '
                                    f'choose another name or pass override=True.')
        if spec.name in _pyiqa_names():
            raise CustomMetricError(f'Custom IQA metric "{spec.name}" would shadow the pyiqa metric of that name; '
                                    f'choose another name (e.g. "{spec.name}_custom") or pass override=True.')
    _REGISTRY[spec.name] = spec
    return spec


def register_nriqa_metric(name: str, *, weights_file: str | None = None, lower_better: bool = False,
                          score_range: Sequence[float] | None = None, weights_subdirs: Sequence[str] = (),
                          url: str | None = None, override: bool = False):
    """Class decorator registering a custom NR-IQA model under ``name`` (see module docstring)."""

    def decorate(cls: type) -> type:
        spec = _register(_make_spec(name, cls, lower_better, score_range, weights_file, weights_subdirs, url),
                         override)
        cls.iqa_spec = spec
        return cls

    return decorate


def unregister_nriqa_metric(name: str) -> None:
    """Remove a custom metric (tests; re-registration under another class)."""
    _REGISTRY.pop(name.lower(), None)


def _import_object(path: str) -> Any:
    """``package.module:Attr`` or ``path/to/file.py:Attr`` → the attribute."""
    module_part, sep, attr = path.rpartition(':')
    if not sep or not module_part or not attr:
        raise CustomMetricError(f'IQA import path "{path}" must look like package.module:Class or '
                                f'path/to/file.py:Class.')
    if module_part.endswith('.py'):
        file = osp.abspath(osp.expanduser(module_part))
        if not osp.isfile(file):
            raise CustomMetricError(f'IQA import path "{path}": no such file {file}.')
        mod_name = f'nriqa_iqa_plugin_{abs(hash(file))}'
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[mod_name]
                raise CustomMetricError(f'IQA import path "{path}": executing {file} failed '
                                        f'({type(exc).__name__}: {exc}).') from exc
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise CustomMetricError(f'IQA import path "{path}": cannot import module "{module_part}" ({exc}). Is '
                                    f'its package installed or on PYTHONPATH?') from exc
        except Exception as exc:
            raise CustomMetricError(f'IQA import path "{path}": importing "{module_part}" failed '
                                    f'({type(exc).__name__}: {exc}).') from exc
    obj = module
    for part in attr.split('.'):
        if not hasattr(obj, part):
            raise CustomMetricError(f'IQA import path "{path}": module "{module_part}" has no attribute "{attr}".')
        obj = getattr(obj, part)
    return obj


def register_from_import_path(path: str, name: str | None = None, **meta: Any) -> CustomMetricSpec:
    """Import ``module:Class`` and register it; metadata from ``meta``, else the decorator, else class attributes.

    Undecorated classes may declare ``iqa_name``, ``lower_better``, ``score_range``, ``weights_file``,
    ``weights_subdirs`` and ``weights_url`` as class attributes.
    """
    unknown = sorted(set(meta) - (SPEC_KEYS - {'class'}))
    if unknown:
        raise CustomMetricError(f'Custom IQA metric {name or path}: unknown option(s) {unknown}; valid: '
                                f'{sorted(SPEC_KEYS)}.')
    cls = _import_object(path)
    spec: CustomMetricSpec | None = getattr(cls, 'iqa_spec', None) if isinstance(cls, type) else None
    if spec is not None and spec.cls is cls and (name is None or name.lower() == spec.name) and not meta:
        return _register(spec, override=True)
    base = {'lower_better': getattr(cls, 'lower_better', False), 'score_range': getattr(cls, 'score_range', None),
            'weights_file': getattr(cls, 'weights_file', None),
            'weights_subdirs': getattr(cls, 'weights_subdirs', ()), 'url': getattr(cls, 'weights_url', None)}
    if spec is not None:
        base.update(lower_better=spec.lower_better, score_range=spec.score_range, weights_file=spec.weights_file,
                    weights_subdirs=spec.weights_subdirs, url=spec.url)
    base.update(meta)
    final_name = name or (spec.name if spec else None) or getattr(cls, 'iqa_name', None) or cls.__name__.lower()
    # Never an implicit override: a second name for a decorated class must not shadow a pyiqa metric either.
    return _register(_make_spec(final_name, cls, **base), override=False)


def register_from_options(block: Any) -> list[str]:
    """Register the option file's ``custom_iqa`` block; returns problems (empty when all went well).

    .. code-block:: yaml

        custom_iqa:
          my_iqa: {class: my_pkg.iqa:MyIQA, weights_file: my_iqa.pth, lower_better: false, score_range: [0, 100]}
          other: {class: ./plugins/other.py:Other}        # metadata from the decorator / class attributes
    """
    if block is None:
        return []
    if not isinstance(block, Mapping):
        return [f'custom_iqa: must be a mapping {{name: {{class: module:Class, ...}}}}, got {type(block).__name__}.']
    problems = []
    for name, entry in block.items():
        if isinstance(entry, str):
            entry = {'class': entry}
        if not isinstance(entry, Mapping) or not entry.get('class'):
            problems.append(f'custom_iqa.{name}: needs "class: package.module:Class" (or path/to/file.py:Class).')
            continue
        meta = {k: v for k, v in entry.items() if k != 'class'}
        try:
            register_from_import_path(str(entry['class']), name=str(name), **meta)
        except CustomMetricError as exc:
            problems.append(f'custom_iqa.{name}: {exc}')
        except Exception as exc:  # an error inside the user's module: report it with the option that caused it
            problems.append(f'custom_iqa.{name}: importing {entry["class"]} failed ({type(exc).__name__}: {exc}).')
    return problems


def register_plugins(entries: Sequence[str], where: str = '--iqa-plugin') -> list[str]:
    """Import each module (its decorators register metrics) or register each ``module:Class``; names registered.

    ``where`` names the option or variable the entries came from, for error messages.
    """
    names = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        if ':' in entry:
            names.append(register_from_import_path(entry).name)
            continue
        before = set(_REGISTRY)
        try:
            importlib.import_module(entry)
        except ImportError as exc:
            raise CustomMetricError(f'{where}: cannot import "{entry}" ({exc}).') from exc
        names.extend(sorted(set(_REGISTRY) - before))
    return names


def load_plugins() -> None:
    """Import what ``$NRIQA_IQA_PLUGINS`` names (once per entry); the package's own models are always loaded."""
    import nriqa_basicsr.iqa.cnniqa  # noqa: F401  (registers cnniqa_live)
    import nriqa_basicsr.iqa.niqe_matlab  # noqa: F401  (registers niqe_matlab_y, NIQE as SR papers report it)

    # Commas, not os.pathsep: on POSIX that is ':', which separates module and class.
    for entry in (p.strip() for p in os.environ.get(PLUGINS_ENV, '').split(',')):
        if entry and entry not in _PLUGINS_LOADED:
            register_plugins([entry], PLUGINS_ENV)
            _PLUGINS_LOADED.add(entry)


def add_plugin_argument(parser: Any) -> None:
    """``--iqa-plugin MODULE[:CLASS]`` (repeatable) for the scripts; apply with :func:`register_plugins`."""
    parser.add_argument('--iqa-plugin', action='append', default=[], metavar='MODULE[:CLASS]',
                        help='custom NR-IQA model(s) to register: a module whose @register_nriqa_metric classes '
                             'register themselves, or package.module:Class / path/to/file.py:Class (repeatable)')


def find_custom_weights(spec: CustomMetricSpec, weights_dir: str | Sequence[str] | None) -> tuple[str | None,
                                                                                               list[str]]:
    """Path of ``spec.weights_file`` in each search dir or its ``weights_subdirs`` (``None`` if absent), and the
    folders searched, in order."""
    from nriqa_basicsr.iqa.weights import search_dirs

    searched = []
    for d in search_dirs(weights_dir):
        for sub in ('', *spec.weights_subdirs):
            folder = osp.join(d, sub) if sub else d
            searched.append(folder)
            if spec.weights_file and osp.isfile(osp.join(folder, spec.weights_file)):
                return osp.join(folder, spec.weights_file), searched
    return None, searched


def get_custom_metric(name: str) -> CustomMetricSpec | None:
    """The spec registered under ``name`` (case-insensitive), importing ``module:Class`` names on the fly."""
    load_plugins()
    if ':' in name:
        return register_from_import_path(name)
    return _REGISTRY.get(name.lower())


def custom_metric_names(mode: str | None = None) -> list[str]:
    load_plugins()
    return sorted(n for n, s in _REGISTRY.items() if mode is None or s.mode == mode)
