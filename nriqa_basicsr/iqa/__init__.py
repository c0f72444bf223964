"""NR/FR-IQA layer over pyiqa and custom models: metric lookup, offline weights, frozen scorers, one direction."""

from nriqa_basicsr.iqa.catalog import MetricInfo, UnknownMetricError, get_metric_info, list_metrics
from nriqa_basicsr.iqa.custom import (
    CustomMetricError,
    CustomMetricSpec,
    register_from_import_path,
    register_from_options,
    register_nriqa_metric,
    register_plugins,
)
from nriqa_basicsr.iqa.scorer import IQAInputError, IQAScorer, build_scorer, clear_scorer_cache, default_device
from nriqa_basicsr.iqa.scores import parse_score_range, to_quality
from nriqa_basicsr.iqa.weights import WeightsNotFoundError, is_offline, resolve_weight_file, search_dirs

__all__ = [
    'CustomMetricError', 'CustomMetricSpec', 'IQAInputError', 'IQAScorer', 'MetricInfo', 'UnknownMetricError',
    'WeightsNotFoundError', 'build_scorer', 'clear_scorer_cache', 'default_device', 'get_metric_info', 'is_offline',
    'list_metrics', 'parse_score_range', 'register_from_import_path', 'register_from_options',
    'register_nriqa_metric', 'register_plugins', 'resolve_weight_file', 'search_dirs', 'to_quality',
]
