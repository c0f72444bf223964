"""Start-up checks and completions of the options we add to BasicSR's YAML.

BasicSR ignores unknown keys and builds validation metrics only at the first validation, so a typo in a metric
name would surface hours into a run. :func:`prepare_options` runs right after BasicSR parses the YAML (see
``nriqa_basicsr.pipeline``), reports every problem at once, and fills BasicSR's ``better`` key of our metric
blocks from the metric's direction.
"""

from __future__ import annotations

import difflib
import os.path as osp
from typing import Any

from nriqa_basicsr.iqa import UnknownMetricError, get_metric_info

__all__ = ['OptionsError', 'prepare_options']

_METRIC_MODES = {'calculate_nriqa': 'NR', 'calculate_fr_iqa': 'FR'}

# Keys of a MultiGTDataset block: its own (README option reference), the blur-kernel options of the blind
# degradation (BasicSR's RealESRGANDataset names, optional suffix 2), and what BasicSR's loader reads.
_KERNEL_KEYS = ('blur_kernel_size', 'kernel_range', 'kernel_list', 'kernel_prob', 'sinc_prob', 'blur_sigma',
                'betag_range', 'betap_range')
MULTIGT_KEYS = frozenset({
    'type', 'name', 'phase', 'scale', 'dataroot_gt', 'dataroot_label', 'dataroot_lq', 'layout', 'gt_variants',
    'filename_tmpl', 'io_backend', 'lq_mode', 'lq_filename_tmpl', 'lq_ext', 'gt_size', 'use_hflip', 'use_rot',
    'drop_without_positive', 'report_counts', 'score_file', 'score_metrics', 'score_norm', 'final_sinc_prob',
    *_KERNEL_KEYS, *(f'{k}2' for k in _KERNEL_KEYS if k not in ('blur_kernel_size', 'kernel_range')),
    'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory',
    'persistent_workers', 'use_shuffle',
})


# Expected types (or allowed values) of the keys we read; checked before anything is built.
_ANY_NUMBER = (int, float)
MULTIGT_TYPES: dict[str, Any] = {
    'dataroot_gt': str, 'dataroot_label': str, 'dataroot_lq': str, 'layout': ('hggt', 'generic'),
    'gt_variants': list, 'filename_tmpl': str, 'io_backend': dict, 'lq_mode': ('paired', 'bicubic', 'realesrgan'),
    'lq_filename_tmpl': str, 'lq_ext': str, 'gt_size': int, 'use_hflip': bool, 'use_rot': bool,
    'drop_without_positive': bool, 'report_counts': bool, 'score_file': str, 'score_metrics': (dict, list, str),
    'score_norm': ('raw', 'zscore'), 'num_worker_per_gpu': int, 'batch_size_per_gpu': int,
    'dataset_enlarge_ratio': int, 'final_sinc_prob': _ANY_NUMBER, 'sinc_prob': _ANY_NUMBER,
}
METRIC_TYPES: dict[str, Any] = {
    'metric': str, 'crop_border': int, 'input_order': ('HWC', 'CHW'), 'weights_path': str,
    'weights_dir': (str, list), 'normalize': bool, 'score_range': list, 'check_range': bool, 'fast_path': bool,
}
IQA_LOSS_TYPES: dict[str, Any] = {
    'metrics': (dict, list, str), 'loss_weight': _ANY_NUMBER, 'reduction': ('none', 'mean', 'sum'),
    'normalize': bool, 'clamp': bool, 'nonfinite': ('raise', 'skip'), 'metric_opts': dict,
    'weights_dir': (str, list), 'device': str,
}


def _check_types(where: str, block: dict[str, Any], types: dict[str, Any], problems: list[str]) -> None:
    """Append a problem for each key of ``block`` whose value has the wrong type or is not an allowed value."""
    for key, expected in types.items():
        if key not in block or block[key] is None:
            continue
        value = block[key]
        if isinstance(expected, tuple) and expected and isinstance(expected[0], str):
            if value not in expected:
                problems.append(f'{where}.{key}: {value!r} is not one of {list(expected)}.')
        elif isinstance(value, bool) and expected is not bool:
            problems.append(f'{where}.{key}: expected {_type_names(expected)}, got a boolean.')
        elif not isinstance(value, expected):
            problems.append(f'{where}.{key}: expected {_type_names(expected)}, got {type(value).__name__} '
                            f'{value!r}.')


def _type_names(expected: Any) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return ' or '.join(k.__name__ for k in kinds)


