"""Best checkpoints of a run: which validations to keep, their files, their index, and finding them again.

At each validation the run's history (iteration → metric values) grows by one entry; the ``keep`` best
validations by the ``val.best`` criterion (:func:`nriqa_basicsr.guard.criterion_scores`) have a generator file
``net_g_best_<iter>.pth`` next to the regular checkpoints (BasicSR format, ``params`` / ``params_ema``; FT runs
store merged weights under the stock keys). ``models/best.json`` holds the history and the ranked kept entries.

Crash safety: checkpoint files and the index are written atomically (:mod:`nriqa_basicsr.atomic`); a new file
is written before the index names it and a dropped one is deleted after the index no longer does, so a SIGKILL at
any moment leaves an index whose files all exist (files nobody names are removed at the next load). On resume
from iteration *N* the entries after *N* are dropped: the resumed run validates those iterations again.
"""

from __future__ import annotations

import copy
import glob
import json
import math
import os
import os.path as osp
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nriqa_basicsr.atomic import TMP_PREFIX, atomic_path
from nriqa_basicsr.checkpoint import ADAPTER_FILE, BEST_FILE, ITER_FILE, LATEST_ADAPTER_FILE, LATEST_FILE, best_file
from nriqa_basicsr.guard import (
    GuardConfig,
    GuardReport,
    History,
    _finite,
    best_index,
    check_guard_options,
    criterion_scores,
    default_guide_metrics,
    evaluate_guard,
    metric_directions,
    parse_best_options,
    parse_guard_options,
)

__all__ = ['INDEX_NAME', 'BestCheckpoints', 'RunCheckpoint', 'TrackedValidation', 'TrainingRun', 'ValidationTracker',
           'best_per_metric', 'guard_roles', 'load_run', 'plot_metric_curves', 'resolve_checkpoint',
           'resolve_model_spec', 'run_checkpoints', 'run_option_file', 'write_checkpoint_summary', 'write_run_summary']

INDEX_NAME = 'best.json'
best_filename = best_file  # the name this module has always used


def _clean(values: Mapping[str, Any]) -> dict[str, float | None]:
    """JSON-safe metric values (NaN/inf become null)."""
    out = {}
    for k, v in values.items():
        v = float(v)
        out[str(k)] = v if math.isfinite(v) else None
    return out


class BestCheckpoints:
    """The bookkeeping of one run's ``models`` folder (rank 0 writes; the others only compute)."""

    def __init__(self, models_dir: str, criterion: Mapping[str, float], directions: Mapping[str, int],
                 keep: int = 1, write_files: bool = True) -> None:
        self.models_dir, self.criterion, self.directions = models_dir, dict(criterion), dict(directions)
        self.keep, self.write_files = keep, write_files
        self.history: list[tuple[int, dict[str, float | None]]] = []
        self.kept: list[int] = []  # iterations with a file, best first

    @property
    def index_path(self) -> str:
        return osp.join(self.models_dir, INDEX_NAME)

    def scores(self) -> dict[int, float]:
        return dict(zip((i for i, _ in self.history), criterion_scores(self.history, self.criterion,
                                                                        self.directions)))

    def load(self, resume_iter: int | None) -> None:
        """Continue a resumed run's bookkeeping (entries after ``resume_iter`` dropped); a fresh run
        (``resume_iter`` None) starts empty. Files not named by the index are removed either way."""
        self.history, self.kept = [], []
        if resume_iter is not None and osp.isfile(self.index_path):
            with open(self.index_path) as f:
                index = json.load(f)
            self.history = [(int(e['iter']), dict(e['values'])) for e in index.get('history', [])
                            if int(e['iter']) <= resume_iter]
            self.kept = [int(e['iter']) for e in index.get('best', []) if int(e['iter']) <= resume_iter
                         and osp.isfile(osp.join(self.models_dir, best_filename(int(e['iter']))))]
        if self.write_files:
            self._write_index()
            self._remove_unreferenced()

    def record(self, iteration: int, values: Mapping[str, float], write: Callable[[str], None]) -> bool:
        """Add a validation; when it ranks among the ``keep`` best, ``write(filename)`` saves the generator
        (atomically, in ``models_dir``). Returns whether it was kept."""
        entry = (int(iteration), _clean(values))
        self.history = [h for h in self.history if h[0] != entry[0]] + [entry]  # the final validation may repeat
        scores = self.scores()
        candidates = [i for i in self.kept if i != entry[0]] + [entry[0]]
        ranked = sorted(candidates, key=lambda i: (scores[i], i), reverse=True)[:self.keep]
        kept_now = entry[0] in ranked
        dropped = [i for i in self.kept if i not in ranked]
        self.kept = ranked
        if self.write_files:
            if kept_now:
                write(best_filename(entry[0]))  # the file first, then the index that names it
            self._write_index()
            for i in dropped:
                path = osp.join(self.models_dir, best_filename(i))
                if osp.exists(path):
                    os.remove(path)
        return kept_now

    def best_per_metric(self) -> dict[str, tuple[int, float]]:
        """Iteration and value of the best validation of every metric on its own."""
        return best_per_metric(self.history, self.directions)

    def _write_index(self) -> None:
        scores = self.scores()
        values = dict(self.history)
        index = {'criterion': self.criterion, 'directions': self.directions, 'keep': self.keep,
                 'best': [{'rank': r + 1, 'iter': i, 'file': best_filename(i), 'score': scores[i],
                           'values': values[i]} for r, i in enumerate(self.kept)],
                 'history': [{'iter': i, 'values': v} for i, v in self.history]}
        with atomic_path(self.index_path) as tmp:
            with open(tmp, 'w') as f:
                json.dump(index, f, indent=1)

    def _remove_unreferenced(self) -> None:
        for path in glob.glob(osp.join(self.models_dir, 'net_g_best_*.pth')):
            match = BEST_FILE.fullmatch(osp.basename(path))
            if match and int(match.group(1)) not in self.kept:
                os.remove(path)


