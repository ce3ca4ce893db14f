"""Data groups and cells: which runs a table row summarises.

A data group is the run's `group` label (metrics.json or .hydra/config.yaml) with its data set, image
size and fingerprint (the data, recipe and initial weights, `fer_ablation.records.fingerprint`); groups are
kept apart in separate sections, never averaged together or paired. Runs of one label whose
fingerprints differ become separate groups whose titles say what differs. Within a group a cell is
one configuration's runs, one completed run per seed (the newest when a seed was rerun).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from fer_ablation import records
from fer_ablation.records.fingerprint import flatten
from fer_ablation.report.runs import LEGACY, LEGACY_NOTE, UNKNOWN, Run

SHOWN_DIFFERENCES = 4  # fingerprint fields named in a group title when runs of one label differ


class GroupKey(NamedTuple):
    """A data group: `Run.group_key` (label, data, size, fingerprint) plus `variant`, what sets this group
    apart from the groups of the same label ("" when the label has one fingerprint)."""

    label: str
    data: str | None
    size: int | None
    fingerprint: str | None
    variant: str = ""

    @property
    def base(self) -> tuple:
        return tuple(self[:4])


NO_GROUP = GroupKey("", None, None, None)  # the one section of a report without any readable run


def group_title(key: tuple) -> str:
    label, data, size = key[:3]
    if data is None:
        return "no runs found"
    where = f"{data}, {size}x{size} px"
    title = f"{label} ({where})" if label else where
    variant = key[4] if len(key) > 4 else ""
    return f"{title} [{variant}]" if variant else title


def group_tag(key: tuple) -> str:
    """A file-name-safe name of a data group: its label, else `<data>_<size>px`; with the fingerprint's hash
    when the label has several."""
    label, data, size = key[:3]
    tag = label or f"{data}_{size}px"
    if len(key) > 4 and key[4]:
        tag += f"_{key[3]}"
    return re.sub(r"[^\w.-]+", "_", tag)


def _variants(runs: list[Run], bases: list[tuple]) -> dict[tuple, str]:
    """For the bases sharing (label, data, size): the fingerprint fields whose values differ, as text."""
    fields = {}
    for run in runs:
        if run.group_key is not None:
            fields.setdefault(run.group_key, flatten(run.fingerprint_fields))
    out = {}
    for base in bases:
        siblings = [b for b in bases if b[:3] == base[:3]]
        if len(siblings) == 1:
            continue
        if base[3] == LEGACY:
            out[base] = LEGACY_NOTE
            continue
        others = [fields[b] for b in siblings if b != base and b[3] != LEGACY]
        mine = fields[base]
        differs = sorted(k for k in set(mine).union(*others) if any(o.get(k) != mine.get(k) for o in others))
        shown = [f"{k}={mine.get(k)}" for k in differs[:SHOWN_DIFFERENCES]]
        more = len(differs) - len(shown)
        out[base] = ", ".join(shown + ([f"{more} more"] if more > 0 else [])) or f"fingerprint {base[3]}"
    return out


def _placements(run: Run, known: set[tuple]) -> list[tuple]:
    """The groups a run belongs to: its own; a run that stopped before its fingerprint was known joins every
    group of its label, data set and size (its failure is reported there), or forms its own when there is none."""
    key = run.group_key
    if key is None:
        return []
    if key[3] != UNKNOWN:
        return [key]
    return [b for b in sorted(known) if b[:3] == key[:3] and b[3] != LEGACY] or [key]


def _known_keys(runs: list[Run]) -> set[tuple]:
    return {r.group_key for r in runs if r.group_key is not None and r.group_key[3] != UNKNOWN}


def data_groups(runs: list[Run]) -> list[GroupKey]:
    known = _known_keys(runs)
    bases = sorted({b for r in runs for b in _placements(r, known)})
    variants = _variants(runs, bases)
    return [GroupKey(*b, variants.get(b, "")) for b in bases] or [NO_GROUP]


def runs_in_group(runs: list[Run], key: tuple) -> list[Run]:
    known = _known_keys(runs)
    return [r for r in runs if tuple(key[:4]) in _placements(r, known)]


def in_group(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The rows of a table frame (columns group, data, image_size, fingerprint) that belong to data group `key`."""
    if key[1] is None:
        return df
    return df[(df["group"] == key[0]) & (df["data"] == key[1]) & (df["image_size"] == key[2])
              & (df["fingerprint"] == key[3])]


