"""Reward-hacking guard: is the optimised (*guide*) metric being fooled while held-out *judges* get worse?

Everything here is a pure function of the validation history (a list of ``(iteration, {metric: value})``), so
the guard needs no state of its own: a resumed run recomputes it from the persisted history
(:mod:`nriqa_basicsr.best_checkpoint`). Metrics are named by their ``val.metrics`` keys; their direction comes
from BasicSR's ``better`` key, which :func:`nriqa_basicsr.options.prepare_options` fills from the pyiqa catalog
(``psnr`` / ``ssim`` blocks default to higher-is-better, as in BasicSR).

The math (README, "Reward-hacking guard"):

* **criterion score** of validation *i*: ``Σ_m w_m · d_m · (v_m,i − mean_m) / std_m / Σ|w_m|`` with the mean and
  standard deviation of metric *m* over the history so far and ``d_m = ±1`` its direction — one metric or a
  weighted combination of several on one scale;
* **change** of metric *m* since the reference validation *r* (the start, or the best by the criterion so far):
  ``d_m · (v_m,i − v_m,r) / |v_m,r|`` — relative, positive = better;
* a validation is **suspicious** when the mean change of the guide metrics exceeds ``guide_margin`` while the mean
  change of the judges is below ``−judge_margin``; the guard **fires** after ``patience`` suspicious validations
  in a row.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ['BEST_KEYS', 'GUARD_EXIT_CODE', 'GUARD_KEYS', 'BestConfig', 'GuardConfig', 'GuardReport', 'GuardStop',
           'best_index', 'check_guard_options', 'criterion_scores', 'evaluate_guard', 'metric_directions',
           'parse_best_options', 'parse_guard_options', 'relative_change', 'seed_spread']

GUARD_EXIT_CODE = 3  # 1 is any crash, 2 a usage error: 3 says "stopped on purpose by the guard"

BEST_KEYS = frozenset({'criterion', 'keep'})
GUARD_KEYS = frozenset({'guide', 'judges', 'reference', 'guide_margin', 'judge_margin', 'patience', 'stop'})

# Defaults, justified in the README from two seeds of a tiny run (run-to-run spread of the relative changes).
DEFAULT_GUIDE_MARGIN = 0.05
DEFAULT_JUDGE_MARGIN = 0.02
DEFAULT_PATIENCE = 3


class GuardStop(SystemExit):
    """The guard fired with ``val.guard.stop: true``: training ends with exit status :data:`GUARD_EXIT_CODE`."""

    def __init__(self, message: str) -> None:
        super().__init__(GUARD_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class BestConfig:
    """``val.best``: which validation is best (``criterion``: metric key → weight) and how many to keep."""

    criterion: dict[str, float]
    keep: int = 1


@dataclass(frozen=True)
class GuardConfig:
    """``val.guard`` (see the module docstring)."""

    guide: tuple[str, ...]
    judges: tuple[str, ...]
    reference: str = 'best'
    guide_margin: float = DEFAULT_GUIDE_MARGIN
    judge_margin: float = DEFAULT_JUDGE_MARGIN
    patience: int = DEFAULT_PATIENCE
    stop: bool = False


@dataclass(frozen=True)
class GuardReport:
    """The guard's view of one validation."""

    iteration: int
    reference_iteration: int
    changes: dict[str, float] = field(default_factory=dict)  # per metric, relative, positive = better
    guide_change: float = 0.0
    judge_change: float = 0.0
    suspicious: bool = False
    streak: int = 0
    fired: bool = False

    def describe(self, cfg: GuardConfig) -> str:
        """One line with the numbers, for the log and the stop message."""
        def pct(names: Sequence[str]) -> str:
            return ', '.join(f'{n} {100 * self.changes[n]:+.2f}%' for n in names if n in self.changes)
        return (f'iter {self.iteration}: guide {100 * self.guide_change:+.2f}% ({pct(cfg.guide)}) vs judges '
                f'{100 * self.judge_change:+.2f}% ({pct(cfg.judges)}) since iter {self.reference_iteration} '
                f'({cfg.reference}); margins +{100 * cfg.guide_margin:g}% / -{100 * cfg.judge_margin:g}%; '
                f'{self.streak} suspicious validation(s) in a row (patience {cfg.patience})')


