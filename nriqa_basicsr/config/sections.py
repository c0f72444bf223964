"""The option sections we own, one frozen schema each (see :mod:`nriqa_basicsr.config.schema`).

===========================  ======================================================================
:class:`MultiGTOptions`      ``datasets.<phase>`` of ``type: MultiGTDataset``
:class:`GTSelectionOptions`  ``train.gt_selection``
:class:`NRIQALossOptions`    ``train.<key>`` of ``type: NRIQALoss`` (``train.iqa_opt``)
:class:`NegativeLossOptions` ``train.neg_opt``
:class:`CompileOptions`      ``train.compile`` as a mapping
:class:`NRIQATrainOptions`   the ``train`` keys NRIQAModel reads (BasicSR's own keys pass)
:class:`LoRAOptions`         ``network_g_lora``
:class:`DegradationOptions`  ``degradation``
:class:`MetricOptions`       ``val.metrics.<key>`` of ``type: calculate_nriqa`` / ``calculate_fr_iqa``
===========================  ======================================================================

Checks that need another section, a file or the metric registry stay in :mod:`nriqa_basicsr.options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nriqa_basicsr.config.schema import Section, decode, got, option, rule
from nriqa_basicsr.data.selection import LABEL_POLICIES, POLICIES

__all__ = ['GAN_FORMULATIONS', 'METRIC_MODES', 'NRIQA_SECTIONS', 'NRIQA_TOP_KEYS', 'NRIQA_TRAIN_KEYS', 'CompileOptions',
           'DegradationOptions', 'GTSelectionOptions', 'LoRAOptions', 'MetricOptions', 'MultiGTOptions',
           'NRIQALossOptions', 'NRIQATrainOptions', 'NegativeLossOptions', 'metric_weights',
           'parse_gan_formulation']

#: ``val.metrics.<key>.type`` of our metric blocks → the metric kind they score
METRIC_MODES = {'calculate_nriqa': 'NR', 'calculate_fr_iqa': 'FR'}
# train.gan_formulation: how the discriminator's outputs enter the GAN losses. BasicSR model names are accepted
# so that a converted option file can say where it comes from: SRGANModel / RealESRGANModel use the standard GAN
# (D(x) against the real/fake label), ESRGANModel the relativistic average GAN (D(x) - mean D(other side)).
GAN_FORMULATIONS = {'standard': 'standard', 'SRGANModel': 'standard', 'RealESRGANModel': 'standard',
                    'relativistic': 'relativistic', 'ESRGANModel': 'relativistic'}
_GAN_NAMES = tuple(GAN_FORMULATIONS)


# ------------------------------------------------------------------------------------------- shared checks
def metric_weights(positive: bool) -> Any:
    """Decoder of a metric ensemble: a name, a list of names (weight 1) or ``{name: weight}`` → a dict of floats.

    ``positive``: weights must be > 0 (GT selection and score ensembles, where 0 would drop a metric and a
    negative weight prefer the worst GT); otherwise only 0 is refused (a term that adds nothing)."""
    def parse(value: Any, path: str) -> tuple[dict[str, float] | None, list[str]]:
        if isinstance(value, str):
            return {value: 1.0}, []
        if isinstance(value, (list, tuple)) and all(isinstance(m, str) for m in value):
            return {m: 1.0 for m in value}, []
        if not isinstance(value, dict):
            return None, [f'{path}: expected a metric name, a list of names or a mapping {{name: weight}}, got '
                          f'{got(value)}.']
        problems = []
        for name, weight in value.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                problems.append(f'{path}.{name}: the weight must be a number, got {got(weight)}; the weight of '
                                f'metric "{name}" must be a number'
                                + (' (write 0.5, not "0.5").' if isinstance(weight, str) else '.'))
            elif positive and not weight > 0:
                problems.append(f'{path}.{name}: the weight must be > 0, got {weight}; a weight of 0 ignores the '
                                f'metric and a negative one prefers the worst-scored GT. Remove the metric instead.')
            elif not positive and weight == 0:
                problems.append(f'{path}.{name}: a weight of 0 adds nothing; remove the metric instead.')
        return ({str(k): float(v) for k, v in value.items()} if not problems else None), problems
    return parse


def _stray_metric_opts(where: str, metric_opts: dict[str, Any], metrics: dict[str, float]) -> list[str]:
    stray = sorted(set(metric_opts) - set(metrics))
    return [f'{where}: metric_opts given for {stray}, which are not in metrics {sorted(metrics)}; add them to '
            f'metrics or remove their metric_opts.'] if stray else []


def _at_least(minimum: int, what: str = '') -> Any:
    def check(value: Any, path: str) -> list[str]:
        return [] if value >= minimum else [f'{path}: {what or f"must be >= {minimum}"}, got {value!r}.']
    return check


# ------------------------------------------------------------------------------------------------- datasets
_KERNELS = ('blur kernels of `lq_mode: realesrgan` (BasicSR\'s `RealESRGANDataset` names; `…2`: a second stage, '
            'default the first stage\'s); HGGT\'s one-stage values are in the fragments')
_LOADER = 'BasicSR\'s loader keys, applied as usual'


@dataclass(frozen=True)
class MultiGTOptions(Section):
    """K ground-truth variants per sample (HGGT-style multi-GT training).

    Any other key is an error, at start-up and when the dataset is built.
    """

    label = 'MultiGTDataset'

    type: Literal['MultiGTDataset'] = option('MultiGTDataset', 'the dataset class')
    name: str | None = option(None, 'name in log lines')
    phase: str = option('train', 'set by BasicSR from the `datasets` key (`train`: random crops, augmentation)')
    scale: int = option(4, 'set by BasicSR from the top-level `scale`')
    dataroot_gt: str = option(None, 'folder of variant folders (disk) or `<variant>.lmdb` folders (lmdb)',
                              required='folder of GT variant folders or LMDBs')
    layout: Literal['hggt', 'generic'] = option('generic', 'HGGT release layout, or any K variants')
    gt_variants: list | None = option(None, 'variant folder names, original first (required for generic)',
                                      shown="HGGT: `[original, '01', '02', '03', '04']`")
    filename_tmpl: str | None = option(None, 'file stem of non-original variants',
                                       shown="hggt `'{name}_{variant}'`, generic `'{name}'`")
    dataroot_label: str | None = option(None, 'folder of annotator folders with HGGT JSON labels')
    io_backend: dict | None = option(None, '`disk` or `lmdb` (BasicSR FileClient conventions)',
                                     shown='`{type: disk}`')
    lq_mode: Literal['paired', 'bicubic', 'realesrgan'] | None = option(
        None, '`paired` (LQ folder), `bicubic` (MATLAB bicubic of the original crop, on the fly), `realesrgan` '
              '(blind degradation of the original in the model; returns kernels)',
        shown='`paired` with `dataroot_lq`, else `bicubic`')
    dataroot_lq: str | None = option(None, 'LQ folder (or `.lmdb`) named like the originals')
    lq_filename_tmpl: str = option('{}', 'LQ file name from the group name')
    lq_ext: str = option('.png', 'LQ file extension (folders, not LMDB)')
    gt_size: int | None = option(None, 'GT crop size (multiple of `scale`)', check=_at_least(1, 'must be positive'),
                                 shown='required for training')
    use_hflip: bool = option(True, 'horizontal flips, shared by all variants and the LQ')
    use_rot: bool = option(True, 'rotations, shared by all variants and the LQ')
    drop_without_positive: bool = option(False, 'drop groups without an effective positive (UPos/SMP as in HGGT; '
                                                'needs labels)')
    report_counts: bool = option(True, 'log groups, per-variant label counts and groups without positives at '
                                       'start-up')
    score_file: str | None = option(None, 'offline scores (`nriqa-score-gts`) for `sma`/`smp`/`amo_cached`')
    score_metrics: dict[str, float] | None = option(None, '`{metric: weight}` ensemble of the file\'s metrics',
                                                    parse=metric_weights(positive=True), kind='dict/list/str',
                                                    shown='all metrics in the file')
    score_norm: Literal['raw', 'zscore'] | None = option(None, 'standardise each metric over the dataset first',
                                                         shown='raw for one metric, zscore for several')
    blur_kernel_size: int | None = option(None, group=_KERNELS)
    kernel_range: list | None = option(None, group=_KERNELS)
    kernel_list: list | None = option(None, group=_KERNELS)
    kernel_prob: list | None = option(None, group=_KERNELS)
    sinc_prob: float | None = option(None, group=_KERNELS)
    blur_sigma: list | None = option(None, group=_KERNELS)
    betag_range: list | None = option(None, group=_KERNELS)
    betap_range: list | None = option(None, group=_KERNELS)
    final_sinc_prob: float | None = option(None, group=_KERNELS)
    kernel_list2: list | None = option(None, group=_KERNELS)
    kernel_prob2: list | None = option(None, group=_KERNELS)
    sinc_prob2: float | None = option(None, group=_KERNELS)
    blur_sigma2: list | None = option(None, group=_KERNELS)
    betag_range2: list | None = option(None, group=_KERNELS)
    betap_range2: list | None = option(None, group=_KERNELS)
    num_worker_per_gpu: int | None = option(None, group=_LOADER)
    batch_size_per_gpu: int | None = option(None, group=_LOADER)
    dataset_enlarge_ratio: int | None = option(None, group=_LOADER)
    prefetch_mode: Any = option(None, group=_LOADER)
    pin_memory: bool | None = option(None, group=_LOADER)
    persistent_workers: bool | None = option(None, group=_LOADER)
    use_shuffle: bool | None = option(None, group=_LOADER)

    @property
    def resolved_lq_mode(self) -> str:
        """``lq_mode``, or its default: ``paired`` with ``dataroot_lq``, else ``bicubic``."""
        return self.lq_mode or ('paired' if self.dataroot_lq else 'bicubic')

    def resolved_score_norm(self, num_metrics: int) -> str:
        """``score_norm``, or its default: ``zscore`` for an ensemble of several metrics, else ``raw``."""
        return self.score_norm or ('zscore' if num_metrics > 1 else 'raw')

    @rule('layout', 'gt_variants')
    def _variants_given(self, where: str) -> list[str]:
        if self.layout == 'generic' and not self.gt_variants:
            return [f'{where}.gt_variants: required with layout generic (original first), or set layout: hggt.']
        return []

    @rule('phase', 'gt_size', 'scale')
    def _crop_size(self, where: str) -> list[str]:
        if self.phase == 'train' and not self.gt_size:
            return [f'{where}.gt_size: required for training (GT crop size).']
        if self.gt_size and self.gt_size % self.scale:
            return [f'{where}.gt_size: {self.gt_size} is not a multiple of scale {self.scale}.']
        return []

    @rule('lq_mode', 'dataroot_lq')
    def _paired_needs_lq(self, where: str) -> list[str]:
        if self.lq_mode == 'paired' and not self.dataroot_lq:
            return [f'{where}.lq_mode: "paired" needs dataroot_lq (the LQ folder); or use lq_mode: bicubic.']
        return []


# ----------------------------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class GTSelectionOptions(Section):
    """Which GT variant supervises each sample (the policies: :mod:`nriqa_basicsr.data.selection`).

    Checked at start-up besides: a policy that needs labels without ``dataroot_label``, one that needs scores
    without ``score_file``, ``amo_cached`` with a score file without a grid, metric names.
    """

    policy: Literal[POLICIES] = option('original', '`original`, `upos`, `sma`, `smp`, `amo`, `amo_cached` '
                                                   '(see *GT selection*)')
    tau: float = option(1.0, 'softmax temperature of `sma`/`smp`, in score units (raw metric points, or z units '
                             'for ensembles)', check=lambda v, p: [] if v > 0 else [f'{p}: must be > 0, got {v}.'])
    metrics: dict[str, float] = option(factory=dict, doc='NR metric(s) `{name: weight}` scoring the candidates '
                                       'online (`amo`)', parse=metric_weights(positive=True), kind='dict/list/str',
                                       shown='—')
    metric_opts: dict[str, dict] = option(factory=dict, doc='`{name: {...}}` scorer options (e.g. `weights_path`) '
                                          'of the `amo` metrics', shown='{}')
    include_original: bool = option(True, 'whether the original is a candidate of `sma`/`amo`')
    exclude_negatives: bool = option(False, 'drop human negatives from the `sma`/`amo` candidates (needs labels)')

    @property
    def needs_labels(self) -> bool:
        return self.policy in LABEL_POLICIES or self.exclude_negatives

    @property
    def needs_score_file(self) -> bool:
        return self.policy in ('sma', 'smp', 'amo_cached')

    @rule('policy', 'metrics')
    def _online_metrics(self, where: str) -> list[str]:
        if self.policy == 'amo' and not self.metrics:
            return [f'{where}.metrics: policy "amo" scores candidates online; name the NR metric(s), e.g. '
                    f'metrics: {{musiq: 1.0}}.']
        return []

    @rule('metrics', 'metric_opts')
    def _metric_opts_known(self, where: str) -> list[str]:
        return _stray_metric_opts(where, self.metric_opts, self.metrics)


# --------------------------------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class NRIQALossOptions(Section):
    """``loss = loss_weight · Σ_m w_m · (−quality_m(pred))``, reduced over the batch; a ``train.<key>`` block of
    ``type: NRIQALoss`` (NRIQAModel reads ``train.iqa_opt``).

    The metric networks are never sub-modules of the loss: they stay out of optimisers, DDP wrappers and state
    dicts.
    """

    type: Literal['NRIQALoss'] = option('NRIQALoss', 'the loss class (BasicSR\'s `LOSS_REGISTRY`)')
    metrics: dict[str, float] | None = option(
        None, '`{name: weight}` of NR metrics (pyiqa, custom such as `cnniqa_live`, or `module:Class`); a list or a '
              'name means weight 1', parse=metric_weights(positive=False), kind='dict/list/str', shown='required')
    metric: str | None = option(None, 'shorthand for one metric with weight 1 (`metric: cnniqa_live`); not together '
                                      'with `metrics`')
    loss_weight: float = option(1.0, 'overall weight')
    reduction: Literal['none', 'mean', 'sum'] = option('mean', '`mean`, `sum` or `none` (per-sample)',
                                                       hint='unsupported reduction')
    normalize: bool = option(False, 'put each metric on about [0, 1] first (recommended when mixing metrics)')
    clamp: bool = option(True, 'clamp the SR output to [0, 1] before scoring')
    nonfinite: Literal['raise', 'skip'] = option(
        'raise', '`raise`: a NaN/inf score raises an error naming the metric; `skip`: those samples contribute 0 '
                 'and are counted (`nonfinite_counts`) and logged')
    metric_opts: dict[str, dict] = option(factory=dict, doc='`{name: {weights_path, score_range, <pyiqa arch '
                                          'option>...}}`', shown='{}')
    weights_dir: str | list | None = option(None, 'extra weight directories')
    device: str | None = option(None, 'where the metrics are built at start-up', shown='CUDA if available')

    @property
    def weights(self) -> dict[str, float]:
        """``{metric: weight}``, from ``metrics`` or the ``metric`` shorthand."""
        return dict(self.metrics) if self.metrics else {self.metric: 1.0}

    @rule('metrics', 'metric')
    def _one_spelling(self, where: str) -> list[str]:
        if self.metrics is not None and self.metric is not None:
            return [f'{where}: give either metrics (names/weights) or metric (one name), not both.']
        if not self.metrics and not self.metric:
            return [f'{where}.metrics: give at least one no-reference metric, e.g. {{musiq: 1.0}}.']
        return []

    @rule('metrics', 'metric', 'metric_opts')
    def _metric_opts_known(self, where: str) -> list[str]:
        if not self.metrics and not self.metric:
            return []
        return _stray_metric_opts(where, self.metric_opts, self.weights)


@dataclass(frozen=True)
class NegativeLossOptions(Section):
    """HGGT's negative loss, computed by NRIQAModel itself (no ``type``; it needs labels): per sample a random
    effective Negative N and Positive P (or the original), a map M from 3×3 local variances of the residuals, and
    the term −w·mean|M⊙SR − M⊙N| (:mod:`nriqa_basicsr.losses.negative_loss`)."""

    loss_weight: float = option(0.0, 'weight w of the term −w·mean|M⊙SR − M⊙N| (HGGT: 300)')


# ------------------------------------------------------------------------------------------- NRIQAModel
@dataclass(frozen=True)
class CompileOptions(Section):
    """``train.compile`` as a mapping: ``torch.compile`` settings; unset ones keep torch's defaults."""

    mode: str | None = option(None, 'torch.compile mode (`default`, `reduce-overhead`, `max-autotune`)')
    backend: str | None = option(None, 'torch.compile backend', shown='`inductor`')
    dynamic: bool | None = option(None, 'dynamic shapes (torch decides when unset)')
    fullgraph: bool | None = option(None, 'refuse graph breaks', shown='false')
    scorers: bool = option(True, 'compile the IQA scorers too')

    def kwargs(self) -> dict[str, Any]:
        """The ``torch.compile`` keyword arguments that were given."""
        return {k: getattr(self, k) for k in ('mode', 'backend', 'dynamic', 'fullgraph')
                if getattr(self, k) is not None}


