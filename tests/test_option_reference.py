"""The README option reference is generated from the option schemas and must match them."""

from pathlib import Path

import pytest

from nriqa_basicsr.config.reference import BEGIN, END, main, render, replace_between_markers
from nriqa_basicsr.config.schema import section_fields
from nriqa_basicsr.config.sections import NRIQA_SECTIONS

README = Path(__file__).resolve().parents[1] / 'README.md'


def test_readme_option_reference_matches_the_schemas():
    text = README.read_text(encoding='utf-8')
    assert replace_between_markers(text, render()) == text, (
        'README.md option reference differs from the schemas; run '
        'python -m nriqa_basicsr.config.reference --write README.md')


def test_every_field_of_every_schema_is_in_the_reference():
    text = render()
    for where, schema in NRIQA_SECTIONS.items():
        for f, spec, _ in section_fields(schema):
            assert f'`{f.name}`' in text or f'`train.{f.name}`' in text, (where, f.name)
            assert spec.doc or spec.group, f'{schema.__name__}.{f.name} has no doc'


def test_write_replaces_only_the_text_between_the_markers(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(f'# Title\n\nbefore\n\n{BEGIN}\nstale table\n{END}\n\nafter\n', encoding='utf-8')
    assert main(['--check', str(readme)]) == 1
    assert main(['--write', str(readme)]) == 0
    text = readme.read_text(encoding='utf-8')
    assert text.startswith('# Title\n\nbefore\n\n') and text.endswith(f'{END}\n\nafter\n')
    assert 'stale table' not in text and '| `dataroot_gt` | str | required |' in text
    assert main(['--check', str(readme)]) == 0
    with pytest.raises(ValueError, match='markers'):
        replace_between_markers('no markers here', render())
