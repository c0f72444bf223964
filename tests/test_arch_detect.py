"""Released checkpoints by file alone: architecture detection, every loading path, the real Real-ESRGAN file."""

import copy
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network

from nriqa_basicsr.archs.detect import (
    UnknownArchitectureError,
    detect_network_g,
    load_network_file,
    resolve_auto_network_g,
)
from nriqa_basicsr.archs.detect import main as detect_main
from nriqa_basicsr.inference import checked_scale, load_generator, load_generator_and_arch
from nriqa_basicsr.options import OptionsError, prepare_options

_SWIN = {'type': 'SwinIR', 'in_chans': 3, 'img_size': 16, 'window_size': 4, 'img_range': 1.0, 'depths': [2, 2],
         'embed_dim': 12, 'num_heads': [2, 3], 'mlp_ratio': 2.0}
# tiny configs of each recognised architecture (and the variants whose detection differs)
CONFIGS = {
    'rrdb_x4': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 8, 'num_block': 2,
                'num_grow_ch': 4},
    'rrdb_x2_unshuffle': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 2, 'num_feat': 8,
                          'num_block': 1, 'num_grow_ch': 4},
    'rrdb_x1_unshuffle': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1, 'num_feat': 8,
                          'num_block': 1, 'num_grow_ch': 4},
    'srvgg_prelu_x4': {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 3,
                       'upscale': 4, 'act_type': 'prelu'},
    'srvgg_prelu_x2': {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 1,
                       'upscale': 2, 'act_type': 'prelu'},
    'msrresnet_x4': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2,
                     'upscale': 4},
    'msrresnet_x3': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                     'upscale': 3},
    'edsr_x2': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2},
    'edsr_x3': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 3},
    'rcan_x4': {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 2, 'num_block': 2,
                'squeeze_factor': 4, 'upscale': 4},
    'swinir_pixelshuffle_x2': {**_SWIN, 'upscale': 2, 'upsampler': 'pixelshuffle', 'resi_connection': '1conv'},
    'swinir_direct_x3_3conv': {**_SWIN, 'upscale': 3, 'upsampler': 'pixelshuffledirect', 'resi_connection': '3conv',
                               'ape': True, 'patch_norm': False},
    'swinir_nearest_x4': {**_SWIN, 'upscale': 4, 'upsampler': 'nearest+conv', 'resi_connection': '1conv',
                          'img_size': 32},
    'swinir_denoise_x1': {**_SWIN, 'upscale': 1, 'upsampler': '', 'resi_connection': '1conv', 'qkv_bias': False},
}


def _random_net(network_g: dict, seed: int = 0) -> torch.nn.Module:
    """The arch with random weights, biases and PReLU slopes included (zero-initialised ones would hide swaps)."""
    torch.manual_seed(seed)
    net = build_network(copy.deepcopy(network_g))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net.eval()


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, size: int = 16) -> bool:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_random_state_dicts_round_trip(name, tmp_path):
    """detect -> build -> strict load -> identical outputs, and every given hyper-parameter is recovered."""
    config = CONFIGS[name]
    net = _random_net(config)
    path = str(tmp_path / f'{name}.pth')
    torch.save({'params_ema': net.state_dict()}, path)
    loaded, network_g = load_network_file(path)
    assert {k: network_g.get(k) for k in config} == config
    assert not loaded.training and _same_outputs(net, loaded)
    assert detect_network_g(net.state_dict()) == network_g  # the in-memory API agrees with the file path


