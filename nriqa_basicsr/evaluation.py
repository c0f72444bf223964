"""SR evaluation as papers report it: test pairs, distortion / perceptual / no-reference metrics, reports."""

from __future__ import annotations

import csv
import os
import os.path as osp
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize

from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.best_checkpoint import TrainingRun, write_checkpoint_summary
from nriqa_basicsr.data.image_io import list_images
from nriqa_basicsr.iqa import WeightsNotFoundError, build_scorer, get_metric_info
from nriqa_basicsr.metrics.nriqa_metric import image_to_tensor, report_metric
from nriqa_basicsr.plotting import labelled_scatter

__all__ = ['MetricSuite', 'TestPair', 'bicubic_upscale', 'checkpoint_series', 'list_pairs', 'load_pair', 'summarize',
           'write_reports', 'write_run_reports']


@dataclass(frozen=True)
class TestPair:
    name: str
    gt_path: str
    lq_path: str | None  # None: LR made from the mod-cropped HR with MATLAB bicubic


def list_pairs(gt_dir: str, lq_dir: str | None = None, lq_tmpl: str = '{}') -> list[TestPair]:
    """HR images of a folder, each with its LR file ``lq_tmpl.format(stem)`` when ``lq_dir`` is given."""
    if not osp.isdir(gt_dir):
        raise FileNotFoundError(f'{gt_dir}: no such folder.')
    names = list_images(gt_dir)
    if not names:
        raise ValueError(f'{gt_dir}: no images found.')
    pairs = []
    for fname in names:
        stem, ext = osp.splitext(fname)
        lq_path = None
        if lq_dir is not None:
            candidates = [osp.join(lq_dir, lq_tmpl.format(stem) + e) for e in (ext, '.png')]
            lq_path = next((c for c in candidates if osp.isfile(c)), None)
            if lq_path is None:
                raise FileNotFoundError(f'{osp.join(gt_dir, fname)}: no LR image {candidates[0]} '
                                        f'(check --lq-filename-tmpl).')
        pairs.append(TestPair(stem, osp.join(gt_dir, fname), lq_path))
    return pairs


