"""Build the built-in demo data set (``nriqa-make-demo-data``): HGGT-layout multi-GT patches from scikit-image's
bundled photos.

Everything here is **synthetic** apart from the photos: the four enhanced ground truths (EGTs) of every patch
come from four classical enhancement operators, and the Positive/Similar/Negative labels come from three
simulated annotators following the rule below. It exists so that the pipeline can be exercised offline in
seconds, not to reproduce HGGT's numbers.

Layout (the HGGT layout, see README)::

    <output>/train/images/{original,01,02,03,04}/<stem>[_0k].png
    <output>/train/labels/{A,B,C}/<stem>.json
    <output>/train/lq_x4/<stem>.png              # MATLAB-bicubic x4 of the original
    <output>/val/...                             # same, from photos not used for training
    <output>/README.md
    <output>/build.json                          # the options it was made with

EGT operators (deterministic, of different strengths):
  01 unsharp masking, strong (σ 1.6, amount 1.2)     02 local contrast (CLAHE on L*, clip 2.5, 4x4 tiles)
  03 detail enhancement (edge-preserving, OpenCV)      04 denoise (non-local means) then mild sharpening

Synthetic annotators: each EGT gets an objective change score
``s = 0.6·log(lapvar(EGT)/lapvar(original)) − 6·(clipped-pixel increase) − 4·(mean |ΔRGB| beyond 0.08)``;
annotator j ∈ {A, B, C} with bias (−0.1, 0, +0.1) and seeded Gaussian noise (σ 0.15) says Positive when
``s + bias + noise > 0.25``, Negative when below −0.05, otherwise Similar.

Deterministic given ``--seed`` on one machine; about 2-5 s for the default sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from collections.abc import Callable, Sequence

import numpy as np

from nriqa_basicsr import cli
from nriqa_basicsr.data.build_multigt import MultiGTBuildConfig, atomic_output_dir, build_patches, lapvar
from nriqa_basicsr.data.enhancers import DEMO_ENHANCERS, build_enhancers
from nriqa_basicsr.data.multigt_source import HGGT_VARIANTS

__all__ = ['ANNOTATORS', 'TRAIN_PHOTOS', 'VAL_PHOTOS', 'build_parser', 'main', 'make_demo_data']

DEFAULT_OUTPUT = osp.join('datasets', 'demo')  # relative to the current directory (the checkout)

TOOL = 'make_demo_data.py'  # the owner named in output_guard's marker beside the output (earlier outputs keep it)
VARIANTS = HGGT_VARIANTS
ANNOTATORS = {'A': -0.1, 'B': 0.0, 'C': 0.1}
TRAIN_PHOTOS = ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina', 'brick',
                'grass', 'gravel', 'moon', 'coins', 'clock')
VAL_PHOTOS = ('chelsea', 'camera')


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo as BGR uint8 (grey photos replicated to three channels)."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def enhance(img: np.ndarray) -> list[np.ndarray]:
    """The four EGTs of one HR patch, in variant order 01..04 (the package's classical enhancers)."""
    return [e(img) for e in build_enhancers(DEMO_ENHANCERS)]


def change_score(original: np.ndarray, egt: np.ndarray) -> float:
    """Objective change score of an EGT (see module docstring)."""
    sharp = 0.6 * np.log((lapvar(egt) + 1.0) / (lapvar(original) + 1.0))
    clipped = float(np.mean((egt == 0) | (egt == 255)) - np.mean((original == 0) | (original == 255)))
    shift = np.abs(egt.astype(np.float64) - original.astype(np.float64)).mean() / 255.0
    return float(sharp - 6.0 * max(clipped, 0.0) - 4.0 * max(shift - 0.08, 0.0))


def annotate(score: float, bias: float, rng: np.random.Generator) -> str:
    """One synthetic annotator's label of an EGT with change score ``score`` (see module docstring)."""
    value = score + bias + rng.normal(0.0, 0.15)
    return 'Positive' if value > 0.25 else ('Negative' if value < -0.05 else 'Similar')


def demo_config(count: int, size: int, scale: int, seed: int) -> MultiGTBuildConfig:
    """The builder's settings for one demo split. The texture rule is the demo's original one (std over all
    colour values, original patch only) so the demo data, and the README numbers made from it, stay as before.
    ``hr_dirs`` and ``out`` are not used by ``build_patches`` (the photos come from scikit-image)."""
    return MultiGTBuildConfig(hr_dirs=('skimage.data',), out='-', patch_size=size, step=size * 3 // 4, scale=scale,
                              enhancers=DEMO_ENHANCERS, lq='bicubic', min_std=20, min_lapvar=20, std_of='rgb',
                              texture_check='original', max_patches=count, seed=seed)


def write_split(root: str, photos: tuple[str, ...], count: int, size: int, scale: int,
                rng: np.random.Generator, seed: int = 0) -> dict[str, int]:
    """Patches, EGTs and LR through the multi-GT builder, then the synthetic labels (same ``rng``)."""
    sources: list[tuple[str, Callable[[], np.ndarray]]] = [(n, (lambda n=n: load_photo(n))) for n in photos]
    groups: list[tuple[str, list[np.ndarray]]] = []
    summary = build_patches(root, sources, demo_config(count, size, scale, seed), rng,
                            on_group=lambda name, imgs: groups.append((name, imgs)))
    if summary.candidates < count:
        raise ValueError(f'only {summary.candidates} usable {size}px patches in {photos}; ask for fewer.')
    tally = {'Positive': 0, 'Similar': 0, 'Negative': 0}
    for annotator in ANNOTATORS:
        os.makedirs(osp.join(root, 'labels', annotator))
    for stem, (hr, *egts) in groups:
        scores = [change_score(hr, egt) for egt in egts]
        for annotator, bias in ANNOTATORS.items():
            record = {'Picture_1': {'Name': f'{stem}.png', 'File': 'original', 'Label': None}}
            for k, (variant, score) in enumerate(zip(VARIANTS[1:], scores)):
                label = annotate(score, bias, rng)
                tally[label] += 1
                record[f'Picture_{k + 2}'] = {'Name': f'{stem}_{variant}.png', 'File': variant, 'Label': label}
            record['Time_cost'] = {'Start': None, 'End': None, 'Total': 0, 'Synthetic': True}
            with open(osp.join(root, 'labels', annotator, f'{stem}.json'), 'w') as f:
                json.dump(record, f, indent=1)
    return tally


DATA_README = """# nriqa_basicsr demo data (synthetic labels and EGTs)

Made by `nriqa-make-demo-data --seed {seed}` from scikit-image's bundled photos. HGGT layout:
`<split>/images/{{original,01,02,03,04}}`, `<split>/labels/{{A,B,C}}/*.json`, `<split>/lq_x{scale}/` (MATLAB
bicubic of the original). Train photos: {train}; val photos: {val}.

**Synthetic:** the enhanced GTs come from four classical operators (01 strong unsharp mask, 02 local
contrast, 03 detail enhancement, 04 denoise + mild sharpening) and the labels from three simulated
annotators (see `nriqa-make-demo-data --help` for the rule). Numbers obtained on this data say nothing about
HGGT or real human preferences.

Patches: {size}x{size}; train groups: {n_train}; val groups: {n_val}; annotator votes (train): {tally}.
"""


def _legacy_demo_owner(folder: str) -> str | None:
    """A demo folder written before any marker existed is recognised by its README's first line."""
    try:
        with open(osp.join(folder, 'README.md'), encoding='utf-8', errors='replace') as f:
            return TOOL if f.readline().startswith('# nriqa_basicsr demo data') else None
    except OSError:
        return None


def make_demo_data(out: str, num_train: int = 40, num_val: int = 6, size: int = 256, scale: int = 4,
                   seed: int = 0, overwrite: bool = False) -> str:
    """Build the demo data in a temporary folder and rename it to ``out`` (complete or absent); returns ``out``.

    ``overwrite`` replaces only an earlier output of this script (``nriqa_basicsr.output_guard``)."""
    info = {'tool': TOOL, 'num_train': num_train, 'num_val': num_val, 'size': size, 'scale': scale, 'seed': seed}
    with atomic_output_dir(out, TOOL, overwrite, info=info, legacy_owner=_legacy_demo_owner) as tmp:
        rng = np.random.default_rng(seed)
        tally = write_split(osp.join(tmp, 'train'), TRAIN_PHOTOS, num_train, size, scale, rng, seed)
        write_split(osp.join(tmp, 'val'), VAL_PHOTOS, num_val, size, scale, rng, seed)
        with open(osp.join(tmp, 'README.md'), 'w') as f:
            f.write(DATA_README.format(seed=seed, scale=scale, train=', '.join(TRAIN_PHOTOS),
                                       val=', '.join(VAL_PHOTOS), size=size, n_train=num_train, n_val=num_val,
                                       tally=tally))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='nriqa-make-demo-data', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_output(parser, default=DEFAULT_OUTPUT, help=f'output folder (default: {DEFAULT_OUTPUT})')
    parser.add_argument('--num-train', type=int, default=40, help='training groups (default: 40)')
    parser.add_argument('--num-val', type=int, default=6, help='validation groups (default: 6)')
    parser.add_argument('--size', type=int, default=256, help='HR patch size, a multiple of --scale (default: 256)')
    parser.add_argument('--scale', type=int, default=4, help='LR scale (default: 4)')
    cli.add_seed(parser)
    cli.add_overwrite(parser, help="replace this tool's own earlier output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-make-demo-data`` / ``scripts/make_demo_data.py``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size % args.scale:
        parser.error(f'--size {args.size} must be a multiple of --scale {args.scale}')
    try:
        out = make_demo_data(args.output, args.num_train, args.num_val, args.size, args.scale, args.seed,
                             args.overwrite)
    except (FileExistsError, ValueError) as exc:  # BuildError and OutputPathError are ValueErrors
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'demo data written to {out}')
    return 0
