"""Perception–distortion plots stay readable with nearly equal models: a legend, one style per model."""

import os.path as osp

import matplotlib.pyplot as plt  # the Agg backend: conftest sets MPLBACKEND

from nriqa_basicsr.plotting import labelled_scatter

NEAR_EQUAL = [('Ori', 25.84, 10.024), ('AMO + FT (NIQE, LoRA)', 25.86, 10.021), ('Bicubic', 29.1, 8.8)]


def test_nearly_equal_models_get_distinct_styles_and_a_legend_not_overlapping_text():
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    labelled_scatter(fig, axes[0], [NEAR_EQUAL, NEAR_EQUAL[::-1]])
    assert not any(ax.texts for ax in axes[0])  # no labels next to the points
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [label for label, _, _ in NEAR_EQUAL]
    by_label = {}
    for ax in axes[0]:
        for coll in ax.collections:
            x, y = coll.get_offsets()[0]
            label = next(lbl for lbl, px, py in NEAR_EQUAL if (px, py) == (x, y))
            style = (tuple(coll.get_facecolor()[0]), coll.get_paths()[0].vertices.tobytes(), float(coll.get_sizes()[0]))
            assert by_label.setdefault(label, style) == style  # same model, same style on every axis
    colours = {s[0] for s in by_label.values()}
    markers = {s[1] for s in by_label.values()}
    assert len(colours) == len(markers) == 3
    # the point drawn later is smaller, so an equal point under it still shows as a ring
    assert by_label['Ori'][2] > by_label['AMO + FT (NIQE, LoRA)'][2]
    plt.close(fig)


def test_benchmark_and_demo_reports_plot_two_close_models(tmp_path):
    from nriqa_basicsr.demo.run import machine_summary, write_report
    from nriqa_basicsr.evaluation import MetricSuite, write_reports

    suite = MetricSuite(['psnr', 'ssim', 'niqe'], 4, device='cpu')
    summary = [{'model': 'Ori', 'dataset': 'Set5', 'images': 5, 'psnr': 25.84, 'ssim': 0.76, 'niqe': 10.02},
               {'model': 'Ori_rerun', 'dataset': 'Set5', 'images': 5, 'psnr': 25.85, 'ssim': 0.76, 'niqe': 10.03}]
    paths = write_reports(str(tmp_path / 'bench'), [], summary, suite, 'two close models')
    assert osp.getsize(paths['plot']) > 10_000
    assert 'NIQE: MATLAB' in open(paths['summary_md']).read()
    rows = [{'model': 'Bicubic', 'psnr': 29.10, 'ssim': 0.79, 'niqe': 8.81, 'piqe': 85.6},
            {'model': 'Ori', 'psnr': 25.84, 'ssim': 0.76, 'niqe': 10.02, 'piqe': 80.0},
            {'model': 'AMO (niqe)', 'psnr': 25.85, 'ssim': 0.76, 'niqe': 10.01, 'piqe': 80.1}]
    report = write_report(str(tmp_path / 'demo'), rows, {'Ori': 10.0}, {'niqe': 5.0, 'piqe': 40.0}, [None] * 6,
                          machine=machine_summary())
    text = open(report).read()
    assert 'cores, torch' in text and 'same machine, thread count and seed' in text and 'MATLAB NIQE' in text
    assert osp.getsize(osp.join(tmp_path, 'demo', 'perception_distortion.png')) > 10_000