History = Sequence[tuple[int, Mapping[str, float]]]


def metric_directions(val_metrics: Mapping[str, Any]) -> dict[str, int]:
    """``+1`` (higher is better) or ``-1`` for each ``val.metrics`` key, from BasicSR's ``better`` key."""
    return {key: (-1 if (block or {}).get('better', 'higher') == 'lower' else 1)
            for key, block in val_metrics.items()}


def criterion_scores(history: History, weights: Mapping[str, float], directions: Mapping[str, int]) -> list[float]:
    """Weighted z-scored criterion of every validation in ``history`` (higher = better; see module docstring).

    A metric that has not varied yet contributes 0; a missing or non-finite value counts as the worst seen."""
    total = sum(abs(w) for w in weights.values()) or 1.0
    scores = [0.0] * len(history)
    for name, weight in weights.items():
        values = [_finite(v.get(name)) for _, v in history]
        seen = [v for v in values if v is not None]
        if len(seen) < 2:
            continue
        mean = sum(seen) / len(seen)
        std = math.sqrt(sum((v - mean) ** 2 for v in seen) / len(seen))
        if std == 0:
            continue
        sign = directions.get(name, 1)
        z = [sign * (v - mean) / std if v is not None else None for v in values]
        worst = min(x for x in z if x is not None)
        for i, x in enumerate(z):
            scores[i] += weight * (worst if x is None else x) / total
    return scores


def best_index(scores: Sequence[float]) -> int:
    """Index of the best score; ties go to the later validation (as BasicSR's ``>=``)."""
    return max(range(len(scores)), key=lambda i: (scores[i], i))


def relative_change(value: float, reference: float, direction: int) -> float:
    """``direction · (value − reference) / |reference|`` (positive = better); 0 when either is unusable."""
    value, reference = _finite(value), _finite(reference)
    if value is None or reference is None:
        return 0.0
    return direction * (value - reference) / max(abs(reference), 1e-8)


def evaluate_guard(history: History, cfg: GuardConfig, directions: Mapping[str, int],
                   criterion: Mapping[str, float]) -> list[GuardReport]:
    """The guard's report for every validation of ``history`` (the last one is the current state).

    With ``reference: best``, validation *i* is compared to the best by ``criterion`` among validations
    ``0..i`` — what the best-checkpoint bookkeeping had kept at that time."""
    reports: list[GuardReport] = []
    streak = 0
    for i, (iteration, values) in enumerate(history):
        ref = 0 if cfg.reference == 'start' else best_index(criterion_scores(history[:i + 1], criterion, directions))
        ref_values = history[ref][1]
        changes = {m: relative_change(values.get(m), ref_values.get(m), directions.get(m, 1))
                   for m in (*cfg.guide, *cfg.judges)}
        guide = sum(changes[m] for m in cfg.guide) / len(cfg.guide)
        judges = sum(changes[m] for m in cfg.judges) / len(cfg.judges)
        suspicious = guide > cfg.guide_margin and judges < -cfg.judge_margin
        streak = streak + 1 if suspicious else 0
        reports.append(GuardReport(iteration, history[ref][0], changes, guide, judges, suspicious, streak,
                                   streak >= cfg.patience))
    return reports


def seed_spread(runs: Sequence[History], cfg: GuardConfig, directions: Mapping[str, int],
                criterion: Mapping[str, float]) -> dict[str, float]:
    """Run-to-run noise of the guard's inputs: the largest difference between runs (same options, other seeds)
    of each metric's relative change, of the guide mean and of the judge mean, over their common iterations.
    The margins must exceed these, or seeds alone could make a validation suspicious."""
    reports = [{r.iteration: r for r in evaluate_guard(h, cfg, directions, criterion)} for h in runs]
    common = sorted(set.intersection(*(set(r) for r in reports)))
    spread: dict[str, float] = {}
    for it in common:
        rows = [r[it] for r in reports]
        keys = [*rows[0].changes, 'guide', 'judges']
        for key in keys:
            vals = [r.guide_change if key == 'guide' else r.judge_change if key == 'judges' else r.changes[key]
                    for r in rows]
            spread[key] = max(spread.get(key, 0.0), max(vals) - min(vals))
    return spread


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------ options
def _metric_names(block: Any) -> list[str]:
    """pyiqa names of an ``iqa_opt.metrics`` / ``gt_selection.metrics`` value (a name, a list or a mapping)."""
    if isinstance(block, str):
        return [block]
    return [str(n) for n in (block or [])]


