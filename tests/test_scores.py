import pytest
import torch

from nriqa_basicsr.iqa import UnknownMetricError, get_metric_info, list_metrics, parse_score_range, to_quality


@pytest.mark.parametrize('text, expected', [
    ('~0, ~100', (0.0, 100.0)),
    ('1, 10', (1.0, 10.0)),
    ('~-3, ~3', (-3.0, 3.0)),
    ('~-1, ~0.1', (-1.0, 0.1)),
    ('0, ~', None),
    ('~0, ~', None),
    ('', None),
    (None, None),
    ('5, 1', None),
])
def test_parse_score_range(text, expected):
    assert parse_score_range(text) == expected


def test_to_quality_direction_and_scale():
    raw = torch.tensor([0.0, 25.0, 100.0])
    assert torch.equal(to_quality(raw, lower_better=False), raw)
    assert torch.equal(to_quality(raw, lower_better=True), -raw)
    assert torch.allclose(to_quality(raw, False, (0, 100)), torch.tensor([0.0, 0.25, 1.0]))
    assert torch.allclose(to_quality(raw, True, (0, 100)), torch.tensor([1.0, 0.75, 0.0]))
    # NIMA-like 1..10 scale
    assert torch.allclose(to_quality(torch.tensor([1.0, 5.5, 10.0]), False, (1, 10)), torch.tensor([0.0, 0.5, 1.0]))


def test_metric_info_direction():
    assert get_metric_info('niqe').lower_better and get_metric_info('niqe').better == 'lower'
    assert get_metric_info('musiq').better == 'higher'
    assert get_metric_info('lpips', 'FR').better == 'lower'
    assert get_metric_info('musiq').score_range == (0.0, 100.0)
    assert get_metric_info('MUSIQ').name == 'musiq'


def test_unknown_metric_lists_close_names():
    with pytest.raises(UnknownMetricError, match=r'Unknown IQA metric "musiqq"\. Did you mean: musiq'):
        get_metric_info('musiqq', 'NR')


def test_full_reference_metric_refused_as_no_reference():
    with pytest.raises(UnknownMetricError, match='"lpips" is a full-reference metric and cannot be used as a '
                                                 'no-reference metric'):
        get_metric_info('lpips', 'NR')
    with pytest.raises(UnknownMetricError, match='is a no-reference metric'):
        get_metric_info('musiq', 'FR')


def test_non_quality_entries_are_refused_and_not_listed():
    with pytest.raises(UnknownMetricError, match='not an image-quality metric'):
        get_metric_info('fid')
    nr = list_metrics('NR')
    assert 'musiq' in nr and 'niqe' in nr and 'fid' not in nr and 'lpips' not in nr
    assert 'lpips' in list_metrics('FR')
