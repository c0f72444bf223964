"""The checkpoint layout: names, which key a base / adapters / EMA is read from, saving and merging."""

import os.path as osp

import pytest
import torch

from nriqa_basicsr.archs.lora import lora_state_dict
from nriqa_basicsr.checkpoint import (
    ADAPTER_FILE,
    INFERENCE_KEY,
    LATEST_FILE,
    CheckpointMismatchError,
    adapter_file,
    base_key,
    best_file,
    build_generator,
    generator_files,
    load_checkpoint_params,
    merge_adapters,
    network_file,
    resume_network_files,
    save_checkpoint,
    state_file,
    state_iterations,
)

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 4}


def _net(seed: int) -> torch.nn.Module:
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(seed)
    return RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_file_names_and_resume_files():
    assert network_file('g', 12) == 'net_g_12.pth' and network_file('g', -1) == LATEST_FILE == 'net_g_latest.pth'
    assert adapter_file(-1) == 'net_g_lora_latest.pth' and ADAPTER_FILE.fullmatch(adapter_file(40)).group(1) == '40'
    assert best_file(7) == 'net_g_best_7.pth' and state_file(8) == '8.state'
    assert state_iterations(['2.state', '10.state', 'x.state', '.tmp-3.state', '4.pth']) == [10, 2]
    opt = {'network_g': {}, 'network_d': {}, 'path': {'models': '/m'}}
    assert resume_network_files(opt, 4) == ['/m/net_g_4.pth', '/m/net_d_4.pth']
    assert resume_network_files(dict(opt, network_g_lora={}), 4) == ['/m/net_d_4.pth', '/m/net_g_lora_4.pth']


def test_a_base_is_read_with_one_key_falling_back_to_params(tmp_path):
    params, ema = _net(0), _net(1)
    both = str(tmp_path / 'both.pth')
    torch.save({'params': params.state_dict(), 'params_ema': ema.state_dict()}, both)
    # an option file's base: param_key_g, else BasicSR's default params; a bare .pth for inference: params_ema
    assert base_key(None) == 'params' and base_key('params_ema') == 'params_ema' and INFERENCE_KEY == 'params_ema'
    assert _same(build_generator(NET_G, both, base_key(None)), params)
    assert _same(build_generator(NET_G, both, base_key('params_ema')), ema)
    assert _same(build_generator(NET_G, both, INFERENCE_KEY), ema)
    released = str(tmp_path / 'released.pth')  # e.g. RealESRGAN_x4plus.pth: the EMA set only
    torch.save({'params_ema': ema.state_dict()}, released)
    assert _same(build_generator(NET_G, released, base_key(None)), ema)
    only = str(tmp_path / 'only.pth')
    torch.save({'params': {f'module.{k}': v for k, v in params.state_dict().items()}}, only)  # saved from DDP
    assert _same(build_generator(NET_G, only, 'params_ema'), params)
    assert set(load_checkpoint_params(only, None)) == {'params'}  # no key: the file as it is
    with pytest.raises(CheckpointMismatchError, match='does not fit RRDBNet'):
        build_generator(dict(NET_G, num_feat=16), both, 'params')


def test_saved_layout_and_merge_use_one_base_key(tmp_path):
    base = str(tmp_path / 'base.pth')
    torch.save({'params': _net(0).state_dict(), 'params_ema': _net(1).state_dict()}, base)
    lora = {'rank': 2}
    nets = [build_generator(NET_G, base, 'params', lora_opt=lora), build_generator(NET_G, base, 'params',
                                                                                     lora_opt=lora)]
    for i, net in enumerate(nets):
        for name, p in net.named_parameters():
            if 'lora_B' in name:
                p.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(i))
    files = generator_files(nets, 5, lora=True)
    assert list(files) == ['net_g_lora_5.pth'] and set(files['net_g_lora_5.pth']) == {'params', 'params_ema'}
    assert list(generator_files(nets, -1, lora=True)) == ['net_g_lora_latest.pth', LATEST_FILE]
    assert list(generator_files(nets[:1], 3, lora=False)['net_g_3.pth']) == ['params']
    for name, payload in files.items():
        save_checkpoint(payload, osp.join(tmp_path, name))
    adapters = str(tmp_path / 'net_g_lora_5.pth')
    merged = merge_adapters(NET_G, lora, base, adapters, 'params')
    x = torch.rand(1, 3, 8, 8)
    for key, net in zip(('params', 'params_ema'), nets):  # each adapter set on the same base key
        stock = _net(2)
        stock.load_state_dict(merged[key], strict=True)
        with torch.no_grad():
            assert torch.allclose(stock(x), net.eval()(x), atol=1e-5)
    # the default base key is BasicSR's params for every set; another key gives another merge
    default = merge_adapters(NET_G, lora, base, adapters)
    assert all(torch.equal(v, merged['params'][k]) for k, v in default['params'].items())
    ema_based = merge_adapters(NET_G, lora, base, adapters, 'params_ema')
    assert not all(torch.equal(v, merged['params'][k]) for k, v in ema_based['params'].items())
    assert set(lora_state_dict(nets[0])) == set(load_checkpoint_params(adapters, 'params'))
