#!/usr/bin/env python
"""Training-step cost of NRIQAModel against BasicSR's GAN model (benchmark); `nriqa-bench-step --help` for the flags."""
import sys

from nriqa_basicsr.bench.step import main

if __name__ == '__main__':
    sys.exit(main())
