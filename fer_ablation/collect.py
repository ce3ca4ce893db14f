"""python -m fer_ablation.collect: the report's command line (see fer_ablation.report.cli).

`collect` and `main` stay importable from here for scripts written against this module.
"""

import sys

from fer_ablation.report.cli import main
from fer_ablation.report.tables import collect

__all__ = ["collect", "main"]

if __name__ == "__main__":
    sys.exit(main())
