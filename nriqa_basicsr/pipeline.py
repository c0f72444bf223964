"""Hand over to BasicSR's own train/test pipelines, with the few hooks a current stack needs.

* ``--local-rank=N`` (what ``torch.distributed.launch`` passes on PyTorch ≥ 2) is accepted beside
  ``--local_rank``;
* our option blocks are checked right after BasicSR parses the YAML (:func:`nriqa_basicsr.options.prepare_options`);
* resuming loads the training state onto the configured device (BasicSR's loader requires CUDA) with
  ``weights_only=True``, and ``--auto_resume`` looks in ``<root>/experiments/<name>/training_states`` instead of
  a path relative to the current directory.

The hooks replace two module-level names in ``basicsr.train`` / ``basicsr.test`` only while the pipeline runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import os.path as osp
import sys
from collections.abc import Iterator
from typing import Any

import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
import torch
from basicsr.utils import check_resume, scandir

from nriqa_basicsr.options import prepare_options

__all__ = ['basicsr_hooks', 'load_resume_state', 'normalize_argv', 'test_main', 'train_main']

_parse_options = basicsr_train.parse_options


def normalize_argv(argv: list[str]) -> list[str]:
    """Spell ``--local-rank`` the way BasicSR's parser accepts it."""
    return [('--local_rank' + a[len('--local-rank'):]) if a.startswith('--local-rank') else a for a in argv]


def _parse_and_prepare(root_path: str, is_train: bool = True) -> tuple[dict[str, Any], Any]:
    opt, args = _parse_options(root_path, is_train=is_train)
    return prepare_options(opt), args


def _state_device(opt: dict[str, Any]) -> torch.device:
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _network_files(opt: dict[str, Any], iteration: int) -> list[str]:
    """Checkpoint files a resume from ``iteration`` will load (BasicSR's naming; FT runs keep adapters only)."""
    names = [k for k in opt if k.startswith('network_')]
    if 'network_g_lora' in opt:
        names.remove('network_g')
    return [osp.join(opt['path']['models'], f'net_{n[len("network_"):]}_{iteration}.pth') for n in names]


def _newest_loadable_state(opt: dict[str, Any], state_dir: str) -> tuple[str, dict[str, Any]] | None:
    """The newest ``<iter>.state`` that loads and whose network checkpoints exist; older ones are fallbacks."""
    iterations = sorted((int(osp.splitext(v)[0]) for v in scandir(state_dir, suffix='state', recursive=False)
                         if osp.splitext(v)[0].isdigit()), reverse=True)
    # Not basicsr's get_root_logger: it would initialise the logger before train_pipeline adds its log file.
    logger = logging.getLogger('basicsr')
    for iteration in iterations:
        path = osp.join(state_dir, f'{iteration}.state')
        try:
            state = torch.load(path, map_location=_state_device(opt), weights_only=True)
        except Exception as exc:  # truncated / corrupt / foreign pickle: try the previous one
            logger.warning(f'Resume: {path} cannot be loaded ({type(exc).__name__}: {exc}); trying an older state.')
            continue
        missing = [f for f in _network_files(opt, iteration) if not osp.isfile(f)]
        if missing:
            logger.warning(f'Resume: {path} has no matching checkpoint {missing[0]}; trying an older state.')
            continue
        return path, state
    return None


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """BasicSR's ``load_resume_state`` without its CUDA requirement and CWD-relative auto-resume path, taking the
    newest *complete and loadable* state (older ones as fallbacks, with a warning)."""
    state = None
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        found = _newest_loadable_state(opt, state_dir) if osp.isdir(state_dir) else None
        if found is not None:
            opt['path']['resume_state'], state = found
    elif opt['path'].get('resume_state'):
        state = torch.load(opt['path']['resume_state'], map_location=_state_device(opt), weights_only=True)
    if state is None:
        return None
    if 'network_g_lora' in opt:
        # FT runs save adapters only (net_g_lora_<iter>.pth): keep the stage-one generator as the base, with its
        # own param key, and let check_resume point pretrain_network_g_lora at the adapters.
        ignore = list(opt['path'].get('ignore_resume_networks') or [])
        opt['path']['ignore_resume_networks'] = ignore + ['network_g']
        base_key = opt['path'].get('param_key_g')
        check_resume(opt, state['iter'])
        if base_key is None:
            opt['path'].pop('param_key_g', None)
        else:
            opt['path']['param_key_g'] = base_key
    else:
        check_resume(opt, state['iter'])
    return state


@contextlib.contextmanager
def basicsr_hooks() -> Iterator[None]:
    """Install the hooks described in the module docstring for the duration of a pipeline run."""
    saved = (basicsr_train.parse_options, basicsr_train.load_resume_state, basicsr_test.parse_options)
    basicsr_train.parse_options = _parse_and_prepare
    basicsr_train.load_resume_state = load_resume_state
    basicsr_test.parse_options = _parse_and_prepare
    try:
        yield
    finally:
        basicsr_train.parse_options, basicsr_train.load_resume_state, basicsr_test.parse_options = saved


def _root(root_path: str | None) -> str:
    return osp.abspath(root_path) if root_path else os.getcwd()


def train_main(root_path: str | None = None) -> None:
    """``python nriqa_basicsr/train.py -opt X.yml [BasicSR flags]``; outputs go under ``root_path`` (default CWD)."""
    sys.argv = normalize_argv(sys.argv)
    with basicsr_hooks():
        basicsr_train.train_pipeline(_root(root_path))


def test_main(root_path: str | None = None) -> None:
    """``python nriqa_basicsr/test.py -opt X.yml``; results go under ``root_path`` (default CWD)."""
    sys.argv = normalize_argv(sys.argv)
    with basicsr_hooks():
        basicsr_test.test_pipeline(_root(root_path))
