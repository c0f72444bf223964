# flake8: noqa
import os.path as osp
import sys

if __name__ == '__main__':  # run as a script: import the package from the repo root, not from this folder
    sys.path[0] = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))

import nriqa_basicsr  # noqa: F401  (compat shims + registration)
from nriqa_basicsr.pipeline import train_main

if __name__ == '__main__':
    train_main(osp.abspath(osp.join(__file__, osp.pardir, osp.pardir)))
