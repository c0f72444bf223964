"""Which pyiqa metrics exist, what kind they are, and which way is better."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

from nriqa_basicsr.iqa.scores import parse_score_range

__all__ = ['MetricInfo', 'UnknownMetricError', 'get_metric_info', 'list_metrics']

# pyiqa lists these as NR metrics, but they score distributions, captions or entropy, not image quality.
NOT_IMAGE_QUALITY = frozenset({'fid', 'sfid', 'fid_dinov2', 'inception_score', 'clipscore', 'entropy',
                               'compare2score'})


class UnknownMetricError(ValueError):
    """Bad metric name, or a metric used in a role it cannot play (e.g. full-reference as no-reference)."""


@dataclass(frozen=True)
class MetricInfo:
    name: str
    mode: str  # 'NR' or 'FR'
    lower_better: bool
    score_range: tuple[float, float] | None

    @property
    def better(self) -> str:
        """BasicSR's ``better`` value for best-metric tracking."""
        return 'lower' if self.lower_better else 'higher'


@functools.lru_cache(maxsize=1)
def _configs() -> dict:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return DEFAULT_CONFIGS


def list_metrics(mode: str | None = None) -> list[str]:
    """Sorted pyiqa metric names usable here; ``mode`` = 'NR', 'FR' or None for both."""
    names = []
    for name, cfg in _configs().items():
        if name in NOT_IMAGE_QUALITY or cfg.get('metric_mode') not in ('NR', 'FR'):
            continue
        if mode is None or cfg['metric_mode'] == mode:
            names.append(name)
    return sorted(names)


def get_metric_info(name: str, mode: str | None = None) -> MetricInfo:
    """Look up a metric by its pyiqa name; ``mode`` ('NR'/'FR') asserts the kind needed by the caller."""
    if not isinstance(name, str) or not name:
        raise UnknownMetricError(f'IQA metric name must be a non-empty string, got {name!r}.')
    configs = _configs()
    key = name.lower()
    if key in NOT_IMAGE_QUALITY:
        raise UnknownMetricError(f'"{name}" is not an image-quality metric (it scores distributions, captions or '
                                 f'entropy); choose one of: {", ".join(list_metrics(mode))}.')
    if key not in configs:
        # pyiqa names are case-sensitive in places (e.g. 'clipiqa+_vitL14_512').
        by_lower = {n.lower(): n for n in configs}
        if key in by_lower:
            key = by_lower[key]
        else:
            close = difflib.get_close_matches(key, list_metrics(mode), n=5, cutoff=0.5)
            hint = f' Did you mean: {", ".join(close)}?' if close else ''
            raise UnknownMetricError(f'Unknown IQA metric "{name}".{hint} All {mode or "NR/FR"} metrics: '
                                     f'{", ".join(list_metrics(mode))}.')
    cfg = configs[key]
    info = MetricInfo(key, cfg.get('metric_mode'), bool(cfg.get('lower_better', False)),
                      parse_score_range(cfg.get('score_range')))
    if mode is not None and info.mode != mode:
        role = 'no-reference' if mode == 'NR' else 'full-reference'
        kind = 'full-reference' if info.mode == 'FR' else 'no-reference'
        fix = ('use it through calculate_fr_iqa (validation with a ground truth) instead'
               if info.mode == 'FR' else 'use it through calculate_nriqa / NRIQALoss instead')
        raise UnknownMetricError(f'"{name}" is a {kind} metric and cannot be used as a {role} metric; {fix}. '
                                 f'{role.capitalize()} metrics: {", ".join(list_metrics(mode))}.')
    return info