def _parse_amp(value: Any, path: str) -> tuple[str | None, list[str]]:
    amp = {True: 'bf16', False: None, 'false': None}.get(value, value) if isinstance(value, (bool, str)) else value
    if amp in (None, 'bf16', 'fp16'):
        return amp, []
    return None, [f'{path}: must be bf16, fp16 or false, got {value!r}.']


def _parse_compile(value: Any, path: str) -> tuple[CompileOptions | None, list[str]]:
    if isinstance(value, bool):
        return (CompileOptions() if value else None), []
    if isinstance(value, dict):
        return decode(CompileOptions, value, path)
    names = [f for f in CompileOptions.__dataclass_fields__]
    return None, [f'{path}: true, false or a mapping with {sorted(names)}, got {got(value)}.']


@dataclass(frozen=True)
class NRIQATrainOptions(Section):
    """The ``train`` keys NRIQAModel reads beyond BasicSR's own (which pass unchecked here).

    These sections, ``network_g_lora`` and ``degradation`` are refused with any other ``model_type`` (BasicSR
    would silently ignore them).
    """

    open_keys = True

    gt_selection: GTSelectionOptions = option(factory=GTSelectionOptions, doc='see *GT selection*',
                                              kind='dict', shown='`{policy: original}`')
    iqa_opt: dict | None = option(None, 'an `NRIQALoss` block on the SR output (the FT objective)')
    neg_opt: NegativeLossOptions | None = option(None, 'HGGT\'s negative loss `{loss_weight: 300}` (see *Negative '
                                                       'loss*); needs labels', kind='dict')
    amp: Literal['bf16', 'fp16'] | None = option(
        None, 'autocast for generator, discriminator and scorer on CUDA (fp16 with a gradient scaler); ignored on '
              'CPU with a log line (`true` means bf16)', parse=_parse_amp, kind='`bf16`/`fp16`/false', shown='false')
    channels_last: bool = option(False, 'channels-last memory format for the nets and scorer inputs on CUDA; '
                                        'ignored on CPU')
    max_consecutive_nonfinite: int = option(
        5, 'stop after this many iterations in a row skipped for NaN/inf (0: never stop)',
        check=_at_least(0, 'a count >= 0 (0 never stops)'))
    compile: CompileOptions | None = option(
        None, '`torch.compile` the generator and scorers in place; a dict sets `mode`, `backend`, `dynamic`, '
              '`fullgraph`, `scorers` (true)', parse=_parse_compile, kind='bool/dict', shown='false')
    gan_formulation: Literal[_GAN_NAMES] = option(
        'standard', 'the GAN of the BasicSR model a file comes from: standard = SRGANModel / RealESRGANModel, '
                    'relativistic = ESRGANModel\'s relativistic average; logged at start-up',
        hint='standard = SRGANModel / RealESRGANModel, relativistic = ESRGANModel\'s relativistic average GAN')

    @property
    def gan(self) -> str:
        """``gan_formulation`` as ``'standard'`` or ``'relativistic'``."""
        return GAN_FORMULATIONS[self.gan_formulation]


