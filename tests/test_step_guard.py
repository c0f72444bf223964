"""The non-finite step guard and the precision helper, without a model."""

import pytest
import torch

from nriqa_basicsr.config.schema import OptionsError, decode_or_raise
from nriqa_basicsr.config.sections import NRIQATrainOptions
from nriqa_basicsr.precision import Precision
from nriqa_basicsr.step_guard import NonFiniteTrainingError, StepGuard, nonfinite_terms, on_any_rank


def test_nonfinite_terms_names_only_the_bad_tensors():
    values = {'a': torch.tensor(1.0), 'b': torch.tensor([0.0, float('nan')]), 'c': torch.tensor(float('-inf'))}
    assert nonfinite_terms(values) == ['b', 'c']
    assert not on_any_rank(False, torch.device('cpu'), distributed=True)  # no process group: this rank's flag
    assert on_any_rank(True, torch.device('cpu'), distributed=False)


def test_guard_counts_streaks_and_stops_at_the_limit(basicsr_log):
    guard = StepGuard(3, torch.device('cpu'), models_dir='/runs/x/models')
    guard.account(['l_g_pix'], 1)
    guard.account([], 2)  # a good step ends the streak, the total stays
    assert (guard.skips, guard.streak) == (1, 0)
    guard.account(['l_g_pix'], 3)
    guard.account(['gradients of net_g'], 4)
    assert 'iter 4: non-finite gradients of net_g; optimizer step skipped (2 in a row, 3 in all)' in basicsr_log.text
    with pytest.raises(NonFiniteTrainingError, match=r'iter 5: 3 steps in a row .* last: l_g_iqa\. .*'
                                                     r'max_consecutive_nonfinite = 3.*/runs/x/models are intact'):
        guard.account(['l_g_iqa'], 5)
    resumed = StepGuard(3, torch.device('cpu'))
    resumed.load_state_dict(guard.state_dict())
    assert (resumed.skips, resumed.streak) == (4, 3) and guard.state_dict() == {'nonfinite_skips': 4,
                                                                                'nonfinite_streak': 3}
    resumed.load_state_dict({})  # a state written before the guard existed
    assert (resumed.skips, resumed.streak) == (0, 0)
    never = StepGuard(0, torch.device('cpu'))  # 0: skip, but never stop
    for it in range(10):
        never.account(['x'], it)
    assert never.streak == 10


def test_guard_clears_nonfinite_gradients_unless_the_scaler_checks_them():
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    assert StepGuard(5, torch.device('cpu')).gradients(net, optimizer, 'gradients of net') == []
    net.weight.grad[0, 0] = float('inf')
    assert StepGuard(5, torch.device('cpu'), grads_checked_elsewhere=True).gradients(net, optimizer, 'g') == []
    assert net.weight.grad is not None
    assert StepGuard(5, torch.device('cpu')).gradients(net, optimizer, 'gradients of net') == ['gradients of net']
    assert net.weight.grad is None  # cleared: the skipped step leaves nothing behind


def test_precision_is_off_on_cpu_and_checks_amp(basicsr_log):
    def amp(value):
        return decode_or_raise(NRIQATrainOptions, {'amp': value}, 'train').amp

    assert amp(True) == 'bf16' and amp('fp16') == 'fp16'
    assert amp(False) is None and amp('false') is None and amp(None) is None
    with pytest.raises(OptionsError, match="train.amp: must be bf16, fp16 or false, got 'fp8'"):
        amp('fp8')
    cpu = Precision.from_options('bf16', True, torch.device('cpu'))
    assert cpu == Precision() and 'apply on CUDA only' in basicsr_log.text
    x = torch.rand(1, 3, 4, 4)
    assert cpu.layout(x) is x and not cpu.grad_scaler().is_enabled()
    with cpu.autocast():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    assert Precision(channels_last=True).layout(x).is_contiguous(memory_format=torch.channels_last)
