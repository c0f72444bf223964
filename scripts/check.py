#!/usr/bin/env python
"""Check that every file a run needs is there, changing nothing; `nriqa-check --help` for the flags."""
import sys

from nriqa_basicsr.preflight import main

if __name__ == '__main__':
    sys.exit(main())
