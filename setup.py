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
        'torch>=2.0', 'torchvision', 'basicsr==1.4.2', 'pyiqa==0.1.16', 'lmdb<2', 'opencv-python', 'pyyaml',
        'numpy', 'scipy', 'scikit-image', 'tqdm', 'matplotlib', 'safetensors', 'peft', 'setuptools<81',
    ],
    entry_points={'console_scripts': [
        'nriqa-train = nriqa_basicsr.pipeline:train_main',
        'nriqa-test = nriqa_basicsr.pipeline:test_main',
        'nriqa-build-multigt = nriqa_basicsr.data.build_multigt:main',
        'nriqa-reproduce = nriqa_basicsr.reproduce:main',
        'nriqa-check = nriqa_basicsr.preflight:main',
        'nriqa-detect-arch = nriqa_basicsr.archs.detect:main',
    ]},
    zip_safe=False,
)
