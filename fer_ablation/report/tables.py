"""collect(): read the run folders, compute the tables, write them (and optionally the figures)."""

from __future__ import annotations

import sys
from pathlib import Path

from fer_ablation.config import experiments
from fer_ablation.report import figures as figures_module
from fer_ablation.report.claims import claim_frames
from fer_ablation.report.render import write_tables
from fer_ablation.report.runs import DEFAULT_SEARCH, find_run_dirs, load_run
from fer_ablation.report.rows import build_tables, runs_frame

SELECT = ("best", "last")


class NoRunsError(FileNotFoundError):
    """A given run path does not exist, or no run folder was found: nothing is written."""


def log_wandb(frames: dict, out_dir: Path) -> None:
    """Log the tables as wandb.Table in an offline run under out_dir (wandb imported only here)."""
    import wandb

    run = wandb.init(project="fer-ablation", job_type="collect", mode="offline", dir=str(out_dir))
    try:
        for name, df in frames.items():
            run.log({name: wandb.Table(dataframe=df.astype(str))})
    finally:
        run.finish()


def collect(run_dirs=None, out_dir="results/tables", ablation: str = "paper", select: str = "best",
            figures_dir=None, use_wandb: bool = False, n_boot: int = 10_000) -> dict:
    """Read the runs under `run_dirs`, write the tables into `out_dir`; returns their DataFrames.

    `ablation` names experiments/<ablation>.yaml (the tables, their rows and the paper's numbers).
    Keys of the result: one per table of that file (metrics in percent, one row per data group and
    paper row), "claims" and "comparisons" when the file states claims (one row per claim, and per
    comparison, and data group) and "runs" (every run folder read, with its status and reason).
    Raises NoRunsError, before writing anything, when a path in `run_dirs` does not exist or no run
    folder is found, so existing tables are never replaced by empty ones.
    """
    if select not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {select!r}")
    spec = experiments.load(ablation)
    missing = [str(p) for p in run_dirs or () if not Path(p).exists()]
    if missing:
        raise NoRunsError(f"no such run path: {', '.join(missing)} (expected run folders or folders above them); "
                          f"nothing written to {out_dir}")
    run_paths = find_run_dirs(run_dirs)
    if not run_paths:
        searched = ", ".join(map(str, run_dirs or DEFAULT_SEARCH))
        raise NoRunsError(f"no run folder (a folder holding metrics.json) under {searched}; "
                          f"nothing written to {out_dir}")
    runs = [r for r in (load_run(p, spec) for p in run_paths) if r is not None]
    frames = build_tables(runs, spec, select, n_boot)
    if spec.claims:
        frames["claims"], frames["comparisons"] = claim_frames(runs, spec, select)
    figures = None
    if figures_dir is not None:
        drawn = figures_module.make_figures(runs, figures_dir, spec, frames)
        for note in drawn.skipped:
            print(f"figures: skipped {note}", file=sys.stderr)
        figures = drawn.paths
    write_tables(frames, runs, spec, out_dir, select, len(run_paths), figures, n_boot)
    frames["runs"] = runs_frame(runs, select)
    if use_wandb:
        try:
            log_wandb(frames, Path(out_dir))
        except ImportError:
            print("collect: --wandb given but wandb is not installed; skipped", file=sys.stderr)
    return frames
