#!/usr/bin/env python
"""Merge LoRA adapters of an FT run into a stock generator checkpoint; `nriqa-merge-lora --help` for the flags."""
import sys

from nriqa_basicsr.merge_lora import main

if __name__ == '__main__':
    sys.exit(main())
