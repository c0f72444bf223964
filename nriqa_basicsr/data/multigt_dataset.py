"""``MultiGTDataset``: one LR input and K ground-truth variants per sample (HGGT-style multi-GT training)."""

from __future__ import annotations

import os.path as osp
from collections import Counter
from typing import Any

import numpy as np
import torch
from basicsr.utils import FileClient, get_root_logger, img2tensor
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from nriqa_basicsr.config.schema import decode_or_raise
from nriqa_basicsr.config.sections import MultiGTOptions
from nriqa_basicsr.data.degradation import KernelSampler
from nriqa_basicsr.data.image_io import decode_image
from nriqa_basicsr.data.labels import LABEL_NAMES, POSITIVE
from nriqa_basicsr.data.multigt_source import MultiGTLayoutError, MultiGTSource, lmdb_get, open_lmdb_client
from nriqa_basicsr.data.sampler import SampleKey
from nriqa_basicsr.data.score_file import ScoreFileError, load_score_table, source_content_fingerprint
from nriqa_basicsr.data.selection import combine_scores, zscore_stats

__all__ = ['MultiGTDataset']


def _augment(imgs: list[np.ndarray], hflip: bool, rot: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """Flip/rotate every image identically (BasicSR's ``augment`` draws from the global ``random`` module,
    which its worker seeding replays every epoch; we draw from the sample's own generator)."""
    do_h, do_v, do_t = hflip and rng.random() < 0.5, rot and rng.random() < 0.5, rot and rng.random() < 0.5
    out = []
    for img in imgs:
        if do_h:
            img = img[:, ::-1]
        if do_v:
            img = img[::-1]
        if do_t:
            img = img.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(img))
    return out