# ------------------------------------------------------------------------------------------ finding "best"
def _models_dir(spec: str) -> str:
    for candidate in (osp.join(spec, 'models'), spec):
        if osp.isfile(osp.join(candidate, INDEX_NAME)):
            return candidate
    raise FileNotFoundError(f'{spec}: no {INDEX_NAME} in it or in its models/ folder; best checkpoints are kept '
                            f'when the run configures val.metrics (and val.best / val.guard), see README.')


def resolve_checkpoint(spec_or_experiment_dir: str, which: str = 'best') -> str:
    """Path of a run's checkpoint: ``which`` = ``best`` (rank 1 by ``val.best``), ``best<k>`` (rank *k*) or
    ``latest``; ``spec_or_experiment_dir`` is ``experiments/<name>``, its ``models`` folder, or its ``best.json``."""
    spec = osp.dirname(spec_or_experiment_dir) if spec_or_experiment_dir.endswith('.json') else \
        spec_or_experiment_dir
    if which == 'latest':
        for folder in (osp.join(spec, 'models'), spec):
            if osp.isfile(osp.join(folder, LATEST_FILE)):
                return osp.join(folder, LATEST_FILE)
        raise FileNotFoundError(f'{spec}: no {LATEST_FILE} (the run has not finished).')
    match = re.fullmatch(r'best(\d*)', which)
    if not match:
        raise ValueError(f'which={which!r}: expected best, best<k> (k-th best) or latest.')
    rank = int(match.group(1) or 1)
    models = _models_dir(spec)
    with open(osp.join(models, INDEX_NAME)) as f:
        best = json.load(f).get('best', [])
    if rank < 1 or rank > len(best):
        raise FileNotFoundError(f'{models}/{INDEX_NAME}: {len(best)} best checkpoint(s) kept, no rank {rank}.')
    path = osp.join(models, best[rank - 1]['file'])
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: named as best by {INDEX_NAME} but missing.')
    return path


def resolve_model_spec(spec: str) -> tuple[str, dict[str, Any] | None]:
    """``--model`` of upscale.py / benchmark.py: ``EXPERIMENT_DIR`` or ``EXPERIMENT_DIR@best|best<k>|latest``
    becomes (checkpoint path, the run's ``network_g`` from its copied option file); anything else is returned
    unchanged with no architecture."""
    base, _, which = spec.rpartition('@') if '@' in spec else (spec, '', '')
    if not osp.isdir(base):
        return spec, None
    path = resolve_checkpoint(base, which or 'best')
    experiment = osp.dirname(osp.dirname(path)) if osp.basename(osp.dirname(path)) == 'models' else base
    found = run_option_file(experiment)
    return path, found[1].get('network_g') if found else None


