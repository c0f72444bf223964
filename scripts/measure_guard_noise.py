#!/usr/bin/env python
"""Run-to-run noise of the reward-hacking guard's inputs (README numbers); `--help` for the flags."""
import sys

from nriqa_basicsr.guard_noise import main

if __name__ == '__main__':
    sys.exit(main())
