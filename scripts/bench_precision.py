#!/usr/bin/env python
"""bf16 + channels_last against fp32 seed noise (benchmark); `nriqa-bench-precision --help` for the flags."""
import sys

from nriqa_basicsr.bench.precision import main

if __name__ == '__main__':
    sys.exit(main())
