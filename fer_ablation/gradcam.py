"""`python -m fer_ablation.gradcam`: the command is :mod:`fer_ablation.cli.gradcam`."""

import sys

from fer_ablation.cli.gradcam import main

if __name__ == "__main__":
    sys.exit(main())