def run_option_file(experiment: str) -> tuple[str, dict[str, Any]] | None:
    """The option file BasicSR copied into ``experiment`` (the first ``*.yml`` with a ``network_g``) and its
    content, or None."""
    from nriqa_basicsr.yaml_io import load_yaml

    for yml in sorted(glob.glob(osp.join(experiment, '*.yml'))):
        opt = load_yaml(yml, 'run option file')  # safe loader: no Python tags
        if isinstance(opt, dict) and opt.get('network_g'):
            return yml, opt
    return None


# ------------------------------------------------------------------------------------------ all checkpoints
# generator files of a run's models folder and their preference among the files of one iteration (lower wins:
# full weights before adapters); the _latest ones stand at the run's last iteration
_ITER_FILES = ((ITER_FILE, False), (BEST_FILE, False), (ADAPTER_FILE, True))
_LATEST_FILES = {LATEST_FILE: 1.5, LATEST_ADAPTER_FILE: 3}
# how a benchmark names a validation metric block's computation (BasicSR / nriqa_basicsr metric types)
_METRIC_TYPES = {'calculate_psnr': 'psnr', 'calculate_ssim': 'ssim', 'calculate_niqe': 'niqe'}


@dataclass(frozen=True)
class RunCheckpoint:
    """One generator of a run: its iteration and file; ``adapters``: LoRA adapters (``net_g_lora_<iter>.pth``)
    to put on the run's base checkpoint, else full (FT: merged) BasicSR weights."""

    iteration: int
    path: str
    adapters: bool = False


@dataclass
class TrainingRun:
    """What a benchmark of one run's checkpoints needs from its experiment folder (see :func:`load_run`).

    ``criterion`` / ``guard`` / ``directions`` / ``history`` use the run's ``val.metrics`` keys;
    ``metric_names`` maps those keys to the metric names of ``benchmark.py --metrics``."""

    experiment: str
    option_file: str | None
    opt: dict[str, Any]
    checkpoints: list[RunCheckpoint]
    criterion: dict[str, float]
    guard: GuardConfig | None
    directions: dict[str, int]
    history: list[tuple[int, dict[str, float | None]]]
    metric_names: dict[str, str]
    guide_metrics: list[str]  # benchmark names of the metrics training optimises
    run_best: int | None = None  # the run's own rank-1 best checkpoint (validation set), from best.json
    _arch: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return osp.basename(osp.normpath(self.experiment))

    def model_name(self, checkpoint: RunCheckpoint) -> str:
        return f'{self.name}@{checkpoint.iteration}'

    @property
    def fired_iteration(self) -> int | None:
        """First validation at which the run's own guard fired (recomputed from ``models/best.json``, the
        history its ``summary.md`` is made of), or None."""
        if self.guard is None or not self.history:
            return None
        reports = evaluate_guard(self.history, self.guard, self.directions, self.criterion)
        return next((r.iteration for r in reports if r.fired), None)

    def benchmark_metrics(self) -> list[str]:
        """The run's validation metrics as ``--metrics`` names (the default of ``benchmark.py --run``)."""
        return list(dict.fromkeys(self.metric_names.values()))

    def load(self, checkpoint: RunCheckpoint, param_key: str | None = None, device: Any = 'cpu') -> tuple[Any, dict]:
        """(generator in eval mode, its ``network_g``) of ``checkpoint``; adapters go on the base checkpoint
        named by the run's option file (``path.pretrain_network_g``, ``network_g_lora``)."""
        from nriqa_basicsr.inference import load_generator_and_arch

        if checkpoint.adapters:
            return load_generator_and_arch(self.option_file, None, param_key, device, adapters=checkpoint.path)
        return load_generator_and_arch(checkpoint.path, self.opt.get('network_g'), param_key, device)

    def architecture(self, param_key: str | None = None) -> dict[str, Any]:
        """The run's ``network_g`` (read from its first checkpoint when the option file has none or ``auto``)."""
        from nriqa_basicsr.archs.detect import AUTO_ARCH

        own = self.opt.get('network_g')
        if own and own.get('type') != AUTO_ARCH:
            return dict(own)
        if self._arch is None:
            self._arch = self.load(self.checkpoints[0], param_key)[1]
        return self._arch


