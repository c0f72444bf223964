#!/usr/bin/env python
"""Check that every file a run needs is there, and say where to get the missing ones; changes nothing on disk.

    python scripts/check.py -opt options/train_rrdb_nriqa.yml      # also installed as: nriqa-check -opt FILE
    python scripts/check.py -opt options/test/test_MSRResNet_x4_nriqa.yml --test

Exit status 0 when the run can start, 1 when files are missing or options are invalid, 2 for an unreadable
option file. The logic is :mod:`nriqa_basicsr.preflight` (``train.py`` / ``test.py`` run the same check).
"""

import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from nriqa_basicsr.preflight import main  # noqa: E402  (compat shims + registration come with the package)

if __name__ == '__main__':
    raise SystemExit(main())
