#!/usr/bin/env python
"""The main job on the demo data (`make demo`); `nriqa-demo --help` for the flags."""
import sys

from nriqa_basicsr.demo.run import main

if __name__ == '__main__':
    sys.exit(main())