#: the ``train`` keys NRIQAModel reads beyond BasicSR's (e.g. for benchmarks that copy them between files)
NRIQA_TRAIN_KEYS = tuple(NRIQATrainOptions.__dataclass_fields__)
#: the top-level sections only NRIQAModel reads
NRIQA_TOP_KEYS = ('network_g_lora', 'degradation')


def parse_gan_formulation(value: Any) -> str:
    """``train.gan_formulation`` (default ``standard``) as ``'standard'`` or ``'relativistic'``."""
    config, problems = decode(NRIQATrainOptions, {'gan_formulation': value}, 'train')
    if problems:
        raise ValueError(problems[0])
    return config.gan


@dataclass(frozen=True)
class LoRAOptions(Section):
    """LoRA adapters of the FT stage (peft) on the frozen stage-one generator; needs
    ``path.pretrain_network_g``."""

    rank: int = option(8, 'adapter rank r', check=_at_least(1))
    alpha: float | None = option(None, 'scaling alpha (the update is scaled by alpha / rank)', shown='= rank')
    dropout: float = option(0.0, 'dropout on the adapter input',
                            check=lambda v, p: [] if 0 <= v < 1 else [f'{p}: must be in [0, 1), got {v}.'])
    target_modules: str | list | None = option(
        None, 'regex or list of module names (peft\'s matching); must match only `nn.Conv2d` / `nn.Linear` layers',
        shown='for RRDBNet and SwinIR')

    @property
    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)


