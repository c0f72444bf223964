"""Start-up checks and completions of the options we add to BasicSR's YAML.

BasicSR ignores unknown keys and builds validation metrics only at the first validation, so a typo in a metric
name would surface hours into a run. :func:`prepare_options` runs right after BasicSR parses the YAML (see
``nriqa_basicsr.pipeline``), decodes each section we own through its schema (:mod:`nriqa_basicsr.config`),
adds the checks across sections, files and the metric registry, reports every problem at once, and fills
BasicSR's ``better`` key of our metric blocks from the metric's direction.
"""

from __future__ import annotations

import difflib
import os.path as osp
from typing import Any

from nriqa_basicsr.config.schema import OptionsError, decode
from nriqa_basicsr.config.sections import (
    METRIC_MODES,
    NRIQA_TOP_KEYS,
    NRIQA_TRAIN_KEYS,
    DegradationOptions,
    LoRAOptions,
    MetricOptions,
    MultiGTOptions,
    NRIQALossOptions,
    NRIQATrainOptions,
)
from nriqa_basicsr.guard import check_guard_options
from nriqa_basicsr.iqa import UnknownMetricError, get_metric_info

__all__ = ['OptionsError', 'check_option_structure', 'check_train_loader', 'prepare_options']

def _metric_name_problems(where: str, names: Any, mode: str, problems: list[str]) -> None:
    """Names the metric registry does not know (or of the wrong kind), with its closest-name suggestion."""
    for name in names:
        try:
            get_metric_info(name, mode)
        except UnknownMetricError as exc:
            problems.append(f'{where}: {exc}')


def _check_metric_blocks(opt: dict[str, Any], problems: list[str]) -> None:
    """Our ``val.metrics`` blocks: decoded, the metric looked up, and BasicSR's ``better`` filled from its
    direction (a contradicting value is refused)."""
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for key, block in metrics.items():
        if not isinstance(block, dict) or block.get('type') not in METRIC_MODES:
            continue
        where = f'val.metrics.{key}'
        config, found = decode(MetricOptions, block, where)
        problems.extend(found)
        if config is None:
            continue
        try:
            info = get_metric_info(config.metric, METRIC_MODES[config.type])
        except UnknownMetricError as exc:
            problems.append(f'{where}: {exc}')
            continue
        if config.better is None:
            block['better'] = info.better
        elif config.better != info.better:
            problems.append(f'{where}.better: "{info.name}" is {info.better}-is-better, but better: {config.better} '
                            f'was given; remove the key to use the metric\'s own direction.')


def _check_nriqa_losses(opt: dict[str, Any], problems: list[str]) -> None:
    for key, block in (opt.get('train') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'NRIQALoss'):
            continue
        config, found = decode(NRIQALossOptions, block, f'train.{key}')
        problems.extend(found)
        if config is not None:
            _metric_name_problems(f'train.{key}.metrics', config.weights, 'NR', problems)


def _decode_multigt_datasets(opt: dict[str, Any], problems: list[str]) -> dict[str, MultiGTOptions | None]:
    """Every ``MultiGTDataset`` block, with ``phase`` and ``scale`` filled as BasicSR's ``parse_options`` does."""
    configs = {}
    for key, block in (opt.get('datasets') or {}).items():
        if not (isinstance(block, dict) and block.get('type') == 'MultiGTDataset'):
            continue
        filled = dict(block, phase=block.get('phase') or key.split('_')[0])
        if opt.get('scale') is not None:
            filled['scale'] = opt['scale']
        configs[key], found = decode(MultiGTOptions, filled, f'datasets.{key}')
        problems.extend(found)
    return configs


def _check_gt_selection(opt: dict[str, Any], train_cfg: NRIQATrainOptions,
                        datasets: dict[str, MultiGTOptions | None], problems: list[str]) -> None:
    """``train.gt_selection`` against the metric registry and the training data it needs."""
    from nriqa_basicsr.data.score_file import ScoreFileError, load_score_table

    config = train_cfg.gt_selection
    _metric_name_problems('train.gt_selection.metrics', config.metrics, 'NR', problems)
    if ((opt.get('datasets') or {}).get('train') or {}).get('type') != 'MultiGTDataset':
        if config.policy != 'original':
            problems.append(f'train.gt_selection.policy "{config.policy}" needs datasets.train of type '
                            f'MultiGTDataset (several GT variants per sample).')
        return
    data = datasets.get('train')
    if data is None:  # its own problems are reported; the ones below would only guess
        return
    if config.needs_labels and not data.dataroot_label:
        why = 'exclude_negatives' if config.policy not in ('upos', 'smp') else f'policy "{config.policy}"'
        problems.append(f'train.gt_selection: {why} needs human labels; set datasets.train.dataroot_label.')
    if config.needs_score_file and not data.score_file:
        problems.append(f'train.gt_selection: policy "{config.policy}" needs offline scores; set '
                        f'datasets.train.score_file (made by scripts/score_gts.py'
                        + (' --grid STRIDE --crop GT_SIZE' if config.policy == 'amo_cached' else '') + ').')
    if config.policy == 'amo_cached' and data.score_file and osp.isfile(data.score_file):
        try:
            grid = load_score_table(data.score_file).meta.get('grid')
        except ScoreFileError as exc:
            problems.append(f'datasets.train.score_file: {exc}')
            return
        if not grid:
            problems.append(f'datasets.train.score_file {data.score_file}: has no score grid, which policy '
                            f'"amo_cached" needs; rescore with --grid STRIDE --crop {data.gt_size}.')


