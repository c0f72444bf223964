"""Test set-up: offline, isolated caches, compat shims before any basicsr import, shared fixtures.

The environment is set when pytest loads this file, before any test module (and so torch or pyiqa, which read
their cache folders at import time) is imported; torch and the package are imported in :func:`pytest_configure`.
"""

import os
import os.path as osp
import shutil
import tempfile

import pytest

_SESSION_TMP = tempfile.mkdtemp(prefix='nriqa-tests-')
os.environ['TORCH_HOME'] = osp.join(_SESSION_TMP, 'torch_home')
os.environ['NRIQA_CACHE_DIR'] = osp.join(_SESSION_TMP, 'nriqa_cache')
os.environ['NRIQA_OFFLINE'] = '1'
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ.pop('NRIQA_WEIGHTS_DIR', None)
os.environ['MPLBACKEND'] = 'Agg'  # no display: every test plots to files

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
SHARED = osp.abspath(osp.join(REPO_ROOT, osp.pardir, 'shared'))


def pytest_configure(config: pytest.Config) -> None:
    import torch

    import nriqa_basicsr  # noqa: F401  (compat shims + registration, before any test imports basicsr)

    torch.set_num_threads(2)


@pytest.fixture(scope='session')
def shared_dir() -> str:
    """``../shared`` (benchmarks, real IQA weights); tests using it skip when it is absent."""
    if not osp.isdir(SHARED):
        pytest.skip('../shared is not available')
    return SHARED


@pytest.fixture(scope='session')
def musiq_weights(tmp_path_factory) -> str:
    """A random-init MUSIQ (KonIQ head) saved under pyiqa's file name, as a user's downloaded file would be."""
    import torch
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    net = MUSIQ(pretrained=False, num_class=1)
    weights_dir = tmp_path_factory.mktemp('musiq_weights')
    path = weights_dir / 'musiq_koniq_ckpt-e95806b9.pth'
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope='session')
def lpips_weights(tmp_path_factory) -> str:
    """Directory with a random ImageNet-AlexNet backbone and random LPIPS heads, under their real file names."""
    import torch
    import torchvision
    from pyiqa.archs.lpips_arch import LPIPS

    from nriqa_basicsr.iqa.weights import redirect_downloads

    torch.manual_seed(0)
    weights_dir = tmp_path_factory.mktemp('lpips_weights')
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), weights_dir / 'alexnet-owt-7be5be79.pth')
    with redirect_downloads('lpips', str(weights_dir)):
        net = LPIPS(pretrained=False)
    for lin in net.lins:  # random positive heads, as trained LPIPS heads are
        lin.model[-1].weight.data.uniform_(0.01, 0.1)
    torch.save(net.state_dict(), weights_dir / 'LPIPS_v0.1_alex-df73285e.pth')
    return str(weights_dir)


@pytest.fixture(scope='session')
def photo():
    """scikit-image's astronaut (512x512 RGB), as a (1, 3, H, W) tensor in [0, 1]."""
    import torch
    from skimage import data

    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).unsqueeze(0).float() / 255


@pytest.fixture(scope='module')
def data(tmp_path_factory, musiq_weights):
    """Tiny HGGT-layout demo set (6 groups of 128 px) with a PIQE score file and score grid."""
    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.data.scoring import score_dataset
    from nriqa_basicsr.demo.data import make_demo_data
    from nriqa_basicsr.iqa import build_scorer

    root = str(tmp_path_factory.mktemp('model_demo') / 'demo')
    make_demo_data(root, num_train=6, num_val=1, size=128, seed=7)
    scores = osp.join(root, 'scores_piqe.npz')
    source = MultiGTSource(osp.join(root, 'train', 'images'), 'hggt')
    score_dataset(source, {'piqe': build_scorer('piqe', device='cpu')}, scores, grid=(32, 64), progress=False)
    # the NR-IQA loss uses MUSIQ (random weights, found through NRIQA_WEIGHTS_DIR like a user's download):
    # unlike PIQE it is finite on the flat outputs of an untrained generator
    os.environ['NRIQA_WEIGHTS_DIR'] = osp.dirname(musiq_weights)
    yield root, scores
    os.environ.pop('NRIQA_WEIGHTS_DIR', None)


@pytest.fixture
def run_names():
    """Experiment names a test runs through train.py; their folders are removed afterwards."""
    names = []
    yield names
    for sub in ('experiments', 'tb_logger'):
        folder = osp.join(REPO_ROOT, sub)
        for entry in os.listdir(folder) if osp.isdir(folder) else []:
            if any(entry.startswith(n) for n in names):
                shutil.rmtree(osp.join(folder, entry), ignore_errors=True)


@pytest.fixture
def basicsr_log():
    """What BasicSR's root logger ('basicsr') writes during the test, whatever handlers an earlier test left:
    its StreamHandler is bound to the stderr of the test that first created it and it does not propagate, so
    capfd/caplog see it only in some orders."""
    import io
    import logging

    class Log:
        def __init__(self) -> None:
            self.stream = io.StringIO()

        @property
        def text(self) -> str:
            return self.stream.getvalue()

    log = Log()
    handler = logging.StreamHandler(log.stream)
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    yield log
    logger.removeHandler(handler)
    logger.setLevel(level)
