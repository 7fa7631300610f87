#!/usr/bin/env python
"""fairseq-compatible entry point: ``python train.py DATA [flags]`` (or under torchrun)."""

import sys

from tupe.train.trainer import main

if __name__ == "__main__":
    sys.exit(main())
