"""Every change this package makes to a third-party library, with its scope and its reason.

Import-time shims (process-wide, must run before the first ``basicsr`` import; :func:`apply_import_shims`, called
by ``nriqa_basicsr/__init__.py``):

* ``torchvision.transforms.functional_tensor`` aliased to ``torchvision.transforms.functional``: basicsr 1.4.2's
  ``data/degradations.py`` imports the old module (removed in torchvision 0.17), and ``basicsr/__init__.py``
  star-imports every sub-package, so that one import breaks *every* ``import basicsr...``.
* ``distutils.version`` registered with a ``packaging``-backed ``LooseVersion`` when missing: basicsr's
  ``archs/arch_util.py`` imports it; Python 3.12 dropped ``distutils`` and a venv without setuptools (or with
  ``SETUPTOOLS_USE_DISTUTILS=stdlib``) does not provide it.
* the "distutils Version classes are deprecated" warning that import raises is silenced.

Scoped patches (context managers; each restores what it replaced, also on error):

* :func:`basicsr_pipeline` — six module-level names that BasicSR's ``train_pipeline`` / ``test_pipeline`` look
  up at call time, while one pipeline runs (``nriqa_basicsr.pipeline.basicsr_hooks`` supplies the
  replacements; the list and the reason of each are in :data:`BASICSR_PIPELINE_HOOKS`).
* :func:`vgg_pretrain_path` — ``basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH``, while a ``VGGFeatureExtractor`` is
  built: BasicSR reads its VGG file from that CWD-relative module constant and offers no option for it
  (``nriqa-bench-step`` points it at random VGG weights).
* :func:`iqa_weight_downloads` — while one IQA metric is built (:func:`nriqa_basicsr.iqa.weights.redirect_downloads`
  supplies the handlers): pyiqa's ``load_file_from_url`` in the pyiqa modules that bind it, and
  ``torch.hub.download_url_to_file`` in ``torch.hub``, so weight files come from our search path and fail fast
  offline; offline, also ``huggingface_hub.constants.HF_HUB_OFFLINE`` (timm backbones fail in seconds instead of
  retrying for ~47 s). Neither library has a hook for where its files come from. Calls from other threads go to
  the originals, and on leaving every binding is the original again (see :class:`ScopedRebinding`).
* :func:`global_rngs_seeded` — numpy's and Python's global RNG streams, around basicsr's kernel functions
  (``random_mixed_kernels`` draws from ``np.random`` and ``random``, with no generator argument): they run from a
  seed of the sample's own generator, and both global streams are left as they were.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import random
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ['BASICSR_PIPELINE_HOOKS', 'PYIQA_DOWNLOAD', 'TORCH_HUB_DOWNLOAD', 'ScopedRebinding', 'apply_import_shims',
           'basicsr_pipeline', 'global_rngs_seeded', 'iqa_weight_downloads', 'swap_attributes', 'vgg_pretrain_path']

_shims_applied = False
_MISSING = object()


@contextlib.contextmanager
def swap_attributes(*swaps: tuple[object, str, Any]) -> Iterator[None]:
    """Set ``setattr(owner, name, value)`` for each ``(owner, name, value)`` while the context is active.

    Every name must already exist (a renamed attribute after an upgrade fails here instead of being silently
    added beside the real one). The originals come back in reverse order, also when the body raises.
    """
    saved: list[tuple[object, str, Any]] = []
    try:
        for owner, name, value in swaps:
            original = getattr(owner, name, _MISSING)
            if original is _MISSING:
                raise AttributeError(f'cannot patch {getattr(owner, "__name__", owner)!s}.{name}: no such attribute '
                                     f'(the third-party version differs from the one this package supports)')
            saved.append((owner, name, original))
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


# (module, name) -> why it is replaced while a pipeline runs. Each name is looked up in that module's globals
# when BasicSR calls it, so replacing it there (not where it is defined) is enough and reaches nothing else.
BASICSR_PIPELINE_HOOKS: dict[tuple[str, str], str] = {
    ('basicsr.utils.options', 'init_dist'):
        'torchrun: pick the GPU from LOCAL_RANK (BasicSR uses the global rank, wrong on several nodes); '
        'without CUDA initialise gloo instead of failing in torch.cuda',
    ('basicsr.utils.options', 'ordered_yaml'):
        'parse_options reads the option file with yaml.Loader (Python tags run); use the safe loader, '
        'which also refuses duplicate keys',
    ('basicsr.train', 'parse_options'):
        'check our option blocks and every file the run reads, and lock the experiment folder, right after '
        'parsing and before BasicSR creates or archives any folder',
    ('basicsr.test', 'parse_options'): 'the same for the results folder of a test run',
    ('basicsr.train', 'load_resume_state'):
        'load the state onto the configured device with weights_only=True (BasicSR requires CUDA), look for '
        '--auto_resume states under the root path, refuse a folder of unusable states',
    ('basicsr.train', 'create_train_val_dataloader'):
        'make the training sampler resumable inside an epoch, and refuse a loader that yields no iteration '
        '(BasicSR would exit 0 and save an untrained network)',
}


@contextlib.contextmanager
def basicsr_pipeline(**replacements: Any) -> Iterator[None]:
    """Replace the names of :data:`BASICSR_PIPELINE_HOOKS` (by name, e.g. ``init_dist=...``) while active.

    ``parse_options`` replaces the name in both ``basicsr.train`` and ``basicsr.test``; every hook must be
    given, so a new hook cannot be half-installed.
    """
    names = {name for _, name in BASICSR_PIPELINE_HOOKS}
    if set(replacements) != names:
        raise TypeError(f'basicsr_pipeline needs exactly {sorted(names)}; got {sorted(replacements)}')
    swaps = [(importlib.import_module(module), name, replacements[name]) for module, name in BASICSR_PIPELINE_HOOKS]
    with swap_attributes(*swaps):
        yield


@contextlib.contextmanager
def vgg_pretrain_path(path: str) -> Iterator[None]:
    """BasicSR's ``VGGFeatureExtractor`` loads ``path`` instead of its CWD-relative default while active.

    ``VGG_PRETRAIN_PATH`` is read when the extractor is built (``PerceptualLoss(...)``), so build it inside.
    """
    import basicsr.archs.vgg_arch as vgg_arch

    with swap_attributes((vgg_arch, 'VGG_PRETRAIN_PATH', path)):
        yield


class ScopedRebinding:
    """One function of a third party, replaced while a :meth:`scope` is active in the modules that bind it.

    ``module.name`` and every binding of it in the modules named ``prefix`` or ``prefix.*`` (what
    ``from module import name`` left there) become a dispatcher on entering the first scope. A call from a
    context (thread, task) that is inside a scope goes to that scope's ``handler(original, *args, **kwargs)``;
    any other call goes to the original. Leaving the last scope sets every binding of the dispatcher back to the
    original, also those of modules imported while it was active (pyiqa imports its arch modules lazily, inside
    ``create_metric``), so nothing of it outlives the scope.
    """

    def __init__(self, module: str, name: str, prefix: str) -> None:
        self.module, self.name, self.prefix = module, name, prefix
        self._handler: contextvars.ContextVar[Callable[..., Any] | None] = contextvars.ContextVar(
            f'nriqa_patch_{module}.{name}', default=None)
        self._lock = threading.Lock()
        self._depth = 0
        self._original: Callable[..., Any] | None = None
        self._dispatcher: Callable[..., Any] | None = None

    def _rebind(self, old: Callable[..., Any], new: Callable[..., Any]) -> None:
        for mod_name, mod in list(sys.modules.items()):
            if mod is not None and (mod_name == self.prefix or mod_name.startswith(self.prefix + '.')) \
                    and getattr(mod, self.name, None) is old:
                setattr(mod, self.name, new)

    def _install(self) -> None:
        original = getattr(importlib.import_module(self.module), self.name)
        handler = self._handler

        @functools.wraps(original)
        def dispatcher(*args: Any, **kwargs: Any) -> Any:
            active = handler.get()
            return original(*args, **kwargs) if active is None else active(original, *args, **kwargs)

        self._original, self._dispatcher = original, dispatcher
        self._rebind(original, dispatcher)

    @property
    def active(self) -> bool:
        """Whether any scope (of any thread) is active."""
        return self._depth > 0

    @contextlib.contextmanager
    def scope(self, handler: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
        """Route this context's calls to ``handler(original, *args, **kwargs)``; yields the original."""
        with self._lock:
            if self._depth == 0:
                self._install()
            self._depth += 1
            original = self._original
        token = self._handler.set(handler)
        try:
            yield original
        finally:
            self._handler.reset(token)
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._rebind(self._dispatcher, self._original)
                    self._original = self._dispatcher = None


