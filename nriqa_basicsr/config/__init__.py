"""Option schemas: one frozen, typed dataclass per option section we own, decoded once at start-up."""

from nriqa_basicsr.config.schema import OptionsError, Section, decode, decode_or_raise, option, rule

__all__ = ['OptionsError', 'Section', 'decode', 'decode_or_raise', 'option', 'rule']
