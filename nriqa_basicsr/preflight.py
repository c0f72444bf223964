"""Start-up check of every file a run will read: all missing ones in one report, each with where to get it.

A BasicSR run discovers its files one at a time: the dataset when the loader is built, the pretrained generator
when the model is built, VGG19 when the perceptual loss is built (a raw ``URLError`` offline), IQA weights when a
scorer is built, and the weights of validation metrics only at the first validation, perhaps a day later. Every
failed try leaves an ``experiments/<name>_archived_*`` folder. :func:`collect_requirements` resolves all of
them from the parsed options *without building anything or writing to disk*:

* dataset folders, label folders, score files, meta-info files (``datasets.<phase>.*``);
* pretrained networks and an explicit resume state (``path.pretrain_network_*``, ``path.resume_state``);
* VGG weights of BasicSR's ``PerceptualLoss`` (BasicSR's ``VGG_PRETRAIN_PATH`` or torchvision's cache file);
* the checkpoints and backbones of every IQA metric used in GT selection, in a loss and in validation, found
  by pyiqa's file names on this project's weight search path (:mod:`nriqa_basicsr.iqa.weights`).

:func:`check_run_files` raises :class:`PreflightError` listing every missing file with the option that asked for
it, the address to get it from and the name to save it as. Files that pyiqa / torchvision would download at
start-up count as missing only offline (``NRIQA_OFFLINE`` / ``HF_HUB_OFFLINE`` or no network); online they are
listed as downloads. Custom metrics (:mod:`nriqa_basicsr.iqa.custom`, e.g. ``cnniqa_live``) are checked by the
``weights_file`` / ``url`` they were registered with; they are never downloaded.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import os.path as osp
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ['PreflightError', 'PreflightReport', 'Requirement', 'WeightSource', 'check_option_file', 'check_run_files',
           'build_parser', 'collect_requirements', 'load_option_file', 'main', 'metric_weight_sources', 'run_warnings']

HGGT_README = 'https://github.com/ChrisDud0257/HGGT/blob/main/PosNegGTSR/datasets/README.md'
HGGT_TRAIN = 'https://drive.google.com/file/d/1RVc6zZ8XfcAxA11HCDwKLtScysdP6MK1/view?usp=share_link'
HGGT_TEST100 = 'https://drive.google.com/file/d/1Cic8bfE7e3gBDabsfKmge5R0BRrfdazv/view?usp=sharing'
BASICSR_DATASETS = 'https://github.com/XPixelGroup/BasicSR/blob/master/docs/DatasetPreparation.md'
BASICSR_MODEL_ZOO = 'https://github.com/XPixelGroup/BasicSR/blob/master/docs/ModelZoo.md'
_RESRGAN = 'https://github.com/xinntao/Real-ESRGAN/releases/download'

# Released SR checkpoints the option files start from (file name -> download address).
KNOWN_RELEASES: dict[str, str] = {
    'RealESRNet_x4plus.pth': f'{_RESRGAN}/v0.1.1/RealESRNet_x4plus.pth',
    'RealESRGAN_x4plus.pth': f'{_RESRGAN}/v0.1.0/RealESRGAN_x4plus.pth',
    'RealESRGAN_x4plus_netD.pth': f'{_RESRGAN}/v0.2.2.3/RealESRGAN_x4plus_netD.pth',
    'ESRGAN_SRx4_DF2KOST_official-ff704c30.pth': f'{_RESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth',
}

# A paper-size training file: the work per step of HGGT / Real-ESRGAN (batch 12, 256² GT crops).
PAPER_BATCH, PAPER_GT_SIZE = 12, 256


@dataclass
class Requirement:
    """One file or folder a run reads."""

    kind: str                  # 'dataset', 'labels', 'score file', 'pretrained network', 'VGG weights', ...
    path: str                  # where the run will look (absolute), or the file name for searched weights
    options: list[str]         # the option(s) that ask for it
    found: bool
    source: str = ''           # where to get it (address or command)
    save_as: str = ''          # where to put it (path or directory + file name)
    downloadable: bool = False  # fetched automatically at start-up when online
    searched: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f'[{self.kind}] {self.path}', f'    asked for by: {", ".join(self.options)}']
        if self.searched:
            lines.append(f'    searched: {", ".join(self.searched)}')
        if self.source:
            lines.append(f'    get it from: {self.source}')
        if self.save_as:
            lines.append(f'    save as: {self.save_as}')
        return '\n'.join(lines)


@dataclass
class PreflightReport:
    """Everything resolved by :func:`collect_requirements`."""

    requirements: list[Requirement]
    offline: bool
    warnings: list[str] = field(default_factory=list)
    option_problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[Requirement]:
        """Files not on disk that the run cannot obtain by itself (downloads count only offline)."""
        return [r for r in self.requirements if not r.found and (self.offline or not r.downloadable)]

    @property
    def downloads(self) -> list[Requirement]:
        """Files not on disk that pyiqa / torchvision will download at start-up (online only)."""
        return [r for r in self.requirements if not r.found and r.downloadable and not self.offline]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.option_problems

    def format(self) -> str:
        parts = []
        if self.option_problems:
            parts.append('Invalid options:\n' + '\n'.join(f'  - {p}' for p in self.option_problems))
        if self.missing:
            why = ' (offline: nothing can be downloaded)' if self.offline else ''
            parts.append(f'{len(self.missing)} required file(s) missing{why}:\n'
                         + '\n'.join(r.describe() for r in self.missing))
        if self.downloads:
            parts.append(f'{len(self.downloads)} file(s) will be downloaded at start-up:\n'
                         + '\n'.join(r.describe() for r in self.downloads))
        parts.extend(f'Warning: {w}' for w in self.warnings)
        found = sum(r.found for r in self.requirements)
        parts.append(f'{found} of {len(self.requirements)} required files and folders found.'
                     + (' Ready to run.' if self.ok else ''))
        return '\n\n'.join(parts)


class PreflightError(FileNotFoundError):
    """Files a run needs are missing; the message lists all of them with their sources."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        super().__init__('The run cannot start (nothing was created):\n\n' + report.format())


