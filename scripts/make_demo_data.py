#!/usr/bin/env python
"""Build the built-in demo data set: HGGT-layout multi-GT patches from scikit-image's bundled photos.

Everything here is **synthetic** apart from the photos: the four enhanced ground truths (EGTs) of every patch
come from four classical enhancement operators, and the Positive/Similar/Negative labels come from three
simulated annotators following the rule below. It exists so that the pipeline can be exercised offline in
seconds, not to reproduce HGGT's numbers.

Layout (the HGGT layout, see README)::

    <out>/train/images/{original,01,02,03,04}/<stem>[_0k].png
    <out>/train/labels/{A,B,C}/<stem>.json
    <out>/train/lq_x4/<stem>.png              # MATLAB-bicubic x4 of the original
    <out>/val/...                             # same, from photos not used for training
    <out>/README.md

EGT operators (deterministic, of different strengths):
  01 unsharp masking, strong (σ 1.6, amount 1.2)     02 local contrast (CLAHE on L*, clip 2.5, 4x4 tiles)
  03 detail enhancement (edge-preserving, OpenCV)      04 denoise (non-local means) then mild sharpening

Synthetic annotators: each EGT gets an objective change score
``s = 0.6·log(lapvar(EGT)/lapvar(original)) − 6·(clipped-pixel increase) − 4·(mean |ΔRGB| beyond 0.08)``;
annotator j ∈ {A, B, C} with bias (−0.1, 0, +0.1) and seeded Gaussian noise (σ 0.15) says Positive when
``s + bias + noise > 0.25``, Negative when below −0.05, otherwise Similar.

Deterministic given ``--seed``; about 2-5 s for the default sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
from basicsr.utils.matlab_functions import imresize  # noqa: E402

VARIANTS = ('original', '01', '02', '03', '04')
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


def unsharp(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    f = img.astype(np.float32)
    return np.clip(f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma)), 0, 255).round().astype(np.uint8)


def local_contrast(img: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(4, 4)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def enhance(img: np.ndarray) -> list[np.ndarray]:
    """The four EGTs of one HR patch, in variant order 01..04."""
    return [
        unsharp(img, 1.6, 1.2),
        local_contrast(img),
        cv2.detailEnhance(img, sigma_s=10, sigma_r=0.15),
        unsharp(cv2.fastNlMeansDenoisingColored(img, None, 5, 5, 5, 15), 1.0, 0.6),
    ]


def _lapvar(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def change_score(original: np.ndarray, egt: np.ndarray) -> float:
    """Objective change score of an EGT (see module docstring)."""
    sharp = 0.6 * np.log((_lapvar(egt) + 1.0) / (_lapvar(original) + 1.0))
    clipped = float(np.mean((egt == 0) | (egt == 255)) - np.mean((original == 0) | (original == 255)))
    shift = np.abs(egt.astype(np.float64) - original.astype(np.float64)).mean() / 255.0
    return float(sharp - 6.0 * max(clipped, 0.0) - 4.0 * max(shift - 0.08, 0.0))


def annotate(score: float, bias: float, rng: np.random.Generator) -> str:
    value = score + bias + rng.normal(0.0, 0.15)
    return 'Positive' if value > 0.25 else ('Negative' if value < -0.05 else 'Similar')


def patches(img: np.ndarray, size: int, rng: np.random.Generator) -> list[tuple[int, int, np.ndarray]]:
    """Grid patches (stride 3/4 of the size, random offset) that pass HGGT-style texture checks."""
    stride = size * 3 // 4
    h, w = img.shape[:2]
    oy, ox = (int(rng.integers(0, max(1, (d - size) % stride + 1))) for d in (h, w))
    out = []
    for y in range(oy, h - size + 1, stride):
        for x in range(ox, w - size + 1, stride):
            patch = img[y:y + size, x:x + size]
            if patch.std() >= 20 and _lapvar(patch) >= 20:
                out.append((y, x, patch))
    return out


def write_split(root: str, photos: tuple[str, ...], count: int, size: int, scale: int,
                rng: np.random.Generator) -> dict[str, int]:
    candidates = []
    for name in photos:
        candidates += [(name, y, x, p) for y, x, p in patches(load_photo(name), size, rng)]
    if len(candidates) < count:
        raise ValueError(f'only {len(candidates)} usable {size}px patches in {photos}; ask for fewer.')
    chosen = sorted(rng.choice(len(candidates), size=count, replace=False).tolist())
    tally = {'Positive': 0, 'Similar': 0, 'Negative': 0}
    for d in [*(osp.join('images', v) for v in VARIANTS), *(osp.join('labels', a) for a in ANNOTATORS),
              f'lq_x{scale}']:
        os.makedirs(osp.join(root, d))
    for i in chosen:
        name, y, x, hr = candidates[i]
        stem = f'{name}-{x}-{y}'
        egts = enhance(hr)
        cv2.imwrite(osp.join(root, 'images', 'original', f'{stem}.png'), hr)
        for variant, egt in zip(VARIANTS[1:], egts):
            cv2.imwrite(osp.join(root, 'images', variant, f'{stem}_{variant}.png'), egt)
        lq = imresize(hr.astype(np.float64) / 255.0, 1 / scale)
        cv2.imwrite(osp.join(root, f'lq_x{scale}', f'{stem}.png'), np.clip(lq * 255, 0, 255).round().astype(np.uint8))
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

Made by `scripts/make_demo_data.py --seed {seed}` from scikit-image's bundled photos. HGGT layout:
`<split>/images/{{original,01,02,03,04}}`, `<split>/labels/{{A,B,C}}/*.json`, `<split>/lq_x{scale}/` (MATLAB
bicubic of the original). Train photos: {train}; val photos: {val}.

**Synthetic:** the enhanced GTs come from four classical operators (01 strong unsharp mask, 02 local
contrast, 03 detail enhancement, 04 denoise + mild sharpening) and the labels from three simulated
annotators (see the script's docstring for the rule). Numbers obtained on this data say nothing about
HGGT or real human preferences.

Patches: {size}x{size}; train groups: {n_train}; val groups: {n_val}; annotator votes (train): {tally}.
"""


