#!/usr/bin/env python
"""Super-resolve an image or a folder with a trained generator; `nriqa-upscale --help` for the flags."""
import sys

from nriqa_basicsr.upscale import main

if __name__ == '__main__':
    sys.exit(main())