def _latest_iteration(opt: Mapping[str, Any], history: Sequence[tuple[int, Any]]) -> int | None:
    """Iteration of ``net_g_latest.pth``: the final validation (BasicSR validates after the last iteration; the
    tracker records it as ``total_iter``), else ``train.total_iter`` of the option file."""
    if history:
        return int(history[-1][0])
    total = (opt.get('train') or {}).get('total_iter')
    return int(float(total)) if total is not None else None


def _generator_file(fname: str, latest_iteration: int | None) -> tuple[int, float, bool] | None:
    """(iteration, preference: lower wins, adapters) of a file of a run's ``models`` folder, or None."""
    for preference, (pattern, adapters) in enumerate(_ITER_FILES):
        match = pattern.fullmatch(fname)
        if match and match.group(1).isdigit():
            return int(match.group(1)), preference, adapters
    if fname in _LATEST_FILES and latest_iteration is not None:
        return latest_iteration, _LATEST_FILES[fname], fname == LATEST_ADAPTER_FILE
    return None


def run_checkpoints(models_dir: str, latest_iteration: int | None) -> list[RunCheckpoint]:
    """Every saved generator of a run, one per iteration, in order. Of the files of one iteration the first of
    ``net_g_<iter>.pth``, ``net_g_best_<iter>.pth`` (same weights: BasicSR saves and validates the same
    iteration), ``net_g_latest.pth`` (merged in FT runs; at ``latest_iteration``), LoRA adapters
    ``net_g_lora_<iter>.pth``, ``net_g_lora_latest.pth`` is taken."""
    candidates = []
    for fname in sorted(os.listdir(models_dir)) if osp.isdir(models_dir) else []:
        found = _generator_file(fname, latest_iteration)
        if found:
            candidates.append((found[0], found[1], RunCheckpoint(found[0], osp.join(models_dir, fname), found[2])))
    best: dict[int, RunCheckpoint] = {}
    for it, _, checkpoint in sorted(candidates, key=lambda c: c[:2]):
        best.setdefault(it, checkpoint)
    return [best[i] for i in sorted(best)]


def _benchmark_name(key: str, block: Any) -> str | None:
    """``benchmark.py --metrics`` name of a ``val.metrics`` block (None when no benchmark metric computes it)."""
    if not isinstance(block, Mapping):
        return None
    kind = str(block.get('type') or '')
    if kind in ('calculate_nriqa', 'calculate_fr_iqa'):
        return str(block.get('metric') or key).lower() or None
    return _METRIC_TYPES.get(kind)