_STAGE1 = 'first stage: `resize_prob` [up, down, keep], ranges and probabilities of noise and JPEG'
_STAGE2 = 'the same for the second stage (`…2`; used when the dataset gives `kernel_list2`)'


@dataclass(frozen=True)
class DegradationOptions(Section):
    """The blind degradation NRIQAModel applies on the device for ``lq_mode: realesrgan``; unset keys take
    Real-ESRGAN's values (:mod:`nriqa_basicsr.data.degradation`)."""

    resize_prob: list | None = option(None, group=_STAGE1)
    resize_range: list | None = option(None, group=_STAGE1)
    gaussian_noise_prob: float | None = option(None, group=_STAGE1)
    noise_range: list | None = option(None, group=_STAGE1)
    poisson_scale_range: list | None = option(None, group=_STAGE1)
    gray_noise_prob: float | None = option(None, group=_STAGE1)
    jpeg_range: list | None = option(None, group=_STAGE1)
    resize_prob2: list | None = option(None, group=_STAGE2)
    resize_range2: list | None = option(None, group=_STAGE2)
    gaussian_noise_prob2: float | None = option(None, group=_STAGE2)
    noise_range2: list | None = option(None, group=_STAGE2)
    poisson_scale_range2: list | None = option(None, group=_STAGE2)
    gray_noise_prob2: float | None = option(None, group=_STAGE2)
    jpeg_range2: list | None = option(None, group=_STAGE2)