# ---------------------------------------------------------------------------------------------- IQA weights
@dataclass(frozen=True)
class WeightSource:
    """A weight file a metric loads: its file name (as searched for) and its download address."""

    file_name: str
    url: str
    kind: str = 'IQA weights'
    hub: str = 'search'        # 'search': the weight search path; 'torchvision': also torch.hub's checkpoints;
    #                            'huggingface': a Hugging Face repository in the HF cache (file_name = repo id)
    subdirs: tuple[str, ...] = ()   # sub-folders of each search directory also searched (custom metrics)
    downloadable: bool = True       # fetched by pyiqa / torchvision / timm when online


def _pyiqa_arch(arch_type: str) -> type | None:
    from pyiqa.utils.registry import ARCH_REGISTRY

    if arch_type not in ARCH_REGISTRY:
        try:  # pyiqa imports arch modules lazily; its own resolver finds e.g. CFANet in topiq_arch
            from pyiqa.archs import _lazy_import_arch
            _lazy_import_arch(arch_type)
        except Exception:  # noqa: BLE001  (an unknown arch is reported by the caller)
            return None
    return ARCH_REGISTRY.get(arch_type) if arch_type in ARCH_REGISTRY else None


def _arch_params(cls: type, opts: dict[str, Any]) -> dict[str, Any]:
    """The arch's constructor defaults overridden by the metric options (what pyiqa will pass)."""
    params = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
              if p.default is not inspect.Parameter.empty}
    params.update(opts)
    return params


