"""Import every `*_metric.py` module here so its classes register in BasicSR's registries."""

import importlib
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
_names = sorted(osp.splitext(osp.basename(v))[0] for v in scandir(_folder) if v.endswith('_metric.py'))
_modules = [importlib.import_module(f'nriqa_basicsr.metrics.{name}') for name in _names]
