#!/usr/bin/env python
"""Build the synthetic demo data set; `nriqa-make-demo-data --help` for the flags."""
import sys

from nriqa_basicsr.demo.data import main

if __name__ == '__main__':
    sys.exit(main())
