"""The fast MUSIQ forward equals pyiqa's on the same (random) weights, values and gradients."""

import pytest
import torch
from pyiqa.archs.musiq_arch import MUSIQ

from nriqa_basicsr.iqa import build_scorer
from nriqa_basicsr.iqa.fast_musiq import musiq_forward, musiq_layout


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize('num_class, shape', [(1, (2, 3, 160, 160)), (10, (2, 3, 120, 90))])
def test_fast_musiq_matches_pyiqa(num_class, shape):
    torch.manual_seed(num_class)
    net = MUSIQ(pretrained=False, num_class=num_class).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        ref, fast = net(x), musiq_forward(net, x)
    assert fast.shape == ref.shape == (shape[0], 1)
    assert _rel(fast, ref) <= 1e-3, _rel(fast, ref)
    # differentiable like the original (the IQA loss back-propagates through it)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    net(xa).sum().backward()
    musiq_forward(net, xb).sum().backward()
    # the stem's max-pool routes gradients of tied maxima (ReLU zeros) by memory layout: compare in L2
    assert float((xb.grad - xa.grad).norm() / xa.grad.norm()) <= 1e-2


def test_layout_pads_non_square_inputs_like_pyiqa():
    scales, spatial, scale_ids, keep = musiq_layout(200, 150, 32, 32, 10, (224, 384), -1)
    # 224: 224x168 → 7x6 = 42 of 49 tokens; 384: 384x288 → 12x9 = 108 of 144; original: 7x5 = 35
    assert [s[2] for s in scales] == [49, 144, 35] and int(keep.sum()) == 42 + 108 + 35
    assert len(spatial) == len(scale_ids) == len(keep) == 49 + 144 + 35
    assert scale_ids[keep].unique().tolist() == [0, 1, 2] and not spatial[~keep].any()


def test_scorer_uses_the_fast_path_with_the_same_scores(musiq_weights):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 128, 128)
    fast = build_scorer('musiq', 'NR', 'cpu', weights_path=musiq_weights)
    slow = build_scorer('musiq', 'NR', 'cpu', weights_path=musiq_weights, fast_path=False)
    assert fast.fast_path and not slow.fast_path
    with torch.no_grad():
        assert _rel(fast(x), slow(x)) <= 1e-3
    assert not build_scorer('niqe', 'NR', 'cpu').fast_path


def test_scoring_benchmark_reports_every_variant():
    from nriqa_basicsr.bench.scoring import run

    result = run('cpu', batch=1, size=32, iters=1, warmup=0, weights=None, compile_=False)
    variants = result['variants']
    assert set(variants) == {'pyiqa_fp32', 'fast_fp32', 'pyiqa_bf16', 'fast_bf16'}
    assert variants['pyiqa_fp32']['speedup'] == 1.0 and variants['fast_fp32']['max_rel_diff'] <= 1e-3
    assert all(v['crops_per_s'] > 0 for v in variants.values())