def default_guide_metrics(opt: Mapping[str, Any]) -> list[str]:
    """pyiqa metrics training optimises: ``train.iqa_opt.metrics`` and the AMO metrics of ``train.gt_selection``."""
    train = opt.get('train') or {}
    names = _metric_names((train.get('iqa_opt') or {}).get('metrics'))
    selection = train.get('gt_selection') or {}
    if selection.get('policy') in ('amo', 'amo_cached'):
        names += _metric_names(selection.get('metrics'))
    return list(dict.fromkeys(n.lower() for n in names))


def _keys_computing(val_metrics: Mapping[str, Any], pyiqa_name: str) -> list[str]:
    """``val.metrics`` keys whose block computes the pyiqa metric ``pyiqa_name``."""
    return [k for k, b in val_metrics.items()
            if isinstance(b, dict) and str(b.get('metric') or '').lower() == pyiqa_name]


def _as_names(where: str, value: Any, problems: list[str]) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    problems.append(f'{where}: a val.metrics key or a list of them, got {value!r}.')
    return []


def _check_keys(where: str, names: Sequence[str], val_metrics: Mapping[str, Any], problems: list[str]) -> None:
    for name in names:
        if name not in val_metrics:
            close = difflib.get_close_matches(name, list(val_metrics), n=1)
            problems.append(f'{where}: "{name}" is not computed at validation' +
                            (f' (did you mean {close[0]}?)' if close else '') +
                            f'; name a key of val.metrics ({", ".join(val_metrics) or "none defined"}) or add '
                            f'val.metrics.{name}.')


