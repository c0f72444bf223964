"""``benchmark.py --run``: every checkpoint of one training run, its metrics over iterations, the best per criterion."""

import copy
import csv
import json
import os.path as osp
import re

import pytest
import torch
import yaml
from test_guard import DIRS, PLUGIN, _ft_opt, _val_loader
from test_model import _batch, _build, _model_opt, _stage_one

from nriqa_basicsr.best_checkpoint import RunCheckpoint, load_run, run_checkpoints
from nriqa_basicsr.guard import GuardStop, criterion_scores


def _write_run_yml(exp, opt):
    """The option file as the user wrote it, copied into the experiment folder (what BasicSR does)."""
    (exp / 'run.yml').write_text(yaml.safe_dump(json.loads(json.dumps(opt))))


def _table(md, dataset):
    """criterion → (role, best iter, checkpoint) of the run summary's table for ``dataset``."""
    section = md.split(f'## {dataset}')[1].split('\n## ')[0]
    rows = [[c.strip() for c in line.strip('|').split('|')] for line in section.splitlines()
            if line.startswith('| ') and not line.startswith('| criterion')]
    return {r[0]: (r[1], int(r[2]), r[4]) for r in rows}


def test_benchmark_run_compares_the_checkpoints_of_a_hacked_run(data, tmp_path, capsys):
    """A run fooling its guide (huge weight on gradient magnitude) stopped by its guard: the benchmark of its
    checkpoints on the validation images reproduces the run's own validation values, picks the best iterations
    per criterion, marks the guard's firing and fires the guard on these values too."""
    from nriqa_basicsr.benchmark import main as benchmark

    root, scores = data
    exp = tmp_path / 'hack_run'
    opt = _ft_opt(root, scores, exp, weight=50.0, stop=True, patience=2)
    opt['val']['metrics']['sharpness']['crop_border'] = 4  # as benchmark.py (border = scale)
    opt['custom_iqa'] = {'guard_sharpness': {'class': PLUGIN}}
    _write_run_yml(exp, opt)
    model = _build(copy.deepcopy(opt))
    loader, batch = _val_loader(root), _batch(root, scores)
    with pytest.raises(GuardStop) as info:
        for it in range(1, 21):
            model.feed_data(batch)
            model.optimize_parameters(it)
            if it % 2 == 0:  # BasicSR's order: save, then validate
                model.save(0, it)
                model.validation(loader, it, None, False)
    fired_at = int(re.search(r'at iter (\d+)', str(info.value)).group(1))
    history = [(e['iter'], e['values']) for e in json.loads((exp / 'models' / 'best.json').read_text())['history']]
    assert [i for i, _ in history] == list(range(2, fired_at + 1, 2))

    hr, lr = osp.join(root, 'val', 'images', 'original'), osp.join(root, 'val', 'lq_x4')
    out = tmp_path / 'bench'
    assert benchmark(['--run', str(exp), '--dataset', f'val={hr}:{lr}', '--dataset', f'bicubic_lr={hr}', '--rgb',
                      '--device', 'cpu', '--no-progress', '-o', str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out / 'summary.csv') as f:
        measured = {r['model']: r for r in csv.DictReader(f) if r['dataset'] == 'val'}
    # the run's val.metrics by default, each checkpoint once, the same values as the run's own validation
    assert set(measured) == {f'hack_run@{i}' for i, _ in history}
    for it, values in history:
        row = measured[f'hack_run@{it}']
        for key, name in (('psnr', 'psnr'), ('ssim', 'ssim'), ('sharpness', 'guard_sharpness')):
            assert float(row[name]) == pytest.approx(values[key], rel=1e-5, abs=1e-6), (it, key)

    md = (out / 'run_summary.md').read_text()
    assert md in printed
    table = _table(md, 'val')
    best_of = {k: max(history, key=lambda h: (h[1][k], h[0]))[0] for k in ('psnr', 'ssim', 'sharpness')}
    crit = criterion_scores(history, {'psnr': 1.0, 'ssim': 1.0}, DIRS)  # the default criterion: the judges
    best_crit = max(range(len(history)), key=lambda i: (crit[i], i))
    assert best_of['sharpness'] == fired_at and best_of['psnr'] < fired_at  # the guide soars, the judges fall
    assert table['val.best (z-scored 1·psnr + 1·ssim)'] == ('–', history[best_crit][0],
                                                           f'net_g_{history[best_crit][0]}.pth')
    assert table['psnr ↑'] == ('judge', best_of['psnr'], f'net_g_{best_of["psnr"]}.pth')
    assert table['ssim ↑'] == ('judge', best_of['ssim'], f'net_g_{best_of["ssim"]}.pth')
    assert table['guard_sharpness ↑'] == ('guide', fired_at, f'net_g_{fired_at}.pth')
    assert f"guard FIRED during training at iter {fired_at}" in md
    assert f"guard on these images: FIRED at iter {fired_at}:" in md
    assert f'val.best picked iter {model.val_tracker.book.kept[0]}' in md
    other = _table(md, 'bicubic_lr')  # a second test set gets its own table (and its own line in the plot)
    assert set(other) == set(table) and other['guard_sharpness ↑'][:2] == ('guide', fired_at)
    assert (out / 'run_summary.png').stat().st_size > 5000


def test_run_checkpoints_of_a_lora_run_load_adapters_over_the_base(data, tmp_path):
    """FT (LoRA) runs save adapters per iteration and merged weights at the end: both load as the trained net."""
    root, scores = data
    base = _stage_one(data, tmp_path)
    exp = tmp_path / 'ft'
    opt = _model_opt(root, scores, 'original', exp, lora={'rank': 2}, pretrain=base)
    with pytest.raises(FileNotFoundError, match='no generator checkpoints'):
        load_run(str(exp))
    model = _build(copy.deepcopy(opt))
    x = torch.rand(1, 3, 12, 12)
    expected = {}
    for it in (4, -1):  # adapters away from zero (so the base alone differs), saved at iter 4 and at the end
        for p in model.net_g.parameters():
            if p.requires_grad:
                p.data.normal_(0, 0.1)
        model.model_ema(0)
        model.save(0, it)
        with torch.no_grad():
            expected[it] = model.net_g_ema.eval()(x)
    with pytest.raises(ValueError, match='need the run\'s option file with network_g_lora'):
        load_run(str(exp))
    _write_run_yml(exp, opt)
    run = load_run(str(exp))
    models = exp / 'models'
    # no validation history: net_g_latest.pth stands at train.total_iter (10) of the option file
    assert run.checkpoints == [RunCheckpoint(4, str(models / 'net_g_lora_4.pth'), adapters=True),
                               RunCheckpoint(10, str(models / 'net_g_latest.pth'))]
    assert run.guard is None and run.fired_iteration is None and run.benchmark_metrics() == []
    # the merged latest file wins over the adapters of its iteration (no base needed)
    assert run_checkpoints(str(models), 4) == [RunCheckpoint(4, str(models / 'net_g_latest.pth'))]
    for checkpoint, it in zip(run.checkpoints, (4, -1)):
        net, network_g = run.load(checkpoint)
        assert network_g['type'] == 'RRDBNet'
        with torch.no_grad():
            assert (net(x) - expected[it]).abs().max() <= 1e-5
    with torch.no_grad():
        assert (expected[4] - expected[-1]).abs().max() > 1e-3  # the two checkpoints differ
