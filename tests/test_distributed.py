"""Distributed training through BasicSR's launcher: torchrun, two CPU processes, gloo."""

import json
import os
import os.path as osp
import subprocess
import sys
import uuid

import pytest
import torch
import yaml
from conftest import REPO_ROOT
from test_model import _cli_opt

pytestmark = pytest.mark.slow

# Records, per rank, the groups and crops each iteration trained on and the final generator weights; on rank 1
# the pixel loss of the second iteration is made NaN (rank 0 sees finite values).
_HARNESS = r'''
import json, os, sys
import torch
import nriqa_basicsr
from nriqa_basicsr.models.nriqa_model import NRIQAModel
from nriqa_basicsr.pipeline import train_main

out = os.environ['NRIQA_TEST_OUT']
seen = []
feed, save = NRIQAModel.feed_data, NRIQAModel.save

def feed_data(self, data):
    feed(self, data)
    seen.append({'keys': list(data['key']), 'crops': data['crop'].tolist(), 'selected': self.selected.tolist()})
    if not hasattr(self, 'real_pix'):
        self.real_pix = self.cri_pix
    nan = self.opt['rank'] == 1 and len(seen) == 2
    self.cri_pix = (lambda out, gt: self.real_pix(out, gt) * float('nan')) if nan else self.real_pix

def save_all(self, epoch, current_iter):
    save(self, epoch, current_iter)
    if current_iter == -1:
        rank = self.opt['rank']
        torch.save(self.get_bare_model(self.net_g).state_dict(), os.path.join(out, f'net_g_rank{rank}.pth'))
        json.dump({'seen': seen, 'skips': self.step_guard.skips}, open(os.path.join(out, f'seen_rank{rank}.json'), 'w'))

NRIQAModel.feed_data, NRIQAModel.save = feed_data, save_all
train_main(sys.argv.pop(1))
'''


def test_two_cpu_processes_train_disjoint_data_with_identical_weights(data, tmp_path, run_names):
    """Also: a NaN on one rank makes both ranks skip that step together (no hang, replicas stay equal)."""
    root, scores = data
    name = f'pytest_ddp_{uuid.uuid4().hex[:6]}'
    run_names.append(name)
    opt = _cli_opt(root, scores, name, 'amo', gan=True)
    opt['train']['total_iter'] = 3
    # 6 groups, 2 ranks, batch 3: each epoch is one iteration per rank covering every group once
    yml = tmp_path / 'ddp.yml'
    yml.write_text(yaml.safe_dump(opt))
    harness = tmp_path / 'harness.py'
    harness.write_text(_HARNESS)
    env = dict(os.environ, NRIQA_TEST_OUT=str(tmp_path), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(harness),
           REPO_ROOT, '-opt', str(yml), '--launcher', 'pytorch']
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    records = [json.load(open(tmp_path / f'seen_rank{r}.json')) for r in (0, 1)]
    assert [r['skips'] for r in records] == [1, 1]  # rank 0 skipped rank 1's non-finite step too
    seen = [r['seen'] for r in records]
    assert len(seen[0]) == len(seen[1]) == 3
    groups = sorted(os.path.splitext(f)[0] for f in os.listdir(osp.join(root, 'train', 'images', 'original')))
    for it in range(3):
        a, b = seen[0][it]['keys'], seen[1][it]['keys']
        assert not set(a) & set(b), f'iteration {it + 1}: both ranks trained on {set(a) & set(b)}'
        assert sorted(a + b) == groups  # together, the ranks cover the epoch once
    weights = [torch.load(tmp_path / f'net_g_rank{r}.pth', weights_only=True) for r in (0, 1)]
    assert all(torch.equal(v, weights[1][k]) for k, v in weights[0].items())  # DDP kept the replicas in sync
    models = osp.join(REPO_ROOT, 'experiments', name, 'models')
    saved = torch.load(osp.join(models, 'net_g_latest.pth'), weights_only=True)['params']
    assert all(torch.equal(v, weights[0][k]) for k, v in saved.items())  # rank 0 wrote the checkpoint
    log = ''.join(open(osp.join(REPO_ROOT, 'experiments', name, f)).read()
                  for f in os.listdir(osp.join(REPO_ROOT, 'experiments', name)) if f.endswith('.log'))
    assert 'world_size: 2' in log or 'world_size: 2' in out.stdout + out.stderr
