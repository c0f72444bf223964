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

from nriqa_basicsr.guard import check_guard_options
from nriqa_basicsr.iqa import UnknownMetricError, get_metric_info

__all__ = ['OptionsError', 'check_option_structure', 'check_train_loader', 'prepare_options']

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
    'weights_dir': (str, list), 'device': str, 'metric': str,
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
        metrics = block.get('metrics', block.get('metric'))  # NRIQALoss accepts metric: NAME as a shorthand
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
                        'compile', 'gan_formulation') if k in train]
    ours += [k for k in ('network_g_lora', 'degradation') if k in opt]
    if opt.get('model_type') != 'NRIQAModel':
        if ours and opt.get('model_type'):
            # NRIQAModel reproduces the GAN of the model a file comes from only when told (train.gan_formulation)
            gan = {'ESRGANModel': ' and train.gan_formulation: relativistic (ESRGANModel\'s relativistic average '
                                  'GAN)', 'SRGANModel': ' (its standard GAN is the default)'}
            problems.append(f'{", ".join(ours)}: read only by model_type NRIQAModel, but model_type is '
                            f'{opt.get("model_type")}; set model_type: NRIQAModel'
                            f'{gan.get(opt.get("model_type"), "")}.')
        return
    if 'gan_formulation' in train:
        from nriqa_basicsr.models.nriqa_model import parse_gan_formulation

        try:
            parse_gan_formulation(train['gan_formulation'])
        except ValueError as exc:
            problems.append(str(exc))
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


def _resolve_auto_arch(opt: dict[str, Any], problems: list[str]) -> None:
    """``network_g: {type: auto}``: the architecture of ``path.pretrain_network_g``, before the checks that read
    ``network_g`` (scale, LoRA targets) and before BasicSR builds it."""
    from nriqa_basicsr.archs.detect import resolve_auto_network_g

    try:
        resolve_auto_network_g(opt, f'options "{opt.get("name", "?")}"')
    except (ValueError, KeyError, FileNotFoundError) as exc:
        problems.append(str(exc))


# ---------------------------------------------------------------------------------------- run-level checks
# (hardening round two) Values BasicSR would accept and then train nothing with, divide by, or crash on late.

_MAPPING_SECTIONS = ('datasets', 'path', 'train', 'logger', 'val', 'network_g', 'network_d', 'dist_params')


def check_option_structure(opt: Any, is_train: bool = True) -> list[str]:
    """Problems with the shape BasicSR's ``parse_options`` / ``train_pipeline`` index into unguarded (each would
    be a ``KeyError`` / ``AttributeError`` traceback): required keys and sections that must be mappings."""
    if not isinstance(opt, dict):
        return [f'the file must be a mapping of options, got {type(opt).__name__}.']
    problems = []
    required = ['name', 'num_gpu', 'datasets', 'path'] + (['train', 'logger'] if is_train else [])
    problems += [f'{key}: required (BasicSR reads it unconditionally).' for key in required if key not in opt]
    if 'name' in opt and (not isinstance(opt['name'], str) or not opt['name'].strip()):
        problems.append(f'name: must be a non-empty string (the experiment folder name), got {opt["name"]!r}.')
    for key in _MAPPING_SECTIONS:
        if key in opt and opt[key] is not None and not isinstance(opt[key], dict):
            problems.append(f'{key}: must be a mapping, got {type(opt[key]).__name__} {opt[key]!r}.')
    datasets = opt.get('datasets')
    if isinstance(datasets, dict):
        for phase, block in datasets.items():
            if not isinstance(block, dict):
                problems.append(f'datasets.{phase}: must be a mapping (type:, name:, dataroot_gt:, ...), got '
                                f'{type(block).__name__} {block!r}.')
        if is_train and 'train' not in datasets:
            problems.append('datasets.train: required for training.')
    return problems


def _positive_int(where: str, value: Any, problems: list[str], minimum: int = 1) -> None:
    # BasicSR files write counts as `!!float 5e3`: whole floats are counts too
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < minimum:
        problems.append(f'{where}: must be a whole number >= {minimum}, got {value!r}.')


def _check_run_numbers(opt: dict[str, Any], problems: list[str]) -> None:
    """Counts and frequencies: 0 divides by zero in BasicSR's loop, <= 0 iterations trains nothing."""
    if not opt.get('is_train', True):
        return
    train = opt.get('train') or {}
    if 'total_iter' in train:
        _positive_int('train.total_iter', train['total_iter'], problems)
    logger = opt.get('logger') or {}
    for key in ('print_freq', 'save_checkpoint_freq'):
        if key in logger:
            _positive_int(f'logger.{key}', logger[key], problems)
    if isinstance(opt.get('val'), dict) and 'val_freq' in opt['val']:
        _positive_int('val.val_freq', opt['val']['val_freq'], problems)
    for phase, block in (opt.get('datasets') or {}).items():
        if not isinstance(block, dict) or phase.split('_')[0] != 'train':
            continue
        for key in ('batch_size_per_gpu', 'dataset_enlarge_ratio'):
            if key in block:
                _positive_int(f'datasets.{phase}.{key}', block[key], problems)
        if 'num_worker_per_gpu' in block:
            _positive_int(f'datasets.{phase}.num_worker_per_gpu', block['num_worker_per_gpu'], problems, 0)


