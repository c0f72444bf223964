"""Multi-GT training data (HGGT layout) from any folder of HR photos: :func:`build_multigt`.

Each HR image is cut into ``patch_size`` patches on a grid with step ``step`` and a seeded random offset (so the
last patch of a row still fits). Every patch gets K enhanced variants from ``enhancers``
(:mod:`nriqa_basicsr.data.enhancers`); a patch is kept only if it and (``texture_check='all'``) every variant
pass the texture thresholds (standard deviation ≥ ``min_std`` and variance of the Laplacian ≥ ``min_lapvar``,
both on the grey image), which drops flat sky and walls as HGGT does. Images smaller than a patch are skipped
and counted. Output (the layout ``MultiGTDataset`` reads with ``layout: hggt``)::

    <out>/images/original/<stem>-<x>-<y>.png
    <out>/images/01..K/<stem>-<x>-<y>_0k.png
    <out>/lq_x<scale>/<stem>-<x>-<y>.png          # MATLAB bicubic or Real-ESRGAN degradation of the original
    <out>/scores_<metrics>.npz                    # optional, nriqa_basicsr.data.score_file format
    <out>/build.json                              # config and summary of the build (not an image)

No labels are written (there are no annotators); use policies that need none (original, sma, amo, ...).
The output is built in a temporary folder beside ``out`` and renamed into place when complete; the input
folders are never written to. Which folder may be replaced is decided by :mod:`nriqa_basicsr.output_guard`
(its marker ``.<out>.nriqa-output.json`` beside ``out``; ``--overwrite`` replaces only this tool's output).

    nriqa-build-multigt --dataroot ../shared/datasets/BSD200/HR -o datasets/bsd200_mgt --patch-size 192 \\
        --lq realesrgan
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from nriqa_basicsr import cli
from nriqa_basicsr.data.enhancers import DEMO_ENHANCERS, build_enhancers
from nriqa_basicsr.data.image_io import IMAGE_EXTENSIONS, decode_image, list_images
from nriqa_basicsr.output_guard import claim_output_dir, guard_output_dir

__all__ = ['BUILD_INFO', 'TOOL', 'BuildError', 'BuildSummary', 'MultiGTBuildConfig', 'atomic_output_dir',
           'build_multigt', 'build_parser', 'build_patches', 'folder_sources', 'lapvar', 'main', 'read_hr',
           'texture_ok']

TOOL = 'build_multigt.py'  # the owner named in output_guard's marker
BUILD_INFO = 'build.json'  # config and summary, inside the output (the ownership marker lives beside it)
# earlier versions marked their output with this file *inside* it, naming the tool as below
_OLD_MARKER = '.nriqa-build-multigt.json'
_OLD_TOOLS = {'nriqa_basicsr.data.build_multigt': TOOL, 'scripts/make_demo_data.py': 'make_demo_data.py'}


class BuildError(ValueError):
    """Bad build options or inputs (the message names the option or file and the fix)."""


@dataclass(frozen=True)
class MultiGTBuildConfig:
    """Options of :func:`build_multigt` (CLI: ``nriqa-build-multigt --help``)."""

    hr_dirs: tuple[str, ...]
    out: str
    patch_size: int = 256
    step: int | None = None  # grid step; default 3/4 of patch_size (HGGT-style overlap)
    scale: int = 4
    enhancers: tuple[str, ...] = DEMO_ENHANCERS
    lq: Literal['bicubic', 'realesrgan', 'none'] = 'bicubic'
    degradation: dict[str, Any] | None = field(default=None, hash=False)  # overrides of REALESRGAN_X4PLUS
    min_std: float = 20.0
    min_lapvar: float = 20.0
    std_of: Literal['grey', 'rgb'] = 'grey'  # 'rgb': std over all colour values (the demo's original rule)
    texture_check: Literal['all', 'original'] = 'all'  # which variants must pass the thresholds
    max_patches: int | None = None  # a seeded random subset of the kept patches
    seed: int = 0
    score_metrics: tuple[str, ...] = ()
    device: str = 'cpu'  # model enhancers and scorers
    overwrite: bool = False

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__ so lists from callers become hashable tuples
        for name in ('hr_dirs', 'enhancers', 'score_metrics'):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if not self.hr_dirs:
            raise BuildError('hr_dirs: give at least one folder of HR images.')
        if self.scale < 1 or self.patch_size < 8 or self.patch_size % self.scale:
            raise BuildError(f'patch_size {self.patch_size} must be ≥ 8 and a multiple of scale {self.scale}.')
        if self.step is not None and self.step < 1:
            raise BuildError(f'step must be ≥ 1, got {self.step}.')
        if self.lq not in ('bicubic', 'realesrgan', 'none'):
            raise BuildError(f'lq must be bicubic, realesrgan or none, got "{self.lq}".')
        if self.std_of not in ('grey', 'rgb') or self.texture_check not in ('all', 'original'):
            raise BuildError(f'std_of must be grey/rgb and texture_check all/original, got "{self.std_of}", '
                             f'"{self.texture_check}".')
        if self.max_patches is not None and self.max_patches < 1:
            raise BuildError(f'max_patches must be ≥ 1, got {self.max_patches}.')

    @property
    def grid_step(self) -> int:
        return self.step or self.patch_size * 3 // 4

    @property
    def lq_folder(self) -> str | None:
        return None if self.lq == 'none' else f'lq_x{self.scale}'


@dataclass
class BuildSummary:
    """What :func:`build_multigt` wrote and how long each stage took."""

    out: str
    variants: list[str]
    groups: int = 0
    images: int = 0
    skipped_small: list[str] = field(default_factory=list)
    grid_patches: int = 0
    rejected_texture: int = 0
    candidates: int = 0
    lq_folder: str | None = None
    score_file: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def dataset_options(self) -> dict[str, Any]:
        """A ``MultiGTDataset`` option block for this data (add ``gt_size``, ``scale``, ... yourself)."""
        opt: dict[str, Any] = {'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_variants': list(self.variants),
                               'dataroot_gt': osp.join(self.out, 'images')}
        if self.lq_folder:
            opt['dataroot_lq'] = osp.join(self.out, self.lq_folder)
        if self.score_file:
            opt['score_file'] = self.score_file
        return opt

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------ patches
def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def lapvar(img: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (a sharpness / texture measure)."""
    return float(cv2.Laplacian(_grey(img).astype(np.float64), cv2.CV_64F).var())


