"""Hand over to BasicSR's own train/test pipelines, with the few hooks a current stack needs.

* ``--local-rank=N`` (what ``torch.distributed.launch`` passes on PyTorch ≥ 2) is accepted beside
  ``--local_rank``;
* ``--launcher pytorch`` (torchrun) picks the GPU from ``LOCAL_RANK`` (BasicSR uses the global rank, wrong on
  several nodes) and, without CUDA, initialises the gloo backend instead of failing in ``torch.cuda``;
* our option blocks are checked right after BasicSR parses the YAML (:func:`nriqa_basicsr.options.prepare_options`);
* resuming loads the training state onto the configured device (BasicSR's loader requires CUDA) with
  ``weights_only=True``, and ``--auto_resume`` looks in ``<root>/experiments/<name>/training_states`` instead of
  a path relative to the current directory; temporary files of interrupted saves are removed;
* the training loader's sampler becomes a :class:`~nriqa_basicsr.data.sampler.ResumableSampler`, so a resumed
  run continues inside the interrupted epoch with the same samples and crops (exact resume).

* option files are read with the safe loader of :mod:`nriqa_basicsr.yaml_io` (no Python tags, no duplicate keys)
  and their structure is checked before BasicSR indexes into them;
* the experiment (train) or results (test) folder is locked (:mod:`nriqa_basicsr.run_lock`) right after parsing,
  before the resume state is looked up and before BasicSR archives or creates any folder; a second run with the
  same name is refused naming the first one's PID;
* ``--auto_resume`` with training states of which none is usable stops with :class:`ResumeError` listing each
  state and why (instead of starting from iteration 0 and archiving the old folder).

The hooks replace module-level names in ``basicsr.train`` / ``basicsr.test`` / ``basicsr.utils.options`` only
while the pipeline runs (:func:`nriqa_basicsr.patches.basicsr_pipeline`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import os.path as osp
import sys
from collections.abc import Iterator
from typing import Any

import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
import basicsr.utils.options as basicsr_options
import torch
import torch.distributed as dist
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, scandir

from nriqa_basicsr.atomic import TMP_PREFIX
from nriqa_basicsr.checkpoint import resume_network_files, state_file, state_iterations
from nriqa_basicsr.data.sampler import ResumableSampler, batches_done_in_epoch
from nriqa_basicsr.options import OptionsError, check_option_structure, check_train_loader, prepare_options
from nriqa_basicsr.patches import basicsr_pipeline
from nriqa_basicsr.preflight import PreflightError, check_run_files
from nriqa_basicsr.run_lock import ExperimentLockedError, RunLock
from nriqa_basicsr.safe_load import load_torch_file
from nriqa_basicsr.yaml_io import OptionFileError, load_option_file, ordered_yaml

__all__ = ['ResumeError', 'basicsr_hooks', 'init_dist', 'load_resume_state', 'make_resumable', 'normalize_argv',
           'read_option_file', 'remove_stale_temporaries', 'test_main', 'train_main']


class ResumeError(RuntimeError):
    """``--auto_resume`` found training states but none of them can be resumed from."""

_parse_options = basicsr_train.parse_options
_create_loaders = basicsr_train.create_train_val_dataloader
_init_dist = basicsr_options.init_dist


def normalize_argv(argv: list[str]) -> list[str]:
    """Spell ``--local-rank`` the way BasicSR's parser accepts it."""
    return [('--local_rank' + a[len('--local-rank'):]) if a.startswith('--local-rank') else a for a in argv]


def init_dist(launcher: str, backend: str | None = None, **kwargs: Any) -> None:
    """BasicSR's ``init_dist`` for torchrun that works per node and on CPU-only machines (gloo)."""
    if launcher != 'pytorch':
        _init_dist(launcher, backend or 'nccl', **kwargs)
        return
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend or ('nccl' if torch.cuda.is_available() else 'gloo'), **kwargs)


def read_option_file(path: str, is_train: bool = True) -> dict[str, Any]:
    """The option file ``path`` read safely and checked for the structure BasicSR's parser indexes into
    (:class:`~nriqa_basicsr.yaml_io.OptionFileError` / :class:`~nriqa_basicsr.options.OptionsError` otherwise)."""
    opt = load_option_file(path, '-opt')
    problems = check_option_structure(opt, is_train)
    if problems:
        raise OptionsError([f'{path}: {p}' for p in problems])
    return opt


def _opt_path_from_argv() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    return parser.parse_known_args()[0].opt


