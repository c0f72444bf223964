"""One command-line vocabulary (nriqa_basicsr/cli.py): every nriqa-* tool, its flags, the README's flag table."""

import argparse
import ast
import glob
import importlib
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT

from nriqa_basicsr import cli

README = osp.join(REPO_ROOT, 'README.md')


def _readme() -> str:
    with open(README, encoding='utf-8') as f:
        return f.read()


def _option_strings(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [a.option_strings for a in parser._actions if a.option_strings]  # argparse has no public accessor


@pytest.fixture(scope='module')
def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every tool's parser; a module that does not import yet is named in the failure."""
    out, broken = {}, {}
    for command in sorted(cli.COMMANDS):
        try:
            out[command] = cli.build_parser_of(command)
        except Exception as exc:  # report every broken tool at once
            broken[command] = f'{type(exc).__name__}: {exc}'
    assert not broken, broken
    return out


def test_every_command_module_has_build_parser_and_main():
    for module in cli.COMMANDS.values():
        mod = importlib.import_module(module)
        assert callable(getattr(mod, 'build_parser', None)) and callable(getattr(mod, 'main', None)), module
        assert isinstance(mod.build_parser(), argparse.ArgumentParser), module


def test_setup_console_scripts_are_the_commands():
    with open(osp.join(REPO_ROOT, 'setup.py'), encoding='utf-8') as f:
        text = f.read()
    scripts = {name: (module, fn) for name, module, fn in re.findall(r"'(nriqa-[\w-]+) = ([\w.]+):(\w+)'", text)}
    assert scripts.pop('nriqa-train') == ('nriqa_basicsr.pipeline', 'train_main')
    assert scripts.pop('nriqa-test') == ('nriqa_basicsr.pipeline', 'test_main')
    assert scripts == {name: (module, 'main') for name, module in cli.COMMANDS.items()}


def test_no_parser_uses_a_retired_spelling(parsers):
    used = {command: sorted({s for names in _option_strings(p) for s in names} & set(cli.RETIRED))
            for command, p in parsers.items()}
    assert not {c: flags for c, flags in used.items() if flags}, f'retired: {cli.RETIRED}'


def test_every_shared_flag_is_in_the_vocabulary(parsers):
    users: dict[str, list[str]] = {}
    for command, parser in parsers.items():
        for flag in cli._flags(parser):
            users.setdefault(flag, []).append(command)
    shared = {flag: tools for flag, tools in users.items() if len(tools) > 1 and flag not in cli.VOCABULARY}
    assert not shared, 'add these to cli.VOCABULARY (or rename them apart): ' + repr(shared)
    for key in cli.VOCABULARY:  # each documented flag is one a tool takes
        assert key in users, key


def test_short_forms_agree(parsers):
    """``-o`` is ``--output`` everywhere (and nothing else takes ``-o``)."""
    for command, parser in parsers.items():
        for names in _option_strings(parser):
            if '-o' in names:
                assert '--output' in names, (command, names)


def test_readme_flag_table_matches_the_parsers(parsers):
    text = _readme()
    assert cli.readme_table(text) == cli.flag_table(), \
        'README flag table is stale: run .venv/bin/python -m nriqa_basicsr.cli --write-readme README.md'
    section = text.split('## Command-line tools')[1].split('\n## ')[0]
    for command in cli.COMMANDS:
        assert f'`{command}`' in section, f'{command} is missing from the README list of tools'


def test_write_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(f'# title\n\nbefore\n{cli.README_BEGIN}\nold table\n{cli.README_END}\nafter\n')
    assert cli.main(['--check', str(readme)]) == 1
    assert cli.main(['--write-readme', str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith('# title\n\nbefore\n') and text.endswith(f'{cli.README_END}\nafter\n')
    assert cli.readme_table(text) == cli.flag_table() and 'old table' not in text
    assert cli.main(['--check', str(readme)]) == 0
    (tmp_path / 'plain.md').write_text('no markers\n')
    with pytest.raises(SystemExit):
        cli.main(['--write-readme', str(tmp_path / 'plain.md')])


def test_scripts_are_thin_shells():
    """``scripts/X.py``: ``import sys``, ``from nriqa_basicsr.<module> import main``, ``sys.exit(main())``."""
    for path in sorted(glob.glob(osp.join(REPO_ROOT, 'scripts', '*.py'))):
        tree = ast.parse(open(path, encoding='utf-8').read())
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        modules = [n.module for n in imports if isinstance(n, ast.ImportFrom)]
        assert [a.name for n in imports if isinstance(n, ast.Import) for a in n.names] == ['sys'], path
        assert len(modules) == 1 and modules[0].startswith('nriqa_basicsr'), path
        assert [a.name for a in imports[-1].names] == ['main'], path
        assert len(tree.body) <= 4, f'{path}: logic belongs in {modules[0]}'
    assert not osp.exists(osp.join(REPO_ROOT, 'scripts', '__init__.py'))  # scripts/ is not a package


# ------------------------------------------------------------------------------------------ --network-g
def test_parse_network_g():
    assert cli.parse_network_g('RRDBNet', 4) == {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                                                 'num_block': 23, 'num_grow_ch': 32, 'scale': 4}
    assert cli.parse_network_g('MSRResNet', 2)['upscale'] == 2
    assert cli.parse_network_g('EDSR', None) == {'type': 'EDSR'}  # no stock defaults: the network's own
    assert cli.parse_network_g(' {"type": "RRDBNet", "num_block": 2} ', None) == {'type': 'RRDBNet', 'num_block': 2}
    with pytest.raises(ValueError, match=r'^--network-g: not valid JSON .*give an arch name'):
        cli.parse_network_g('{"type": RRDBNet}', 4)
    with pytest.raises(ValueError, match=r'^--network-g: the JSON must be a mapping with a "type"'):
        cli.parse_network_g('{"num_block": 2}', 4)
    with pytest.raises(ValueError, match=r'^--network-g: the JSON must be a mapping'):
        cli.parse_network_g('{}', 4)
    with pytest.raises(ValueError, match=r"^--network-g '\[1, 2\]': neither an arch name"):
        cli.parse_network_g('[1, 2]', 4)
    with pytest.raises(ValueError, match=r'^--network-g RRDBNet: stock defaults need --scale'):
        cli.parse_network_g('RRDBNet', None)


@pytest.mark.parametrize('tool', ['upscale', 'benchmark'])
@pytest.mark.parametrize('value, message', [('{"type": RRDBNet}', '--network-g: not valid JSON'),
                                            ('["RRDBNet"]', 'neither an arch name'),
                                            ('RRDBNet', '--network-g RRDBNet: stock defaults need --scale')])
def test_bad_network_g_is_a_usage_error_naming_the_flag(tool, value, message, tmp_path, capsys):
    lr = tmp_path / 'lr'
    lr.mkdir()
    cv2.imwrite(str(lr / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    main = importlib.import_module(f'nriqa_basicsr.{tool}').main
    argv = (['-i', str(lr), '-o', str(tmp_path / 'sr'), '--model', str(tmp_path / 'net.pth')] if tool == 'upscale'
            else ['--model', f'net={tmp_path / "net.pth"}', '--dataset', f'x={lr}', '-o', str(tmp_path / 'b')])
    with pytest.raises(SystemExit) as exit_:
        main([*argv, '--network-g', value, '--no-progress'])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and 'Traceback' not in err
    assert not (tmp_path / 'sr').exists() and not (tmp_path / 'b').exists()  # refused before any work


def test_upscale_with_a_stock_arch_name(tmp_path):
    """``--network-g RRDBNet --scale 4`` builds the stock ESRGAN generator for a checkpoint, as benchmark does."""
    from basicsr.archs.rrdbnet_arch import RRDBNet

    from nriqa_basicsr.upscale import main

    torch.manual_seed(0)
    torch.save({'params': RRDBNet(3, 3, scale=4).state_dict()}, tmp_path / 'esrgan.pth')
    cv2.imwrite(str(tmp_path / 'a.png'), (np.random.default_rng(0).random((6, 7, 3)) * 255).astype(np.uint8))
    assert main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'sr'), '--model', str(tmp_path / 'esrgan.pth'),
                 '--network-g', 'RRDBNet', '--scale', '4', '--device', 'cpu', '--no-progress']) == 0
    assert cv2.imread(str(tmp_path / 'sr' / 'a.png')).shape == (24, 28, 3)


def test_resolve_device():
    assert cli.resolve_device('cpu') == 'cpu' and cli.resolve_device('cuda:1') == 'cuda:1'
    assert cli.resolve_device('auto') == cli.resolve_device(None) == ('cuda' if torch.cuda.is_available() else 'cpu')


def test_benchmark_runs_as_a_module():
    """``python -m nriqa_basicsr.benchmark`` (how nriqa-reproduce calls it) is the console script's main."""
    out = subprocess.run([sys.executable, '-m', 'nriqa_basicsr.benchmark', '--help'], capture_output=True, text=True,
                         timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('usage: nriqa-benchmark') and '--lq-filename-tmpl' in out.stdout