def texture_ok(img: np.ndarray, min_std: float, min_lapvar: float, std_of: str = 'grey') -> bool:
    std = float((_grey(img) if std_of == 'grey' else img).std())
    return std >= min_std and lapvar(img) >= min_lapvar


def _grid(h: int, w: int, size: int, step: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    # offsets in [0, (d - size) mod step]: the grid moves, the last patch of each row/column still fits
    oy, ox = (int(rng.integers(0, max(1, (d - size) % step + 1))) for d in (h, w))
    return [(y, x) for y in range(oy, h - size + 1, step) for x in range(ox, w - size + 1, step)]


def read_hr(path: str) -> np.ndarray:
    """An HR image as BGR uint8 (grey → three channels, 16-bit → 8-bit, opaque alpha dropped)."""
    with open(path, 'rb') as f:
        img = decode_image(f.read(), path)
    return (img * 255.0).round().astype(np.uint8)


def folder_sources(hr_dirs: Sequence[str]) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """``(stem, loader)`` of every image in the folders (sorted by file name; stems must be unique)."""
    sources: dict[str, str] = {}
    for folder in hr_dirs:
        if not osp.isdir(folder):
            raise BuildError(f'HR folder {folder}: no such folder.')
        names = list_images(folder)
        if not names:
            raise BuildError(f'HR folder {folder}: no images ({", ".join(IMAGE_EXTENSIONS)}).')
        for name in names:
            stem, path = osp.splitext(name)[0], osp.join(folder, name)
            if stem in sources:
                raise BuildError(f'{path} and {sources[stem]} have the same stem "{stem}"; patch names would '
                                 f'collide. Rename one or build the folders separately.')
            sources[stem] = path
    return [(stem, (lambda p=path: read_hr(p))) for stem, path in sources.items()]


def build_patches(folder: str, sources: Sequence[tuple[str, Callable[[], np.ndarray]]], config: MultiGTBuildConfig,
                  rng: np.random.Generator, enhancers: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None,
                  on_group: Callable[[str, list[np.ndarray]], None] | None = None,
                  progress: bool = False) -> BuildSummary:
    """Write the patches of ``sources`` into ``folder`` (which must not exist) in the layout of the module doc.

    Random draws, in order: one grid offset per usable image, then the subset (with ``max_patches``); the
    Real-ESRGAN LR of each patch has its own seed (``config.seed`` and the patch name), so it does not depend on
    which other patches are built. ``on_group(name, [original, egt_1, ...])`` is called for every written group,
    in writing order. No marker, no scores: :func:`build_multigt` adds those. ``summary.candidates`` counts the
    patches that passed; with ``max_patches`` and ``texture_check='all'`` only drawn patches have their
    variants checked, so it counts the others by their original.
    """
    from basicsr.utils.matlab_functions import imresize

    enhancers = list(enhancers) if enhancers is not None else build_enhancers(config.enhancers, config.device)
    variants = ['original'] + [f'{k:02d}' for k in range(1, len(enhancers) + 1)]
    summary = BuildSummary(osp.abspath(folder), variants, lq_folder=config.lq_folder)
    times = dict.fromkeys(('read', 'enhance', 'lq', 'write'), 0.0)
    size, step = config.patch_size, config.grid_step

    def variants_of(patch: np.ndarray) -> list[np.ndarray]:
        t = time.perf_counter()
        out = [patch] + [e(patch) for e in enhancers]
        times['enhance'] += time.perf_counter() - t
        return out

    def passes(imgs: list[np.ndarray]) -> bool:
        return all(texture_ok(v, config.min_std, config.min_lapvar, config.std_of) for v in imgs)

    lq_dir = osp.join(folder, config.lq_folder) if config.lq_folder else None
    for d in [osp.join(folder, 'images', v) for v in variants] + ([lq_dir] if lq_dir else []):
        os.makedirs(d)
    jpeger = None

    def emit(name: str, imgs: list[np.ndarray]) -> None:
        nonlocal jpeger
        if len(imgs) == 1:
            imgs = variants_of(imgs[0])
        t = time.perf_counter()
        lq = None
        if config.lq == 'bicubic':
            lq = imresize(imgs[0].astype(np.float64) / 255.0, 1 / config.scale)
            lq = np.clip(lq * 255, 0, 255).round().astype(np.uint8)
        elif config.lq == 'realesrgan':
            from basicsr.utils import DiffJPEG

            from nriqa_basicsr.data.degradation import degrade_image

            jpeger = jpeger or DiffJPEG(differentiable=False)
            lq = degrade_image(imgs[0], config.scale, [config.seed, zlib.crc32(name.encode())],
                               config.degradation, jpeger=jpeger)
        times['lq'] += time.perf_counter() - t
        t = time.perf_counter()
        for k, (variant, img) in enumerate(zip(variants, imgs)):
            _imwrite(osp.join(folder, 'images', variant, f'{name if k == 0 else f"{name}_{variant}"}.png'), img)
        if lq is not None:
            _imwrite(osp.join(lq_dir, f'{name}.png'), lq)
        times['write'] += time.perf_counter() - t
        summary.groups += 1
        if on_group is not None:
            on_group(name, imgs)

    # pass 1: grid and texture check. Without a subset every kept patch is enhanced, checked and written at
    # once (memory: one image); with max_patches only the originals are checked here, so slow enhancers (SR
    # nets) run on about max_patches patches instead of all of them
    stream = config.max_patches is None
    check_variants = config.texture_check == 'all'
    candidates: list[tuple[int, int, int]] = []
    items = enumerate(sources)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(sources), desc='HR images', unit='img')
    for i, (stem, load) in items:
        t = time.perf_counter()
        img = load()
        times['read'] += time.perf_counter() - t
        summary.images += 1
        h, w = img.shape[:2]
        if h < size or w < size:
            summary.skipped_small.append(f'{stem} ({w}x{h})')
            continue
        for y, x in _grid(h, w, size, step, rng):
            summary.grid_patches += 1
            imgs = [np.ascontiguousarray(img[y:y + size, x:x + size])]
            ok = passes(imgs)  # the original first: flat patches never reach the enhancers
            if ok and stream and check_variants:
                imgs = variants_of(imgs[0])
                ok = passes(imgs[1:])
            if not ok:
                summary.rejected_texture += 1
                continue
            summary.candidates += 1
            if stream:
                emit(f'{stem}-{x}-{y}', imgs)
            else:
                candidates.append((i, y, x))
    if stream:
        summary.seconds = {k: round(v, 3) for k, v in times.items()}
        return summary

    # pass 2: a seeded random subset. texture_check 'original': max_patches drawn at once among the candidates
    # (the demo's draw). 'all': candidates in a seeded random order, enhanced and checked until max_patches
    # pass, which is a uniform subset of the patches whose every variant passes.
    loaded: tuple[int, np.ndarray] | None = None

    def crop(i: int, y: int, x: int) -> np.ndarray:
        nonlocal loaded
        if loaded is None or loaded[0] != i:
            t = time.perf_counter()
            loaded = (i, sources[i][1]())
            times['read'] += time.perf_counter() - t
        return np.ascontiguousarray(loaded[1][y:y + size, x:x + size])

    if not check_variants:
        chosen = sorted(rng.choice(len(candidates), size=min(config.max_patches, len(candidates)),
                                   replace=False).tolist())
        for i, y, x in (candidates[c] for c in chosen):
            emit(f'{sources[i][0]}-{x}-{y}', [crop(i, y, x)])
    else:
        for c in rng.permutation(len(candidates)).tolist():
            if summary.groups == config.max_patches:
                break
            i, y, x = candidates[c]
            imgs = variants_of(crop(i, y, x))
            if not passes(imgs[1:]):
                summary.rejected_texture += 1
                summary.candidates -= 1
                continue
            emit(f'{sources[i][0]}-{x}-{y}', imgs)
    summary.seconds = {k: round(v, 3) for k, v in times.items()}
    return summary