def test_param_key_order_bare_dicts_and_module_prefix(tmp_path):
    config = CONFIGS['rrdb_x4']
    ema, plain = _random_net(config, 0), _random_net(config, 1)
    both = str(tmp_path / 'both.pth')
    torch.save({'params': plain.state_dict(), 'params_ema': ema.state_dict()}, both)
    assert _same_outputs(load_network_file(both)[0], ema)  # params_ema first
    assert _same_outputs(load_network_file(both, 'params')[0], plain)
    only_params = str(tmp_path / 'params.pth')
    torch.save({'params': plain.state_dict()}, only_params)
    assert _same_outputs(load_network_file(only_params)[0], plain)
    assert _same_outputs(load_network_file(only_params, 'params_ema')[0], plain)  # BasicSR's fallback
    bare = str(tmp_path / 'bare.pth')
    torch.save({f'module.{k}': v for k, v in ema.state_dict().items()}, bare)  # DataParallel save, no wrapper
    assert _same_outputs(load_network_file(bare)[0], ema)
    with pytest.raises(KeyError, match="no key 'params_x'"):
        load_network_file(both, 'params_x')


def _old_esrgan(sd: dict, layout: str) -> dict:
    """A BasicSR RRDBNet x4 state dict renamed to ESRGAN's original ``model.N`` or ``RRDB_trunk`` layout."""
    nb = len({k.split('.')[1] for k in sd if k.startswith('body.')})
    if layout == 'model':
        tops = {'conv_first': 'model.0', 'conv_body': f'model.1.sub.{nb}', 'conv_up1': 'model.3',
                'conv_up2': 'model.6', 'conv_hr': 'model.8', 'conv_last': 'model.10'}
        body = (r'body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)', r'model.1.sub.\1.RDB\2.conv\3.0.\4')
    else:
        tops = {'conv_first': 'conv_first', 'conv_body': 'trunk_conv', 'conv_up1': 'upconv1', 'conv_up2': 'upconv2',
                'conv_hr': 'HRconv', 'conv_last': 'conv_last'}
        body = (r'body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)', r'RRDB_trunk.\1.RDB\2.conv\3.\4')
    out = {}
    for k, v in sd.items():
        module, _, kind = k.rpartition('.')
        out[f'{tops[module]}.{kind}' if module in tops else re.sub(body[0], body[1], k)] = v
    return out


@pytest.mark.parametrize('layout', ['model', 'RRDB_trunk'])
def test_old_esrgan_layouts_convert(layout, tmp_path):
    net = _random_net(CONFIGS['rrdb_x4'])
    old = _old_esrgan(net.state_dict(), layout)
    assert 'conv_body.weight' not in old
    path = str(tmp_path / 'old.pth')
    torch.save(old, path)
    loaded, network_g = load_network_file(path)
    assert network_g == CONFIGS['rrdb_x4'] and _same_outputs(net, loaded)
    # an option file cannot use it as is (BasicSR's loaders read BasicSR keys): the error says how to convert
    with pytest.raises(ValueError, match='old ESRGAN key layout.*--convert'):
        resolve_auto_network_g({'network_g': {'type': 'auto'}, 'path': {'pretrain_network_g': path}}, 'x.yml')
    converted = str(tmp_path / 'converted.pth')
    assert detect_main([path, '--convert', converted]) == 0
    again = build_network(copy.deepcopy(network_g))
    again.load_state_dict(torch.load(converted, weights_only=True)['params_ema'], strict=True)
    assert _same_outputs(net, again.eval())


def test_old_esrgan_x2_and_esrgan_plus_are_refused():
    sd = _old_esrgan(_random_net(CONFIGS['rrdb_x4']).state_dict(), 'model')
    x2 = {k: v for k, v in sd.items() if not k.startswith('model.6.')}  # one upsampling step fewer
    with pytest.raises(UnknownArchitectureError, match='1 upsampling step.*only x4'):
        detect_network_g(x2)
    plus = {**sd, 'model.1.sub.0.RDB1.conv1x1.weight': torch.zeros(4, 8, 1, 1)}
    with pytest.raises(UnknownArchitectureError, match='unexpected key.*conv1x1'):
        detect_network_g(plus)