class _Session:
    """What one pipeline run holds: the folder lock (rank 0) and the resume state."""

    def __init__(self) -> None:
        self.lock: RunLock | None = None
        self.resume_state: dict[str, Any] | None = None

    def parse_and_prepare(self, root_path: str, is_train: bool = True) -> tuple[dict[str, Any], Any]:
        path = _opt_path_from_argv()
        if path is not None:  # without -opt BasicSR's parser prints its usage error
            read_option_file(path, is_train)
        opt, args = _parse_options(root_path, is_train=is_train)
        opt = prepare_options(opt)
        # every file the run reads, all missing ones in one error, before the lock or any folder (preflight)
        check_run_files(opt, is_train=is_train)
        if opt.get('rank', 0) == 0:
            # before load_resume_state (removes temporaries) and make_exp_dirs (archives): see run_lock
            folder = opt['path']['experiments_root'] if is_train else opt['path']['results_root']
            self.lock = RunLock(folder, 'experiment folder' if is_train else 'results folder')
            if self.lock.reclaimed_from:
                print(f'Reclaimed the lock of {folder} from PID {self.lock.reclaimed_from.get("pid")}, which is no '
                      f'longer running (crashed or killed).', flush=True)
        return opt, args

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _state_device(opt: dict[str, Any]) -> torch.device:
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _newest_loadable_state(opt: dict[str, Any], state_dir: str) -> tuple[str, dict[str, Any]] | None:
    """The newest ``<iter>.state`` that loads and whose network checkpoints load; older ones are fallbacks.
    None when there is no state at all; :class:`ResumeError` listing each state when none is usable."""
    iterations = state_iterations(list(scandir(state_dir, suffix='state', recursive=False)))
    # Not basicsr's get_root_logger: it would initialise the logger before train_pipeline adds its log file.
    logger = logging.getLogger('basicsr')
    failures = []
    for iteration in iterations:
        path = osp.join(state_dir, state_file(iteration))
        try:
            state = load_torch_file(path, _state_device(opt), 'training state')
        except Exception as exc:  # truncated / garbage / foreign pickle: try the previous one
            failures.append(f'{path}: {type(exc).__name__}: {exc}')
            logger.warning(f'Resume: {path} cannot be loaded ({type(exc).__name__}: {exc}); trying an older state.')
            continue
        try:
            for net_file in resume_network_files(opt, iteration):
                if not osp.isfile(net_file):
                    raise FileNotFoundError(f'no such file {net_file}')
                # a garbage checkpoint would otherwise fail at model build, every time, blocking the resume
                load_torch_file(net_file, 'cpu', 'checkpoint')
        except Exception as exc:
            failures.append(f'{path}: has no matching checkpoint ({type(exc).__name__}: {exc})')
            logger.warning(f'Resume: {path} has no matching checkpoint ({type(exc).__name__}: {exc}); trying an '
                           f'older state.')
            continue
        return path, state
    if failures:
        raise ResumeError(
            f'--auto_resume: none of the {len(failures)} training state(s) in {state_dir} can be resumed from, so '
            f'nothing was started or archived:\n' + '\n'.join(f'  - {f}' for f in failures) + '\nRestore a state '
            'and its checkpoints from a backup, or, to start over from iteration 0, run without --auto_resume '
            '(BasicSR then archives the folder) or give the run another name.')
    return None


def remove_stale_temporaries(opt: dict[str, Any]) -> list[str]:
    """Delete leftovers of saves that were killed before their rename (they are never loaded)."""
    removed = []
    for key in ('models', 'training_states'):
        folder = opt['path'].get(key)
        for name in os.listdir(folder) if folder and osp.isdir(folder) else []:
            if name.startswith(TMP_PREFIX):
                os.remove(osp.join(folder, name))
                removed.append(name)
    if removed:
        logging.getLogger('basicsr').warning(f'Removed {len(removed)} unfinished save(s): {", ".join(removed)}.')
    return removed


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """BasicSR's ``load_resume_state`` without its CUDA requirement and CWD-relative auto-resume path, taking the
    newest *complete and loadable* state (older ones as fallbacks, with a warning)."""
    state = None
    if opt.get('rank', 0) == 0:
        remove_stale_temporaries(opt)
    if opt['auto_resume']:
        state_dir = opt['path'].get('training_states') or osp.join('experiments', opt['name'], 'training_states')
        found = _newest_loadable_state(opt, state_dir) if osp.isdir(state_dir) else None
        if found is not None:
            opt['path']['resume_state'], state = found
    elif opt['path'].get('resume_state'):
        state = load_torch_file(opt['path']['resume_state'], _state_device(opt), 'path.resume_state')
    if state is None:
        return None
    if 'network_g_lora' in opt:
        # FT runs save adapters only (net_g_lora_<iter>.pth): keep the stage-one generator as the base, with its
        # own param key (a base is read with one key, see nriqa_basicsr.checkpoint), and let check_resume point
        # pretrain_network_g_lora at the adapters.
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