# Which entry of an arch's ``default_model_urls`` its constructor loads, by arch (pyiqa 0.1.16's code).
_URL_KEYS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    'MUSIQ': lambda p: 'ava' if isinstance(p.get('pretrained'), bool) else p.get('pretrained'),
    'LPIPS': lambda p: f'{p.get("version")}_{p.get("net")}',
    'NIMA': lambda p: f'{p.get("base_model_name")}-{p.get("train_dataset")}',
    'CFANet': lambda p: p.get('model_name'),
    'NIQE': lambda p: 'url',
    'BRISQUE': lambda p: 'url',
}
# torchvision ImageNet backbones the archs build (pyiqa 0.1.16): LPIPS by its ``net`` option, others fixed
_LPIPS_BACKBONES = {'alex': 'alexnet', 'vgg': 'vgg16', 'vgg16': 'vgg16', 'squeeze': 'squeezenet1_1'}
_TV_BACKBONES = {'DISTS': 'vgg16', 'DBCNN': 'vgg16', 'PAQ2PIQ': 'resnet18'}
# options naming a timm backbone created with pretrained=True
_TIMM_KEYS = ('base_model_name', 'semantic_model_name')


def _torchvision_source(arch: str) -> WeightSource:
    import torchvision

    url = torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url
    return WeightSource(osp.basename(url), url, 'torchvision backbone', 'torchvision')


def metric_weight_sources(name: str, options: dict[str, Any]) -> tuple[list[WeightSource], list[str]]:
    """Weight files the metric ``name`` with block ``options`` loads, and notes on what could not be resolved.

    Read from pyiqa's configuration and arch code (no network is built): the metric's checkpoint from the arch's
    ``default_model_urls``, torchvision backbones of LPIPS, timm backbones (Hugging Face) of NIMA / TOPIQ.
    """
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from nriqa_basicsr.iqa.custom import CustomMetricError, get_custom_metric

    # pyiqa names are case-sensitive in places (e.g. 'clipiqa+_vitL14_512'); the options may not be
    key = name if name in DEFAULT_CONFIGS else {n.lower(): n for n in DEFAULT_CONFIGS}.get(name.lower(), name)
    try:
        spec = get_custom_metric(name)
    except CustomMetricError as exc:
        return [], [f'metric "{name}": {exc}']
    if spec is not None:  # this project's registry (nriqa_basicsr.iqa.custom): its weights_file, never downloaded
        if spec.weights_file is None or options.get('weights_path'):
            return [], []
        return [WeightSource(spec.weights_file, spec.url or f'the release of custom metric "{spec.name}"',
                             subdirs=spec.weights_subdirs, downloadable=False)], []
    if key not in DEFAULT_CONFIGS:
        return [], [f'"{name}" is neither a pyiqa metric nor a registered custom metric; its files were not checked.']
    metric_opts = dict(DEFAULT_CONFIGS[key]['metric_opts'])
    arch_type = metric_opts.pop('type')
    ours = {'weights_path', 'weights_dir', 'normalize', 'score_range', 'check_range', 'fast_path', 'better',
            'crop_border', 'input_order', 'metric', 'type', 'test_y_channel'}
    metric_opts.update({k: v for k, v in options.items() if k not in ours})
    cls = _pyiqa_arch(arch_type)
    if cls is None:
        return [], [f'pyiqa arch {arch_type} of metric "{name}" not found; its weight files were not checked.']
    params = _arch_params(cls, metric_opts)
    module = sys.modules[cls.__module__]
    urls: dict[str, str] = getattr(module, 'default_model_urls', {}) or {}
    sources: list[WeightSource] = []
    notes: list[str] = []
    if urls and params.get('pretrained', True) is not False and not options.get('weights_path') \
            and not params.get('pretrained_model_path'):
        url_key = _URL_KEYS[arch_type](params) if arch_type in _URL_KEYS else None
        if url_key is None:  # generic arch: an option value naming an entry, else the only entry
            url_key = next((v for v in params.values() if isinstance(v, str) and v in urls), None)
            url_key = url_key or (next(iter(urls)) if len(urls) == 1 else None)
        if url_key in urls:
            url = urls[url_key]
            sources.append(WeightSource(osp.basename(url.split('?')[0]), url))
        else:
            notes.append(f'metric "{name}": which of pyiqa\'s {len(urls)} {arch_type} checkpoints it loads could '
                         f'not be determined from its options; build it once online to fetch it.')
    if arch_type == 'LPIPS' and params.get('net') in _LPIPS_BACKBONES:
        sources.append(_torchvision_source(_LPIPS_BACKBONES[params['net']]))
    elif arch_type in _TV_BACKBONES:
        sources.append(_torchvision_source(_TV_BACKBONES[arch_type]))
    for opt_key in _TIMM_KEYS:
        backbone = params.get(opt_key)
        if isinstance(backbone, str) and not backbone.startswith(('clip', 'swin')):
            import timm

            cfg = timm.models.get_pretrained_cfg(backbone)
            if cfg is not None and cfg.hf_hub_id:
                sources.append(WeightSource(cfg.hf_hub_id, f'https://huggingface.co/{cfg.hf_hub_id}',
                                            'timm backbone', 'huggingface'))
    return sources, notes


