"""`python -m fer_ablation.collect`: the command is :mod:`fer_ablation.cli.collect`."""

import sys

from fer_ablation.cli.collect import main

if __name__ == "__main__":
    sys.exit(main())
