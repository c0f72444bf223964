import math

import pytest
import torch

from nriqa_basicsr.data.labels import (
    NEGATIVE,
    ORIGINAL,
    POSITIVE,
    SIMILAR,
    LabelError,
    effective_label,
    effective_labels,
)
from nriqa_basicsr.data.selection import combine_scores, select, selection_probabilities, zscore_stats

O, P, S, N = ORIGINAL, POSITIVE, SIMILAR, NEGATIVE  # noqa: E741  (table shorthand)
LABELS = torch.tensor([
    [O, P, S, P, N],   # two positives
    [O, S, N, S, N],   # none -> original fallback for upos/smp
    [O, N, P, S, S],   # one positive
])
SCORES = torch.tensor([
    [50.0, 60.0, 40.0, 55.0, 70.0],
    [30.0, 30.0, 20.0, 10.0, 30.0],   # three-way tie at the max
    [10.0, 20.0, 30.0, 40.0, 50.0],
])


def test_effective_label_majority_else_similar():
    assert effective_label(['Positive', 'Positive', 'Negative']) == (P, 2)
    assert effective_label(['Negative', 'Negative', 'Negative']) == (N, 3)
    assert effective_label(['Positive', 'Similar', 'Negative']) == (S, 1)  # all differ -> Similar, HGGT count 1
    assert effective_label(['Positive', 'Positive', 'Negative', 'Negative']) == (S, 0)  # tie of 4: no majority
    assert effective_label(['Negative'] * 3 + ['Positive'] * 2) == (N, 3)
    with pytest.raises(LabelError, match="unknown label"):
        effective_label(['Positive', 'Great'])


def test_effective_labels_for_a_group():
    per_annotator = [[None, 'Positive', 'Similar', 'Negative', 'Positive'],
                     [None, 'Positive', 'Negative', 'Negative', 'Similar'],
                     [None, 'Similar', 'Positive', 'Negative', 'Negative']]
    assert effective_labels(per_annotator) == ([O, P, S, N, S], [3, 2, 1, 3, 1])


def test_original_policy():
    probs = selection_probabilities('original', num_variants=5)
    assert probs.tolist() == [[1, 0, 0, 0, 0]]
    assert select('original', labels=LABELS).tolist() == [0, 0, 0]


def test_upos_uniform_over_positives_with_fallback():
    probs = selection_probabilities('upos', labels=LABELS)
    assert torch.allclose(probs, torch.tensor([[0, .5, 0, .5, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]]))


def test_sma_softmax_over_all():
    tau = 10.0
    probs = selection_probabilities('sma', scores=SCORES, tau=tau)
    row = torch.exp(SCORES[0] / tau)
    assert torch.allclose(probs[0], row / row.sum())
    assert probs[0, 4] == pytest.approx(math.exp(7) / sum(math.exp(s / 10) for s in [50, 60, 40, 55, 70]))
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_smp_softmax_over_positives_with_fallback():
    probs = selection_probabilities('smp', labels=LABELS, scores=SCORES, tau=5.0)
    e1, e3 = math.exp(60 / 5), math.exp(55 / 5)
    assert probs[0].tolist() == pytest.approx([0, e1 / (e1 + e3), 0, e3 / (e1 + e3), 0])
    assert probs[1].tolist() == [1, 0, 0, 0, 0]
    assert probs[2].tolist() == [0, 0, 1, 0, 0]


def test_large_tau_smp_equals_upos():
    smp = selection_probabilities('smp', labels=LABELS, scores=SCORES, tau=1e9)
    assert torch.allclose(smp, selection_probabilities('upos', labels=LABELS), atol=1e-6)


@pytest.mark.parametrize('policy', ['amo', 'amo_cached'])
def test_amo_argmax_with_deterministic_ties(policy):
    assert select(policy, scores=SCORES).tolist() == [4, 0, 4]
    no_original = select(policy, scores=SCORES, include_original=False)
    assert no_original.tolist() == [4, 1, 4]
    no_negatives = select(policy, labels=LABELS, scores=SCORES, exclude_negatives=True)
    assert no_negatives.tolist() == [1, 0, 4]


def test_sampling_is_seeded_and_matches_probabilities():
    scores = SCORES[:1].repeat(4000, 1)
    draws = [select('sma', scores=scores, tau=10.0, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    freq = torch.bincount(draws[0], minlength=5).float() / 4000
    assert torch.allclose(freq, selection_probabilities('sma', scores=SCORES[:1], tau=10.0)[0], atol=0.03)


def test_missing_inputs_are_explained():
    with pytest.raises(ValueError, match='"upos" needs human labels'):
        select('upos', scores=SCORES)
    with pytest.raises(ValueError, match='"sma" needs a score file'):
        select('sma', labels=LABELS)
    with pytest.raises(ValueError, match='"amo" needs online candidate scores'):
        select('amo', labels=LABELS)
    with pytest.raises(ValueError, match='Unknown GT-selection policy "best"'):
        select('best', scores=SCORES)
    with pytest.raises(ValueError, match='tau must be > 0'):
        select('sma', scores=SCORES, tau=0)


def test_ensemble_of_zscored_metrics():
    musiq = torch.tensor([[40.0, 60.0], [50.0, 50.0]])
    nima = torch.tensor([[5.0, 4.0], [6.0, 5.0]])
    stats = {'musiq': zscore_stats(musiq), 'nima': zscore_stats(nima)}
    assert stats['musiq'][0] == pytest.approx(50.0) and stats['musiq'][1] == pytest.approx(math.sqrt(200 / 3))
    combined = combine_scores({'musiq': musiq, 'nima': nima}, {'musiq': 1.0, 'nima': 0.5}, stats)
    expected = (musiq - 50) / math.sqrt(200 / 3) + 0.5 * (nima - 5) / math.sqrt(2 / 3)
    assert torch.allclose(combined, expected)
    assert torch.equal(combine_scores({'musiq': musiq}, {'musiq': 1.0}), musiq)
    with pytest.raises(ValueError, match='needs their dataset statistics'):
        combine_scores({'musiq': musiq, 'nima': nima}, {'musiq': 1.0, 'nima': 1.0})