def _hub_checkpoints_dir() -> str:
    import torch.hub

    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _hf_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str)
               for f in ('model.safetensors', 'pytorch_model.bin', 'open_clip_pytorch_model.bin'))


def _resolve_weight(src: WeightSource, extra_dirs: list[str]) -> Requirement:
    """Where ``src`` would be found (the resolver's search order), without copying or generating anything."""
    from nriqa_basicsr.iqa.releases import release_candidates
    from nriqa_basicsr.iqa.weights import _GENERATED, search_dirs

    if src.hub == 'huggingface':
        hf_home = os.environ.get('HF_HOME', osp.join('~', '.cache', 'huggingface'))
        return Requirement(src.kind, src.file_name, [], _hf_cached(src.file_name), src.url,
                           f'the Hugging Face cache ({hf_home}): `huggingface-cli download {src.file_name}` on a '
                           f'connected machine, then copy the cache', downloadable=True)
    base = search_dirs(extra_dirs) + ([_hub_checkpoints_dir()] if src.hub == 'torchvision' else [])
    dirs = [osp.join(d, sub) if sub else d for d in base for sub in ('', *src.subdirs)]
    found = any(osp.isfile(osp.join(d, src.file_name)) for d in dirs) or src.file_name in _GENERATED \
        or any(osp.isfile(p) for p in release_candidates(src.file_name, base))  # e.g. BRISQUE's allmodel
    project = base[len(extra_dirs)] if len(base) > len(extra_dirs) else base[0]
    return Requirement(src.kind, src.file_name, [], found, src.url,
                       f'{src.file_name} in one of the searched directories (e.g. $NRIQA_WEIGHTS_DIR or {project})',
                       downloadable=src.downloadable, searched=dirs)


def _metric_uses(opt: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any], list[str]]]:
    """(metric, option that asks for it, block options, extra weight dirs) for every IQA metric of a run."""
    train = opt.get('train') or {}
    selection = train.get('gt_selection') or {}
    if isinstance(selection, dict) and selection.get('policy') == 'amo':
        metrics = selection.get('metrics') or {}
        for name in [metrics] if isinstance(metrics, str) else metrics:
            per = dict((selection.get('metric_opts') or {}).get(name) or {})
            yield name, f'train.gt_selection.metrics.{name}', per, _dirs(per.get('weights_dir'))
    for key, block in train.items():
        if isinstance(block, dict) and block.get('type') == 'NRIQALoss':
            metrics = block.get('metrics') or {}
            for name in [metrics] if isinstance(metrics, str) else metrics:
                per = dict((block.get('metric_opts') or {}).get(name) or {})
                yield (name, f'train.{key}.metrics.{name}', per,
                       _dirs(per.get('weights_dir')) + _dirs(block.get('weights_dir')))
    for key, block in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(block, dict) and block.get('type') in ('calculate_nriqa', 'calculate_fr_iqa') \
                and isinstance(block.get('metric'), str):
            yield block['metric'], f'val.metrics.{key}', dict(block), _dirs(block.get('weights_dir'))


