"""Where NR/FR-IQA weight files come from, and failing fast when they are not there.

pyiqa fetches every checkpoint through ``pyiqa.utils.download_util.load_file_from_url(url)``, which caches the
file under ``$TORCH_HOME/hub/pyiqa/<basename>``. While a metric is being built (:func:`redirect_downloads`) those
calls go to :func:`resolve_weight_file` (the patch itself, and its scope, is
:func:`nriqa_basicsr.patches.iqa_weight_downloads`), which looks for the same basename in, in order:

1. the directories given explicitly (``weights_dir`` option of a metric, loss or scorer; ``--weights-dir`` of
   the command-line tools);
2. ``$NRIQA_WEIGHTS_DIR`` (``os.pathsep``-separated list);
3. ``experiments/pretrained_models/iqa`` under the current working directory (BasicSR's convention: the folder a
   run is started from, where ``experiments/`` is written; :func:`project_weights_dir`);
4. pyiqa's own cache.

No location depends on where the package is installed, so an installed (non-editable) package finds its weights
the same way as a checkout.

In each directory the authors' original releases are accepted as well (BRISQUE's ``allmodel``, IL-NIQE's
``templateModel.mat``, NIQE's ``modelparameters.mat``, flat or in the metric's sub-folder, see
:mod:`nriqa_basicsr.iqa.releases`): converted once into the cache where the format differs.

Files we can produce without a network (NIQE's LIVE pristine model, from the copy that ships inside basicsr)
are generated into the project cache on first use. If a file is still missing and the network is unreachable
(or ``NRIQA_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``), :class:`WeightsNotFoundError` is raised at once, naming the
metric, the file, the directories searched and how to obtain the file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import os.path as osp
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlparse

from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.iqa.releases import RELEASES, find_release
from nriqa_basicsr.patches import iqa_weight_downloads

__all__ = [
    'WeightsNotFoundError',
    'cache_dir',
    'is_offline',
    'project_weights_dir',
    'redirect_downloads',
    'resolve_weight_file',
    'search_dirs',
]

_PYIQA_HOST = 'huggingface.co'


class WeightsNotFoundError(FileNotFoundError):
    """A metric's weight file is neither on disk nor downloadable."""

    def __init__(self, metric: str, file_name: str, searched: Sequence[str], url: str | None, reason: str) -> None:
        self.metric, self.file_name, self.searched, self.url = metric, file_name, list(searched), url
        dirs = '\n'.join(f'  - {d}' for d in self.searched) or '  (none)'
        source = url or 'the metric\'s upstream release'
        super().__init__(
            f'Weights for IQA metric "{metric}" not found: expected a file named "{file_name}".\n'
            f'Searched:\n{dirs}\n'
            f'{reason}\n'
            f'To fix: download {source} on a connected machine and put it, with this exact file name, into one '
            f'of the directories above (e.g. set NRIQA_WEIGHTS_DIR=/path/to/weights), or pass '
            f'weights_path=/path/to/file for the metric\'s main checkpoint.')


def project_weights_dir() -> str:
    """``experiments/pretrained_models/iqa`` under the current working directory (absolute)."""
    return osp.join(os.getcwd(), 'experiments', 'pretrained_models', 'iqa')


def cache_dir() -> str:
    """Writable directory for files this project generates (``$NRIQA_CACHE_DIR`` or ``~/.cache/nriqa_basicsr``)."""
    return os.environ.get('NRIQA_CACHE_DIR') or osp.join(osp.expanduser('~'), '.cache', 'nriqa_basicsr')


def _pyiqa_cache_dir() -> str:
    import torch.hub

    return osp.join(torch.hub.get_dir(), 'pyiqa')


def search_dirs(extra: str | Sequence[str] | None = None) -> list[str]:
    """Directories searched for weight files, in priority order (duplicates removed)."""
    dirs: list[str] = []
    if isinstance(extra, str):
        extra = [extra]
    dirs.extend(extra or [])
    dirs.extend(p for p in os.environ.get('NRIQA_WEIGHTS_DIR', '').split(os.pathsep) if p)
    dirs.extend([project_weights_dir(), _pyiqa_cache_dir()])
    seen: dict[str, None] = {}
    for d in dirs:
        seen.setdefault(osp.abspath(osp.expanduser(d)), None)
    return list(seen)


@functools.lru_cache(maxsize=1)
def _network_reachable() -> bool:
    try:
        with socket.create_connection((_PYIQA_HOST, 443), timeout=3):
            return True
    except OSError:
        return False


def is_offline() -> bool:
    """True when downloads must not be attempted (env override, else a 3 s connectivity probe, cached)."""
    for var in ('NRIQA_OFFLINE', 'HF_HUB_OFFLINE'):
        if os.environ.get(var, '').strip().lower() in ('1', 'true', 'yes', 'on'):
            return True
    return not _network_reachable()


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write through ``write(tmp_path)`` then rename, so a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        write(tmp)