class OptionsError(ValueError):
    """One or more invalid options; the message lists all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__('Invalid options:\n' + '\n'.join(f'  - {p}' for p in problems))


def _check_metric_blocks(opt: dict[str, Any], problems: list[str]) -> None:
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for key, block in metrics.items():
        if not isinstance(block, dict) or block.get('type') not in _METRIC_MODES:
            continue
        where = f'val.metrics.{key}'
        mode = _METRIC_MODES[block['type']]
        _check_types(where, block, METRIC_TYPES, problems)
        if not block.get('metric'):
            problems.append(f'{where}: missing "metric" (a pyiqa metric name, e.g. metric: musiq).')
            continue
        try:
            info = get_metric_info(block['metric'], mode)
        except UnknownMetricError as exc:
            problems.append(f'{where}: {exc}')
            continue
        better = block.get('better')
        if better is None:
            block['better'] = info.better
        elif better not in ('higher', 'lower'):
            problems.append(f'{where}.better: must be "higher" or "lower", got {better!r}.')
        elif better != info.better:
            problems.append(f'{where}.better: "{info.name}" is {info.better}-is-better, but better: {better} was '
                            f'given; remove the key to use the metric\'s own direction.')


def _check_nriqa_losses(opt: dict[str, Any], problems: list[str]) -> None:
    for key, block in (opt.get('train') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'NRIQALoss'):
            continue
        _check_types(f'train.{key}', block, IQA_LOSS_TYPES, problems)
        metrics = block.get('metrics')
        names = [metrics] if isinstance(metrics, str) else list(metrics or [])
        if not names:
            problems.append(f'train.{key}.metrics: give at least one no-reference metric, e.g. {{musiq: 1.0}}.')
        for name in names:
            try:
                get_metric_info(name, 'NR')
            except UnknownMetricError as exc:
                problems.append(f'train.{key}.metrics: {exc}')


def _check_multigt_datasets(opt: dict[str, Any], problems: list[str]) -> None:
    for key, block in (opt.get('datasets') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'MultiGTDataset'):
            continue
        for name in block:
            if name not in MULTIGT_KEYS:
                close = difflib.get_close_matches(name, sorted(MULTIGT_KEYS), n=1)
                problems.append(f'datasets.{key}.{name}: unknown MultiGTDataset option'
                                + (f' (did you mean {close[0]}?)' if close else '') + '.')
        _check_types(f'datasets.{key}', block, MULTIGT_TYPES, problems)
        if isinstance(block.get('gt_size'), int) and not isinstance(block['gt_size'], bool) and block['gt_size'] < 1:
            problems.append(f'datasets.{key}.gt_size: must be positive, got {block["gt_size"]}.')
        if not block.get('dataroot_gt'):
            problems.append(f'datasets.{key}.dataroot_gt: required (folder of GT variant folders or LMDBs).')
        if block.get('layout', 'generic') == 'generic' and not block.get('gt_variants'):
            problems.append(f'datasets.{key}.gt_variants: required with layout generic (original first), '
                            f'or set layout: hggt.')
        if key.split('_')[0] == 'train' and not block.get('gt_size'):
            problems.append(f'datasets.{key}.gt_size: required for training (GT crop size).')
        if isinstance(block.get('gt_size'), int) and opt.get('scale') and block['gt_size'] % opt['scale']:
            problems.append(f'datasets.{key}.gt_size: {block["gt_size"]} is not a multiple of scale {opt["scale"]}.')


def _check_gt_selection(opt: dict[str, Any], problems: list[str]) -> None:
    from nriqa_basicsr.data.score_file import ScoreFileError, load_score_table
    from nriqa_basicsr.data.selection import parse_selection_options

    config, found = parse_selection_options((opt.get('train') or {}).get('gt_selection'))
    problems.extend(found)
    if config is None:
        return
    for name in config.metrics:
        try:
            get_metric_info(name, 'NR')
        except UnknownMetricError as exc:
            problems.append(f'train.gt_selection.metrics: {exc}')
    train = (opt.get('datasets') or {}).get('train') or {}
    if train.get('type') != 'MultiGTDataset':
        if config.policy != 'original':
            problems.append(f'train.gt_selection.policy "{config.policy}" needs datasets.train of type '
                            f'MultiGTDataset (several GT variants per sample).')
        return
    if config.needs_labels and not train.get('dataroot_label'):
        why = 'exclude_negatives' if config.policy not in ('upos', 'smp') else f'policy "{config.policy}"'
        problems.append(f'train.gt_selection: {why} needs human labels; set datasets.train.dataroot_label.')
    if config.needs_score_file and not train.get('score_file'):
        problems.append(f'train.gt_selection: policy "{config.policy}" needs offline scores; set '
                        f'datasets.train.score_file (made by scripts/score_gts.py'
                        + (' --grid STRIDE --crop GT_SIZE' if config.policy == 'amo_cached' else '') + ').')
    if config.policy == 'amo_cached' and train.get('score_file') and osp.isfile(train['score_file']):
        try:
            grid = load_score_table(train['score_file']).meta.get('grid')
        except ScoreFileError as exc:
            problems.append(f'datasets.train.score_file: {exc}')
            return
        if not grid:
            problems.append(f'datasets.train.score_file {train["score_file"]}: has no score grid, which policy '
                            f'"amo_cached" needs; rescore with --grid STRIDE --crop {train.get("gt_size")}.')


_DEGRADATION_KEYS = ('resize_prob', 'resize_range', 'gaussian_noise_prob', 'noise_range', 'poisson_scale_range',
                     'gray_noise_prob', 'jpeg_range')
DEGRADATION_KEYS = frozenset(_DEGRADATION_KEYS + tuple(f'{k}2' for k in _DEGRADATION_KEYS))
NEG_KEYS = frozenset({'loss_weight'})
COMPILE_KEYS = frozenset({'mode', 'backend', 'dynamic', 'fullgraph', 'scorers'})


def _unknown(where: str, given: Any, valid: frozenset | set, problems: list[str]) -> None:
    if not isinstance(given, dict):
        problems.append(f'{where}: must be a mapping.')
        return
    for key in given:
        if key not in valid:
            problems.append(f'{where}.{key}: unknown option; valid keys: {sorted(valid)}.')


def _check_model_sections(opt: dict[str, Any], problems: list[str]) -> None:
    """Sections read by NRIQAModel; they are refused with any other model (BasicSR would ignore them)."""
    import inspect

    from nriqa_basicsr.archs.lora import validate_lora_options
    from nriqa_basicsr.losses.nriqa_loss import NRIQALoss

    train = opt.get('train') or {}
    ours = [k for k in ('gt_selection', 'iqa_opt', 'neg_opt', 'amp', 'channels_last', 'max_consecutive_nonfinite',
                        'compile') if k in train]
    ours += [k for k in ('network_g_lora', 'degradation') if k in opt]
    if opt.get('model_type') != 'NRIQAModel':
        if ours and opt.get('model_type'):
            problems.append(f'{", ".join(ours)}: read only by model_type NRIQAModel, but model_type is '
                            f'{opt.get("model_type")}; set model_type: NRIQAModel.')
        return
    if 'network_g_lora' in opt:
        problems.extend(validate_lora_options(opt['network_g_lora'], (opt.get('network_g') or {}).get('type')))
        if not (opt.get('path') or {}).get('pretrain_network_g'):
            problems.append('network_g_lora (FT stage) needs path.pretrain_network_g, the stage-one generator.')
    if 'iqa_opt' in train:
        valid = set(inspect.signature(NRIQALoss.__init__).parameters) - {'self'} | {'type'}
        _unknown('train.iqa_opt', train['iqa_opt'], valid, problems)
    if 'neg_opt' in train:
        _unknown('train.neg_opt', train['neg_opt'], NEG_KEYS, problems)
        if not ((opt.get('datasets') or {}).get('train') or {}).get('dataroot_label'):
            problems.append('train.neg_opt: the negative loss needs human labels (datasets.train.dataroot_label).')
    if 'degradation' in opt:
        _unknown('degradation', opt['degradation'], DEGRADATION_KEYS, problems)
    amp = train.get('amp', False)
    if amp not in (False, None, 'false', 'bf16', 'fp16', True):
        problems.append(f'train.amp: must be bf16, fp16 or false, got {amp!r}.')
    if not isinstance(train.get('channels_last', False), bool):
        problems.append('train.channels_last: must be true or false.')
    compile_opt = train.get('compile', False)
    if isinstance(compile_opt, dict):
        _unknown('train.compile', compile_opt, COMPILE_KEYS, problems)
    elif not isinstance(compile_opt, bool):
        problems.append(f'train.compile: true, false or a mapping with {sorted(COMPILE_KEYS)}, got {compile_opt!r}.')
    limit = train.get('max_consecutive_nonfinite', 5)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        problems.append(f'train.max_consecutive_nonfinite: a count >= 0 (0 never stops), got {limit!r}.')
    if ('network_d' in opt) != bool(train.get('gan_opt')):
        problems.append('network_d and train.gan_opt go together: give both for GAN training, neither to train '
                        'GAN-free (e.g. the FT stage).')
    if not any(train.get(k) for k in ('pixel_opt', 'perceptual_opt', 'iqa_opt')):
        problems.append('NRIQAModel needs at least one of train.pixel_opt, train.perceptual_opt, train.iqa_opt.')


def _check_scale(opt: dict[str, Any], problems: list[str]) -> None:
    """The generator's own upscaling factor must equal ``scale`` (the data's), or every loss compares
    tensors of different sizes only after the data is loaded and the network built."""
    net = opt.get('network_g') or {}
    for key in ('scale', 'upscale'):
        if key in net and opt.get('scale') is not None and net[key] != opt['scale']:
            problems.append(f'network_g.{key} is {net[key]} but scale is {opt["scale"]}: the network and the data '
                            f'(LQ size = GT size / scale) must use the same factor.')


def prepare_options(opt: dict[str, Any]) -> dict[str, Any]:
    """Validate our option blocks in a parsed BasicSR ``opt`` and fill defaults in place; raise on problems."""
    problems: list[str] = []
    _check_scale(opt, problems)
    _check_metric_blocks(opt, problems)
    _check_nriqa_losses(opt, problems)
    _check_multigt_datasets(opt, problems)
    _check_gt_selection(opt, problems)
    _check_model_sections(opt, problems)
    if problems:
        raise OptionsError(problems)
    return opt