#: pyiqa fetches every checkpoint through this function; its arch modules bind it by name at import.
PYIQA_DOWNLOAD = ScopedRebinding('pyiqa.utils.download_util', 'load_file_from_url', prefix='pyiqa')
#: torchvision (and CLIP) backbones: ``torch.hub.load_state_dict_from_url`` looks this name up in torch.hub.
TORCH_HUB_DOWNLOAD = ScopedRebinding('torch.hub', 'download_url_to_file', prefix='torch.hub')


@contextlib.contextmanager
def iqa_weight_downloads(pyiqa_download: Callable[..., str], hub_download: Callable[..., None],
                         offline: bool) -> Iterator[None]:
    """While one IQA metric is built: pyiqa's and torch.hub's downloads go to the handlers, and offline,
    huggingface_hub is in offline mode.

    ``pyiqa_download(original, url, model_dir=None, progress=True, file_name=None) -> path`` and
    ``hub_download(original, url, dst, *args, **kwargs)`` receive the original function first.
    """
    import huggingface_hub.constants as hf_constants

    with contextlib.ExitStack() as stack:
        stack.enter_context(PYIQA_DOWNLOAD.scope(pyiqa_download))
        stack.enter_context(TORCH_HUB_DOWNLOAD.scope(hub_download))
        if offline:
            stack.enter_context(swap_attributes((hf_constants, 'HF_HUB_OFFLINE', True)))
        yield


@contextlib.contextmanager
def global_rngs_seeded(seed: int) -> Iterator[None]:
    """numpy's and Python's global RNGs seeded with ``seed`` while active, their previous states restored after.

    For third-party functions that draw from the global streams and take no generator (basicsr's kernel
    functions): their draws then follow the caller's own generator, and the caller's global streams do not move.
    """
    import numpy as np

    state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
        random.setstate(py_state)


# --- import-time shims -------------------------------------------------------------------------------------------

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

    def _coerce(self, other: object) -> _LooseVersion:
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


def apply_import_shims() -> None:
    """Install the import-time shims once (idempotent); must run before anything imports ``basicsr``."""
    global _shims_applied
    if _shims_applied:
        return
    _alias_functional_tensor()
    _ensure_distutils_version()
    # basicsr's arch_util triggers setuptools' "distutils Version classes are deprecated" on every import.
    warnings.filterwarnings('ignore', message='distutils Version classes are deprecated', category=DeprecationWarning)
    _shims_applied = True
