import subprocess
import sys
import textwrap

from conftest import REPO_ROOT


def test_basicsr_imports_on_pinned_stack():
    from basicsr.data.degradations import random_mixed_kernels

    kernel = random_mixed_kernels(['iso'], [1.0], kernel_size=21, sigma_x_range=(0.6, 5), sigma_y_range=(0.6, 5))
    assert kernel.shape == (21, 21)
    assert abs(kernel.sum() - 1.0) < 1e-5


def test_functional_tensor_alias_points_to_current_module():
    import torchvision.transforms.functional as current
    import torchvision.transforms.functional_tensor as legacy

    assert legacy.rgb_to_grayscale is current.rgb_to_grayscale


def test_loose_version_fallback_orders_versions():
    from nriqa_basicsr.patches import _LooseVersion

    assert _LooseVersion('2.14.1+cu128') >= '1.12.0'
    assert _LooseVersion('1.7.0') < _LooseVersion('1.10.0')
    assert _LooseVersion('2.0') == '2.0.0'


def test_basicsr_imports_without_distutils():
    """Python 3.12 without setuptools' distutils: the fallback module must let basicsr's archs import."""
    code = textwrap.dedent('''
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == 'distutils' or name.startswith('distutils.') or name == '_distutils_hack':
                    raise ImportError('distutils blocked for this test')
        sys.meta_path.insert(0, Block())
        for mod in [m for m in sys.modules if m.startswith('distutils')]:
            del sys.modules[mod]
        import nriqa_basicsr
        from basicsr.archs.arch_util import LooseVersion
        from basicsr.archs.rrdbnet_arch import RRDBNet
        print(type(LooseVersion('1.0')).__name__, RRDBNet.__name__)
    ''')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['_LooseVersion', 'RRDBNet']


def test_registration_of_every_new_name():
    from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY

    from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
    from nriqa_basicsr.losses.nriqa_loss import NRIQALoss
    from nriqa_basicsr.metrics.nriqa_metric import calculate_fr_iqa, calculate_nriqa

    assert LOSS_REGISTRY.get('NRIQALoss') is NRIQALoss
    assert DATASET_REGISTRY.get('MultiGTDataset') is MultiGTDataset
    assert METRIC_REGISTRY.get('calculate_nriqa') is calculate_nriqa
    assert METRIC_REGISTRY.get('calculate_fr_iqa') is calculate_fr_iqa


def test_entry_scripts_apply_the_shims_before_basicsr():
    """Standalone scripts import nriqa_basicsr (import-time shims of nriqa_basicsr.patches) before basicsr."""
    import ast
    import glob
    import os.path as osp

    files = glob.glob(osp.join(REPO_ROOT, 'scripts', '*.py')) + [osp.join(REPO_ROOT, 'nriqa_basicsr', 'train.py'),
                                                                  osp.join(REPO_ROOT, 'nriqa_basicsr', 'test.py')]
    for path in files:
        order = []
        for node in ast.parse(open(path).read()).body:  # module level only
            if isinstance(node, ast.Import):
                order += [a.name.split('.')[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                order.append(node.module.split('.')[0])
        if 'basicsr' in order:
            assert 'nriqa_basicsr' in order[:order.index('basicsr')], f'{path} imports basicsr before the shims'
