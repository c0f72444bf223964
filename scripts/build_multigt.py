#!/usr/bin/env python
"""Multi-GT training data (HGGT layout) from HR photos; `nriqa-build-multigt --help` for the flags."""
import sys

from nriqa_basicsr.data.build_multigt import main

if __name__ == '__main__':
    sys.exit(main())
