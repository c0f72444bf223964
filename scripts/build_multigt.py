#!/usr/bin/env python
"""Multi-GT training data (HGGT layout) from any folder of HR photos; see ``nriqa_basicsr.data.build_multigt``.

    python scripts/build_multigt.py --hr ../shared/datasets/BSD200/HR --out datasets/bsd200_mgt \
        --patch-size 192 --lq realesrgan
"""

import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)
from nriqa_basicsr.data.build_multigt import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
