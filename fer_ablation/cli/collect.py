"""python -m fer_ablation.collect [RUN_DIRS...] [--out results/tables] [--ablation paper]
                              [--select best|last] [--figures results/figures] [--wandb]

Lay finished runs out as the paper's Tables 1-3 (and the controls), with the paper's numbers beside ours. Reads only
the run folders' records and experiments/<ablation>.yaml -- no torch -- so it runs on a laptop.
A RUN_DIR is a run folder or any folder above run folders (searched recursively for metrics.json);
by default ./outputs and ./multirun. Writes <table>.{md,csv,tex} for every table of the ablation file,
summary.md and claims.{md,csv} (the paper's claims tested over seeds) into --out, and with --figures
the curves and confusion matrices into that folder. A RUN_DIR that does not exist, or no run folder
at all, exits with status 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from fer_ablation.report.tables import SELECT, NoRunsError, collect


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_ablation.collect", description=__doc__.split("\n\n")[1])
    parser.add_argument("run_dirs", nargs="*", help="run folders or folders above them (default: ./outputs ./multirun)")
    parser.add_argument("--out", default="results/tables")
    parser.add_argument("--ablation", default="paper", help="experiments/<name>.yaml: the tables and the paper's numbers")
    parser.add_argument("--select", choices=SELECT, default="best", help="which epoch's metrics")
    parser.add_argument("--figures", default=None, help="also draw the figures into this folder")
    parser.add_argument("--wandb", action="store_true", help="also log the tables to an offline W&B run")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        frames = collect(args.run_dirs or None, args.out, args.ablation, args.select, args.figures, args.wandb,
                         args.n_boot)
    except NoRunsError as err:
        print(f"collect: {err}", file=sys.stderr)
        return 2
    status = frames["runs"]["status"].value_counts().to_dict()
    print(f"collect: {len(frames['runs'])} runs ({', '.join(f'{n} {s}' for s, n in sorted(status.items())) or 'none found'})")
    tables = ",".join(name for name in frames if name not in ("runs", "claims", "comparisons"))
    claims = f" and {args.out}/claims.{{md,csv}}" if "claims" in frames else ""
    print(f"collect: wrote {args.out}/{{{tables}}}.{{md,csv,tex}}, {args.out}/summary.md{claims}")
    if "claims" in frames:
        verdicts = frames["claims"]["verdict"].value_counts().to_dict()
        print("collect: claims: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
    return 0
