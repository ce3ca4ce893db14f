"""Data groups and cells: which runs a table row summarises.

A data group is the run's `group` label (metrics.json or .hydra/config.yaml) with its data set and
image size; groups are kept apart in separate sections, never averaged together. Within a group a
cell is one configuration's runs, one completed run per seed (the newest when a seed was rerun).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from fer_ablation import records
from fer_ablation.report.runs import Run

NO_GROUP = ("", None, None)  # the one section of a report without any readable run


def group_title(key: tuple) -> str:
    label, data, size = key
    if data is None:
        return "no runs found"
    where = f"{data}, {size}x{size} px"
    return f"{label} ({where})" if label else where


def group_tag(key: tuple) -> str:
    """A file-name-safe name of a data group: its label, else `<data>_<size>px`."""
    label, data, size = key
    return re.sub(r"[^\w.-]+", "_", label or f"{data}_{size}px")


def data_groups(runs: list[Run]) -> list[tuple]:
    keys = sorted({r.group_key for r in runs if r.group_key is not None})
    return keys or [NO_GROUP]


def in_group(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The rows of a table frame (columns group, data, image_size) that belong to data group `key`."""
    if key[1] is None:
        return df
    return df[(df["group"] == key[0]) & (df["data"] == key[1]) & (df["image_size"] == key[2])]


def seed_key(seed):
    """Sort key for seeds: numbers in order, then anything else by its text."""
    return (0, seed, "") if isinstance(seed, (int, float)) else (1, 0, str(seed))


def newest_first(runs: list[Run]) -> list[Run]:
    def mtime(run):
        try:
            return (run.path / records.METRICS).stat().st_mtime
        except OSError:
            return 0.0

    return sorted(runs, key=mtime, reverse=True)


def completed_per_seed(runs: list[Run]) -> dict:
    """seed -> the newest completed run of that seed (a rerun replaces an older run)."""
    chosen: dict = {}
    for run in newest_first([r for r in runs if r.status == "completed"]):
        chosen.setdefault(run.seed, run)
    return {s: chosen[s] for s in sorted(chosen, key=seed_key)}


@dataclass
class Cell:
    """The runs of one configuration in one data group, one chosen per seed."""

    completed: dict = field(default_factory=dict)  # seed -> Run
    notes: list = field(default_factory=list)  # why a seed is missing, failed, running or replaced

    @property
    def runs(self) -> list[Run]:
        """The chosen completed runs in seed order."""
        return [self.completed[s] for s in sorted(self.completed, key=seed_key)]


def make_cell(runs: list[Run], seeds_seen: set) -> Cell:
    """A cell from one configuration's runs in a data group; `seeds_seen` are the group's seeds."""
    cell = Cell()
    by_seed: dict = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    for seed in sorted(by_seed, key=seed_key):
        done = newest_first([r for r in by_seed[seed] if r.status == "completed"])
        if done:
            cell.completed[seed] = done[0]
            if len(done) > 1:
                cell.notes.append(f"seed {seed}: {len(done)} completed runs, used the newest ({done[0].path})")
            continue
        for run in by_seed[seed]:
            if run.status == "failed":
                cell.notes.append(f"failed: seed {seed}: {run.reason}")
            elif run.status == "running":
                cell.notes.append(f"running: seed {seed}")
            else:
                cell.notes.append(f"{run.status}: seed {seed}: {run.reason}")
    missing = sorted(seeds_seen - set(by_seed), key=seed_key)
    if not by_seed:
        cell.notes.append("no runs")
    elif missing:
        cell.notes.append("missing seed " + ", ".join(str(s) for s in missing))
    return cell
