"""The option-schema mechanism (nriqa_basicsr.config.schema) and the section schemas built on it."""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from nriqa_basicsr.config.schema import OptionsError, Section, decode, decode_or_raise, option, rule
from nriqa_basicsr.config.sections import (
    NRIQA_TRAIN_KEYS,
    CompileOptions,
    GTSelectionOptions,
    LoRAOptions,
    MultiGTOptions,
    NRIQATrainOptions,
    parse_gan_formulation,
)


@dataclass(frozen=True)
class Demo(Section):
    """A small section for the tests."""

    path: str = option(None, 'where', required='a folder')
    size: int = option(8, 'a size', check=lambda v, p: [] if v > 0 else [f'{p}: must be > 0, got {v}.'])
    ratio: float = option(0.5, 'a ratio')
    mode: Literal['fast', 'slow'] = option('fast', 'a choice', hint='fast skips the check')
    names: list | None = option(None, 'names')
    flag: bool = option(False, 'a flag')

    @rule('size', 'mode')
    def _slow_needs_size(self, where: str) -> list[str]:
        return [f'{where}.size: mode slow needs size >= 16.'] if self.mode == 'slow' and self.size < 16 else []


def test_defaults_are_filled_and_ints_become_floats():
    config, problems = decode(Demo, {'path': 'x', 'ratio': 1, 'names': None}, 'demo')
    assert problems == []
    assert config == Demo(path='x', size=8, ratio=1.0, mode='fast', names=None, flag=False)
    assert isinstance(config.ratio, float)


def test_configs_are_frozen():
    config = decode_or_raise(Demo, {'path': 'x'}, 'demo')
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 3


def test_unknown_key_names_the_path_and_the_closest_key():
    _, problems = decode(Demo, {'path': 'x', 'sise': 3}, 'demo')
    assert problems == ["demo.sise: unknown option; valid keys: ['flag', 'mode', 'names', 'path', 'ratio', "
                        "'size'] (did you mean size?)."]
    _, problems = decode(MultiGTOptions, {'dataroot_gt': 'x', 'layout': 'hggt', 'gt_sise': 64, 'gt_size': 64},
                         'datasets.train')
    assert problems == ['datasets.train.gt_sise: unknown MultiGTDataset option (did you mean gt_size?).']


def test_wrong_types_and_bad_choices():
    _, problems = decode(Demo, {'path': 'x', 'size': '8', 'ratio': 'half', 'flag': 1, 'names': True,
                                'mode': 'fsat'}, 'demo')
    assert problems == ["demo.size: expected int, got str '8'.",
                        "demo.ratio: expected int or float, got str 'half'.",
                        "demo.mode: 'fsat' is not one of ['fast', 'slow'] (did you mean 'fast'?); fast skips the "
                        "check.",
                        'demo.names: expected list, got a boolean.',
                        'demo.flag: expected bool, got int 1.']


def test_all_problems_at_once_and_rules_skip_fields_that_failed():
    _, problems = decode(Demo, {'size': 0, 'mode': 'slow', 'extra': 1}, 'demo')
    assert problems == ["demo.extra: unknown option; valid keys: ['flag', 'mode', 'names', 'path', 'ratio', "
                        "'size'].", 'demo: missing "path" (a folder).', 'demo.size: must be > 0, got 0.']
    _, problems = decode(Demo, {'path': 'x', 'size': 4, 'mode': 'slow'}, 'demo')
    assert problems == ['demo.size: mode slow needs size >= 16.']
    with pytest.raises(OptionsError) as info:
        decode_or_raise(Demo, {'size': 0}, 'demo')
    assert len(info.value.problems) == 2 and str(info.value).startswith('Invalid options:\n  - demo: missing')


def test_not_a_mapping():
    assert decode(Demo, ['path'], 'demo') == (None, ["demo: must be a mapping with keys ['flag', 'mode', "
                                                     "'names', 'path', 'ratio', 'size'], got list ['path']."])


def test_nested_sections_and_custom_decoders():
    config = decode_or_raise(NRIQATrainOptions, {'amp': True, 'compile': {'mode': 'max-autotune'},
                                                 'gt_selection': {'policy': 'amo', 'metrics': 'musiq'},
                                                 'optim_g': {'type': 'Adam'}}, 'train')  # BasicSR's keys pass
    assert config.amp == 'bf16' and config.compile == CompileOptions(mode='max-autotune')
    assert config.compile.kwargs() == {'mode': 'max-autotune'} and config.compile.scorers
    assert config.gt_selection == GTSelectionOptions(policy='amo', metrics={'musiq': 1.0})
    assert config.max_consecutive_nonfinite == 5 and config.gan == 'standard'
    assert decode_or_raise(NRIQATrainOptions, {'compile': False, 'amp': 'false'}, 'train').compile is None
    _, problems = decode(NRIQATrainOptions, {'compile': {'backnd': 'eager'}, 'amp': 'fp8',
                                             'gt_selection': {'tau': -1}}, 'train')
    assert problems == ['train.gt_selection.tau: must be > 0, got -1.0.',
                        "train.amp: must be bf16, fp16 or false, got 'fp8'.",
                        "train.compile.backnd: unknown option; valid keys: ['backend', 'dynamic', 'fullgraph', "
                        "'mode', 'scorers'] (did you mean backend?)."]
    assert NRIQA_TRAIN_KEYS == ('gt_selection', 'iqa_opt', 'neg_opt', 'amp', 'channels_last',
                                'max_consecutive_nonfinite', 'compile', 'gan_formulation')


def test_gan_formulation_and_lora():
    assert parse_gan_formulation('ESRGANModel') == 'relativistic' and parse_gan_formulation(None) == 'standard'
    with pytest.raises(ValueError, match="train.gan_formulation: 'wgan' is not one of"):
        parse_gan_formulation('wgan')
    assert decode_or_raise(LoRAOptions, {'rank': 4}, 'network_g_lora').lora_alpha == 4.0
    _, problems = decode(LoRAOptions, {'rank': 0, 'dropout': 1}, 'network_g_lora')
    assert problems == ['network_g_lora.rank: must be >= 1, got 0.', 'network_g_lora.dropout: must be in [0, 1), '
                        'got 1.0.']


def test_dataset_rules_read_phase_and_scale():
    base = {'dataroot_gt': 'x', 'layout': 'hggt'}
    assert decode(MultiGTOptions, dict(base, phase='val'), 'd')[1] == []
    assert decode(MultiGTOptions, base, 'd')[1] == ['d.gt_size: required for training (GT crop size).']
    assert decode(MultiGTOptions, dict(base, gt_size=66, scale=4), 'd')[1] == [
        'd.gt_size: 66 is not a multiple of scale 4.']
    config = decode_or_raise(MultiGTOptions, dict(base, gt_size=64, dataroot_lq='lq'), 'd')
    assert config.resolved_lq_mode == 'paired' and config.resolved_score_norm(2) == 'zscore'
    assert decode(MultiGTOptions, dict(base, gt_size=64, lq_mode='paired'), 'd')[1] == [
        'd.lq_mode: "paired" needs dataroot_lq (the LQ folder); or use lq_mode: bicubic.']
