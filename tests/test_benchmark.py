"""nriqa-benchmark (nriqa_basicsr.benchmark) and the evaluation/inference modules behind it."""

import argparse
import copy
import csv
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT

from nriqa_basicsr.benchmark import main as benchmark_main
from nriqa_basicsr.benchmark import run
from nriqa_basicsr.evaluation import list_pairs, load_pair
from nriqa_basicsr.inference import load_generator, upscale_image

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 4}


def _args(tmp_path, **kw):
    args = dict(model=['bicubic'], dataset=[], multigt=None, scale=4, lq_filename_tmpl='{}', metrics=['psnr', 'ssim'],
                rgb=False, network_g=None, param_key=None, tile=0, tile_pad=16, device='cpu', bf16=False,
                weights_dir=None, save_images=False, output=str(tmp_path / 'out'), no_progress=True)
    args.update(kw)
    return argparse.Namespace(**args)


def test_bicubic_matches_published_numbers(shared_dir, tmp_path):
    """Bicubic x4: Set5 28.42 dB / 0.8104 as SR papers print; Set14 with our files 26.09 / 0.7049."""
    bench = osp.join(shared_dir, 'benchmarks')
    args = _args(tmp_path, dataset=[f'Set5={bench}/Set5/HR',
                                    f'Set14={bench}/Set14/HR:{bench}/Set14/LR_bicubic/X4'], lq_filename_tmpl='{}x4')
    _, summary, paths, _ = run(args)
    by = {row['dataset']: row for row in summary}
    assert abs(by['Set5']['psnr'] - 28.42) <= 0.05 and abs(by['Set5']['ssim'] - 0.8104) <= 0.002
    assert abs(by['Set14']['psnr'] - 26.09) <= 0.02 and abs(by['Set14']['ssim'] - 0.7049) <= 0.001
    with open(paths['per_image']) as f:
        assert len(list(csv.DictReader(f))) == 19


@pytest.fixture
def tiny_set(tmp_path):
    from skimage import data

    hr_dir = tmp_path / 'HR'
    hr_dir.mkdir()
    for name, img in (('astronaut', data.astronaut()[:130, :122]), ('coffee', data.coffee()[:128, :128])):
        cv2.imwrite(str(hr_dir / f'{name}.png'), img[..., ::-1])
    return str(hr_dir)


