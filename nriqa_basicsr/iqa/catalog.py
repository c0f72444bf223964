"""Which metrics exist (pyiqa's and registered custom ones), what kind they are, and which way is better."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

from nriqa_basicsr.iqa.custom import CustomMetricError, custom_metric_names, get_custom_metric, register_plugins
from nriqa_basicsr.iqa.scores import parse_score_range

__all__ = ['MetricInfo', 'UnknownMetricError', 'canonical_names', 'get_metric_info', 'list_metrics']

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
    custom: bool = False  # a registered custom model (nriqa_basicsr.iqa.custom), not a pyiqa metric

    @property
    def better(self) -> str:
        """BasicSR's ``better`` value for best-metric tracking."""
        return 'lower' if self.lower_better else 'higher'


@functools.lru_cache(maxsize=1)
def _configs() -> dict:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return DEFAULT_CONFIGS


def list_metrics(mode: str | None = None) -> list[str]:
    """Sorted metric names usable here (pyiqa's and custom ones); ``mode`` = 'NR', 'FR' or None for both."""
    names = custom_metric_names(mode)
    for name, cfg in _configs().items():
        if name in NOT_IMAGE_QUALITY or cfg.get('metric_mode') not in ('NR', 'FR'):
            continue
        if mode is None or cfg['metric_mode'] == mode:
            names.append(name)
    return sorted(set(names))


def get_metric_info(name: str, mode: str | None = None) -> MetricInfo:
    """Look up a metric by name; ``mode`` ('NR'/'FR') asserts the kind needed by the caller.

    ``name`` is a pyiqa name, a registered custom metric, or an import path ``package.module:Class`` /
    ``path/to/file.py:Class`` of a custom metric (imported and registered on the fly).
    """
    if not isinstance(name, str) or not name:
        raise UnknownMetricError(f'IQA metric name must be a non-empty string, got {name!r}.')
    try:
        spec = get_custom_metric(name)
    except CustomMetricError as exc:
        raise UnknownMetricError(str(exc)) from exc
    if spec is not None:
        info = MetricInfo(spec.name, spec.mode, spec.lower_better, spec.score_range, custom=True)
        if mode is not None and info.mode != mode:
            raise UnknownMetricError(f'"{name}" is a custom {info.mode} metric and cannot be used as {mode}.')
        return info
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


def canonical_names(names: list[str], plugins: list[str] = (), mode: str | None = None,
                    keep_unknown: bool = False) -> list[str]:
    """Register ``plugins`` (``--iqa-plugin`` values), check ``names`` and replace custom import paths by the
    registered names (the keys of score files and reports). pyiqa names are kept as given. ``keep_unknown``: a
    name no catalog knows is kept as is (its scores come from a cache; scoring it would fail with this error)."""
    try:
        register_plugins(list(plugins))
    except CustomMetricError as exc:
        raise UnknownMetricError(str(exc)) from exc
    out = []
    for name in names:
        try:
            info = get_metric_info(name, mode)  # unknown names and wrong kinds fail here, before anything is built
        except UnknownMetricError:
            if not keep_unknown or ':' in name:
                raise
            out.append(name)
            continue
        out.append(info.name if info.custom else name)
    return out