def make_demo_data(out: str, num_train: int = 40, num_val: int = 6, size: int = 256, scale: int = 4,
                   seed: int = 0, overwrite: bool = False) -> str:
    if osp.exists(out):
        if not overwrite:
            raise FileExistsError(f'{out} exists; pass --overwrite to rebuild it.')
        shutil.rmtree(out)
    parent = osp.dirname(osp.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.demo-tmp-')
    try:
        rng = np.random.default_rng(seed)
        tally = write_split(osp.join(tmp, 'train'), TRAIN_PHOTOS, num_train, size, scale, rng)
        write_split(osp.join(tmp, 'val'), VAL_PHOTOS, num_val, size, scale, rng)
        with open(osp.join(tmp, 'README.md'), 'w') as f:
            f.write(DATA_README.format(seed=seed, scale=scale, train=', '.join(TRAIN_PHOTOS),
                                       val=', '.join(VAL_PHOTOS), size=size, n_train=num_train, n_val=num_val,
                                       tally=tally))
        os.replace(tmp, out)  # complete or absent: never a half-built data set
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='datasets/demo', help='output folder (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=40)
    parser.add_argument('--num-val', type=int, default=6)
    parser.add_argument('--size', type=int, default=256, help='HR patch size (multiple of --scale)')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='rebuild an existing output folder')
    args = parser.parse_args(argv)
    if args.size % args.scale:
        parser.error(f'--size {args.size} must be a multiple of --scale {args.scale}')
    try:
        out = make_demo_data(args.out, args.num_train, args.num_val, args.size, args.scale, args.seed, args.overwrite)
    except (FileExistsError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'demo data written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
