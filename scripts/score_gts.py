#!/usr/bin/env python
"""Score every GT variant of a multi-GT dataset with NR-IQA metrics; `nriqa-score-gts --help` for the flags."""
import sys

from nriqa_basicsr.data.scoring import main

if __name__ == '__main__':
    sys.exit(main())
