import pytest
import torch
from basicsr.losses import build_loss

from nriqa_basicsr.iqa import UnknownMetricError, build_scorer
from nriqa_basicsr.losses.nriqa_loss import NonFiniteScoreError, NRIQALoss


@pytest.fixture
def sr():
    torch.manual_seed(1)
    base = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 16), size=(96, 96), mode='bicubic')
    return base.clamp(0, 1).requires_grad_(True)


def test_built_from_yaml_style_options_and_value(musiq_weights, sr):
    loss_fn = build_loss({'type': 'NRIQALoss', 'metrics': {'musiq': 1.0, 'niqe': 0.5}, 'loss_weight': 0.01,
                          'metric_opts': {'musiq': {'weights_path': musiq_weights}}, 'device': 'cpu'})
    assert isinstance(loss_fn, NRIQALoss)
    loss = loss_fn(sr)
    with torch.no_grad():
        q_musiq = build_scorer('musiq', 'NR', 'cpu', normalize=False, weights_dir=None,
                               weights_path=musiq_weights)(sr)
        q_niqe = build_scorer('niqe', 'NR', 'cpu', normalize=False, weights_dir=None)(sr)
    expected = 0.01 * (-(1.0 * q_musiq) - 0.5 * q_niqe).mean()
    assert loss.shape == () and torch.allclose(loss, expected, rtol=1e-5)
    # NIQE is lower-better: its term must *add* the raw NIQE (minimising the loss lowers NIQE)
    assert torch.allclose(-q_niqe, build_scorer('niqe', device='cpu').raw(sr.detach()))


def test_differentiable_and_metric_frozen(musiq_weights, sr):
    loss_fn = NRIQALoss({'musiq': 1.0}, metric_opts={'musiq': {'weights_path': musiq_weights}}, device='cpu')
    loss_fn(sr).backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert list(loss_fn.parameters()) == []  # nothing an optimiser or DDP could pick up
    scorer = loss_fn._scorer('musiq', 'cpu')
    assert all(p.grad is None and not p.requires_grad for p in scorer.parameters())
    loss_fn.train()
    assert not scorer.training


def test_reductions_and_clamp(sr):
    per_sample = NRIQALoss('niqe', reduction='none', loss_weight=2.0, device='cpu')(sr)
    assert per_sample.shape == (2,)
    total = NRIQALoss('niqe', reduction='sum', loss_weight=2.0, device='cpu')(sr)
    assert torch.allclose(total, per_sample.sum())
    overshoot = sr.detach() * 1.2 - 0.1  # SR outputs leave [0, 1]; the loss clamps before scoring
    assert torch.allclose(NRIQALoss('niqe', device='cpu')(overshoot),
                          NRIQALoss('niqe', device='cpu')(overshoot.clamp(0, 1)))
    with pytest.raises(ValueError, match=r'must be RGB in \[0, 1\]'):
        NRIQALoss('niqe', clamp=False, device='cpu')(overshoot)


def test_normalised_terms_mix_on_one_scale(sr):
    loss = NRIQALoss({'niqe': 1.0}, normalize=True, device='cpu')(sr)
    raw = build_scorer('niqe', device='cpu').raw(sr.detach())
    assert torch.allclose(loss, -((100 - raw) / 100).mean())


def test_bad_options_are_refused():
    with pytest.raises(UnknownMetricError, match='full-reference metric'):
        NRIQALoss({'lpips': 1.0}, device='cpu')
    with pytest.raises(UnknownMetricError, match='Did you mean: .*niqe'):
        NRIQALoss({'nique': 1.0}, device='cpu')
    with pytest.raises(ValueError, match='weight of metric "niqe" must be a number'):
        NRIQALoss({'niqe': 'high'}, device='cpu')
    with pytest.raises(ValueError, match=r"metric_opts given for \['musiq'\]"):
        NRIQALoss({'niqe': 1.0}, metric_opts={'musiq': {}}, device='cpu')
    with pytest.raises(ValueError, match='unsupported reduction'):
        NRIQALoss('niqe', reduction='max', device='cpu')


def _nan_for_first(monkeypatch, loss_fn):
    scorer = loss_fn._scorer('niqe', 'cpu')
    original = type(scorer).forward

    def forward(self, x, ref=None):
        q = original(self, x, ref)
        return torch.cat([torch.full_like(q[:1], float('nan')), q[1:]])

    monkeypatch.setattr(type(scorer), 'forward', forward)


def test_non_finite_score_raises_naming_metric(monkeypatch, sr):
    loss_fn = NRIQALoss({'niqe': 1.0}, device='cpu')
    _nan_for_first(monkeypatch, loss_fn)
    with pytest.raises(NonFiniteScoreError, match='metric "niqe" returned a non-finite score for 1 of 2'):
        loss_fn(sr)


def test_non_finite_score_skipped_and_counted(monkeypatch, sr):
    loss_fn = NRIQALoss({'niqe': 1.0}, nonfinite='skip', reduction='none', device='cpu')
    clean = NRIQALoss({'niqe': 1.0}, reduction='none', device='cpu')(sr).detach()
    _nan_for_first(monkeypatch, loss_fn)
    out = loss_fn(sr)
    assert torch.isfinite(out).all() and out[0] == 0 and torch.allclose(out[1], clean[1])
    loss_fn(sr)
    assert loss_fn.nonfinite_counts['niqe'] == 2
    out.sum().backward()
    assert torch.isfinite(sr.grad).all()