def test_unknown_architectures_name_what_was_found(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': net.state_dict()}, path)
    with pytest.raises(UnknownArchitectureError, match=r'not a state dict of tensors \(top-level keys: state_dict'):
        load_network_file(path)
    with pytest.raises(UnknownArchitectureError, match=r'foreign.pth: no recognised SR architecture.*0\.weight '
                                                       r'\(4, 3, 3, 3\).*1\.running_mean'):
        load_network_file(path, 'state_dict')
    # an arch whose signature matches but whose reader misses a key
    broken = {k: v for k, v in _random_net(CONFIGS['rcan_x4']).state_dict().items()
              if not k.startswith('body.0.conv.')}
    with pytest.raises(UnknownArchitectureError, match='contiguous|lacks'):
        detect_network_g(broken)


def test_srvgg_without_prelu_needs_act_type(tmp_path):
    config = {**CONFIGS['srvgg_prelu_x4'], 'act_type': 'leakyrelu'}
    net = _random_net(config)
    with pytest.raises(UnknownArchitectureError, match='give act_type'):
        detect_network_g(net.state_dict())
    assert detect_network_g(net.state_dict(), {'act_type': 'leakyrelu'}) == config
    with pytest.raises(UnknownArchitectureError, match=r"\['num_feat'\] are read from the weights"):
        detect_network_g(net.state_dict(), {'num_feat': 4})
    # in an option file the auto block carries it
    path = str(tmp_path / 'compact.pth')
    torch.save({'params': net.state_dict()}, path)
    opt = resolve_auto_network_g({'network_g': {'type': 'auto', 'act_type': 'leakyrelu'},
                                  'path': {'pretrain_network_g': path}})
    assert opt['network_g'] == config


def test_option_files_auto_arch(tmp_path):
    """network_g: {type: auto} is resolved where option files are parsed: prepare_options (train/test) and
    load_generator (upscale/benchmark); other keys of the block are checks."""
    config = CONFIGS['rrdb_x2_unshuffle']
    net = _random_net(config)
    ckpt = str(tmp_path / 'x2.pth')
    torch.save({'params_ema': net.state_dict()}, ckpt)
    opt = prepare_options({'name': 'ft', 'scale': 2, 'network_g': {'type': 'auto', 'scale': 2},
                           'path': {'pretrain_network_g': ckpt, 'param_key_g': 'params_ema'}})
    assert opt['network_g'] == config
    # resolved before the scale check: an x2 file with scale 4 data is reported as such
    with pytest.raises(OptionsError, match='network_g.scale is 2 but scale is 4'):
        prepare_options({'name': 'ft', 'scale': 4, 'network_g': {'type': 'auto'}, 'path': {'pretrain_network_g': ckpt}})
    with pytest.raises(OptionsError, match=r'num_block: 3 given, the file has 1'):
        prepare_options({'name': 'ft', 'network_g': {'type': 'auto', 'num_block': 3},
                         'path': {'pretrain_network_g': ckpt}})
    with pytest.raises(OptionsError, match='num_blocks: not an argument of RRDBNet'):
        prepare_options({'name': 'ft', 'network_g': {'type': 'auto', 'num_blocks': 1},
                         'path': {'pretrain_network_g': ckpt}})
    with pytest.raises(OptionsError, match='path.pretrain_network_g, which is not set'):
        prepare_options({'name': 'ft', 'network_g': {'type': 'auto'}, 'path': {}})
    yml = tmp_path / 'auto.yml'
    yml.write_text(yaml.safe_dump({'network_g': {'type': 'auto'}, 'path': {'pretrain_network_g': ckpt}}))
    loaded, network_g = load_generator_and_arch(str(yml))
    assert network_g == config and _same_outputs(net, loaded)
    assert _same_outputs(net, load_generator(ckpt))  # a .pth without network_g
    with pytest.raises(ValueError, match=r'--network-g: network_g \(type "auto"\) disagrees.*scale: 4 given'):
        load_generator(ckpt, {'type': 'auto', 'scale': 4})  # --network-g '{"type": "auto", ...}'


def test_auto_block_passes_arguments_the_weights_do_not_show(tmp_path):
    net = _random_net(CONFIGS['swinir_pixelshuffle_x2'])
    path = str(tmp_path / 'swinir.pth')
    torch.save({'params_ema': net.state_dict()}, path)
    opt = resolve_auto_network_g({'network_g': {'type': 'auto', 'drop_path_rate': 0.0, 'embed_dim': 12},
                                  'path': {'pretrain_network_g': path}})
    assert opt['network_g']['drop_path_rate'] == 0.0 and opt['network_g']['upsampler'] == 'pixelshuffle'
    loaded = build_network(copy.deepcopy(opt['network_g']))
    loaded.load_state_dict(net.state_dict(), strict=True)
    assert _same_outputs(net, loaded.eval())


def test_checked_scale():
    assert checked_scale(CONFIGS['rrdb_x4'], None) == 4 and checked_scale(CONFIGS['edsr_x3'], 3) == 3
    assert checked_scale({'type': 'MSRResNet'}, None) == 4  # the arch's default factor
    with pytest.raises(ValueError, match=r'--scale 2 disagrees with the network \(RRDBNet upscales x4\)'):
        checked_scale(CONFIGS['rrdb_x4'], 2)


def test_upscale_and_benchmark_cli_without_network_g(tmp_path, capsys):
    from nriqa_basicsr.benchmark import main as benchmark_main
    from nriqa_basicsr.upscale import main as upscale_main

    net = _random_net(CONFIGS['srvgg_prelu_x2'])
    ckpt = str(tmp_path / 'compact_x2.pth')
    torch.save({'params': net.state_dict()}, ckpt)
    lr = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), lr)
    assert upscale_main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'sr'), '--model', ckpt]) == 0
    assert cv2.imread(str(tmp_path / 'sr' / 'a.png')).shape == (40, 48, 3)
    assert upscale_main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'sr4'), '--model', ckpt,
                         '--scale', '4']) == 1
    assert '--scale 4 disagrees with the network (SRVGGNetCompact upscales x2)' in capsys.readouterr().err
    hr_dir = tmp_path / 'HR'
    hr_dir.mkdir()
    cv2.imwrite(str(hr_dir / 'img.png'), cv2.resize(lr, (48, 40)))
    common = ['--dataset', f'tiny={hr_dir}', '--metrics', 'psnr', '--device', 'cpu', '--no-progress']
    assert benchmark_main(['--model', 'bicubic', '--model', f'compact={ckpt}', *common,
                           '-o', str(tmp_path / 'bench')]) == 0
    assert '| compact | tiny | 1 |' in open(tmp_path / 'bench' / 'summary.md').read()
    assert 'Scale x2' in open(tmp_path / 'bench' / 'summary.md').read()
    x4 = str(tmp_path / 'rrdb_x4.pth')
    torch.save({'params': _random_net(CONFIGS['rrdb_x4']).state_dict()}, x4)
    assert benchmark_main(['--model', f'a={ckpt}', '--model', f'b={x4}', *common, '-o', str(tmp_path / 'b2')]) == 1
    assert 'different factors (a: x2, b: x4)' in capsys.readouterr().err
    assert benchmark_main(['--model', 'bicubic', *common, '-o', str(tmp_path / 'b3')]) == 1
    assert 'give --scale' in capsys.readouterr().err