def _metric_weight_problems(where: str, metrics: Any, problems: list[str], positive: bool) -> None:
    """Weights of a ``{metric: weight}`` mapping: numbers (strings are not parsed), and > 0 where a weight of 0
    or below would silently drop the metric or turn 'best' into 'worst' (GT selection, score ensembles)."""
    if not isinstance(metrics, dict):
        return
    for name, weight in metrics.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            problems.append(f'{where}.{name}: the weight must be a number, got {type(weight).__name__} {weight!r}'
                            + (' (write 0.5, not "0.5").' if isinstance(weight, str) else '.'))
        elif positive and not weight > 0:
            problems.append(f'{where}.{name}: the weight must be > 0, got {weight}; a weight of 0 ignores the metric '
                            f'and a negative one prefers the worst-scored GT. Remove the metric instead.')
        elif not positive and weight == 0:
            problems.append(f'{where}.{name}: a weight of 0 adds nothing; remove the metric instead.')


def _signature_keys(fn: Any) -> set[str] | None:
    """Parameter names of ``fn``; None when it takes ``**kwargs`` (anything goes)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params} - {'self'}


def _iqa_option_keys(name: str, mode: str) -> set[str] | None:
    """Options ``build_scorer(name, mode, **options)`` accepts: the scorer's, pyiqa's ``create_metric`` ones and
    those of the metric's pyiqa architecture; None when unknown (custom metrics, pyiqa internals changed)."""
    try:
        from pyiqa.archs import _lazy_import_arch
        from pyiqa.default_model_configs import DEFAULT_CONFIGS
        from pyiqa.models.inference_model import InferenceModel
        from pyiqa.utils.registry import ARCH_REGISTRY

        from nriqa_basicsr.iqa.scorer import IQAScorer

        info = get_metric_info(name, mode)
        if info.custom or info.name not in DEFAULT_CONFIGS:
            return None
        arch_type = DEFAULT_CONFIGS[info.name]['metric_opts']['type']
        _lazy_import_arch(arch_type)
        arch = _signature_keys(ARCH_REGISTRY.get(arch_type).__init__)
        scorer = _signature_keys(IQAScorer.__init__) or set()
        model = _signature_keys(InferenceModel.__init__) or {'loss_weight', 'seed', 'check_input_range'}
    except Exception:  # noqa: BLE001 - validation is best effort; the build reports what we cannot check
        return None
    if arch is None:
        return None
    internal = {'name', 'mode', 'device', 'metric_name', 'as_loss', 'loss_reduction'}
    return (arch | scorer | model) - internal


def _unknown_iqa_options(where: str, name: str, mode: str, given: dict[str, Any], ignore: set[str],
                         problems: list[str]) -> None:
    valid = _iqa_option_keys(name, mode)
    if valid is None:
        return
    for key in given:
        if key not in valid and key not in ignore:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            problems.append(f'{where}.{key}: not an option of IQA metric "{name}"'
                            + (f' (did you mean {close[0]}?)' if close else '') + f'; valid: {sorted(valid)}.')


