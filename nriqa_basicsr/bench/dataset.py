"""Benchmark (not a test): samples/s of ``MultiGTDataset`` from disk and from LMDB.

    nriqa-bench-dataset [--groups 7] [--size 512] [--gt-size 256] [--workers 0 2] [--batches 20]

Builds HGGT-layout demo data with ``--size`` px patches (K = 5 variants) in a temporary folder, packs it into
LMDB, then times a DataLoader (``--batch-size`` 12, like HGGT) over the training dataset for every worker count,
after one warm-up batch, and prints a table plus JSON. Numbers depend on the machine and page cache: the data
is read once before timing, so this measures decoding/cropping, not cold disk reads.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import tempfile
import time
from collections.abc import Sequence

import torch

from nriqa_basicsr import cli
from nriqa_basicsr.data.lmdb import create_lmdb
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.data.multigt_source import HGGT_VARIANTS, MultiGTSource
from nriqa_basicsr.demo.data import make_demo_data

__all__ = ['build_parser', 'main', 'time_loader']


def time_loader(opt: dict, workers: int, batch_size: int, batches: int) -> float:
    """Samples/s of a DataLoader over ``MultiGTDataset(opt)`` with ``workers`` workers, after one warm-up batch."""
    ds = MultiGTDataset(opt)
    # few distinct groups (the bundled photos give 7 of 512 px): sample them with replacement
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=batch_size * (batches + 1))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, sampler=sampler,
                                         drop_last=True, persistent_workers=workers > 0)
    it = iter(loader)
    seen = 0

    def next_batch() -> dict:
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    next_batch()  # warm-up (worker start, first decode)
    start = time.perf_counter()
    for _ in range(batches):
        seen += next_batch()['gts'].shape[0]
    return seen / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-bench-dataset``."""
    parser = argparse.ArgumentParser(prog='nriqa-bench-dataset', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--groups', type=int, default=7, help='demo groups to build (default: 7)')
    parser.add_argument('--size', type=int, default=512, help='HR patch size (HGGT: 512; default: 512)')
    parser.add_argument('--gt-size', type=int, default=256, help='training GT crop (HGGT: 256; default: 256)')
    cli.add_batch_size(parser, default=12)
    parser.add_argument('--batches', type=int, default=20, help='timed batches per configuration (default: 20)')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2],
                        help='data-loader worker counts to time (default: 0 2)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-bench-dataset``: print the table and the JSON rows."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_demo_data(osp.join(tmp, 'demo'), num_train=args.groups, num_val=1, size=args.size)
        images = osp.join(root, 'train', 'images')
        lmdb_root = create_lmdb(MultiGTSource(images, 'hggt'), osp.join(tmp, 'lmdb'),
                                lq_root=osp.join(root, 'train', 'lq_x4'), progress=False)
        base = {'name': 'bench', 'phase': 'train', 'scale': 4, 'layout': 'hggt', 'gt_size': args.gt_size,
                'dataroot_label': osp.join(root, 'train', 'labels'), 'use_hflip': True, 'use_rot': True,
                'report_counts': False}
        backends = {
            'disk': dict(base, dataroot_gt=images, dataroot_lq=osp.join(root, 'train', 'lq_x4')),
            'lmdb': dict(base, dataroot_gt=lmdb_root, io_backend={'type': 'lmdb'},
                         dataroot_lq=osp.join(lmdb_root, 'lq.lmdb')),
        }
        for name, opt in backends.items():
            for workers in args.workers:
                rate = time_loader(opt, workers, args.batch_size, args.batches)
                results.append({'backend': name, 'workers': workers, 'samples_per_s': round(rate, 1),
                                'K': len(HGGT_VARIANTS), 'patch': args.size, 'gt_size': args.gt_size})
    print(f'{"backend":8} {"workers":>7} {"samples/s":>10}   (K={len(HGGT_VARIANTS)}, {args.size}px groups, '
          f'{args.gt_size}px crops)')
    for r in results:
        print(f'{r["backend"]:8} {r["workers"]:>7} {r["samples_per_s"]:>10}')
    print(json.dumps(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
