#!/usr/bin/env python
"""Real-model reproduction (``make reproduce``): a shell over :mod:`nriqa_basicsr.reproduce`; ``--help`` lists
the options."""

import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from nriqa_basicsr.reproduce import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