def _number(where: str, value: Any, problems: list[str], low: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        problems.append(f'{where}: a number >= {low:g}, got {value!r}.')


def check_guard_options(opt: dict[str, Any]) -> list[str]:
    """Validate ``val.best`` / ``val.guard`` and fill their defaults in place (``guide`` from the training
    objective, ``judges`` = the other validation metrics, ``criterion`` = the judges); returns the problems."""
    val = opt.get('val') or {}
    if 'best' not in val and 'guard' not in val:
        return []
    problems: list[str] = []
    if opt.get('model_type') not in (None, 'NRIQAModel'):
        problems.append(f'val.best / val.guard: read only by model_type NRIQAModel, but model_type is '
                        f'{opt["model_type"]}; set model_type: NRIQAModel or remove them.')
    metrics = val.get('metrics') or {}
    if not metrics:
        problems.append('val.best / val.guard: need val.metrics (the values they compare).')
        return problems
    for where, keys in (('val.best', BEST_KEYS), ('val.guard', GUARD_KEYS)):
        block = val.get(where[4:])
        if block is None or where[4:] not in val:
            continue
        if not isinstance(block, dict):
            problems.append(f'{where}: must be a mapping (or remove it).')
            val[where[4:]] = {}
            continue
        for key in block:
            if key not in keys:
                close = difflib.get_close_matches(key, sorted(keys), n=1)
                problems.append(f'{where}.{key}: unknown option' + (f' (did you mean {close[0]}?)' if close else '')
                                + f'; valid keys: {sorted(keys)}.')
    guard = val.get('guard') if isinstance(val.get('guard'), dict) else None
    if 'guard' in val and guard is None:
        guard = val['guard'] = {}
    judges: list[str] = []
    if guard is not None:
        guide_pyiqa = default_guide_metrics(opt)
        guide = _as_names('val.guard.guide', guard.get('guide'), problems)
        if guide is None:
            guide = [k for n in guide_pyiqa for k in _keys_computing(metrics, n)]
            missing = [n for n in guide_pyiqa if not _keys_computing(metrics, n)]
            for name in missing:
                problems.append(f'val.guard.guide: training optimises "{name}" (train.iqa_opt / train.gt_selection) '
                                f'but no val.metrics block computes it; add val.metrics.{name}: '
                                f'{{type: calculate_nriqa, metric: {name}}} or set val.guard.guide.')
            if not guide_pyiqa:
                problems.append('val.guard.guide: training optimises no NR metric (no train.iqa_opt, no AMO '
                                'selection); name the guide metrics (val.metrics keys) or remove val.guard.')
        _check_keys('val.guard.guide', guide, metrics, problems)
        guide_set = set(guide) | {k for n in guide_pyiqa for k in _keys_computing(metrics, n)}
        judges = _as_names('val.guard.judges', guard.get('judges'), problems)
        if judges is None:
            judges = [k for k in metrics if k not in guide_set]
        _check_keys('val.guard.judges', judges, metrics, problems)
        for name in judges:
            if name in guide_set:
                problems.append(f'val.guard.judges: "{name}" is a guide metric (training optimises it), so it '
                                f'cannot judge the guide; remove it from judges or from the training objective.')
        if not judges:
            problems.append('val.guard.judges: no held-out metric left; add val.metrics the training never sees '
                            '(e.g. psnr, ssim, a different NR metric) and list them.')
        if not guide and not any('val.guard.guide' in p for p in problems):
            problems.append('val.guard.guide: empty; name the metrics training optimises.')
        if guard.get('reference', 'best') not in ('best', 'start'):
            problems.append(f'val.guard.reference: "best" or "start", got {guard.get("reference")!r}.')
        for key, default in (('guide_margin', DEFAULT_GUIDE_MARGIN), ('judge_margin', DEFAULT_JUDGE_MARGIN)):
            _number(f'val.guard.{key}', guard.get(key, default), problems)
        patience = guard.get('patience', DEFAULT_PATIENCE)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            problems.append(f'val.guard.patience: a count >= 1 (validations in a row), got {patience!r}.')
        if not isinstance(guard.get('stop', False), bool):
            problems.append(f'val.guard.stop: true or false, got {guard.get("stop")!r}.')
        guard['guide'], guard['judges'] = guide, judges
    best = val.get('best')
    if best is None:
        best = val['best'] = {}
    if isinstance(best, dict):
        criterion = best.get('criterion')
        if criterion is None:
            criterion = {k: 1.0 for k in (judges or metrics)}
        elif isinstance(criterion, str):
            criterion = {criterion: 1.0}
        elif isinstance(criterion, list):
            criterion = {k: 1.0 for k in criterion}
        if not isinstance(criterion, dict) or not criterion:
            problems.append(f'val.best.criterion: a val.metrics key, a list or a mapping key → weight, got '
                            f'{best.get("criterion")!r}.')
        else:
            _check_keys('val.best.criterion', list(criterion), metrics, problems)
            for key, weight in criterion.items():
                _number(f'val.best.criterion.{key}', weight, problems)
            best['criterion'] = {str(k): float(w) for k, w in criterion.items()
                                 if isinstance(w, (int, float)) and not isinstance(w, bool)}
        keep = best.get('keep', 1)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            problems.append(f'val.best.keep: how many best checkpoints to keep, a count >= 1, got {keep!r}.')
    return problems


def parse_best_options(val: Mapping[str, Any]) -> BestConfig:
    """:class:`BestConfig` of a ``val`` block already checked by :func:`check_guard_options`."""
    best = val.get('best') or {}
    criterion = best.get('criterion') or {k: 1.0 for k in (val.get('metrics') or {})}
    return BestConfig(dict(criterion), int(best.get('keep', 1)))


def parse_guard_options(val: Mapping[str, Any]) -> GuardConfig | None:
    """:class:`GuardConfig` of a checked ``val`` block, or None without ``val.guard``."""
    guard = val.get('guard')
    if guard is None:
        return None
    return GuardConfig(tuple(guard['guide']), tuple(guard['judges']), guard.get('reference', 'best'),
                       float(guard.get('guide_margin', DEFAULT_GUIDE_MARGIN)),
                       float(guard.get('judge_margin', DEFAULT_JUDGE_MARGIN)),
                       int(guard.get('patience', DEFAULT_PATIENCE)), bool(guard.get('stop', False)))
