"""The third-party patches of nriqa_basicsr.patches: each is active only inside its scope and restored after."""

import types

import pytest
import torch


def test_vgg_pretrain_path_is_scoped(tmp_path):
    import basicsr.archs.vgg_arch as vgg_arch
    import torchvision
    from basicsr.archs.vgg_arch import VGGFeatureExtractor

    from nriqa_basicsr.patches import vgg_pretrain_path

    default = vgg_arch.VGG_PRETRAIN_PATH
    torch.manual_seed(0)
    state = torchvision.models.vgg19(weights=None).state_dict()
    path = tmp_path / 'vgg19_random.pth'
    torch.save(state, path)
    with vgg_pretrain_path(str(path)):
        assert vgg_arch.VGG_PRETRAIN_PATH == str(path)
        extractor = VGGFeatureExtractor(['relu1_1'], vgg_type='vgg19', use_input_norm=False)
    assert vgg_arch.VGG_PRETRAIN_PATH == default
    assert torch.equal(extractor.vgg_net[0].weight, state['features.0.weight'])  # the file given was loaded


def test_vgg_pretrain_path_restores_on_error(tmp_path):
    import basicsr.archs.vgg_arch as vgg_arch

    from nriqa_basicsr.patches import vgg_pretrain_path

    default = vgg_arch.VGG_PRETRAIN_PATH
    with pytest.raises(RuntimeError, match='boom'), vgg_pretrain_path(str(tmp_path / 'x.pth')):
        raise RuntimeError('boom')
    assert vgg_arch.VGG_PRETRAIN_PATH == default


def test_swap_attributes_refuses_unknown_names_and_restores_in_reverse():
    from nriqa_basicsr.patches import swap_attributes

    owner = types.SimpleNamespace(a=1)
    with swap_attributes((owner, 'a', 2), (owner, 'a', 3)):
        assert owner.a == 3
    assert owner.a == 1
    with pytest.raises(AttributeError, match=r'\.b: no such attribute'), swap_attributes((owner, 'a', 5),
                                                                                         (owner, 'b', 6)):
        pass
    assert owner.a == 1 and not hasattr(owner, 'b')


def test_basicsr_pipeline_swaps_every_listed_name_and_restores_it():
    import importlib

    from nriqa_basicsr.patches import BASICSR_PIPELINE_HOOKS, basicsr_pipeline

    modules = {(m, n): importlib.import_module(m) for m, n in BASICSR_PIPELINE_HOOKS}
    before = {key: getattr(mod, key[1]) for key, mod in modules.items()}
    names = {n for _, n in BASICSR_PIPELINE_HOOKS}
    replacements = {n: (lambda *a, _n=n, **k: _n) for n in names}
    with basicsr_pipeline(**replacements):
        for (module, name), mod in modules.items():
            assert getattr(mod, name) is replacements[name], f'{module}.{name} not replaced'
    assert {key: getattr(mod, key[1]) for key, mod in modules.items()} == before
    assert len(BASICSR_PIPELINE_HOOKS) == 6 and all(BASICSR_PIPELINE_HOOKS.values())  # each with its reason


def test_basicsr_pipeline_needs_every_hook():
    from nriqa_basicsr.patches import basicsr_pipeline

    with pytest.raises(TypeError, match='needs exactly'), basicsr_pipeline(init_dist=print):
        pass


def _fake_library(monkeypatch):
    """``fakelib.util.fetch`` and a module that took it with ``from fakelib.util import fetch``."""
    import sys

    def fetch(url, dst=None):
        return f'original:{url}'

    util, user = types.ModuleType('fakelib.util'), types.ModuleType('fakelib.user')
    util.fetch = user.fetch = fetch
    for mod in (types.ModuleType('fakelib'), util, user):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return fetch, util, user


def test_scoped_rebinding_covers_existing_and_new_bindings_and_leaves_nothing(monkeypatch):
    import sys

    from nriqa_basicsr.patches import ScopedRebinding

    fetch, util, user = _fake_library(monkeypatch)
    other = types.ModuleType('otherlib')
    other.fetch = fetch  # outside the prefix: never touched
    monkeypatch.setitem(sys.modules, 'otherlib', other)
    rebinding = ScopedRebinding('fakelib.util', 'fetch', prefix='fakelib')
    with rebinding.scope(lambda original, url, dst=None: f'ours:{url}|{original(url)}') as original:
        assert original is fetch and rebinding.active
        assert util.fetch('a') == user.fetch('a') == 'ours:a|original:a'
        assert other.fetch is fetch
        late = types.ModuleType('fakelib.late')  # imported inside the scope, as pyiqa's lazy arch modules are
        late.fetch = util.fetch
        monkeypatch.setitem(sys.modules, 'fakelib.late', late)
    assert not rebinding.active
    assert util.fetch is fetch and user.fetch is fetch and late.fetch is fetch


def test_scoped_rebinding_other_threads_and_nested_scopes(monkeypatch):
    import threading

    from nriqa_basicsr.patches import ScopedRebinding

    fetch, util, _ = _fake_library(monkeypatch)
    rebinding = ScopedRebinding('fakelib.util', 'fetch', prefix='fakelib')
    seen = []
    with rebinding.scope(lambda original, url: f'outer:{url}'):
        thread = threading.Thread(target=lambda: seen.append(util.fetch('t')))
        thread.start()
        thread.join()
        with rebinding.scope(lambda original, url: f'inner:{url}'):
            assert util.fetch('x') == 'inner:x'
        assert util.fetch('x') == 'outer:x' and util.fetch is not fetch
    assert seen == ['original:t'] and util.fetch is fetch


def test_iqa_weight_downloads_are_restored_after_a_build(tmp_path):
    import sys

    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as dl
    import torch.hub

    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.patches import PYIQA_DOWNLOAD, TORCH_HUB_DOWNLOAD

    hub_before, hf_before = torch.hub.download_url_to_file, hf_constants.HF_HUB_OFFLINE
    original = dl.load_file_from_url
    build_scorer('niqe', 'NR', 'cpu', weights_dir=str(tmp_path))  # imports pyiqa's niqe_arch lazily, inside
    assert 'pyiqa.archs.niqe_arch' in sys.modules
    assert not PYIQA_DOWNLOAD.active and not TORCH_HUB_DOWNLOAD.active
    assert dl.load_file_from_url is original
    for name, mod in list(sys.modules.items()):
        if name.startswith('pyiqa') and hasattr(mod, 'load_file_from_url'):
            assert mod.load_file_from_url is original, name
    assert torch.hub.download_url_to_file is hub_before and hf_constants.HF_HUB_OFFLINE == hf_before


def test_global_rngs_seeded_is_reproducible_and_restores_the_streams():
    import random

    import numpy as np

    from nriqa_basicsr.patches import global_rngs_seeded

    np.random.seed(1)
    random.seed(1)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(1)
    random.seed(1)
    with global_rngs_seeded(7):
        first = (np.random.rand(), random.random())
    with global_rngs_seeded(7):
        assert (np.random.rand(), random.random()) == first
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)  # as if nothing had drawn
