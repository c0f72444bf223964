"""Compatibility shims that must run before the first ``basicsr`` import.

basicsr 1.4.2 (the last PyPI release) breaks on current stacks in two places:

* ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, a module removed in
  torchvision 0.17. Because ``basicsr/__init__.py`` star-imports every sub-package, that single import breaks
  *every* ``import basicsr...``. The functions it needs (``rgb_to_grayscale``) live in
  ``torchvision.transforms.functional`` today, so we alias the old name to it.
* ``basicsr/archs/arch_util.py`` imports ``distutils.version.LooseVersion``. Python 3.12 dropped ``distutils``;
  setuptools normally provides it, but a venv without setuptools (or ``SETUPTOOLS_USE_DISTUTILS=stdlib``)
  does not. We then register a minimal ``distutils.version`` whose ``LooseVersion`` is backed by
  ``packaging.version``.

Both shims are idempotent and harmless when the real modules exist.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings

__all__ = ['apply']

_applied = False


def _alias_functional_tensor() -> None:
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        import torchvision.transforms.functional as tv_functional

        sys.modules[name] = tv_functional


class _LooseVersion:
    """Just enough of ``distutils.version.LooseVersion`` for basicsr's ``torch.__version__`` comparisons."""

    def __init__(self, vstring: str) -> None:
        from packaging.version import InvalidVersion, Version

        self.vstring = str(vstring)
        try:
            self._key = Version(self.vstring.split('+')[0])
        except InvalidVersion:
            self._key = Version('0')

    def _coerce(self, other: object) -> '_LooseVersion':
        return other if isinstance(other, _LooseVersion) else _LooseVersion(str(other))

    def __eq__(self, other: object) -> bool:
        return self._key == self._coerce(other)._key

    def __lt__(self, other: object) -> bool:
        return self._key < self._coerce(other)._key

    def __le__(self, other: object) -> bool:
        return self._key <= self._coerce(other)._key

    def __gt__(self, other: object) -> bool:
        return self._key > self._coerce(other)._key

    def __ge__(self, other: object) -> bool:
        return self._key >= self._coerce(other)._key

    def __repr__(self) -> str:
        return f"LooseVersion('{self.vstring}')"


def _ensure_distutils_version() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            importlib.import_module('distutils.version')
            return
        except ImportError:
            pass
    pkg = sys.modules.get('distutils') or types.ModuleType('distutils')
    pkg.__path__ = getattr(pkg, '__path__', [])
    version = types.ModuleType('distutils.version')
    version.LooseVersion = _LooseVersion
    pkg.version = version
    sys.modules['distutils'] = pkg
    sys.modules['distutils.version'] = version


def apply() -> None:
    """Install all shims once; call before importing anything from ``basicsr``."""
    global _applied
    if _applied:
        return
    _alias_functional_tensor()
    _ensure_distutils_version()
    # basicsr's arch_util triggers setuptools' "distutils Version classes are deprecated" on every import.
    warnings.filterwarnings('ignore', message='distutils Version classes are deprecated', category=DeprecationWarning)
    _applied = True