@pytest.fixture
def tiny_model(tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
    path = tmp_path / 'net.pth'
    torch.save({'params_ema': net.state_dict()}, path)
    opt = tmp_path / 'model.yml'
    import yaml

    opt.write_text(yaml.safe_dump({'network_g': NET_G, 'path': {'pretrain_network_g': str(path)}}))
    return str(opt), str(path)


def test_models_reports_and_skipped_metrics(tiny_set, tiny_model, tmp_path):
    opt_path, _ = tiny_model
    args = _args(tmp_path, model=['bicubic', f'tiny={opt_path}'], dataset=[f'tiny={tiny_set}'],
                 metrics=['psnr', 'ssim', 'piqe', 'lpips'])
    rows, summary, paths, speed = run(args)
    assert [r['model'] for r in summary] == ['bicubic', 'tiny'] and len(rows) == 4
    assert set(speed) == {'bicubic', 'tiny'} and all(v > 0 for v in speed.values())
    md = open(paths['summary_md']).read()
    assert '| bicubic | tiny | 2 |' in md and 'piqe ↓' in md
    assert '`lpips`: Weights for IQA metric "lpips" not found' in md  # offline: listed, never silently dropped
    assert osp.isfile(paths['plot'])


def test_tiled_inference_matches_whole_image(tiny_model):
    opt_path, _ = tiny_model
    net = load_generator(opt_path)
    lr = (np.random.default_rng(0).random((37, 45, 3)) * 255).astype(np.uint8)
    whole = upscale_image(net, lr, 4)
    tiled = upscale_image(net, lr, 4, tile=16, tile_pad=10)
    assert whole.shape == (148, 180, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_bad_inputs_name_the_files(tiny_set, tmp_path):
    lr_dir = tmp_path / 'LR'
    lr_dir.mkdir()
    cv2.imwrite(str(lr_dir / 'astronautx4.png'), np.zeros((30, 30, 3), np.uint8))
    cv2.imwrite(str(lr_dir / 'coffeex4.png'), np.zeros((32, 32, 3), np.uint8))
    pairs = list_pairs(tiny_set, str(lr_dir), '{}x4')
    with pytest.raises(ValueError, match=r'astronautx4\.png is 30x30 but .*astronaut\.png \(mod-cropped to 120x128\) '
                                         r'needs an x4 LR of 30x32'):
        load_pair(pairs[0], 4)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images found'):
        list_pairs(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='no LR image'):
        list_pairs(tiny_set, str(tmp_path / 'empty'), '{}x4')
    assert benchmark_main(['--model', 'bicubic', '--dataset', f'x={tmp_path / "empty"}', '--scale', '4',
                           '-o', str(tmp_path / 'o'), '--no-progress']) == 1


def test_demo_report_is_written_with_its_caveats(tmp_path):
    from nriqa_basicsr.demo.run import write_report

    rows = [{'model': 'Bicubic', 'psnr': 29.0, 'ssim': 0.79, 'niqe': 8.8, 'piqe': 85.0},
            {'model': 'Ori', 'psnr': 25.0, 'ssim': 0.76, 'niqe': 10.0, 'piqe': 78.0}]
    path = write_report(str(tmp_path), rows, {'Ori': 12.0}, {'niqe': 5.0, 'piqe': 40.0}, pairs=[None] * 6)
    text = open(path).read()
    assert '| Ori | 25.00 | 0.7600 | 10.000 | 78.00 |' in text and 'HR originals (reference)' in text
    assert '**synthetic** demo data' in text and 'stay below bicubic on PSNR' in text and 'Ori 12 s' in text
    assert osp.isfile(tmp_path / 'perception_distortion.png') and osp.isfile(tmp_path / 'metrics.csv')


def test_upscale_folder_and_adapters(tiny_model, tmp_path):
    import yaml

    from nriqa_basicsr.archs.lora import inject_lora, lora_state_dict
    from nriqa_basicsr.upscale import main as upscale_main

    opt_path, ckpt = tiny_model
    lr_dir = tmp_path / 'lr'
    lr_dir.mkdir()
    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(lr_dir / name), (np.random.default_rng(1).random((20, 24, 3)) * 255).astype(np.uint8))
    assert upscale_main(['-i', str(lr_dir), '-o', str(tmp_path / 'sr'), '--model', opt_path, '--scale', '4',
                         '--tile', '8']) == 0
    out = cv2.imread(str(tmp_path / 'sr' / 'a.png'))
    assert out.shape == (80, 96, 3) and sorted(p.name for p in (tmp_path / 'sr').iterdir()) == ['a.png', 'b.png']
    # adapters + base named in an FT option file
    base = load_generator(opt_path)
    inject_lora(base, {'rank': 2}, 'RRDBNet')
    for name, p in base.named_parameters():
        if 'lora_B' in name:
            p.data.normal_(0, 0.1)
    torch.save({'params_ema': lora_state_dict(base)}, tmp_path / 'adapters.pth')
    ft_opt = tmp_path / 'ft.yml'
    ft_opt.write_text(yaml.safe_dump({'network_g': NET_G, 'network_g_lora': {'rank': 2},
                                      'path': {'pretrain_network_g': ckpt, 'param_key_g': 'params_ema'}}))
    adapted = load_generator(str(ft_opt), adapters=str(tmp_path / 'adapters.pth'))
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(adapted(x), base.eval()(x), atol=1e-6)
    assert upscale_main(['-i', str(lr_dir / 'a.png'), '-o', str(tmp_path / 'ft_sr'), '--model', str(ft_opt),
                         '--adapters', str(tmp_path / 'adapters.pth'), '--scale', '4']) == 0
    assert upscale_main(['-i', str(tmp_path / 'nothing'), '-o', str(tmp_path / 'x'), '--model', opt_path,
                         '--scale', '4']) == 1


def test_multigt_evaluation_averages_over_positive_gts(tmp_path):
    from basicsr.metrics import calculate_psnr

    from nriqa_basicsr.data.labels import POSITIVE
    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.demo.data import make_demo_data
    from nriqa_basicsr.evaluation import bicubic_upscale

    demo = make_demo_data(str(tmp_path / 'demo'), num_train=2, num_val=2, size=128, seed=4)
    images, labels_dir, lr_dir = f'{demo}/val/images', f'{demo}/val/labels', f'{demo}/val/lq_x4'
    args = _args(tmp_path, multigt=[f'val={images}:{labels_dir}:{lr_dir}'], metrics=['psnr', 'piqe'])
    rows, summary, paths, _ = run(args)
    source = MultiGTSource(images, 'hggt', dataroot_label=labels_dir)
    codes, _ = source.read_labels()
    expected_psnr, expected_gold = [], []
    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.metrics.nriqa_metric import image_to_tensor

    piqe = build_scorer('piqe', device='cpu')
    for i, name in enumerate(source.groups):
        gts = [cv2.imread(source.path(name, k)) for k in range(5)]
        refs = [gts[k] for k in range(5) if codes[i, k] == POSITIVE] or [gts[0]]
        sr = bicubic_upscale(cv2.imread(osp.join(lr_dir, f'{name}.png')), 4)
        expected_psnr.append(np.mean([calculate_psnr(sr, r, 4, test_y_channel=True) for r in refs]))
        with torch.no_grad():
            expected_gold.append(np.mean([float(piqe.raw(image_to_tensor(r, 4))[0]) for r in refs]))
    by = {r['model']: r for r in summary}
    assert by['bicubic']['psnr'] == pytest.approx(np.mean(expected_psnr), abs=1e-6)
    gold = by['gold standard (positive GTs)']
    assert np.isnan(gold['psnr']) and gold['piqe'] == pytest.approx(np.mean(expected_gold), rel=1e-5)
    assert '| gold standard (positive GTs) | val | 2 | – | ' in open(paths['summary_md']).read()


def test_checkpoint_plus_arch_name(tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    from nriqa_basicsr.cli import parse_network_g

    # the stock defaults are the ESRGAN / Real-ESRGAN x4 generator (BasicSR's own RRDBNet defaults, now spelled out)
    assert parse_network_g('RRDBNet', 4) == {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                                             'num_block': 23, 'num_grow_ch': 32, 'scale': 4}
    assert parse_network_g('{"type": "RRDBNet", "num_block": 2}', 4) == {'type': 'RRDBNet', 'num_block': 2}
    net = RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    torch.save({'params_ema': net.state_dict()}, tmp_path / 'esrgan.pth')
    built = load_generator(str(tmp_path / 'esrgan.pth'), parse_network_g('RRDBNet', 4))
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in net.parameters())


def test_step_benchmark_compares_with_basicsr_on_the_same_batch(tmp_path):
    import json

    from nriqa_basicsr.bench.step import main as bench_step_main

    out = tmp_path / 'step.json'
    assert bench_step_main(['-opt', osp.join(REPO_ROOT, 'options', 'demo', 'train_demo_amo.yml'), '--device', 'cpu',
                            '--batch-size', '1', '--gt-size', '192', '--iters', '1', '--warmup', '1',
                            '-o', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['baseline']['model_type'] == 'SRModel' and result['nriqa']['model_type'] == 'NRIQAModel'
    assert result['policy'] == 'amo' and result['batch'] == 1 and result['gt_size'] == 192  # NIQE: 2x2 blocks of 96
    assert result['nriqa']['candidate scoring (AMO)_ms'] > 0
    assert result['ratio'] == pytest.approx(result['nriqa']['step_ms'] / result['baseline']['step_ms'])


def test_random_vgg_is_basicsrs_only_inside_the_benchmark(tmp_path, monkeypatch):
    """bench.step points BasicSR's VGG19 path at a random file for its own models only, then restores it."""
    import basicsr.archs.vgg_arch as vgg_arch
    import torchvision

    from nriqa_basicsr.bench.step import random_weights

    monkeypatch.chdir(tmp_path)  # BasicSR's relative default path is absent here
    monkeypatch.setattr(torchvision.models, 'vgg19', lambda weights=None: torch.nn.Linear(2, 2))  # small stand-in
    before = vgg_arch.VGG_PRETRAIN_PATH
    opt = {'path': {}, 'train': {'perceptual_opt': {'vgg_type': 'vgg19'}}}
    with random_weights([opt, copy.deepcopy(opt)], torch.device('cpu'), str(tmp_path)):
        assert vgg_arch.VGG_PRETRAIN_PATH == str(tmp_path / 'vgg19_random.pth')
        assert set(torch.load(vgg_arch.VGG_PRETRAIN_PATH)) == {'weight', 'bias'}
    assert vgg_arch.VGG_PRETRAIN_PATH == before
    with pytest.raises(RuntimeError), random_weights([opt], torch.device('cpu'), str(tmp_path)):
        raise RuntimeError('a failed benchmark')
    assert vgg_arch.VGG_PRETRAIN_PATH == before


def test_precision_check_runs_fp32_twice_and_low_precision_once(tmp_path):
    import json

    from nriqa_basicsr.bench.precision import main as bench_precision_main

    out = tmp_path / 'precision.json'
    assert bench_precision_main(['-opt', osp.join(REPO_ROOT, 'options', 'demo', 'train_demo_ori.yml'), '--device',
                                 'cpu', '--iters', '2', '--batch-size', '2', '--gt-size', '64', '--groups', '4',
                                 '--demo-data', str(tmp_path / 'demo'), '-o', str(out)]) == 0
    result = json.loads(out.read_text())
    runs = result['runs']
    assert set(runs) == {'fp32_seed0', 'fp32_seed1', 'bf16_cl_seed0'}
    # on a CPU amp is ignored: same init, same data order, so bf16 == fp32 seed 0 exactly
    assert runs['bf16_cl_seed0']['val_psnr_y'] == runs['fp32_seed0']['val_psnr_y']
    assert result['within_noise'] and all(5 < r['val_psnr_y'] < 60 for r in runs.values())