# ------------------------------------------------------------------------------ the real Real-ESRGAN x4plus file
@pytest.fixture(scope='module')
def real_esrgan(shared_dir):
    """(checkpoint path, bird LR image path, reference output (3, 288, 288) RGB float32)."""
    ckpt = osp.join(shared_dir, 'pretrained', 'RealESRGAN_x4plus.pth')
    ref = osp.join(shared_dir, 'pretrained', 'reference', 'RealESRGAN_x4plus_Set5_birdx4_ncnn.npy')
    bird = osp.join(shared_dir, 'benchmarks', 'Set5', 'LR_bicubic', 'X4', 'birdx4.png')
    for path in (ckpt, ref, bird):
        if not osp.isfile(path):
            pytest.skip(f'{path} is not available')
    return ckpt, bird, np.load(ref)


def _bird_output(net: torch.nn.Module, bird: str) -> np.ndarray:
    x = torch.from_numpy(cv2.imread(bird)[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        return net(x.contiguous())[0].numpy()


REAL_X4PLUS = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 4, 'num_feat': 64, 'num_block': 23,
               'num_grow_ch': 32}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return type(a) is type(b) and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_real_esrgan_x4plus_every_loading_path(real_esrgan, tmp_path):
    """The detector's network reproduces the reference; the other paths build the same class with bit-identical
    weights (one RRDB-23 forward costs seconds here, so they are not run again; the CLI test runs one)."""
    ckpt, bird, ref = real_esrgan
    net, network_g = load_network_file(ckpt)  # the detector directly
    assert network_g == REAL_X4PLUS and not net.training
    assert np.abs(_bird_output(net, bird) - ref).max() < 1e-5
    from_pth, arch = load_generator_and_arch(ckpt)  # a .pth without network_g
    assert arch == REAL_X4PLUS and not from_pth.training and _same_weights(net, from_pth)
    yml = tmp_path / 'x4plus.yml'
    yml.write_text(yaml.safe_dump({'scale': 4, 'network_g': {'type': 'auto'},
                                   'path': {'pretrain_network_g': ckpt, 'param_key_g': 'params_ema',
                                            'strict_load_g': True}}))
    from_yml, arch = load_generator_and_arch(str(yml))  # option file with the auto arch (upscale/benchmark)
    assert arch == REAL_X4PLUS and not from_yml.training and _same_weights(net, from_yml)
    # the train/test parse path resolves the same block to the same network
    opt = prepare_options(yaml.safe_load(yml.read_text()) | {'name': 'x4plus'})
    assert opt['network_g'] == REAL_X4PLUS


def test_real_esrgan_x4plus_upscale_cli(real_esrgan, tmp_path):
    from nriqa_basicsr.upscale import main as upscale_main

    ckpt, bird, ref = real_esrgan
    assert upscale_main(['-i', bird, '-o', str(tmp_path), '--model', ckpt, '--device', 'cpu']) == 0
    out = cv2.imread(str(tmp_path / 'birdx4.png'))[..., ::-1].astype(np.int16)
    expected = (np.clip(ref, 0, 1) * 255).round().transpose(1, 2, 0).astype(np.int16)
    # 8-bit PNG: equal up to rounding of values within 1e-5 of a half step
    assert out.shape == (288, 288, 3) and np.abs(out - expected).max() <= 1
    assert (out != expected).mean() < 1e-3


@pytest.mark.slow
def test_basicsr_test_pipeline_with_auto_arch(tmp_path):
    """nriqa_basicsr/test.py (BasicSR's test_pipeline, stock SRModel) on an option file with network_g: auto."""
    import subprocess
    import sys
    import uuid

    from conftest import REPO_ROOT

    config = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    ckpt = str(tmp_path / 'msrresnet_x2.pth')
    torch.save({'params': _random_net(config).state_dict()}, ckpt)
    rng = np.random.default_rng(0)
    for sub, size in (('hr', 32), ('lr', 16)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), (rng.random((size, size, 3)) * 255).astype(np.uint8))
    name = f'pytest_detect_{uuid.uuid4().hex[:8]}'
    opt = {'name': name, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
           'network_g': {'type': 'auto', 'upscale': 2},
           'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'hr'),
                                   'dataroot_lq': str(tmp_path / 'lr'), 'io_backend': {'type': 'disk'}}},
           'path': {'pretrain_network_g': ckpt, 'param_key_g': 'params', 'strict_load_g': True},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}}}
    opt_path = tmp_path / 'test.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    results = osp.join(REPO_ROOT, 'results', name)
    try:
        out = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'nriqa_basicsr', 'test.py'), '-opt', str(opt_path)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        log = ''.join(open(osp.join(results, f)).read() for f in os.listdir(results) if f.endswith('.log'))
        assert 'Network: MSRResNet' in log  # BasicSR built the detected arch
        assert re.search(r'# psnr: [\d.]+', log)
    finally:
        import shutil

        shutil.rmtree(results, ignore_errors=True)
