"""NR-IQA human-alignment and complementarity analysis on hand-made fixtures with known answers."""

import numpy as np
import pytest

from nriqa_basicsr.analysis import (
    PairSet,
    complementarity,
    greedy_ensemble,
    label_pairs,
    level_correlations,
    pair_credit,
    weighted_accuracy,
)

O, P, S, N = 0, 1, 2, 3  # noqa: E741  (label codes)
LABELS = np.array([[O, P, S, N, P],
                   [O, S, S, N, P]])


def test_label_pairs_follow_positive_similar_negative():
    pairs = label_pairs(LABELS)
    # group 0 (variants 1..4: P S N P): P>S, P>N, S>N, S<P, N<P  -> 5 pairs (P=P tie skipped)
    # group 1 (S S N P): S>N, S<P, S>N, S<P, N<P -> 5 pairs (S=S skipped)
    assert len(pairs) == 10
    assert list(zip(pairs.a[:5], pairs.b[:5], pairs.target[:5])) == [(1, 2, 1.0), (1, 3, 1.0), (2, 3, 1.0),
                                                                      (2, 4, 0.0), (3, 4, 0.0)]
    with_original = label_pairs(LABELS, original_level=2.5)
    assert len(with_original) == 10 + 4 + 4  # the original differs from every EGT level


def test_accuracy_ties_and_weights():
    pairs = label_pairs(LABELS)
    # group 0 ordered as the humans did; group 1 (S S N P, pairs 1-3, 1-4, 2-3, 2-4, 3-4) all reversed
    scores = np.array([0, 9, 5, 1, 8,
                       0, 1, 1, 5, 0], float)
    credit = pair_credit(scores, pairs)
    assert credit.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert weighted_accuracy(credit, pairs.weight) == pytest.approx(0.5)
    scores[2] = 9  # variant 2 (Similar) now ties variant 1 (Positive) and beats variant 4 (Positive)
    assert pair_credit(scores, pairs).tolist()[:5] == [0.5, 1, 1, 0, 1]
    assert pair_credit(scores, pairs, ties='wrong').tolist()[:5] == [0, 1, 1, 0, 1]
    dropped = pair_credit(scores, pairs, ties='drop')
    assert np.isnan(dropped[0]) and weighted_accuracy(dropped, pairs.weight) == pytest.approx(3 / 9)
    counts = np.array([[3, 3, 1, 2, 2], [3, 2, 3, 3, 3]])
    weighted = label_pairs(LABELS, counts, agreement_weighted=True)
    assert weighted.weight[0] == pytest.approx((1 + 1 / 3) / 2)


def test_soft_preferences():
    pairs = PairSet(np.array([0, 2]), np.array([1, 3]), np.array([0.8, 0.3]), np.ones(2))
    scores = np.array([2.0, 1.0, 2.0, 1.0])  # picks a in both pairs
    assert pair_credit(scores, pairs).tolist() == pytest.approx([0.8, 0.3])


def test_complementarity_matrix():
    credits = {'m1': np.array([1, 1, 0, 0, 1.0]), 'm2': np.array([0, 1, 1, 1, 1.0]), 'm3': np.array([1, 0, 0, 1, 1.0])}
    names, matrix = complementarity(credits, np.ones(5))
    assert names == ['m1', 'm2', 'm3']
    assert matrix[0].tolist() == [0.0, 1.0, 0.5]   # on m1's wrong pairs (2, 3): m2 right on both, m3 on one
    assert matrix[1].tolist() == [1.0, 0.0, 1.0]   # m1's and m3's accuracy on m2's wrong pair (0)
    assert matrix[2].tolist() == [0.5, 1.0, 0.0]


def test_level_correlations_and_means():
    scores = np.array([[10, 9, 5, 1, 8], [10, 4, 6, 2, 9]], float)
    out = level_correlations(scores, LABELS)
    # scores separate the levels perfectly: SRCC = Pearson of score ranks and tied level mid-ranks
    levels = np.array([3, 2, 1, 3, 2, 2, 1, 3])
    flat = scores[:, 1:].reshape(-1)
    score_ranks = flat.argsort().argsort() + 1.0
    score_ranks[flat == 9] = 7.5  # the two 9s share ranks 7 and 8
    midranks = {1: 1.5, 2: 4.0, 3: 7.0}
    expected = np.corrcoef(score_ranks, [midranks[v] for v in levels])[0, 1]
    assert out['srcc'] == pytest.approx(expected) and out['krcc'] > 0.8
    assert out['mean_positive'] == pytest.approx((9 + 8 + 9) / 3) and out['mean_negative'] == pytest.approx(1.5)
    assert out['mean_original'] == 10


