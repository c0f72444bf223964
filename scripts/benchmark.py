#!/usr/bin/env python
"""Benchmark SR models on test sets with IQA metrics; `nriqa-benchmark --help` for the flags."""
import sys

from nriqa_basicsr.benchmark import main

if __name__ == '__main__':
    sys.exit(main())
