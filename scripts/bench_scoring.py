#!/usr/bin/env python
"""Candidate-scoring throughput of NR-IQA metrics (benchmark); `nriqa-bench-scoring --help` for the flags."""
import sys

from nriqa_basicsr.bench.scoring import main

if __name__ == '__main__':
    sys.exit(main())
