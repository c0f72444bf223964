#!/usr/bin/env python
"""The real-model reproduction (`make reproduce`); `nriqa-reproduce --help` for the flags."""
import sys

from nriqa_basicsr.reproduce import main

if __name__ == '__main__':
    sys.exit(main())