def _check_basicsr_metric_call(where: str, block: dict[str, Any], fn: Any, problems: list[str]) -> None:
    """BasicSR calls ``fn(img, img2, **block-without-type)`` at the first validation: a missing required
    argument is a TypeError then; an unknown one is an error too, or, where ``fn`` swallows ``**kwargs``, silently
    ignored — refused here when it looks like a typo of a real argument."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    names = [n for n in params if n not in ('img', 'img2') and params[n].kind not in (
        inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    swallows = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for arg in block:
        if arg in names or arg in ('type', 'better'):
            continue
        close = difflib.get_close_matches(arg, names, n=1)
        if not swallows:
            problems.append(f'{where}.{arg}: not an argument of {block["type"]}'
                            + (f' (did you mean {close[0]}?)' if close else f'; valid: {names}') + '.')
        elif close:
            problems.append(f'{where}.{arg}: not an argument of {block["type"]} (did you mean {close[0]}?); '
                            f'{block["type"]} would silently ignore it.')
    for name in names:
        if params[name].default is inspect.Parameter.empty and name not in block:
            problems.append(f'{where}: {block["type"]} needs "{name}" (e.g. {name}: 4).')


def _check_metric_arguments(opt: dict[str, Any], problems: list[str]) -> None:
    """Arguments inside ``val.metrics`` blocks and ``metric_opts`` against the callee's signature, so a typo
    fails now instead of at model build or at the first validation (hours in)."""
    val = opt.get('val') if isinstance(opt.get('val'), dict) else {}
    for key, block in (val.get('metrics') or {}).items():
        if not isinstance(block, dict):
            problems.append(f'val.metrics.{key}: must be a mapping with type: (e.g. type: calculate_psnr).')
            continue
        if 'type' not in block:
            problems.append(f'val.metrics.{key}: missing "type" (calculate_psnr, calculate_ssim, calculate_nriqa, '
                            f'calculate_fr_iqa, ...).')
            continue
        if block['type'] in _METRIC_MODES:
            if isinstance(block.get('metric'), str):
                from nriqa_basicsr.metrics.nriqa_metric import niqe_option_problem

                ours = set(METRIC_TYPES) | {'type', 'better', 'metric', 'crop_border', 'input_order', 'niqe_variant'}
                problem = niqe_option_problem(block['metric'], block.get('niqe_variant', 'matlab'),
                                              {k: v for k, v in block.items() if k not in ours})
                if problem:  # metric: niqe is the MATLAB NIQE unless niqe_variant: pyiqa
                    problems.append(f'val.metrics.{key}: {problem}')
                    continue
                _unknown_iqa_options(f'val.metrics.{key}', block['metric'], _METRIC_MODES[block['type']], block,
                                     ours, problems)
            continue
        from basicsr.utils.registry import METRIC_REGISTRY

        try:
            fn = METRIC_REGISTRY.get(block['type'])
        except KeyError:
            problems.append(f'val.metrics.{key}.type: no metric "{block["type"]}" in BasicSR\'s METRIC_REGISTRY.')
            continue
        _check_basicsr_metric_call(f'val.metrics.{key}', block, fn, problems)
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    blocks = [(f'train.{k}', b, 'NR') for k, b in train.items() if isinstance(b, dict) and b.get('type') == 'NRIQALoss']
    if isinstance(train.get('gt_selection'), dict):
        blocks.append(('train.gt_selection', train['gt_selection'], 'NR'))
    for where, block, mode in blocks:
        metric_opts = block.get('metric_opts')
        if not isinstance(metric_opts, dict):
            continue
        for name, given in metric_opts.items():
            if not isinstance(given, dict):
                problems.append(f'{where}.metric_opts.{name}: must be a mapping of options.')
            elif isinstance(name, str):
                _unknown_iqa_options(f'{where}.metric_opts.{name}', name, mode, given, set(), problems)


_UNTYPED_OPT = frozenset({'neg_opt'})  # NRIQAModel's own blocks, not built from a registry


def _check_weights_and_types(opt: dict[str, Any], problems: list[str]) -> None:
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    selection = train.get('gt_selection')
    if isinstance(selection, dict):
        _metric_weight_problems('train.gt_selection.metrics', selection.get('metrics'), problems, positive=True)
    for key, block in train.items():
        if key.endswith('_opt') and isinstance(block, dict) and 'type' not in block and key not in _UNTYPED_OPT:
            problems.append(f'train.{key}: missing "type" (e.g. type: NRIQALoss); BasicSR builds every train.*_opt '
                            f'block by its type.')
        if isinstance(block, dict) and block.get('type') == 'NRIQALoss':
            _metric_weight_problems(f'train.{key}.metrics', block.get('metrics'), problems, positive=False)
    for phase, block in (opt.get('datasets') or {}).items():
        if isinstance(block, dict):
            _metric_weight_problems(f'datasets.{phase}.score_metrics', block.get('score_metrics'), problems,
                                    positive=True)


def check_train_loader(opt: dict[str, Any], train_loader: Any, total_iters: int) -> list[str]:
    """After the training loader is built (the dataset size is known): a batch larger than the dataset with
    BasicSR's drop-last loader yields no batch at all, so the run would end at once with an untrained network."""
    if train_loader is None:
        return []
    problems = []
    block = (opt.get('datasets') or {}).get('train') or {}
    if len(train_loader) == 0:
        problems.append(
            f'datasets.train.batch_size_per_gpu: {block.get("batch_size_per_gpu")} (x {opt.get("world_size", 1)} '
            f'process(es)) is larger than the training set ({len(train_loader.dataset)} samples with '
            f'dataset_enlarge_ratio {block.get("dataset_enlarge_ratio", 1)}); the loader drops the incomplete batch, '
            f'so not one iteration would run. Lower the batch size or raise dataset_enlarge_ratio.')
    if total_iters <= 0:
        problems.append(f'train.total_iter: {total_iters}; no iteration would run.')
    return problems


def prepare_options(opt: dict[str, Any]) -> dict[str, Any]:
    """Validate our option blocks in a parsed BasicSR ``opt`` and fill defaults in place; raise on problems."""
    from nriqa_basicsr.iqa.custom import register_from_options

    problems: list[str] = []
    # Custom IQA models first: every metric check below must already know their names.
    problems.extend(register_from_options(opt.get('custom_iqa')))
    _resolve_auto_arch(opt, problems)
    _check_scale(opt, problems)
    _check_run_numbers(opt, problems)
    _check_weights_and_types(opt, problems)
    _check_metric_arguments(opt, problems)
    _check_metric_blocks(opt, problems)
    _check_nriqa_losses(opt, problems)
    _check_multigt_datasets(opt, problems)
    _check_gt_selection(opt, problems)
    _check_model_sections(opt, problems)
    problems.extend(check_guard_options(opt))  # after _check_metric_blocks: it reads the filled-in ``better``
    if problems:
        raise OptionsError(problems)
    return opt