def make_resumable(train_loader: torch.utils.data.DataLoader, train_sampler: Any, opt: dict[str, Any],
                   resume_state: dict[str, Any] | None) -> ResumableSampler | Any:
    """Swap ``train_loader``'s ``EnlargedSampler`` for a :class:`ResumableSampler` positioned after the batches
    ``resume_state`` already trained on; returns the sampler the training loop should call ``set_epoch`` on."""
    if train_loader is None or not isinstance(train_sampler, EnlargedSampler) or train_loader.batch_sampler is None:
        return train_sampler
    keyed = bool(getattr(train_loader.dataset, 'accepts_sample_keys', False))
    # the loader's own generator: worker seeds no longer draw from (and shift) the global torch RNG
    train_loader.generator = torch.Generator()
    sampler = ResumableSampler(train_sampler, opt.get('manual_seed') or 0, train_loader.batch_sampler.batch_size,
                               keyed, train_loader.generator)
    train_loader.batch_sampler.sampler = sampler
    if resume_state is not None:
        done = batches_done_in_epoch(resume_state['iter'], resume_state['epoch'], len(train_loader))
        if done is None or 'rng' not in resume_state:
            logging.getLogger('basicsr').warning(
                f'Resume: the state of iteration {resume_state["iter"]} (epoch {resume_state["epoch"]}) does not '
                f'carry an exact data position; epoch {resume_state["epoch"]} restarts from its first batch.')
        else:
            sampler.resume_at(resume_state['epoch'], done)
    return sampler


class _Hooks(_Session):
    """The replacements installed by :func:`basicsr_hooks`; they share the run's lock and resume state."""

    def load_resume_state(self, opt: dict[str, Any]) -> dict[str, Any] | None:
        self.resume_state = load_resume_state(opt)
        return self.resume_state

    def create_train_val_dataloader(self, opt: dict[str, Any], logger: logging.Logger) -> tuple:
        train_loader, train_sampler, *rest = _create_loaders(opt, logger)
        problems = check_train_loader(opt, train_loader, rest[-1])
        if problems:  # BasicSR would exit 0 without a single iteration and save an untrained network
            raise OptionsError(problems)
        return (train_loader, make_resumable(train_loader, train_sampler, opt, self.resume_state), *rest)


@contextlib.contextmanager
def basicsr_hooks() -> Iterator[None]:
    """Install the hooks described in the module docstring for the duration of a pipeline run.

    What is replaced in BasicSR, and why: :data:`nriqa_basicsr.patches.BASICSR_PIPELINE_HOOKS`.
    """
    hooks = _Hooks()
    with basicsr_pipeline(parse_options=hooks.parse_and_prepare, load_resume_state=hooks.load_resume_state,
                          create_train_val_dataloader=hooks.create_train_val_dataloader, init_dist=init_dist,
                          ordered_yaml=ordered_yaml):
        try:
            yield
        finally:
            hooks.release()


def _root(root_path: str | None) -> str:
    return osp.abspath(root_path) if root_path else os.getcwd()


# Refusals of bad input: printed as one clear message (exit status 2) instead of a traceback.
_USER_ERRORS = (OptionsError, OptionFileError, ExperimentLockedError, ResumeError, PreflightError)


def _run_pipeline(pipeline: Any, root_path: str | None) -> None:
    sys.argv = normalize_argv(sys.argv)
    try:
        with basicsr_hooks():
            pipeline(_root(root_path))
    except _USER_ERRORS as exc:
        print(f'error: {exc}', file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def train_main(root_path: str | None = None) -> None:
    """``python nriqa_basicsr/train.py -opt X.yml [BasicSR flags]``; outputs go under ``root_path`` (default CWD)."""
    _run_pipeline(basicsr_train.train_pipeline, root_path)


def test_main(root_path: str | None = None) -> None:
    """``python nriqa_basicsr/test.py -opt X.yml``; results go under ``root_path`` (default CWD)."""
    _run_pipeline(basicsr_test.test_pipeline, root_path)
