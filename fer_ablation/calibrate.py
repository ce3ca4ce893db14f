"""`python -m fer_ablation.calibrate`: the command is :mod:`fer_ablation.cli.calibrate`."""

import sys

from fer_ablation.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
