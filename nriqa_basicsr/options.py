"""Start-up checks and completions of the options we add to BasicSR's YAML.

BasicSR ignores unknown keys and builds validation metrics only at the first validation, so a typo in a metric
name would surface hours into a run. :func:`prepare_options` runs right after BasicSR parses the YAML (see
``nriqa_basicsr.pipeline``), reports every problem at once, and fills BasicSR's ``better`` key of our metric
blocks from the metric's direction.
"""

from __future__ import annotations

from typing import Any

from nriqa_basicsr.iqa import UnknownMetricError, get_metric_info

__all__ = ['OptionsError', 'prepare_options']

_METRIC_MODES = {'calculate_nriqa': 'NR', 'calculate_fr_iqa': 'FR'}


class OptionsError(ValueError):
    """One or more invalid options; the message lists all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__('Invalid options:\n' + '\n'.join(f'  - {p}' for p in problems))


def _check_metric_blocks(opt: dict[str, Any], problems: list[str]) -> None:
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for key, block in metrics.items():
        if not isinstance(block, dict) or block.get('type') not in _METRIC_MODES:
            continue
        where = f'val.metrics.{key}'
        mode = _METRIC_MODES[block['type']]
        if not block.get('metric'):
            problems.append(f'{where}: missing "metric" (a pyiqa metric name, e.g. metric: musiq).')
            continue
        try:
            info = get_metric_info(block['metric'], mode)
        except UnknownMetricError as exc:
            problems.append(f'{where}: {exc}')
            continue
        better = block.get('better')
        if better is None:
            block['better'] = info.better
        elif better not in ('higher', 'lower'):
            problems.append(f'{where}.better: must be "higher" or "lower", got {better!r}.')
        elif better != info.better:
            problems.append(f'{where}.better: "{info.name}" is {info.better}-is-better, but better: {better} was '
                            f'given; remove the key to use the metric\'s own direction.')


def _check_nriqa_losses(opt: dict[str, Any], problems: list[str]) -> None:
    for key, block in (opt.get('train') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'NRIQALoss'):
            continue
        metrics = block.get('metrics')
        names = [metrics] if isinstance(metrics, str) else list(metrics or [])
        if not names:
            problems.append(f'train.{key}.metrics: give at least one no-reference metric, e.g. {{musiq: 1.0}}.')
        for name in names:
            try:
                get_metric_info(name, 'NR')
            except UnknownMetricError as exc:
                problems.append(f'train.{key}.metrics: {exc}')


def prepare_options(opt: dict[str, Any]) -> dict[str, Any]:
    """Validate our option blocks in a parsed BasicSR ``opt`` and fill defaults in place; raise on problems."""
    problems: list[str] = []
    _check_metric_blocks(opt, problems)
    _check_nriqa_losses(opt, problems)
    if problems:
        raise OptionsError(problems)
    return opt