def test_greedy_ensemble_finds_the_complementary_pair():
    # 8 pairs a=2i, b=2i+1, a always preferred. m1 is right on the first 6 pairs, m2 only on the last 2 (with a
    # large margin), m3 is noise. m1 + m2 together are right everywhere.
    pairs = PairSet(np.arange(0, 16, 2), np.arange(1, 16, 2), np.ones(8), np.ones(8))
    m1 = np.array([1, 0] * 6 + [0, 0.1] * 2, float)
    m2 = np.array([0, 0.01] * 6 + [5, 0] * 2, float)
    m3 = np.random.default_rng(0).random(16)
    members, acc = greedy_ensemble({'m1': m1, 'm2': m2, 'm3': m3}, pairs)
    assert next(iter(members)) == 'm1' and 'm2' in members and acc == 1.0


def test_analyze_pairs_mode_with_cached_scores(tmp_path):
    import json

    import cv2

    from nriqa_basicsr.analysis import main

    root = tmp_path / 'imgs'
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in 'abcd':
        cv2.imwrite(str(root / f'{name}.png'), (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    (tmp_path / 'prefs.csv').write_text('image_a,image_b,preference\na.png,b.png,a\nc.png,d.png,b\n'
                                        'a.png,c.png,0.75\n')
    # cached qualities: m1 orders all three as preferred (third: picks a with p = 0.75), m2 gets the first wrong
    cache = {'a.png': {'m1': 3, 'm2': 0}, 'b.png': {'m1': 1, 'm2': 1}, 'c.png': {'m1': 2, 'm2': 2},
             'd.png': {'m1': 5, 'm2': 3}}
    (tmp_path / 'cache.json').write_text(json.dumps(cache))
    # m1/m2 stand for scores computed elsewhere (any name, cached for every image); piqe is computed and cached
    args = ['pairs', '--pairs', str(tmp_path / 'prefs.csv'), '--image-root', str(root), '--metrics', 'm1', 'm2',
            'piqe', '--cache', str(tmp_path / 'cache.json'), '--output', str(tmp_path / 'out'), '--device', 'cpu']
    assert main(args) == 0
    assert set(json.load(open(tmp_path / 'cache.json'))['a.png']) == {'m1', 'm2', 'piqe'}
    with open(tmp_path / 'out' / 'alignment.csv') as f:
        acc = {r['metric']: float(r['accuracy']) for r in __import__('csv').DictReader(f)}
    assert acc['m1'] == pytest.approx((1 + 1 + 0.75) / 3)  # the soft pair credits the picked side's probability
    assert acc['m2'] == pytest.approx((0 + 1 + 0.25) / 3)
    (tmp_path / 'bad.csv').write_text('image_a,image_b,preference\na.png,b.png,maybe\n')
    assert main(['pairs', '--pairs', str(tmp_path / 'bad.csv'), '--image-root', str(root), '--metrics', 'piqe',
                 '--output', str(tmp_path / 'o2')]) == 1


def test_analyze_labels_mode_reuses_score_files(tmp_path, monkeypatch):
    from nriqa_basicsr import analysis as analyze_iqa
    from nriqa_basicsr.demo.data import make_demo_data

    demo = make_demo_data(str(tmp_path / 'demo'), num_train=4, num_val=1, size=128, seed=2)
    args = ['labels', '--dataroot', f'{demo}/train/images', '--labels', f'{demo}/train/labels', '--metrics',
            'piqe', '--cache', str(tmp_path / 'scores.npz'), '--output', str(tmp_path / 'out'), '--device', 'cpu']
    assert analyze_iqa.main(args) == 0
    text = open(tmp_path / 'out' / 'report.md').read()
    assert '| piqe |' in text and 'human-ordered pairs' in text
    assert (tmp_path / 'out' / 'complementarity.png').is_file()
    # a second run reads the cached score file instead of scoring again
    monkeypatch.setattr(analyze_iqa, 'score_dataset', lambda *a, **k: pytest.fail('rescored'))
    assert analyze_iqa.main(args[:-4] + ['--output', str(tmp_path / 'out2'), '--device', 'cpu']) == 0
    assert analyze_iqa.main(args[:7] + ['--score-file', str(tmp_path / 'scores.npz'), '--output', str(tmp_path / 'o3'),
                                        '--device', 'cpu']) == 0
