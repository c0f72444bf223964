#!/usr/bin/env python
"""Convert original IQA parameter releases into pyiqa files; `nriqa-convert-iqa-weights --help` for the flags."""
import sys

from nriqa_basicsr.iqa.convert import main

if __name__ == '__main__':
    sys.exit(main())
