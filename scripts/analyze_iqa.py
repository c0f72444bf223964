#!/usr/bin/env python
"""How well NR-IQA metrics agree with human judgements; `nriqa-analyze-iqa --help` for the flags."""
import sys

from nriqa_basicsr.analysis import main

if __name__ == '__main__':
    sys.exit(main())
