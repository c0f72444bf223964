#!/usr/bin/env python
"""Install with `make install` (torch first, then basicsr without build isolation); see README."""

import os.path as osp

from setuptools import find_packages, setup

here = osp.dirname(osp.abspath(__file__))
version = {}
with open(osp.join(here, 'nriqa_basicsr', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='nriqa_basicsr',
    version=version['__version__'],
    description='No-reference IQA guided super-resolution training as a BasicSR extension',
    long_description=open(osp.join(here, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9,<3.13',
    packages=find_packages(exclude=('options', 'scripts', 'tests', 'experiments', 'results', 'tb_logger')),
    install_requires=[
        'torch>=2.3', 'torchvision', 'basicsr==1.4.2', 'pyiqa==0.1.16', 'lmdb<2', 'opencv-python', 'pyyaml',
        'numpy', 'scipy', 'scikit-image', 'tqdm', 'matplotlib', 'safetensors', 'peft', 'setuptools<81',
    ],
    entry_points={'console_scripts': [
        'nriqa-train = nriqa_basicsr.pipeline:train_main',
        'nriqa-test = nriqa_basicsr.pipeline:test_main',
        # the nriqa-* tools; the same list as nriqa_basicsr.cli.COMMANDS (tested)
        'nriqa-analyze-iqa = nriqa_basicsr.analysis:main',
        'nriqa-bench-dataset = nriqa_basicsr.bench.dataset:main',
        'nriqa-bench-precision = nriqa_basicsr.bench.precision:main',
        'nriqa-bench-scoring = nriqa_basicsr.bench.scoring:main',
        'nriqa-bench-step = nriqa_basicsr.bench.step:main',
        'nriqa-benchmark = nriqa_basicsr.benchmark:main',
        'nriqa-build-multigt = nriqa_basicsr.data.build_multigt:main',
        'nriqa-check = nriqa_basicsr.preflight:main',
        'nriqa-convert-iqa-weights = nriqa_basicsr.iqa.convert:main',
        'nriqa-create-lmdb = nriqa_basicsr.data.lmdb:main',
        'nriqa-demo = nriqa_basicsr.demo.run:main',
        'nriqa-detect-arch = nriqa_basicsr.archs.detect:main',
        'nriqa-guard-noise = nriqa_basicsr.guard_noise:main',
        'nriqa-make-demo-data = nriqa_basicsr.demo.data:main',
        'nriqa-merge-lora = nriqa_basicsr.merge_lora:main',
        'nriqa-reproduce = nriqa_basicsr.reproduce:main',
        'nriqa-score-gts = nriqa_basicsr.data.scoring:main',
        'nriqa-upscale = nriqa_basicsr.upscale:main',
    ]},
    zip_safe=False,
)
