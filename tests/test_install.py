"""A non-editable install (``pip install .``) has working ``nriqa-*`` commands that find their weights from the
environment and the current directory, not from the checkout."""

import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from nriqa_basicsr.cli import COMMANDS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def _run(cmd: list[str], cwd: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{cmd}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}'
    return proc


@pytest.mark.slow
def test_installed_package_runs_its_commands_outside_the_checkout(tmp_path):
    import cv2

    site = tmp_path / 'site'
    # the wheel of this checkout, not editable: nothing can reach back into the source tree
    _run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation', '--no-index',
          '--target', str(site), ROOT], str(tmp_path), dict(os.environ))
    elsewhere = tmp_path / 'elsewhere'
    weights = tmp_path / 'my_weights'
    elsewhere.mkdir()
    weights.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), NRIQA_WEIGHTS_DIR=str(weights), HF_HUB_OFFLINE='1',
               TORCH_HOME=str(tmp_path / 'torch_home'))
    probe = _run([sys.executable, '-c', 'import nriqa_basicsr, nriqa_basicsr.iqa.weights as w; '
                  'print(nriqa_basicsr.__file__); print("\\n".join(w.search_dirs()))'], str(elsewhere), env)
    package, *dirs = probe.stdout.split('\n')
    assert package.startswith(str(site)), package  # the installed copy, not the checkout's
    assert dirs[0] == str(weights)  # $NRIQA_WEIGHTS_DIR first
    assert str(elsewhere / 'experiments' / 'pretrained_models' / 'iqa') in dirs
    assert not any(d.startswith((ROOT, str(site))) for d in dirs if d)

    bin_dir = site / 'bin'
    assert {c for c in COMMANDS if (bin_dir / c).is_file()} == set(COMMANDS), sorted(os.listdir(bin_dir))
    for command in ('nriqa-check', 'nriqa-upscale', 'nriqa-demo'):
        assert _run([str(bin_dir / command), '--help'], str(elsewhere), env).stdout.startswith('usage: ')
    # a real evaluation through the installed command: MATLAB NIQE (basicsr's pristine model) and pyiqa's
    # NIQE, whose weight file the package generates into its cache offline
    hr = elsewhere / 'hr'
    hr.mkdir()
    yy, xx = np.mgrid[0:256, 0:256]
    img = (127 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + np.random.default_rng(0).normal(0, 8, (256, 256)))
    cv2.imwrite(str(hr / 'a.png'), np.repeat(img.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2))
    out = _run([str(bin_dir / 'nriqa-benchmark'), '--model', 'bicubic', '--dataset', f'toy={hr}', '--metrics',
                'psnr', 'niqe_matlab_y', 'niqe', '--scale', '4', '-o', 'bench', '--no-progress', '--device', 'cpu'],
               str(elsewhere), env)
    assert osp.isfile(elsewhere / 'bench' / 'summary.csv'), out.stdout[-2000:]
    assert not osp.exists(osp.join(site, 'experiments')) and not osp.exists(osp.join(site, 'bench'))