@DATASET_REGISTRY.register()
class MultiGTDataset(data.Dataset):
    """Multi-GT super-resolution dataset (see README, option reference ``MultiGTDataset``).

    Each item: ``lq`` (C, h, w) (absent with ``lq_mode: realesrgan``, where the model degrades on the GPU from
    the returned kernels), ``gts`` (K, C, H, W), ``gt`` (the original, for BasicSR's stock models and
    validation), ``labels`` / ``label_counts`` (K,), ``scores`` (K,) with a score file, ``grid_scores`` (K,)
    with a score grid, ``crop`` (top, left) in GT pixels, ``key``, ``gt_path``, ``gt_paths``, ``lq_path``.
    Indices may be :class:`~nriqa_basicsr.data.sampler.SampleKey` s (exact resume, worker-independent draws).
    """

    accepts_sample_keys = True

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        # BasicSR builds datasets from plain dicts: decode the block with its schema (the start-up checks use the
        # same one), so every option rule lives in MultiGTOptions.
        self.config = cfg = decode_or_raise(MultiGTOptions, opt, 'MultiGTDataset')
        self.opt = opt
        self.phase = cfg.phase
        self.scale = cfg.scale
        self.source = MultiGTSource(cfg.dataroot_gt, cfg.layout, cfg.gt_variants, cfg.filename_tmpl,
                                    cfg.io_backend, cfg.dataroot_label)
        all_groups = list(self.source.groups)
        self.variants = self.source.variants
        self.labels, self.label_counts = self.source.read_labels()
        self.has_labels = bool(self.source.annotators())

        self.lq_mode = cfg.resolved_lq_mode
        self.lq_root = osp.expanduser(cfg.dataroot_lq) if cfg.dataroot_lq else None
        self.lq_tmpl = cfg.lq_filename_tmpl
        self.lq_ext = cfg.lq_ext
        self._lq_client: FileClient | None = None
        self.kernels = KernelSampler(opt) if self.lq_mode == 'realesrgan' else None
        self.gt_size = cfg.gt_size

        self.scores = self.grid_scores = None
        self.grid_stride = None
        if cfg.score_file:
            self._load_scores(cfg, all_groups)

        keep = np.ones(len(all_groups), bool)
        if cfg.drop_without_positive:
            if not self.has_labels:  # labels given but none found: a property of the data, not of the options
                raise ValueError('MultiGTDataset: drop_without_positive needs human labels (dataroot_label).')
            keep &= (self.labels == POSITIVE).any(axis=1)
        self.groups = [g for g, k in zip(all_groups, keep) if k]
        self.labels, self.label_counts = self.labels[keep], self.label_counts[keep]
        if self.scores is not None:
            self.scores = self.scores[keep]
        if self.grid_scores is not None:
            self.grid_scores = self.grid_scores[keep]
        if not self.groups:
            raise ValueError(f'MultiGTDataset {cfg.name}: no groups left after drop_without_positive.')
        self._draws = 0
        if cfg.report_counts:
            get_root_logger().info(self.summary(len(all_groups)))

    # ------------------------------------------------------------------------------------------------- scores
    def _load_scores(self, cfg: MultiGTOptions, groups: list[str]) -> None:
        path = osp.expanduser(cfg.score_file)
        table = load_score_table(path)
        table.check_dataset(path, groups, self.variants, source_content_fingerprint(self.source))
        weights = dict(cfg.score_metrics) if cfg.score_metrics else {m: 1.0 for m in table.metrics}
        unknown = [m for m in weights if m not in table.scores]
        if unknown:
            raise ScoreFileError(f'{path}: has no scores for {unknown} (score_metrics); it holds {table.metrics}.')
        order = [table.index()[g] for g in groups]
        per_metric = {m: torch.from_numpy(table.scores[m][order]) for m in weights}
        for metric, values in per_metric.items():
            bad = (~torch.isfinite(values)).any(dim=1).nonzero().flatten().tolist()
            if bad:
                raise ScoreFileError(f'{path}: metric "{metric}" has non-finite scores for {len(bad)} group(s), e.g. '
                                     f'"{groups[bad[0]]}" (the metric could not score those images, e.g. too small '
                                     f'for NIQE); drop the metric from score_metrics or rescore.')
        zscore = cfg.resolved_score_norm(len(weights)) == 'zscore'
        stats = {m: zscore_stats(v) for m, v in per_metric.items()} if zscore else None
        self.score_stats = stats
        self.scores = combine_scores(per_metric, weights, stats).numpy()
        if table.grids:
            grid = table.meta.get('grid') or {}
            missing = [m for m in weights if m not in table.grids]
            if missing:
                raise ScoreFileError(f'{path}: has no score grid for {missing}.')
            if self.phase == 'train' and grid.get('crop') != self.gt_size:
                raise ScoreFileError(f'{path}: score grid is for {grid.get("crop")}px crops but gt_size is '
                                     f'{self.gt_size}; rescore with --crop {self.gt_size} or change gt_size.')
            self.grid_stride = int(grid['stride'])
            if self.lq_mode == 'paired' and self.grid_stride % self.scale:
                raise ScoreFileError(f'{path}: grid stride {self.grid_stride} is not a multiple of scale '
                                     f'{self.scale}, so grid crops cannot be aligned with paired LQ images.')
            per_grid = {m: torch.from_numpy(table.grids[m][order]) for m in weights}
            self.grid_scores = combine_scores(per_grid, weights, stats).numpy()

    # -------------------------------------------------------------------------------------------------- info
    def summary(self, total: int | None = None) -> str:
        lines = [f'MultiGTDataset {self.config.name}: {len(self.groups)} groups'
                 + (f' (of {total})' if total is not None and total != len(self.groups) else '')
                 + f', K={len(self.variants)} variants {self.variants}, lq_mode={self.lq_mode}, '
                 f'backend={self.source.backend}']
        if self.has_labels:
            for k, variant in enumerate(self.variants[1:], start=1):
                tally = Counter(LABEL_NAMES[int(c)] for c in self.labels[:, k])
                lines.append(f'  {variant}: ' + ', '.join(f'{n} {tally[n]}' for n in ('Positive', 'Similar',
                                                                                          'Negative')))
            lines.append(f'  groups without an effective positive: {int((~(self.labels == POSITIVE).any(1)).sum())}')
        if self.scores is not None:
            lines.append(f'  scores: mean per variant {np.round(self.scores.mean(0), 3).tolist()}'
                         + (f', grid stride {self.grid_stride}' if self.grid_stride else ''))
        return '\n'.join(lines)

    def __len__(self) -> int:
        return len(self.groups)

    # -------------------------------------------------------------------------------------------------- items
    def _rng(self, index: int | SampleKey) -> tuple[int, np.random.Generator]:
        if isinstance(index, SampleKey):  # from ResumableSampler: the draw is a function of the sample alone
            return index.index, np.random.default_rng([*index.entropy, index.index])
        # torch.initial_seed() differs per DataLoader worker *and epoch*; BasicSR's worker_init_fn reseeds only
        # numpy/random, identically every epoch. The draw counter separates calls within one process.
        self._draws += 1
        return index, np.random.default_rng([torch.initial_seed() % (2**63), index, self._draws])

    def _read_lq(self, name: str) -> tuple[np.ndarray, str]:
        if self.lq_root.endswith('.lmdb'):
            if self._lq_client is None:
                self._lq_client = open_lmdb_client({'lq': self.lq_root})
            key = self.lq_tmpl.format(name)
            buf = lmdb_get(self._lq_client, key, 'lq', self.lq_root)
            return decode_image(buf, osp.join(self.lq_root, key)), osp.join(self.lq_root, key)
        path = osp.join(self.lq_root, self.lq_tmpl.format(name) + self.lq_ext)
        if self._lq_client is None:
            self._lq_client = FileClient('disk')
        try:
            buf = self._lq_client.get(path, 'lq')
        except FileNotFoundError:
            buf = None
        return decode_image(buf, path), path

    def _crop_box(self, h: int, w: int, rng: np.random.Generator, name: str) -> tuple[int, int]:
        size = self.gt_size
        if h < size or w < size:
            raise MultiGTLayoutError(f'group "{name}" ({self.source.path(name, 0)}) is {w}x{h}, smaller than '
                                     f'gt_size {size}; lower gt_size or drop the image.')
        # Crops start on multiples of the score-grid stride (amo_cached) or of the scale (pixel-aligned LQ).
        step = self.grid_stride or self.scale
        top = step * int(rng.integers(0, (h - size) // step + 1))
        left = step * int(rng.integers(0, (w - size) // step + 1))
        return top, left

    def __getitem__(self, index: int | SampleKey) -> dict[str, Any]:
        index, rng = self._rng(index)
        name = self.groups[index]
        gts = self.source.read_group(name)
        h, w = gts[0].shape[:2]
        lq = lq_path = None
        if self.lq_mode == 'paired':
            lq, lq_path = self._read_lq(name)
            if lq.shape[0] * self.scale != h - h % self.scale or lq.shape[1] * self.scale != w - w % self.scale:
                raise MultiGTLayoutError(f'{lq_path}: LQ is {lq.shape[1]}x{lq.shape[0]} but GT '
                                         f'{self.source.path(name, 0)} is {w}x{h}; with scale {self.scale} the LQ '
                                         f'must be {w // self.scale}x{h // self.scale}.')
        if self.phase == 'train':
            top, left = self._crop_box(h, w, rng, name)
            size = self.gt_size
            gts = [g[top:top + size, left:left + size] for g in gts]
            if lq is not None:
                s = self.scale
                lq = lq[top // s:(top + size) // s, left // s:(left + size) // s]
        else:
            top = left = 0
            hm, wm = h - h % self.scale, w - w % self.scale  # mod-crop so SR output matches the GT
            gts = [g[:hm, :wm] for g in gts]
        if self.lq_mode == 'bicubic':
            lq = np.clip(imresize(gts[0], 1 / self.scale), 0, 1).astype(np.float32)  # always from the original
        if self.phase == 'train':
            imgs = _augment(gts + ([lq] if lq is not None else []), self.config.use_hflip, self.config.use_rot, rng)
            gts, lq = imgs[:len(gts)], (imgs[-1] if lq is not None else None)

        tensors = img2tensor(gts, bgr2rgb=True, float32=True)
        out: dict[str, Any] = {
            'gts': torch.stack(tensors), 'gt': tensors[0], 'key': name,
            'labels': torch.from_numpy(self.labels[index].copy()),
            'label_counts': torch.from_numpy(self.label_counts[index].copy()),
            'crop': torch.tensor([top, left]),
            'gt_path': self.source.path(name, 0),
            'gt_paths': [self.source.path(name, k) for k in range(len(self.variants))],
        }
        if lq is not None:
            out['lq'] = img2tensor(lq, bgr2rgb=True, float32=True)
            out['lq_path'] = lq_path or out['gt_path']
        if self.kernels is not None:
            out.update(self.kernels.sample(rng))
        if self.scores is not None:
            out['scores'] = torch.from_numpy(self.scores[index].astype(np.float32))
        if self.grid_scores is not None:
            if self.phase == 'train':
                r, c = top // self.grid_stride, left // self.grid_stride
                rows, cols = self.grid_scores.shape[-2:]
                cell = self.grid_scores[index][:, r, c] if r < rows and c < cols else None
                if cell is None or not np.isfinite(cell).all():  # the grid was made for other image sizes
                    raise ScoreFileError(
                        f'{self.config.score_file}: no grid score for the crop at ({top}, {left}) of group "{name}" '
                        f'({w}x{h}); the score grid was made for other image sizes. Rescore with '
                        f'nriqa-score-gts --grid {self.grid_stride} --crop {self.gt_size} --overwrite.')
                out['grid_scores'] = torch.from_numpy(cell.astype(np.float32))
        return out