def _dirs(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


# ---------------------------------------------------------------------------------------------- data, nets
def _data_source(path: str) -> tuple[str, str]:
    """(where to get it, how to put it) for a dataset path, from what the path names."""
    low = path.replace('\\', '/').lower()
    if 'hggt' in low or 'test-100' in low or 'posneggt' in low:
        archive = HGGT_TEST100 if '/test' in low else HGGT_TRAIN
        part = 'Test-100 archive' if '/test' in low else 'training archive (Train/images + Train/labels)'
        return (f'the HGGT {part}: {archive} (described in {HGGT_README}; non-commercial research only)',
                f'unpack so that this folder exists: {path}')
    if '/demo/' in low:
        return 'generated: nriqa-make-demo-data -o datasets/demo', path
    if any(s in low for s in ('set5', 'set14', 'bsd100', 'urban100', 'div2k', 'df2k', 'flickr2k')):
        return (f'BasicSR\'s dataset preparation guide: {BASICSR_DATASETS}',
                f'{path} (see README "Getting the real data and weights" for the benchmark layout)')
    return 'your own data (README: "Multi-GT data and GT selection" for the layouts)', path


def _score_file_source(path: str, block: dict[str, Any], opt: dict[str, Any]) -> str:
    selection = (opt.get('train') or {}).get('gt_selection') or {}
    metrics = ' '.join(block.get('score_metrics') or []) if isinstance(block.get('score_metrics'), (list, dict)) \
        else (block.get('score_metrics') or 'musiq')
    grid = f' --grid 32 --crop {block.get("gt_size", 256)}' if selection.get('policy') == 'amo_cached' else ''
    return (f'made by: nriqa-score-gts --dataroot {block.get("dataroot_gt")} '
            f'--layout {block.get("layout", "generic")} --metrics {metrics}{grid} -o {path}')


def _abs(path: str, cwd: str) -> str:
    path = osp.expanduser(path)
    return path if osp.isabs(path) else osp.normpath(osp.join(cwd, path))


def _dataset_requirements(opt: dict[str, Any], cwd: str, is_train: bool) -> list[Requirement]:
    reqs = []
    for phase, block in (opt.get('datasets') or {}).items():
        if not isinstance(block, dict) or (phase.startswith('train') and not is_train):
            continue
        for key, kind in (('dataroot_gt', 'dataset'), ('dataroot_lq', 'dataset'), ('dataroot_label', 'labels'),
                          ('meta_info_file', 'meta info file'), ('score_file', 'score file')):
            value = block.get(key)
            if not isinstance(value, str) or not value:
                continue
            path = _abs(value, cwd)
            is_file = key in ('meta_info_file', 'score_file')
            found = osp.isfile(path) if is_file else osp.isdir(path)
            if key == 'score_file':
                source, save_as = _score_file_source(value, block, opt), value
            else:
                source, save_as = _data_source(value)
            option = f'datasets.{phase}.{key}'
            reqs.append(Requirement(kind, path, [option], found, source, save_as))
            if (found and key == 'dataroot_gt' and block.get('type') == 'MultiGTDataset'
                    and block.get('layout') == 'hggt' and (block.get('io_backend') or {}).get('type', 'disk') == 'disk'
                    and not osp.isdir(osp.join(path, 'original'))):
                reqs.append(Requirement('dataset', osp.join(path, 'original'), [option], False, source,
                                        'layout hggt expects <dataroot_gt>/{original,01,02,03,04}/'))
    return reqs


def _network_source(path: str) -> str:
    name = osp.basename(path)
    if name in KNOWN_RELEASES:
        return KNOWN_RELEASES[name]
    parts = osp.normpath(path).split(os.sep)
    if 'experiments' in parts and len(parts) > parts.index('experiments') + 2 \
            and parts[parts.index('experiments') + 2] == 'models':
        run = parts[parts.index('experiments') + 1]
        return (f'the output of the training run named "{run}": run the option file with `name: {run}` (in '
                f'options/) first')
    return (f'no public release of "{name}" is known to this project: train it, or pick a file from BasicSR\'s '
            f'model zoo ({BASICSR_MODEL_ZOO}) and point the option at it')


def _network_requirements(opt: dict[str, Any], cwd: str, is_train: bool) -> list[Requirement]:
    reqs = []
    path_opt = opt.get('path') or {}
    for key, value in path_opt.items():
        wanted = key.startswith('pretrain_network_') or (key == 'resume_state' and is_train
                                                          and not opt.get('auto_resume'))
        if not wanted or not isinstance(value, str) or not value:
            continue
        path = _abs(value, cwd)
        kind = 'resume state' if key == 'resume_state' else 'pretrained network'
        source = 'a training state of an earlier run (experiments/<name>/training_states/<iter>.state)' \
            if key == 'resume_state' else _network_source(value)
        reqs.append(Requirement(kind, path, [f'path.{key}'], osp.isfile(path), source, value))
    return reqs


def _vgg_requirements(opt: dict[str, Any], cwd: str) -> list[Requirement]:
    """BasicSR's ``VGGFeatureExtractor``: ``VGG_PRETRAIN_PATH`` (CWD-relative) if it exists, else torchvision."""
    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH

    reqs = []
    for key, block in (opt.get('train') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'PerceptualLoss'):
            continue
        vgg_type = block.get('vgg_type', 'vgg19')
        basicsr_file = _abs(VGG_PRETRAIN_PATH, cwd)
        src = _torchvision_source(vgg_type)
        tv_file = osp.join(_hub_checkpoints_dir(), src.file_name)
        found = osp.isfile(basicsr_file) or osp.isfile(tv_file)
        reqs.append(Requirement('VGG weights', src.file_name, [f'train.{key}.vgg_type'], found, src.url,
                                f'{basicsr_file} (BasicSR\'s VGG_PRETRAIN_PATH, relative to the working directory) '
                                f'or {tv_file}', downloadable=True, searched=[basicsr_file, tv_file]))
    return reqs


def _merge(reqs: list[Requirement]) -> list[Requirement]:
    """One entry per (kind, path), listing every option that asks for it."""
    merged: dict[tuple[str, str], Requirement] = {}
    for r in reqs:
        k = (r.kind, r.path)
        if k in merged:
            merged[k].options.extend(o for o in r.options if o not in merged[k].options)
        else:
            merged[k] = r
    return list(merged.values())


def run_warnings(opt: dict[str, Any], cuda_available: bool | None = None) -> list[str]:
    """A paper-size training file on a machine without CUDA (BasicSR's ``num_gpu: auto`` falls back silently)."""
    import torch

    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    train = (opt.get('datasets') or {}).get('train') or {}
    batch, size = train.get('batch_size_per_gpu') or 0, train.get('gt_size') or 0
    if cuda or not opt.get('train') or not isinstance(batch, int) or not isinstance(size, int):
        return []
    if batch * size * size < PAPER_BATCH * PAPER_GT_SIZE ** 2 // 4:
        return []
    return [f'no CUDA device: this run (batch {batch}, GT crops {size}², {opt["train"].get("total_iter")} '
            f'iterations, num_gpu: {opt.get("num_gpu")}) would train on the CPU. The plain BasicSR ESRGAN step at '
            f'batch 12 / 256² needs about 15 GiB of GPU memory and ~0.2 s on an H200 (README, "Getting the real '
            f'data and weights"); on a CPU each step takes minutes. Use a CUDA machine (a CUDA build of torch: '
            f'README, "Bring your own CUDA torch").']


def collect_requirements(opt: dict[str, Any], cwd: str | None = None, is_train: bool = True,
                         offline: bool | None = None) -> PreflightReport:
    """Resolve every file the run described by ``opt`` will read; builds nothing and writes nothing."""
    from nriqa_basicsr.iqa.weights import is_offline

    cwd = cwd or os.getcwd()
    reqs = _dataset_requirements(opt, cwd, is_train) + _network_requirements(opt, cwd, is_train)
    notes: list[str] = []
    if is_train:
        reqs += _vgg_requirements(opt, cwd)
    for name, option, block, extra in _metric_uses(opt):
        if option.startswith('train.') and not is_train:
            continue
        sources, found_notes = metric_weight_sources(name, block)
        notes += found_notes
        if block.get('weights_path'):
            path = _abs(block['weights_path'], cwd)
            reqs.append(Requirement('IQA weights', path, [f'{option}.weights_path'], osp.isfile(path),
                                    f'the checkpoint of metric "{name}" (README, "Weights and offline use")', path))
        for src in sources:
            req = _resolve_weight(src, [_abs(d, cwd) for d in extra])
            req.options = [option]
            reqs.append(req)
    report = PreflightReport(_merge(reqs), is_offline() if offline is None else offline, notes)
    if is_train:
        report.warnings += run_warnings(opt)
    return report


def check_run_files(opt: dict[str, Any], cwd: str | None = None, is_train: bool = True,
                    logger: logging.Logger | None = None) -> PreflightReport:
    """:func:`collect_requirements`, raising :class:`PreflightError` when anything is missing; warnings and
    planned downloads are logged."""
    report = collect_requirements(opt, cwd, is_train)
    if not report.ok:
        raise PreflightError(report)
    logger = logger or logging.getLogger('basicsr')
    for warning in report.warnings:
        logger.warning(warning)
    for req in report.downloads:
        logger.info(f'Start-up check: {req.path} ({req.kind}, {", ".join(req.options)}) will be downloaded from '
                    f'{req.source}.')
    return report


# ---------------------------------------------------------------------------------------------- option files
def load_option_file(path: str, is_train: bool = True) -> dict[str, Any]:
    """A BasicSR option file as the run sees it for these checks (safe YAML, ``num_gpu: auto`` resolved,
    dataset ``phase``/``scale`` filled as BasicSR's ``parse_options`` does); reads only ``path``."""
    import torch

    from nriqa_basicsr.yaml_io import load_option_file as load_yaml_options

    opt = load_yaml_options(path, '-opt')
    opt.update(is_train=is_train, dist=False, rank=0, world_size=1, auto_resume=False)
    if opt.get('num_gpu') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    datasets = opt.get('datasets')
    for phase, dataset in (datasets.items() if isinstance(datasets, dict) else []):
        if isinstance(dataset, dict):
            dataset['phase'] = phase.split('_')[0]
            if 'scale' in opt:
                dataset['scale'] = opt['scale']
    return opt


def check_option_file(path: str, cwd: str | None = None, is_train: bool = True) -> PreflightReport:
    """The ``nriqa-check`` command's work: option checks and file resolution of one option file."""
    from nriqa_basicsr.options import OptionsError, check_option_structure, prepare_options

    opt = load_option_file(path, is_train)
    problems = check_option_structure(opt, is_train)
    if problems:  # the sections the file check reads are not there in the expected shape
        return PreflightReport([], offline=False, option_problems=[f'{path}: {p}' for p in problems])
    try:
        prepare_options(opt)
    except OptionsError as exc:
        problems = exc.problems
    report = collect_requirements(opt, cwd, is_train)
    report.option_problems = problems
    return report


def build_parser() -> argparse.ArgumentParser:
    """``nriqa-check``'s command line."""
    from nriqa_basicsr import cli

    parser = argparse.ArgumentParser(
        prog='nriqa-check', description='Check that every file a run needs is there (datasets, labels, score files, '
        'pretrained networks, VGG, IQA weights) and say where to get the missing ones. Changes nothing on disk. '
        'Exit status 0 when the run can start, 1 when files are missing or options are invalid, 2 for an '
        'unreadable option file.')
    cli.add_opt(parser, help='the BasicSR option file (YAML) of the run to check')
    parser.add_argument('--test', action='store_true', help='check a test option file (test.py) instead of training')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-check -opt FILE [--test]``: exit 0 when the run can start, 1 otherwise; writes nothing."""
    args = build_parser().parse_args(argv)
    try:
        report = check_option_file(args.opt, is_train=not args.test)
    except (FileNotFoundError, ValueError) as exc:
        print(f'nriqa-check: {exc}', file=sys.stderr)
        return 2
    print(report.format())
    return 0 if report.ok else 1


if __name__ == '__main__':  # pragma: no cover
    raise SystemExit(main())