def _read(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # grey files become 3 equal channels
    if img is None:
        raise ValueError(f'{path}: unreadable image.')
    return img


def load_pair(pair: TestPair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR mod-cropped to a multiple of ``scale``, LR) as BGR uint8; LR sizes are checked against the HR."""
    gt = _read(pair.gt_path)
    h, w = gt.shape[:2]
    gt = gt[:h - h % scale, :w - w % scale]
    if pair.lq_path is None:
        lq = np.clip(imresize(gt.astype(np.float64) / 255.0, 1 / scale) * 255.0, 0, 255).round().astype(np.uint8)
        return gt, lq
    lq = _read(pair.lq_path)
    if lq.shape[0] * scale != gt.shape[0] or lq.shape[1] * scale != gt.shape[1]:
        raise ValueError(f'{pair.lq_path} is {lq.shape[1]}x{lq.shape[0]} but {pair.gt_path} (mod-cropped to '
                         f'{gt.shape[1]}x{gt.shape[0]}) needs an x{scale} LR of {gt.shape[1] // scale}x'
                         f'{gt.shape[0] // scale}.')
    return gt, lq


def bicubic_upscale(lq: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-compatible bicubic upscaling (basicsr's ``imresize``), the usual baseline row."""
    return np.clip(imresize(lq.astype(np.float64) / 255.0, scale) * 255.0, 0, 255).round().astype(np.uint8)


class MetricSuite:
    """PSNR/SSIM (Y channel or RGB, border = scale) plus any pyiqa metric through the scorer layer.

    A metric whose weights are unavailable offline is skipped; ``skipped`` maps it to the reason. ``niqe`` is the
    MATLAB NIQE SR papers report (``niqe_variant='pyiqa'``: pyiqa's; see ``nriqa_metric.report_metric``).
    """

    def __init__(self, names: Sequence[str], scale: int, y_channel: bool = True, device: str | None = None,
                 weights_dir: str | Sequence[str] | None = None, niqe_variant: str = 'matlab') -> None:
        self.scale, self.y_channel, self.niqe_variant = scale, y_channel, niqe_variant
        self.skipped: dict[str, str] = {}
        self.better: dict[str, str] = {}
        self.scorers = {}
        self.names = []
        for name in names:
            if name in ('psnr', 'ssim'):
                self.names.append(name)
                self.better[name] = 'higher'
                continue
            metric = report_metric(name, niqe_variant)  # the column keeps the name asked for
            info = get_metric_info(metric)
            try:
                self.scorers[name] = build_scorer(metric, info.mode, device, weights_dir=weights_dir)
            except WeightsNotFoundError as exc:
                self.skipped[name] = str(exc).splitlines()[0]
                continue
            self.names.append(name)
            self.better[name] = info.better

    @property
    def nr_metrics(self) -> list[str]:
        return [n for n, s in self.scorers.items() if s.info.mode == 'NR']

    def is_reference_metric(self, name: str) -> bool:
        return name in ('psnr', 'ssim') or self.scorers[name].info.mode == 'FR'

    def multi_reference(self, sr: np.ndarray, references: Sequence[np.ndarray]) -> dict[str, float]:
        """HGGT-style multi-GT evaluation: full-reference metrics averaged over ``references`` (the effective
        positives of the item), no-reference metrics once."""
        per_ref = [self(sr, ref) for ref in references]
        return {n: float(np.mean([r[n] for r in per_ref])) if self.is_reference_metric(n) else per_ref[0][n]
                for n in self.names}

    def no_reference_only(self, img: np.ndarray) -> dict[str, float]:
        """NR metrics of an image, NaN for the reference metrics (the "gold standard" row of GTs)."""
        nr = [n for n in self.names if not self.is_reference_metric(n)]
        values = self.__class__.__call__(self._nr_view(nr), img, None)
        return {n: values.get(n, float('nan')) for n in self.names}

    def _nr_view(self, names: list[str]) -> 'MetricSuite':
        view = object.__new__(MetricSuite)
        view.__dict__.update(self.__dict__)
        view.names = names
        return view

    def __call__(self, sr: np.ndarray, gt: np.ndarray | None) -> dict[str, float]:
        import torch

        out = {}
        border = self.scale
        for name in self.names:
            if name == 'psnr':
                out[name] = calculate_psnr(sr, gt, border, test_y_channel=self.y_channel)
            elif name == 'ssim':
                out[name] = calculate_ssim(sr, gt, border, test_y_channel=self.y_channel)
            else:
                scorer = self.scorers[name]
                with torch.no_grad():
                    x = image_to_tensor(sr, border)
                    ref = image_to_tensor(gt, border) if scorer.info.mode == 'FR' else None
                    out[name] = float(scorer.raw(x, ref)[0])
        return out


def summarize(rows: list[dict], metrics: Sequence[str]) -> list[dict]:
    """Mean of each metric per (model, dataset), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row['model'], row['dataset']), []).append(row)
    return [{'model': m, 'dataset': d, 'images': len(g), **{k: float(np.mean([r[k] for r in g])) for k in metrics}}
            for (m, d), g in groups.items()]


def _atomic_text(path: str, write: Callable) -> None:
    with atomic_path(path) as tmp, open(tmp, 'w', newline='') as f:
        write(f)


def write_reports(out: str, rows: list[dict], summary: list[dict], suite: MetricSuite, title: str) -> dict[str, str]:
    """per_image.csv, summary.csv, summary.md and perception_distortion.png under ``out``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    metrics = suite.names
    paths = {k: osp.join(out, f) for k, f in (('per_image', 'per_image.csv'), ('summary_csv', 'summary.csv'),
                                              ('summary_md', 'summary.md'), ('plot', 'perception_distortion.png'))}

    def write_csv(fields: list[str], data: list[dict]) -> Callable:
        def write(f) -> None:  # noqa: ANN001
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(data)
        return write

    _atomic_text(paths['per_image'], write_csv(['model', 'dataset', 'image', *metrics], rows))
    _atomic_text(paths['summary_csv'], write_csv(['model', 'dataset', 'images', *metrics], summary))
    arrows = {m: '↑' if suite.better[m] == 'higher' else '↓' for m in metrics}
    lines = [f'# {title}', '', f'Scale x{suite.scale}; PSNR/SSIM on the {"Y channel" if suite.y_channel else "RGB"} '
             f'with a {suite.scale}-pixel border crop; other metrics through pyiqa (same border)'
             + ('; NIQE: MATLAB (Y channel).' if getattr(suite, 'niqe_variant', 'matlab') == 'matlab'
                and 'niqe' in metrics else '.'), '',
             '| model | dataset | images | ' + ' | '.join(f'{m} {arrows[m]}' for m in metrics) + ' |',
             '|---|---|---|' + '---|' * len(metrics)]
    def cell(metric: str, value: float) -> str:
        if np.isnan(value):
            return '–'
        return f'{value:.4f}' if metric == 'ssim' else f'{value:.3f}'

    for row in summary:
        lines.append(f'| {row["model"]} | {row["dataset"]} | {row["images"]} | '
                     + ' | '.join(cell(m, row[m]) for m in metrics) + ' |')
    if suite.skipped:
        lines += ['', 'Skipped metrics:'] + [f'- `{m}`: {why}' for m, why in suite.skipped.items()]
    _atomic_text(paths['summary_md'], lambda f: f.write('\n'.join(lines) + '\n'))
    nr = [m for m in suite.nr_metrics if m in metrics]
    if 'psnr' in metrics and nr:
        fig, axes = plt.subplots(1, len(nr), figsize=(5 * len(nr), 4), squeeze=False)
        for ax, metric in zip(axes[0], nr):
            ax.set_xlabel('PSNR (dB) ↑')
            ax.set_ylabel(f'{metric} {arrows[metric]}')
            ax.grid(alpha=0.3)
        # a legend, not text at the points: labels of two nearly equal models would overlap
        labelled_scatter(fig, axes[0], [[(f'{row["model"]} ({row["dataset"]})', row['psnr'], row[metric])
                                         for row in summary] for metric in nr])
        with atomic_path(paths['plot']) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
    else:
        paths.pop('plot')
    return paths


def checkpoint_series(run: TrainingRun, summary: list[dict], metrics: Sequence[str]
                      ) -> tuple[dict[str, list[tuple[int, dict[str, float]]]], dict[str, int]]:
    """The rows of ``summary`` that are ``run``'s checkpoints as test set → ``[(iteration, {metric: mean})]`` in
    iteration order, and the number of images of each test set."""
    iteration = {run.model_name(c): c.iteration for c in run.checkpoints}
    series: dict[str, list[tuple[int, dict[str, float]]]] = {}
    images: dict[str, int] = {}
    for row in summary:
        if row['model'] in iteration:
            series.setdefault(row['dataset'], []).append((iteration[row['model']], {m: row[m] for m in metrics}))
            images[row['dataset']] = row['images']
    return {d: sorted(h, key=lambda e: e[0]) for d, h in series.items()}, images


def write_run_reports(out: str, run: TrainingRun, summary: list[dict], suite: MetricSuite) -> dict[str, str]:
    """``nriqa-benchmark --run``: ``run_summary.png`` (metrics over the run's iterations) and ``run_summary.md``
    (best checkpoint per criterion) under ``out`` (:func:`~nriqa_basicsr.best_checkpoint.write_checkpoint_summary`)."""
    series, images = checkpoint_series(run, summary, suite.names)
    if not series:
        raise ValueError(f'--run {run.experiment}: none of its checkpoints was benchmarked.')
    directions = {m: 1 if suite.better[m] == 'higher' else -1 for m in suite.names}
    return write_checkpoint_summary(out, run, series, directions, images)