def _imwrite(path: str, img: np.ndarray) -> None:
    if not cv2.imwrite(path, img):
        raise OSError(f'{path}: could not be written (disk full or no permission?).')


# ------------------------------------------------------------------------------------------------ output
def _old_marker_owner(folder: str) -> str | None:
    """The tool an earlier version's marker inside ``folder`` names (``output_guard`` tool names), else None."""
    try:
        with open(osp.join(folder, _OLD_MARKER), encoding='utf-8') as f:
            return _OLD_TOOLS.get(json.load(f).get('tool'))
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def atomic_output_dir(out: str, tool: str = TOOL, overwrite: bool = False, protect: Sequence[str] = (),
                      info: dict[str, Any] | None = None,
                      legacy_owner: Callable[[str], str | None] | None = None) -> Iterator[str]:
    """Yield an empty temporary folder beside ``out``; on success it becomes ``out``, marked as ``tool``'s.

    Whether ``out`` may be (re)placed is :func:`~nriqa_basicsr.output_guard.guard_output_dir`'s decision, checked
    before anything is written: ``out`` must not exist unless ``overwrite`` is set *and* it is ``tool``'s earlier
    output (output_guard's marker, an earlier version's marker inside it, or what ``legacy_owner`` recognises);
    ``protect`` (the inputs) may neither be ``out``, contain it nor lie inside it. ``info`` (read when the block
    ends, so the caller may add to it) is written to ``out/build.json``. On an exception nothing changes.
    """
    out = osp.abspath(osp.expanduser(out))

    def owner(folder: str) -> str | None:
        return (legacy_owner(folder) if legacy_owner is not None else None) or _old_marker_owner(folder)

    guard_output_dir(out, tool, protect, overwrite, inside_inputs=False, legacy_owner=owner)
    parent = osp.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f'.tmp-{osp.basename(out)}-')
    old = None
    try:
        yield tmp
        if info is not None:
            with open(osp.join(tmp, BUILD_INFO), 'w', encoding='utf-8') as f:
                json.dump(info, f, indent=1, default=str)
        if not osp.lexists(out):
            os.replace(tmp, out)
        else:  # a directory cannot be os.replace'd over a non-empty one: move the old build aside first
            old = tempfile.mkdtemp(dir=parent, prefix=f'.old-{osp.basename(out)}-')
            os.replace(out, osp.join(old, 'data'))
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(osp.join(old, 'data'), out)  # put the earlier build back
                raise
        # after the rename: a crash before this leaves an unmarked folder, which --overwrite refuses (safe side)
        claim_output_dir(out, tool, made_now=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _score(folder: str, final_out: str, summary: BuildSummary, config: MultiGTBuildConfig) -> str:
    """Score every variant with ``config.score_metrics`` into a score file the dataset accepts."""
    import hashlib

    import pyiqa
    import torch

    from nriqa_basicsr.data.multigt_source import MultiGTSource
    from nriqa_basicsr.data.score_file import (
        FORMAT,
        ScoreTable,
        dataset_fingerprint,
        save_score_table,
        source_content_fingerprint,
    )
    from nriqa_basicsr.iqa import build_scorer

    def sha256(path: str) -> str:
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()

    source = MultiGTSource(osp.join(folder, 'images'), 'hggt', summary.variants)
    scorers = {m: build_scorer(m, device=config.device) for m in config.score_metrics}
    scores = {m: np.empty((len(source.groups), len(source.variants)), np.float32) for m in scorers}
    with torch.no_grad():
        for i, name in enumerate(source.groups):
            imgs = torch.from_numpy(np.stack(source.read_group(name))[..., ::-1].copy()).permute(0, 3, 1, 2)
            for m, scorer in scorers.items():
                scores[m][i] = scorer(imgs.to(scorer.device)).cpu().numpy()
    meta = {'format': FORMAT, 'variants': source.variants, 'layout': 'hggt', 'io_backend': 'disk',
            'dataset_root': osp.join(final_out, 'images'),
            'fingerprint': dataset_fingerprint(source.groups, source.variants), 'grid': None,
            'content': source_content_fingerprint(source),  # file bytes: the same after the rename
            'made_by': 'nriqa_basicsr.data.build_multigt',
            'metrics': {m: {'pyiqa_version': pyiqa.__version__, 'lower_better': s.lower_better,
                            'stored_as': 'quality (higher is better; lower-better metrics negated)',
                            'options': {k: str(v) for k, v in s.metric_opts.items()},
                            'weight_files': {osp.basename(p): sha256(p) for p in s.weight_files}}
                        for m, s in scorers.items()}}
    name = f'scores_{"_".join(config.score_metrics)}.npz'
    save_score_table(osp.join(folder, name), ScoreTable(meta, list(source.groups), scores))
    return osp.join(final_out, name)


def build_multigt(config: MultiGTBuildConfig, progress: bool = False) -> BuildSummary:
    """Build the multi-GT data set described by ``config`` (see the module docstring); returns what was written."""
    start = time.perf_counter()
    hr_dirs = [osp.abspath(osp.expanduser(d)) for d in config.hr_dirs]
    sources = folder_sources(hr_dirs)
    enhancers = build_enhancers(config.enhancers, config.device)  # before any writing: spec errors first
    rng = np.random.default_rng(config.seed)
    out = osp.abspath(osp.expanduser(config.out))
    info = {'tool': TOOL, 'config': dataclasses.asdict(config)}
    with atomic_output_dir(out, TOOL, config.overwrite, protect=hr_dirs, info=info) as tmp:
        summary = build_patches(tmp, sources, config, rng, enhancers, progress=progress)
        if summary.groups == 0:
            raise BuildError(f'no patch of {config.patch_size}px passed the texture thresholds (min_std '
                             f'{config.min_std}, min_lapvar {config.min_lapvar}) in {len(sources)} image(s) '
                             f'({len(summary.skipped_small)} smaller than a patch); lower patch_size or the '
                             f'thresholds.')
        summary.out = out
        if config.score_metrics:
            t = time.perf_counter()
            summary.score_file = _score(tmp, out, summary, config)
            summary.seconds['score'] = round(time.perf_counter() - t, 3)
        summary.seconds['total'] = round(time.perf_counter() - start, 3)
        info['summary'] = summary.as_dict()
    return summary


# ------------------------------------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    d = MultiGTBuildConfig(hr_dirs=('-',), out='-')
    parser = argparse.ArgumentParser(prog='nriqa-build-multigt', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # several folders, hence not cli.add_dataroot (one folder); the same meaning: inputs, never written to
    parser.add_argument('--dataroot', nargs='+', required=True, metavar='DIR',
                        help='folder(s) of HR photos the patches are cut from (read only)')
    cli.add_output(parser, required=True, help='output folder (must not exist, see --overwrite)')
    parser.add_argument('--patch-size', type=int, default=d.patch_size, help='HR patch size (default %(default)s)')
    parser.add_argument('--step', type=int, help='grid step (default 3/4 of the patch size)')
    parser.add_argument('--scale', type=int, default=d.scale, help='LR scale (default %(default)s)')
    parser.add_argument('--enhancers', nargs='+', default=list(d.enhancers), metavar='SPEC',
                        help='enhancer specs, one per EGT: unsharp, clahe, detail, denoise_unsharp '
                             '(name:key=value,...), or model:path=FILE.pth[,mode=x1|downup][,tile=N] '
                             '(default: %(default)s)')
    parser.add_argument('--lq', choices=['bicubic', 'realesrgan', 'none'], default=d.lq,
                        help='LR of each patch: MATLAB bicubic or the Real-ESRGAN x4plus second-order degradation '
                             '(seeded per patch) (default %(default)s)')
    parser.add_argument('--degradation', help='YAML/JSON file of degradation options overriding Real-ESRGAN x4plus')
    parser.add_argument('--min-std', type=float, default=d.min_std)
    parser.add_argument('--min-lapvar', type=float, default=d.min_lapvar)
    parser.add_argument('--std-of', choices=['grey', 'rgb'], default=d.std_of)
    parser.add_argument('--texture-check', choices=['all', 'original'], default=d.texture_check,
                        help='variants that must pass the thresholds (default %(default)s)')
    parser.add_argument('--max-patches', type=int, help='keep a seeded random subset of this many patches')
    cli.add_seed(parser, default=d.seed)
    parser.add_argument('--score-metrics', nargs='+', default=[], metavar='METRIC',
                        help='also write scores_<metrics>.npz (e.g. niqe) for sma/smp')
    cli.add_device(parser, default=d.device)  # CPU by default: the same data on every machine of one kind
    cli.add_overwrite(parser, help="replace this tool's own earlier output")
    cli.add_no_progress(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-build-multigt`` / ``scripts/build_multigt.py``."""
    import yaml

    parser = build_parser()
    args = parser.parse_args(argv)
    degradation = None
    if args.degradation:
        with open(args.degradation) as f:
            degradation = yaml.safe_load(f)
        if not isinstance(degradation, dict):
            parser.error(f'--degradation {args.degradation}: expected a mapping of option names to values.')
    try:
        config = MultiGTBuildConfig(
            hr_dirs=tuple(args.dataroot), out=args.output, patch_size=args.patch_size, step=args.step, scale=args.scale,
            enhancers=tuple(args.enhancers), lq=args.lq, degradation=degradation, min_std=args.min_std,
            min_lapvar=args.min_lapvar, std_of=args.std_of, texture_check=args.texture_check,
            max_patches=args.max_patches, seed=args.seed, score_metrics=tuple(args.score_metrics),
            device=cli.resolve_device(args.device), overwrite=args.overwrite)
        summary = build_multigt(config, progress=not args.no_progress)
    except (ValueError, OSError) as exc:  # BuildError, EnhancerError, ImageReadError, OutputPathError; FileExistsError
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'{summary.groups} groups of {len(summary.variants)} variants from {summary.images} images '
          f'({summary.grid_patches} grid patches, {summary.rejected_texture} too flat, '
          f'{len(summary.skipped_small)} images smaller than {config.patch_size}px) -> {summary.out}')
    print('seconds: ' + ', '.join(f'{k} {v}' for k, v in summary.seconds.items()))
    print('MultiGTDataset options:\n' + yaml.safe_dump(summary.dataset_options(), sort_keys=False))
    return 0