def load_run(experiment: str) -> TrainingRun:
    """Read a training run's folder for ``benchmark.py --run``: its checkpoints (:func:`run_checkpoints`), the
    option file BasicSR copied into it (architecture, LoRA, ``val.best`` / ``val.guard`` with their defaults
    filled as at training start, ``custom_iqa`` registered) and ``models/best.json`` (the validation history)."""
    from nriqa_basicsr.iqa.custom import register_from_options

    if not osp.isdir(experiment):
        raise FileNotFoundError(f'--run {experiment}: no such folder (give experiments/<name>).')
    models = osp.join(experiment, 'models')
    found = run_option_file(experiment)
    yml, opt = found if found else (None, {})
    opt = copy.deepcopy(dict(opt))
    problems = register_from_options(opt.get('custom_iqa'))
    val = opt.get('val') or {}
    criterion: dict[str, float] = {}
    guard = None
    if 'best' in val or 'guard' in val:
        problems += check_guard_options(opt)
        if not problems:
            criterion, guard = parse_best_options(val).criterion, parse_guard_options(val)
    if problems:
        raise ValueError(f'{yml}: ' + ' '.join(problems))
    history: list[tuple[int, dict[str, float | None]]] = []
    run_best = None
    directions = metric_directions(val.get('metrics') or {})
    index = osp.join(models, INDEX_NAME)
    if osp.isfile(index):
        with open(index) as f:
            data = json.load(f)
        history = [(int(e['iter']), dict(e['values'])) for e in data.get('history', [])]
        run_best = int(data['best'][0]['iter']) if data.get('best') else None
        directions.update(data.get('directions') or {})  # filled from the pyiqa catalog when the run started
    checkpoints = run_checkpoints(models, _latest_iteration(opt, history))
    if not checkpoints:
        raise FileNotFoundError(f'--run {experiment}: no generator checkpoints in {models} (net_g_<iter>.pth, '
                                f'net_g_best_<iter>.pth, net_g_lora_<iter>.pth or net_g_latest.pth).')
    if any(c.adapters for c in checkpoints) and not (opt.get('network_g_lora') and yml):
        raise ValueError(f'--run {experiment}: LoRA adapter checkpoints need the run\'s option file with '
                         f'network_g_lora and path.pretrain_network_g in the folder (BasicSR copies it there).')
    names = {k: n for k, b in (val.get('metrics') or {}).items() if (n := _benchmark_name(k, b))}
    guide = list(dict.fromkeys([names[k] for k in (guard.guide if guard else ()) if k in names]
                               + default_guide_metrics(opt)))
    return TrainingRun(experiment, yml, opt, checkpoints, criterion, guard, directions, history, names, guide,
                       run_best)


# ------------------------------------------------------------------------------------------ summary
def best_per_metric(history: History, directions: Mapping[str, int]) -> dict[str, tuple[int, float]]:
    """Iteration and value of the best validation of every metric of ``history`` on its own (ties: the later)."""
    out = {}
    for name in dict.fromkeys(k for _, v in history for k in v):
        rows = [(i, v[name]) for i, v in history if _finite(v.get(name)) is not None]
        if rows:
            sign = directions.get(name, 1)
            out[name] = max(rows, key=lambda r: (sign * r[1], r[0]))
    return out