# ------------------------------------------------------------------------------------------------ validation
def _parse_better(value: Any, path: str) -> tuple[str | None, list[str]]:
    if value in ('higher', 'lower'):
        return value, []
    return None, [f'{path}: must be "higher" or "lower", got {value!r}.']


@dataclass(frozen=True)
class MetricOptions(Section):
    """Our validation metric blocks (BasicSR's own, such as ``calculate_psnr``, are checked against their
    function's signature).

    Any other key is passed to the pyiqa architecture (e.g. ``color_space: ycbcr`` for NIQE, with
    ``niqe_variant: pyiqa``) and checked against its signature. Reported values are the metric's own scores (NIQE
    stays lower-is-better).
    """

    open_keys = True

    type: Literal[tuple(METRIC_MODES)] = option(
        'calculate_nriqa', '`calculate_nriqa` (no-reference) or `calculate_fr_iqa` (full-reference, needs GT)',
        shown='—')
    metric: str = option(None, 'pyiqa metric name (`musiq`, `niqe`, `lpips`, `dists`, `stlpips`, ...)',
                         required='a pyiqa metric name, e.g. metric: musiq')
    crop_border: int = option(0, 'pixels cut from each border before scoring')
    input_order: Literal['HWC', 'CHW'] = option('HWC', 'layout of the images BasicSR passes')
    better: Literal['higher', 'lower'] | None = option(
        None, 'BasicSR\'s best-metric direction; filled in automatically, a contradicting value is an error',
        parse=_parse_better, shown='from the metric')
    weights_path: str | None = option(None, 'explicit main checkpoint')
    weights_dir: str | list | None = option(None, 'extra directories searched first')
    normalize: bool = option(False, 'as for the scorer (reported values are then normalised qualities)')
    score_range: list | None = option(None, 'as for the scorer: [low, high] of the normalised scale')
    check_range: bool = option(True, 'error on inputs outside [0, 1]')
    fast_path: bool = option(True, 'MUSIQ through `fast_musiq.py`')
    niqe_variant: Literal['matlab', 'pyiqa'] = option(
        'matlab', 'what `metric: niqe` is: the MATLAB NIQE SR papers report (`niqe_matlab_y`) or pyiqa\'s')


#: every schema of this module, by the option path it describes (the README option reference's order)
NRIQA_SECTIONS: dict[str, type[Section]] = {
    'val.metrics.<key>': MetricOptions,
    'train.<key> (type: NRIQALoss)': NRIQALossOptions,
    'datasets.<phase> (type: MultiGTDataset)': MultiGTOptions,
    'train.gt_selection': GTSelectionOptions,
    'train': NRIQATrainOptions,
    'train.compile': CompileOptions,
    'train.neg_opt': NegativeLossOptions,
    'network_g_lora': LoRAOptions,
    'degradation': DegradationOptions,
}