def _check_model_sections(opt: dict[str, Any], datasets: dict[str, MultiGTOptions | None],
                          problems: list[str]) -> None:
    """Sections read by NRIQAModel; they are refused with any other model (BasicSR would ignore them)."""
    from nriqa_basicsr.archs.lora import lora_targets

    train = opt.get('train') or {}
    ours = [k for k in NRIQA_TRAIN_KEYS if k in train] + [k for k in NRIQA_TOP_KEYS if k in opt]
    model = opt.get('model_type')
    if model not in (None, 'NRIQAModel'):
        if ours:
            # NRIQAModel reproduces the GAN of the model a file comes from only when told (train.gan_formulation)
            gan = {'ESRGANModel': ' and train.gan_formulation: relativistic (ESRGANModel\'s relativistic average '
                                  'GAN)', 'SRGANModel': ' (its standard GAN is the default)'}
            problems.append(f'{", ".join(ours)}: read only by model_type NRIQAModel, but model_type is '
                            f'{model}; set model_type: NRIQAModel{gan.get(model, "")}.')
        return
    train_cfg, found = decode(NRIQATrainOptions, train, 'train')
    problems.extend(found)
    if train_cfg is not None:
        _check_gt_selection(opt, train_cfg, datasets, problems)
    if 'network_g_lora' in opt:
        lora, found = decode(LoRAOptions, opt['network_g_lora'], 'network_g_lora')
        problems.extend(found)
        if lora is not None:
            try:
                lora_targets(lora, (opt.get('network_g') or {}).get('type'))
            except ValueError as exc:
                problems.append(str(exc))
    if 'degradation' in opt:
        problems.extend(decode(DegradationOptions, opt['degradation'], 'degradation')[1])
    if model != 'NRIQAModel':
        return
    if 'network_g_lora' in opt and not (opt.get('path') or {}).get('pretrain_network_g'):
        problems.append('network_g_lora (FT stage) needs path.pretrain_network_g, the stage-one generator.')
    if 'neg_opt' in train and not ((opt.get('datasets') or {}).get('train') or {}).get('dataroot_label'):
        problems.append('train.neg_opt: the negative loss needs human labels (datasets.train.dataroot_label).')
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
        if block['type'] in METRIC_MODES:
            if isinstance(block.get('metric'), str):
                from nriqa_basicsr.metrics.nriqa_metric import niqe_option_problem

                ours = set(MetricOptions.__dataclass_fields__)
                problem = niqe_option_problem(block['metric'], block.get('niqe_variant', 'matlab'),
                                              {k: v for k, v in block.items() if k not in ours})
                if problem:  # metric: niqe is the MATLAB NIQE unless niqe_variant: pyiqa
                    problems.append(f'val.metrics.{key}: {problem}')
                    continue
                _unknown_iqa_options(f'val.metrics.{key}', block['metric'], METRIC_MODES[block['type']], block,
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


def _check_opt_types(opt: dict[str, Any], problems: list[str]) -> None:
    train = opt.get('train') if isinstance(opt.get('train'), dict) else {}
    for key, block in train.items():
        if key.endswith('_opt') and isinstance(block, dict) and 'type' not in block and key not in _UNTYPED_OPT:
            problems.append(f'train.{key}: missing "type" (e.g. type: NRIQALoss); BasicSR builds every train.*_opt '
                            f'block by its type.')


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
    _check_opt_types(opt, problems)
    _check_metric_arguments(opt, problems)
    _check_metric_blocks(opt, problems)
    _check_nriqa_losses(opt, problems)
    datasets = _decode_multigt_datasets(opt, problems)
    _check_model_sections(opt, datasets, problems)
    problems.extend(check_guard_options(opt))  # after _check_metric_blocks: it reads the filled-in ``better``
    if problems:
        raise OptionsError(problems)
    return opt