def plot_metric_curves(path: str, series: Mapping[str, History], directions: Mapping[str, int],
                       roles: Mapping[str, str], best: Sequence[int] = (), fired: int | None = None,
                       title: str = 'run') -> str:
    """One PNG: a panel per metric over iterations, one line per entry of ``series`` (label → history; one
    unlabelled series for a run's own validation, one per test set for a benchmark), coloured by role (guide red,
    judges blue, others grey), the ``best`` iterations green dashed and the guard's firing iteration dotted."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(k for history in series.values() for _, v in history for k in v))
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.9 * max(len(names), 1)), sharex=True, squeeze=False)
    styles = [('o', '-'), ('s', '--'), ('^', '-.'), ('D', ':'), ('v', '-')]
    for ax, name in zip(axes[:, 0], names):
        color = {'guide': 'tab:red', 'judge': 'tab:blue'}.get(roles.get(name, ''), 'tab:gray')
        for k, (label, history) in enumerate(series.items()):
            ys = [_finite(v.get(name)) for _, v in history]
            marker, line = styles[k % len(styles)]
            ax.plot([i for i, _ in history], [math.nan if y is None else y for y in ys], marker=marker, ms=3,
                    ls=line, color=color, label=label or None)
        arrow = '↑' if directions.get(name, 1) > 0 else '↓'
        ax.set_ylabel(f'{name} {arrow}\n({roles.get(name, "metric")})', fontsize=8)
        for i in dict.fromkeys(best):
            ax.axvline(i, color='tab:green', ls='--', lw=1)
        if fired is not None:
            ax.axvline(fired, color='black', ls=':', lw=1)
    if len(series) > 1 or any(series):
        axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_title(f'{title} (green: best checkpoint, dotted: guard fired)', fontsize=9)
    axes[-1, 0].set_xlabel('iteration')
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format='png')
    plt.close(fig)
    return path


def write_run_summary(out_dir: str, book: BestCheckpoints, guard: GuardConfig | None,
                      reports: Sequence[GuardReport], title: str = 'run') -> dict[str, str]:
    """``summary.png`` (every validation metric over iterations, guide / judges marked, best and firing
    iterations drawn) and ``summary.md`` (best checkpoint per criterion, guard state) under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    role = guard_roles(guard)
    fired = [r.iteration for r in reports if r.fired]
    png = plot_metric_curves(osp.join(out_dir, 'summary.png'), {'': book.history}, book.directions, role,
                             book.kept[:1], fired[0] if fired else None, f'{title}: validation metrics')

    values = dict(book.history)
    scores = book.scores()
    lines = [f'# {title}: best checkpoints', '', '| criterion | best iter | value | checkpoint |', '|---|---|---|---|']
    crit = _criterion_text(book.criterion)
    for rank, i in enumerate(book.kept, 1):
        lines.append(f'| val.best (z-scored {crit}), rank {rank} | {i} | score {scores[i]:+.3f} | '
                     f'{best_filename(i)} |')
    for name, (i, v) in book.best_per_metric().items():
        lines.append(f'| {name} {"↑" if book.directions.get(name, 1) > 0 else "↓"} ({role.get(name, "metric")}) | '
                     f'{i} | {v:.4f} | {best_filename(i) if i in book.kept else "not kept"} |')
    if book.kept:
        lines += ['', f'Values of the best checkpoint (iter {book.kept[0]}): ' +
                  ', '.join(f'{k} {v:.4f}' for k, v in values[book.kept[0]].items() if v is not None)]
    if guard is not None and reports:
        last = reports[-1]
        state = 'FIRED' if any(r.fired for r in reports) else ('suspicious' if last.suspicious else 'quiet')
        lines += ['', f'Guard: {state}. Last validation: {last.describe(guard)}.']
    md = osp.join(out_dir, 'summary.md')
    with atomic_path(md) as tmp:
        with open(tmp, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return {'png': png, 'md': md}


def guard_roles(guard: GuardConfig | None) -> dict[str, str]:
    """``guide`` / ``judge`` of each metric the guard names."""
    return {n: 'guide' for n in (guard.guide if guard else ())} | {n: 'judge' for n in (guard.judges if guard else ())}


def _criterion_text(criterion: Mapping[str, float]) -> str:
    return ' + '.join(f'{w:g}·{m}' for m, w in criterion.items())


def write_checkpoint_summary(out_dir: str, run: TrainingRun, series: Mapping[str, History],
                             directions: Mapping[str, int], images: Mapping[str, int] | None = None
                             ) -> dict[str, str]:
    """``run_summary.png`` and ``run_summary.md`` under ``out_dir`` for a benchmark of ``run``'s checkpoints.

    ``series``: test set → ``[(iteration, {metric: mean value})]`` in ``benchmark.py --metrics`` names. Per test
    set the table gives the best checkpoint by the run's ``val.best`` criterion (z-scored over these checkpoints,
    restricted to the measured metrics; all of them, equal weights, when the run has no ``val.best``) and by each
    metric alone, with the run's guide / judge roles, and the run's guard applied to these values; the plot marks
    those best iterations and the iteration at which the run's own guard fired during training."""
    os.makedirs(out_dir, exist_ok=True)
    measured = list(dict.fromkeys(k for history in series.values() for _, v in history for k in v))
    names = run.metric_names
    roles = {n: 'guide' for n in run.guide_metrics}
    roles.update({names[k]: 'judge' for k in (run.guard.judges if run.guard else ()) if k in names})
    criterion = {names[k]: w for k, w in run.criterion.items() if names.get(k) in measured}
    unmeasured = [names.get(k, k) for k in run.criterion if names.get(k) not in measured]
    label = f'val.best (z-scored {_criterion_text(criterion)})'
    if not run.criterion:
        criterion = {m: 1.0 for m in measured}
        label = f'all metrics (the run has no val.best; z-scored {_criterion_text(criterion)})'
    guard = None
    if run.guard is not None:
        guide = tuple(m for m in run.guide_metrics if m in measured)
        judges = tuple(m for m in measured if roles.get(m) == 'judge')
        if guide and judges:
            guard = GuardConfig(guide, judges, run.guard.reference, run.guard.guide_margin, run.guard.judge_margin,
                                run.guard.patience)
    files = {c.iteration: osp.basename(c.path) for c in run.checkpoints}
    fired = run.fired_iteration
    iters = sorted({i for history in series.values() for i, _ in history})
    lines = [f'# {run.name}: checkpoints compared', '',
             f'{len(iters)} checkpoint(s) of {run.experiment} (iterations {iters[0]}–{iters[-1]}) scored by '
             f'benchmark.py. Roles from the run\'s option file ({run.option_file or "none found"}): guide = '
             f'optimised by training, judge = held out by the run\'s val.guard.', '']
    if run.guard is None:
        lines.append('The run has no val.guard.')
    elif fired is not None:
        lines.append(f'The run\'s guard FIRED during training at iter {fired} (models/best.json; dotted line).')
    else:
        lines.append('The run\'s guard did not fire during training.')
    if run.run_best is not None:
        lines.append(f'During training (validation set) val.best picked iter {run.run_best}.')
    if unmeasured:
        lines.append(f'Not measured here, so left out of the criterion: {", ".join(unmeasured)} (add them to '
                     f'--metrics).')
    best_iters = []
    for dataset, history in series.items():
        scores = criterion_scores(history, criterion, directions) if criterion else []
        count = f' ({images[dataset]} images)' if images and dataset in images else ''
        lines += ['', f'## {dataset}{count}', '', '| criterion | role | best iter | value | checkpoint |',
                  '|---|---|---|---|---|']
        if scores:
            b = best_index(scores)
            best_iters.append(history[b][0])
            lines.append(f'| {label} | – | {history[b][0]} | score {scores[b]:+.3f} | {files[history[b][0]]} |')
        for name, (i, v) in best_per_metric(history, directions).items():
            arrow = '↑' if directions.get(name, 1) > 0 else '↓'
            lines.append(f'| {name} {arrow} | {roles.get(name, "metric")} | {i} | {v:.4f} | {files[i]} |')
        if guard is not None:
            reports = evaluate_guard(history, guard, directions, criterion or {m: 1.0 for m in guard.judges})
            hit = next((r for r in reports if r.fired), None)
            state = f'FIRED at iter {hit.iteration}: {hit.describe(guard)}' if hit else \
                f'quiet (longest streak {max(r.streak for r in reports)}, patience {guard.patience})'
            lines += ['', f'The run\'s guard on these images: {state}.']
    png = plot_metric_curves(osp.join(out_dir, 'run_summary.png'), series if len(series) > 1 else
                             {'': next(iter(series.values()))}, directions, roles, best_iters, fired,
                             f'{run.name}: checkpoints on {", ".join(series)}')
    md = osp.join(out_dir, 'run_summary.md')
    with atomic_path(md) as tmp:
        with open(tmp, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return {'run_summary_png': png, 'run_summary_md': md}


# ------------------------------------------------------------------------------------------ the model's hook
class ValidationTracker:
    """What ``NRIQAModel`` calls after each validation: best-checkpoint bookkeeping, the guard, its log lines,
    TensorBoard scalars (``guard/*``, ``best/score``), the run summary and — when configured — the stop."""

    def __init__(self, opt: Mapping[str, Any], resume_iter: int | None = None) -> None:
        from nriqa_basicsr.guard import metric_directions, parse_best_options, parse_guard_options

        val = opt['val']
        self.best = parse_best_options(val)
        self.guard = parse_guard_options(val)
        self.directions = metric_directions(val.get('metrics') or {})
        self.out_dir = opt['path'].get('experiments_root') or osp.dirname(opt['path']['models'])
        self.title = opt.get('name', 'run')
        self.rank = opt.get('rank', 0)
        self.total_iter = int(float((opt.get('train') or {}).get('total_iter') or 0)) or None
        self.book = BestCheckpoints(opt['path']['models'], self.best.criterion, self.directions, self.best.keep,
                                    write_files=self.rank == 0)
        self.book.load(resume_iter)
        if self.rank == 0:  # leftovers of a summary write killed before its rename (the pipeline cleans models/)
            for path in glob.glob(osp.join(self.out_dir, f'{TMP_PREFIX}*-summary.*')):
                os.remove(path)
        self.dataset: str | None = None
        self.reports: list[GuardReport] = []

    def update(self, dataset: str, iteration: int, values: Mapping[str, float], write: Callable[[str], None],
               tb_logger: Any = None) -> GuardReport | None:
        """Record one validation of ``dataset`` (only the first validation set counts); may raise GuardStop."""
        from basicsr.utils import get_root_logger

        from nriqa_basicsr.guard import GUARD_EXIT_CODE, GuardStop, evaluate_guard

        logger = get_root_logger()
        if self.dataset is None:
            self.dataset = dataset
        if dataset != self.dataset:
            return None
        if self.total_iter is not None:  # BasicSR's final validation passes total_iter + 1 (same weights)
            iteration = min(int(iteration), self.total_iter)
        kept = self.book.record(iteration, values, write)
        rank_of = self.book.kept.index(iteration) + 1 if kept else None
        score = self.book.scores()[iteration]
        logger.info(f'Best checkpoints (val.best, keep {self.book.keep}): iter {iteration} scores {score:+.3f}'
                    + (f', kept as rank {rank_of} ({best_filename(iteration)})' if kept else ', not kept')
                    + f'; best: iter {self.book.kept[0]}.')
        if tb_logger:
            tb_logger.add_scalar('best/score', score, iteration)
        report = None
        if self.guard is not None:
            self.reports = evaluate_guard(self.book.history, self.guard, self.directions, self.best.criterion)
            report = self.reports[-1]
            if tb_logger:
                for key, value in (('guide_change', report.guide_change), ('judge_change', report.judge_change),
                                   ('streak', report.streak), ('fired', float(report.fired))):
                    tb_logger.add_scalar(f'guard/{key}', value, iteration)
            if report.fired:
                logger.warning(f'Reward-hacking guard FIRED: the guide metrics improve while the held-out judges '
                               f'get worse — {report.describe(self.guard)}. Best checkpoint: '
                               f'{osp.join(self.book.models_dir, best_filename(self.book.kept[0]))} '
                               f'(iter {self.book.kept[0]}).')
            elif report.suspicious:
                logger.info(f'Reward-hacking guard: suspicious validation — {report.describe(self.guard)}.')
        if self.rank == 0:
            write_run_summary(self.out_dir, self.book, self.guard, self.reports, self.title)
        if report is not None and report.fired and self.guard.stop:
            if tb_logger:
                tb_logger.flush()
            best = osp.join(self.book.models_dir, best_filename(self.book.kept[0]))
            message = (f'Training stopped by the reward-hacking guard (val.guard.stop: true) at iter {iteration}: '
                       f'{report.describe(self.guard)}. The best checkpoint by val.best is {best} (iter '
                       f'{self.book.kept[0]}); summary in {osp.join(self.out_dir, "summary.md")}. Exit status '
                       f'{GUARD_EXIT_CODE}. Lower the guide loss weight, or raise the margins / '
                       f'patience if this was noise.')
            logger.error(message)
            raise GuardStop(message)
        return report


class TrackedValidation:
    """Mixin for a BasicSR model: after each validation :class:`ValidationTracker` keeps the best checkpoints
    and watches for reward hacking (``val.best`` / ``val.guard``); a guard stop on rank 0 (the only rank that
    validates under DDP) stops every rank. The model provides ``_save_best(filename)``; ``validating`` is true
    while a validation runs."""

    validating = False

    def validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool = False) -> None:
        from nriqa_basicsr.guard import GuardStop
        from nriqa_basicsr.step_guard import on_any_rank

        stopped = None
        try:
            super().validation(dataloader, current_iter, tb_logger, save_img)
        except GuardStop as exc:
            stopped = exc
        if on_any_rank(stopped is not None, self.device, bool(self.opt.get('dist'))) and stopped is None:
            stopped = GuardStop(f'iter {current_iter}: training stopped by the reward-hacking guard on rank 0 '
                                f'(its log has the numbers).')
        if stopped is not None:
            raise stopped

    def nondist_validation(self, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
        self.validating = True
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.validating = False
        val = self.opt.get('val') or {}
        if not self.is_train or not getattr(self, 'metric_results', None) or not ('best' in val or 'guard' in val):
            return
        if getattr(self, 'val_tracker', None) is None:
            self.val_tracker = ValidationTracker(self.opt, getattr(self, '_resume_iter', None))
        self.val_tracker.update(dataloader.dataset.opt['name'], current_iter, self.metric_results, self._save_best,
                                tb_logger)
