"""An FT option file as --model evaluates the FT run's tuned result (merged or adapters), never the untuned base."""

import cv2
import numpy as np
import pytest
import torch
import yaml

from nriqa_basicsr.archs.lora import inject_lora, lora_state_dict, merged_state_dict
from nriqa_basicsr.benchmark import main as benchmark_main
from nriqa_basicsr.inference import FTResultNotFoundError, load_generator, upscale_image
from nriqa_basicsr.upscale import main as upscale_main

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 4}


@pytest.fixture
def ft_run(tmp_path):
    """A stage-one checkpoint, an FT option file pointing at it, its (empty) experiment folder, tuned adapters."""
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(0)
    base = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
    base.conv_last.bias.data.fill_(0.5)  # mid-grey outputs, not clamped to black: SR images can differ
    base_path = tmp_path / 'stage1.pth'
    torch.save({'params_ema': base.state_dict()}, base_path)
    tuned = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
    tuned.load_state_dict(base.state_dict())
    inject_lora(tuned, {'rank': 2}, 'RRDBNet')  # base weights first, then the adapters on top (as FT does)
    for name, p in tuned.named_parameters():
        if 'lora_B' in name:
            p.data.normal_(0, 0.2)
    exp = tmp_path / 'experiments' / 'ft_demo'
    (exp / 'models').mkdir(parents=True)
    opt = tmp_path / 'train_ft.yml'
    opt.write_text(yaml.safe_dump({'name': 'ft_demo', 'network_g': NET_G, 'network_g_lora': {'rank': 2},
                                   'path': {'pretrain_network_g': str(base_path), 'param_key_g': 'params_ema',
                                            'experiments_root': str(exp)}}))
    return {'opt': str(opt), 'base': str(base_path), 'models': exp / 'models', 'base_net': base.eval(),
            'tuned_net': tuned.eval()}


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-5)


def test_ft_option_file_without_results_is_refused_with_what_to_pass(ft_run, tmp_path, capsys):
    with pytest.raises(FTResultNotFoundError, match='--adapters') as err:
        load_generator(ft_run['opt'])
    assert ft_run['base'] in str(err.value) and 'net_g_latest.pth' in str(err.value)
    lr = tmp_path / 'lr.png'
    cv2.imwrite(str(lr), np.full((12, 12, 3), 128, np.uint8))
    assert upscale_main(['-i', str(lr), '-o', str(tmp_path / 'sr'), '--model', ft_run['opt']]) == 1
    assert 'untuned base' in capsys.readouterr().err
    hr = tmp_path / 'hr'
    hr.mkdir()
    cv2.imwrite(str(hr / 'a.png'), np.full((48, 48, 3), 128, np.uint8))
    assert benchmark_main(['--model', f'ft={ft_run["opt"]}', '--dataset', f'toy={hr}', '--metrics', 'psnr',
                           '--device', 'cpu', '-o', str(tmp_path / 'bench'), '--no-progress']) != 0
    assert 'untuned base' in capsys.readouterr().err


def test_ft_option_file_uses_latest_adapters_then_merged_result(ft_run, tmp_path, capsys):
    tuned, models = ft_run['tuned_net'], ft_run['models']
    assert not _same(tuned, ft_run['base_net'])  # the adapters change the output: the test can tell them apart
    torch.save({'params_ema': {k: torch.zeros_like(v) for k, v in lora_state_dict(tuned).items()}},
               models / 'net_g_lora_100.pth')  # an older, different iteration
    torch.save({'params_ema': lora_state_dict(tuned)}, models / 'net_g_lora_200.pth')
    assert _same(load_generator(ft_run['opt']), tuned)
    assert 'net_g_lora_200.pth' in capsys.readouterr().err
    # the finished run's merged result wins; corrupt adapters prove they are no longer read
    torch.save({'params_ema': merged_state_dict(tuned)}, models / 'net_g_latest.pth')
    (models / 'net_g_lora_200.pth').write_bytes(b'not a checkpoint')
    assert _same(load_generator(ft_run['opt']), tuned)
    assert 'merged result' in capsys.readouterr().err
    lr = tmp_path / 'lr.png'
    cv2.imwrite(str(lr), (np.random.default_rng(0).random((12, 12, 3)) * 255).astype(np.uint8))
    assert upscale_main(['-i', str(lr), '-o', str(tmp_path / 'sr'), '--model', ft_run['opt']]) == 0
    tuned_sr = cv2.imread(str(tmp_path / 'sr' / 'lr.png'))
    assert np.array_equal(tuned_sr, upscale_image(tuned, cv2.imread(str(lr)), 4))
    assert not np.array_equal(tuned_sr, upscale_image(ft_run['base_net'], cv2.imread(str(lr)), 4))
