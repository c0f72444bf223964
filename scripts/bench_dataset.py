#!/usr/bin/env python
"""Samples/s of MultiGTDataset from disk and from LMDB (benchmark); `nriqa-bench-dataset --help` for the flags."""
import sys

from nriqa_basicsr.bench.dataset import main

if __name__ == '__main__':
    sys.exit(main())
