#!/usr/bin/env python
"""Pack a multi-GT dataset into LMDBs; `nriqa-create-lmdb --help` for the flags."""
import sys

from nriqa_basicsr.data.lmdb import main

if __name__ == '__main__':
    sys.exit(main())