def group_notes(runs: list[Run]) -> list[str]:
    """What a group's tables rest on: the report and selection splits, duplicates dropped, legacy records."""
    done = [r for r in runs if r.status == "completed"]
    if not done:
        return []
    if all(r.legacy for r in done):
        return [f"Report split: val (n = {_sizes(done, 'val')}); {LEGACY_NOTE}, so its numbers are optimistic."]
    report = sorted({r.report_split for r in done})
    sources = sorted({str(r.metrics["splits"].get(s, {}).get("source")) for r in done for s in report})
    notes = [f"Report split: {', '.join(report)} ({'; '.join(sources)}; n = {_sizes(done, *report)}); "
             f"checkpoint selected on val ({'; '.join(sorted({str(r.metrics['splits']['val'].get('source')) for r in done}))})."]
    dups = {}
    for run in done:
        for split, d in (run.metrics.get("duplicates") or {}).items():
            n = (d.get("of_train") or 0) + (d.get("of_val") or 0) if isinstance(d, dict) else 0
            if n:
                dups.setdefault(split, set()).add((n, d.get("different_label", 0), d.get("dropped", 0)))
    for split, counts in sorted(dups.items()):
        text = " or ".join(f"{n} ({relabelled} with a different label), {dropped} dropped"
                           for n, relabelled, dropped in sorted(counts))
        against = "training images" if split == "val" else "training or val images"
        notes.append(f"Duplicates: {text} of the {split} images are identical to {against}.")
    within = sorted({(r.metrics.get("duplicates") or {}).get("train", {}).get("within", 0) for r in done} - {0})
    if within:
        notes.append(f"Duplicates inside train: {' or '.join(map(str, within))} repeated images (counted only).")
    return notes


def _sizes(runs: list[Run], *splits) -> str:
    sizes = sorted({int(r.metrics.get("splits", {}).get(s, {}).get("n") or (r.scores(s) or {}).get("n") or 0)
                    for r in runs for s in splits})
    return " or ".join(map(str, sizes))


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


def _identical_predictions(runs: list[Run]) -> list[list]:
    """Groups of seeds (two or more) whose predictions.csv files are byte-identical."""
    by_digest: dict[str, list] = {}
    for run in runs:
        try:
            digest = hashlib.sha256((run.path / records.PREDICTIONS).read_bytes()).hexdigest()
        except OSError:
            continue
        by_digest.setdefault(digest, []).append(run.seed)
    return [seeds for seeds in by_digest.values() if len(seeds) > 1]


@dataclass
class Cell:
    """The runs of one configuration in one data group, one chosen per seed."""

    completed: dict = field(default_factory=dict)  # seed -> Run
    notes: list = field(default_factory=list)  # why a seed is missing, failed, running or replaced
    n_runs: int = 0  # run folders of this configuration in the group, whatever their status

    @property
    def runs(self) -> list[Run]:
        """The chosen completed runs in seed order."""
        return [self.completed[s] for s in sorted(self.completed, key=seed_key)]


def make_cell(runs: list[Run], seeds_seen: set) -> Cell:
    """A cell from one configuration's runs in a data group; `seeds_seen` are the group's seeds."""
    cell = Cell(n_runs=len(runs))
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
    identical = _identical_predictions(cell.runs)
    if identical:
        cell.notes.append("byte-identical predictions.csv in seeds " + "; ".join(
            ", ".join(map(str, seeds)) for seeds in identical) + " (the same run copied, or a seed that changes nothing?)")
    missing = sorted(seeds_seen - set(by_seed), key=seed_key)
    if not by_seed:
        cell.notes.append("no runs")
    elif missing:
        cell.notes.append("missing seed " + ", ".join(str(s) for s in missing))
    return cell


def configuration_rows(frames: list[pd.DataFrame], key: tuple) -> list:
    """Each configuration's row once, in the order the tables list them: one data group's rows of `frames` (the
    tables' DataFrames), the first occurrence of each configuration (a configuration shown in several tables is
    one row, with the same statistics)."""
    seen, rows = set(), []
    for df in frames:
        for _, r in in_group(df, key).iterrows():
            if r["configuration"] not in seen:
                seen.add(r["configuration"])
                rows.append(r)
    return rows