def _generate_niqe_params(path: str) -> None:
    """pyiqa's ``niqe_modelparameters.mat`` from basicsr's ``niqe_pris_params.npz`` (same LIVE model)."""
    import basicsr.metrics.niqe as basicsr_niqe
    import numpy as np
    import scipy.io

    npz = np.load(osp.join(osp.dirname(basicsr_niqe.__file__), 'niqe_pris_params.npz'))
    params = {'mu_prisparam': npz['mu_pris_param'], 'cov_prisparam': npz['cov_pris_param']}
    _atomic_write(path, lambda tmp: scipy.io.savemat(tmp, params))


# basename -> generator writing that file; used when no copy is found on disk.
_GENERATED: dict[str, Callable[[str], None]] = {'niqe_modelparameters.mat': _generate_niqe_params}


def resolve_weight_file(
    file_name: str,
    metric: str,
    extra_dirs: str | Sequence[str] | None = None,
    url: str | None = None,
    download: Callable[[], str] | None = None,
) -> str:
    """Path of ``file_name`` from the search path, generated, or downloaded; else :class:`WeightsNotFoundError`."""
    dirs = search_dirs(extra_dirs)
    for d in dirs:
        candidate = osp.join(d, file_name)
        if osp.isfile(candidate):
            return candidate
    released = find_release(file_name, dirs, cache_dir())  # e.g. BRISQUE's allmodel, IL-NIQE's templateModel.mat
    if released is not None:
        return released
    if file_name in _GENERATED:
        target = osp.join(cache_dir(), file_name)
        if not osp.isfile(target):
            _GENERATED[file_name](target)
        return target
    if download is not None and not is_offline():
        return download()
    releases = RELEASES[file_name].files if file_name in RELEASES else ()
    also = (f' The original release ({", ".join(releases)}, flat or in its sub-folder) is accepted too.'
            if releases else '')
    raise WeightsNotFoundError(metric, file_name, dirs, url, 'The network is unreachable (or offline mode is set), '
                               'so it cannot be downloaded.' + also)


_CHECKED_SAFE: set[tuple[str, float, int]] = set()


def check_tensors_only(path: str, metric: str) -> None:
    """pyiqa loads its checkpoints with ``torch.load(weights_only=False)`` (arbitrary unpickling); refuse a
    PyTorch weight file that holds pickled Python objects before pyiqa sees it (checked once per file version)."""
    if not path.endswith(('.pth', '.pt', '.ckpt', '.bin', '.pkl')):
        return  # .mat / .npz / text parameter files are not unpickled by torch.load
    from nriqa_basicsr.safe_load import load_torch_file

    stat = os.stat(path)
    key = (osp.realpath(path), stat.st_mtime, stat.st_size)
    if key not in _CHECKED_SAFE:
        load_torch_file(path, 'cpu', f'weights of IQA metric "{metric}"')  # UnsafeFileError / CorruptFileError
        _CHECKED_SAFE.add(key)


@contextlib.contextmanager
def redirect_downloads(metric: str, extra_dirs: str | Sequence[str] | None = None) -> Iterator[list[str]]:
    """Route weight downloads through :func:`resolve_weight_file` while building ``metric``.

    Covers pyiqa's own checkpoints (``load_file_from_url``) and torchvision/CLIP backbones fetched through
    ``torch.hub`` (served from the search path too). Offline, huggingface_hub is switched to offline mode as
    well, so timm backbones fail in seconds instead of retrying for ~47 s. Yields the list of weight files
    resolved while the context is active (for provenance records).
    """
    extra = [extra_dirs] if isinstance(extra_dirs, str) else list(extra_dirs or [])
    offline = is_offline()
    used: list[str] = []

    def resolve(original: Callable[..., str], url: str, model_dir: str | None = None, progress: bool = True,
                file_name: str | None = None) -> str:
        name = file_name or osp.basename(urlparse(url).path)
        dirs = extra + ([model_dir] if model_dir else [])
        path = resolve_weight_file(name, metric, dirs, url,
                                   download=lambda: original(url, model_dir, progress, file_name))
        check_tensors_only(path, metric)
        used.append(path)
        return path

    def fetch_to(original: Callable[..., None], url: str, dst: str, *args: object, **kwargs: object) -> None:
        name = osp.basename(urlparse(url).path)
        dirs = search_dirs(extra)
        for src in (osp.join(d, name) for d in dirs):
            if osp.isfile(src):
                _atomic_write(dst, functools.partial(shutil.copyfile, src))
                used.append(src)
                return
        if offline:
            raise WeightsNotFoundError(metric, name, dirs + [osp.dirname(osp.abspath(dst))], url,
                                       'The network is unreachable (or offline mode is set), so it cannot be '
                                       'downloaded.')
        original(url, dst, *args, **kwargs)
        used.append(dst)

    with iqa_weight_downloads(resolve, fetch_to, offline):
        yield used
