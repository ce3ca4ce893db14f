"""Lay finished runs out as the paper's Tables 1-3, with the paper's numbers beside ours.

    python -m fer_ablation.collect [RUN_DIRS...] [--out results/tables] [--experiment paper]
                                   [--select best|last] [--figures results/figures] [--wandb]

Reads only the run folders' records (metrics.json, predictions.csv, .hydra/*.yaml) and
experiments/<experiment>.yaml -- no torch -- so it runs on a laptop. A RUN_DIR is a run folder
or any folder above run folders (searched recursively for metrics.json); by default ./outputs and
./multirun. Writes table{1,2,3}.{md,csv,tex} and summary.md into --out.

Runs are grouped by data group -- the run's `group` label when it has one (metrics.json or
.hydra/config.yaml), else (data, image size) -- and data groups are kept apart in separate
sections, never averaged together. Within a group a row is a configuration of the experiment
file; its seeds are averaged. Every row of the paper stays in the tables: a row with missing,
failed or running seeds says so, and runs that cannot be read (half-written metrics.json, no
predictions.csv, metrics not recomputable from the saved predictions) are listed in summary.md.
Statistics: see `fer_ablation.stats`.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fer_ablation import experiments, stats

STATUSES = ("completed", "failed", "running")
METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
SHORT = {"accuracy": "accuracy", "precision_macro": "precision", "recall_macro": "recall", "f1_macro": "f1"}
# Re-scoring must reproduce metrics.json; float32 metric code differs from float64 by ~1e-7.
RESCORE_TOL = 1e-5
DEFAULT_SEARCH = ("outputs", "multirun")


@dataclass
class Run:
    """One run folder as read from disk.

    status: completed | failed | running (as metrics.json says), or
            unreadable (records missing, half-written or malformed) |
            inconsistent (metrics.json not recomputable from predictions.csv).
    Only `completed` runs enter the statistics; every other run is reported with its reason.
    """

    path: Path
    status: str
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    overrides: list[str] = field(default_factory=list)
    group: str | None = None  # the run's group label (cfg.group), when it has one
    configuration: str | None = None  # resolved against the experiment file
    unmatched: str | None = None  # why no configuration of the experiment file matches

    @property
    def data(self):
        return self.metrics.get("data")

    @property
    def image_size(self):
        return self.metrics.get("image_size")

    @property
    def seed(self):
        return self.metrics.get("seed")

    @property
    def group_key(self) -> tuple | None:
        if self.data is None or self.image_size is None:
            return None
        return (self.group or "", str(self.data), int(self.image_size))

    @property
    def classes(self) -> list[str]:
        classes = self.metrics.get("classes")
        if classes:
            return list(classes)
        if self.predictions is not None:
            return [c[len("prob_"):] for c in self.predictions.columns if c.startswith("prob_")]
        return []

    def scores(self, split: str = "val", select: str = "best") -> dict | None:
        block = self.metrics.get(select)
        return block.get(split) if isinstance(block, dict) else None

    def split_predictions(self, split: str = "val") -> pd.DataFrame:
        p = self.predictions
        return p[p["split"] == split] if p is not None else pd.DataFrame()

    def describe(self) -> str:
        bits = [f"{self.path}"]
        if self.configuration or self.metrics.get("attention"):
            bits.append(f"configuration={self.configuration or '?'}")
        if self.seed is not None:
            bits.append(f"seed={self.seed}")
        if self.overrides:
            bits.append("overrides: " + " ".join(self.overrides))
        return ", ".join(bits)


# ----------------------------------------------------------------------------- reading


def find_run_dirs(paths=None) -> list[Path]:
    """Run folders under `paths` (default ./outputs and ./multirun): every folder holding a metrics.json."""
    found: set[Path] = set()
    for p in [Path(p) for p in (paths or DEFAULT_SEARCH)]:
        if (p / "metrics.json").is_file():
            found.add(p)
        elif p.is_dir():
            found.update(m.parent for m in p.rglob("metrics.json"))
        elif paths:
            print(f"collect: {p} does not exist, skipped", file=sys.stderr)
    return sorted(found)


@functools.lru_cache(maxsize=8)
def _ablation(name: str) -> experiments.Ablation:
    return experiments.load(name)


def load_run(run_dir, ablation: experiments.Ablation | None = None) -> Run | None:
    """Read one run folder. None when it holds no metrics.json (not a run).

    Never raises on bad records: a half-written or malformed metrics.json, a completed run without
    a readable predictions.csv, etc. come back as Run(status="unreadable", reason=...), and a
    completed run whose metrics.json is not recomputable from its predictions.csv as
    Run(status="inconsistent", reason=...). `ablation` (default: experiments/paper.yaml) names
    the configuration the run belongs to.
    """
    path = Path(run_dir)
    if not (path / "metrics.json").is_file():
        return None
    run = Run(path=path, status="unreadable", overrides=_read_overrides(path))
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        run.reason = f"metrics.json unreadable (half-written?): {e}"
        return run
    if not isinstance(metrics, dict):
        run.reason = "metrics.json is not a JSON object"
        return run
    run.metrics = metrics
    run.group = metrics.get("group") or _config_group(path)
    status = metrics.get("status")
    if status not in STATUSES:
        run.reason = f"metrics.json status {status!r}, expected one of {STATUSES}"
        return run
    missing = [k for k in ("data", "image_size", "seed") if metrics.get(k) is None]
    if missing:
        run.reason = f"metrics.json lacks {', '.join(missing)}"
        return run
    run.configuration, run.unmatched = _resolve_configuration(metrics, ablation or _ablation("paper"))
    run.status = status
    if status == "failed":
        run.reason = str(metrics.get("error") or "no error recorded")
    if status != "completed":
        return run
    run.status = "unreadable"
    best = metrics.get("best")
    if not isinstance(best, dict) or not isinstance(best.get("val"), dict):
        run.reason = "metrics.json has no best.val metrics"
        return run
    absent = [k for k in METRICS if not isinstance(best["val"].get(k), (int, float))]
    if absent:
        run.reason = f"metrics.json best.val lacks {', '.join(absent)}"
        return run
    pred_path = path / "predictions.csv"
    if not pred_path.is_file():
        run.reason = "no predictions.csv"
        return run
    try:
        pred = pd.read_csv(pred_path)
    except Exception as e:  # pandas raises several parser error types
        run.reason = f"predictions.csv unreadable: {e}"
        return run
    need = {"split", "index", "target", "pred"}
    if not need <= set(pred.columns):
        run.reason = f"predictions.csv lacks columns {sorted(need - set(pred.columns))}"
        return run
    try:
        pred = pred.astype({"split": str, "index": np.int64, "target": np.int64, "pred": np.int64})
    except (ValueError, TypeError) as e:
        run.reason = f"predictions.csv has non-integer index/target/pred: {e}"
        return run
    if pred.duplicated(["split", "index"]).any():
        run.reason = "predictions.csv repeats a (split, index) pair"
        return run
    if not (pred["split"] == "val").any():
        run.reason = "predictions.csv has no val rows"
        return run
    run.predictions = pred
    run.reason = _rescoring_mismatch(run)
    run.status = "inconsistent" if run.reason else "completed"
    return run


def _read_overrides(path: Path) -> list[str]:
    try:
        overrides = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def _config_group(path: Path) -> str | None:
    """cfg.group from .hydra/config.yaml, with plain ${a.b} interpolations resolved (else None)."""
    try:
        cfg = yaml.safe_load((path / ".hydra" / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("group"), str):
        return None

    def lookup(match):
        node = cfg
        for key in match.group(1).split("."):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(match.group(1))
            node = node[key]
        return str(node)

    try:
        group = re.sub(r"\$\{([\w.]+)\}", lookup, cfg["group"])
    except KeyError:
        return None
    return None if "${" in group else group


def _resolve_configuration(metrics: dict, ablation: experiments.Ablation) -> tuple[str | None, str | None]:
    """(configuration name, None) or (None, why the run matches no configuration)."""
    attention, stem = metrics.get("attention"), metrics.get("stem")
    name = metrics.get("configuration")
    if name in ablation.configurations:
        conf = ablation.configurations[name]
        if attention is not None and stem is not None and (
            experiments.canonical_attention(attention), stem
        ) != (experiments.canonical_attention(conf["attention"]), conf["stem"]):
            return None, (
                f"metrics.json names configuration {name!r} but its model is attention={attention}, "
                f"stem={stem}; the experiment file says attention={conf['attention']}, stem={conf['stem']}"
            )
        return name, None
    if metrics.get("placement"):
        return None, f"placement overrides {metrics['placement']} (the tables use default placements)"
    if attention is None or stem is None:
        return None, "metrics.json names neither a configuration nor attention and stem"
    found = ablation.configuration_of(attention, stem)
    return (found, None) if found else (None, f"attention={attention}, stem={stem} is not in the experiment file")


def _rescoring_mismatch(run: Run) -> str | None:
    """None when predictions.csv reproduces metrics.json["best"] (val, and test when both have it)."""
    num_classes = int(run.metrics.get("num_classes") or len(run.classes) or 7)
    problems = []
    for split in ("val", "test"):
        saved = run.scores(split, "best")
        rows = run.split_predictions(split)
        if saved is None or rows.empty:
            if split == "test" and (saved is None) != rows.empty:
                problems.append(f"test split in {'metrics.json' if saved else 'predictions.csv'} only")
            continue
        if rows["target"].max() >= num_classes or rows["pred"].max() >= num_classes or rows[["target", "pred"]].min().min() < 0:
            problems.append(f"{split} target/pred outside 0..{num_classes - 1}")
            continue
        recomputed = stats.macro_scores(rows["target"], rows["pred"], num_classes)
        if saved.get("n") is not None and int(saved["n"]) != recomputed["n"]:
            problems.append(f"{split} n={saved['n']} in metrics.json, {recomputed['n']} rows in predictions.csv")
        for key in METRICS:
            if key in saved and abs(float(saved[key]) - recomputed[key]) > RESCORE_TOL:
                problems.append(
                    f"{split} {key} {float(saved[key]):.6f} in metrics.json, {recomputed[key]:.6f} from predictions.csv"
                )
    return "; ".join(problems) if problems else None


def load_runs(paths=None, ablation: experiments.Ablation | None = None) -> list[Run]:
    return [r for r in (load_run(p, ablation) for p in find_run_dirs(paths)) if r is not None]


# ----------------------------------------------------------------------------- grouping


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
    return keys or [("", None, None)]


@dataclass
class Cell:
    """The runs of one configuration in one data group, one chosen per seed."""

    completed: dict = field(default_factory=dict)  # seed -> Run
    other: list = field(default_factory=list)  # failed / running / inconsistent runs, and unused duplicates
    notes: list = field(default_factory=list)


def _seed_key(seed):
    return (0, seed, "") if isinstance(seed, (int, float)) else (1, 0, str(seed))


def _newest_first(runs: list[Run]) -> list[Run]:
    def mtime(run):
        try:
            return (run.path / "metrics.json").stat().st_mtime
        except OSError:
            return 0.0

    return sorted(runs, key=mtime, reverse=True)


def completed_per_seed(runs: list[Run]) -> dict:
    """seed -> the newest completed run of that seed (a rerun replaces an older run)."""
    chosen: dict = {}
    for run in _newest_first([r for r in runs if r.status == "completed"]):
        chosen.setdefault(run.seed, run)
    return {s: chosen[s] for s in sorted(chosen, key=_seed_key)}


def _cell(runs: list[Run], seeds_seen: set) -> Cell:
    cell = Cell()
    by_seed: dict = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    for seed in sorted(by_seed, key=_seed_key):
        done = _newest_first([r for r in by_seed[seed] if r.status == "completed"])
        if done:
            cell.completed[seed] = done[0]
            if len(done) > 1:
                cell.notes.append(f"seed {seed}: {len(done)} completed runs, used the newest ({done[0].path})")
            continue
        for run in by_seed[seed]:
            cell.other.append(run)
            if run.status == "failed":
                cell.notes.append(f"failed: seed {seed}: {run.reason}")
            elif run.status == "running":
                cell.notes.append(f"running: seed {seed}")
            else:
                cell.notes.append(f"{run.status}: seed {seed}: {run.reason}")
    missing = sorted(seeds_seen - set(by_seed), key=_seed_key)
    if not by_seed:
        cell.notes.append("no runs")
    elif missing:
        cell.notes.append("missing seed " + ", ".join(str(s) for s in missing))
    return cell


# ----------------------------------------------------------------------------- statistics per row


def _correct_matrix(runs_by_seed: dict, seeds: list, indices: np.ndarray) -> np.ndarray:
    rows = []
    for seed in seeds:
        val = runs_by_seed[seed].split_predictions("val").set_index("index").loc[indices]
        rows.append((val["pred"].to_numpy() == val["target"].to_numpy()))
    return np.array(rows, dtype=bool)


def paired_tests(model: dict, baseline: dict, n_boot: int = 10_000) -> dict:
    """Paired tests of a configuration's completed runs against the baseline's in one data group.

    Seeds are paired by seed number; samples are matched by (split="val", index) over the samples
    every paired run has, and their targets must agree. Returns the bootstrap result and the
    per-seed McNemar tests, or a `problem` string when no pairing is possible.
    """
    seeds = sorted(set(model) & set(baseline), key=_seed_key)
    if not seeds:
        return {"problem": "no seed in common with the baseline"}
    frames = [r.split_predictions("val").set_index("index")["target"] for s in seeds for r in (model[s], baseline[s])]
    common = functools.reduce(lambda a, b: a.intersection(b), (f.index for f in frames))
    if len(common) == 0:
        return {"problem": "no validation sample in common with the baseline"}
    common = np.sort(common.to_numpy())
    reference = frames[0].loc[common].to_numpy()
    for f in frames[1:]:
        differs = np.flatnonzero(f.loc[common].to_numpy() != reference)
        if differs.size:
            return {"problem": f"targets differ from the baseline's at val index {common[differs[0]]} (different splits?)"}
    m = _correct_matrix(model, seeds, common)
    b = _correct_matrix(baseline, seeds, common)
    largest = max(len(f) for f in frames)
    return {
        "bootstrap": stats.paired_bootstrap(m, b, n_boot=n_boot),
        "mcnemar": {s: stats.mcnemar_exact(m[i], b[i]) for i, s in enumerate(seeds)},
        "seeds": seeds,
        "samples": len(common),
        "problem": None if len(common) == largest else f"paired on the {len(common)} of {largest} samples all runs share",
    }


def _row(table, row, cell: Cell, n_expected: int, base_cell: Cell, ablation, key, select, n_boot) -> dict:
    runs = [cell.completed[s] for s in sorted(cell.completed, key=_seed_key)]
    out = {
        "group": key[0],
        "data": key[1],
        "image_size": key[2],
        "table": table.name,
        "label": row.label,
        "configuration": row.configuration,
        "n_completed": len(runs),
        "n_expected": n_expected,
        "seeds": f"{len(runs)}/{n_expected}",
    }
    val = [r.scores("val", select) or {} for r in runs]
    for metric in METRICS:
        values = [v[metric] for v in val if metric in v]
        mean, std = stats.mean_std(values)
        out[f"{SHORT[metric]}_pct"] = 100 * mean
        out[f"{SHORT[metric]}_std_pct"] = 100 * std
    accuracies = [v["accuracy"] for v in val if "accuracy" in v]
    n_samples = (val[0].get("n") or len(runs[0].split_predictions("val"))) if len(val) == 1 else None
    ci = stats.accuracy_ci(accuracies, n_samples)
    out.update(accuracy_ci_low_pct=100 * ci.low, accuracy_ci_high_pct=100 * ci.high, accuracy_ci_method=ci.method)
    test = [r.scores("test", select)["accuracy"] for r in runs if r.scores("test", select)]
    mean, std = stats.mean_std(test)
    out.update(test_accuracy_pct=100 * mean, test_accuracy_std_pct=100 * std, test_n_seeds=len(test))
    for metric in METRICS:
        reported = row.reported.get(SHORT[metric])
        out[f"paper_{SHORT[metric]}_pct"] = math.nan if reported is None else float(reported)
    out.update(
        delta_accuracy_pp=math.nan, delta_ci_low_pp=math.nan, delta_ci_high_pp=math.nan,
        p_bootstrap=math.nan, significant=None, paired_seeds=0, paired_samples=0, mcnemar="",
    )
    notes = list(cell.notes)
    if row.configuration == ablation.baseline:
        out["is_baseline"] = True
    else:
        out["is_baseline"] = False
        if runs and base_cell.completed:
            test_result = paired_tests(cell.completed, base_cell.completed, n_boot)
            if "bootstrap" in test_result:
                boot = test_result["bootstrap"]
                out.update(
                    delta_accuracy_pp=100 * boot.delta, delta_ci_low_pp=100 * boot.low, delta_ci_high_pp=100 * boot.high,
                    p_bootstrap=boot.p_value, significant=boot.significant,
                    paired_seeds=boot.n_seeds, paired_samples=boot.n_samples,
                    mcnemar="; ".join(
                        f"seed {s}: b={t.b} c={t.c} p{'' if t.p_value < 0.001 else '='}{_p(t.p_value)}"
                        for s, t in test_result["mcnemar"].items()
                    ),
                )
                unpaired = sorted(set(cell.completed) - set(test_result["seeds"]), key=_seed_key)
                if unpaired:
                    notes.append("not paired (no baseline run): seed " + ", ".join(map(str, unpaired)))
            if test_result.get("problem"):
                notes.append(f"paired test: {test_result['problem']}")
        elif runs:
            notes.append("no completed baseline run to compare with")
    firsts = {k: next((r.metrics[k] for r in runs if isinstance(r.metrics.get(k), (int, float))), None) for k in ("params", "macs")}
    out["params_m"] = firsts["params"] / 1e6 if firsts["params"] is not None else math.nan
    out["macs_g"] = firsts["macs"] / 1e9 if firsts["macs"] is not None else math.nan
    speeds = [r.metrics["train_images_per_s"] for r in runs if isinstance(r.metrics.get("train_images_per_s"), (int, float))]
    out["train_images_per_s"] = float(np.mean(speeds)) if speeds else math.nan
    out["notes"] = "; ".join(notes)
    return out


def build_tables(runs: list[Run], ablation: experiments.Ablation, select: str = "best", n_boot: int = 10_000) -> dict:
    """{table name: DataFrame} with one row per (data group, paper row); metrics in percent."""
    rows = {t.name: [] for t in ablation.tables}
    for key in data_groups(runs):
        in_group = [r for r in runs if r.group_key == key]
        seeds_seen = {r.seed for r in in_group if r.configuration in ablation.configurations}
        n_expected = len(seeds_seen)
        cells = {c: _cell([r for r in in_group if r.configuration == c], seeds_seen) for c in ablation.configurations}
        for table in ablation.tables:
            for row in table.rows:
                rows[table.name].append(
                    _row(table, row, cells[row.configuration], n_expected, cells[ablation.baseline], ablation, key, select, n_boot)
                )
    return {name: pd.DataFrame(r) for name, r in rows.items()}


def runs_frame(runs: list[Run], select: str = "best") -> pd.DataFrame:
    records = []
    for r in runs:
        val = r.scores("val", select) or {}
        records.append({
            "path": str(r.path), "status": r.status, "reason": r.reason, "group": r.group, "data": r.data,
            "image_size": r.image_size, "configuration": r.configuration, "unmatched": r.unmatched, "seed": r.seed,
            "attention": r.metrics.get("attention"), "stem": r.metrics.get("stem"),
            "accuracy_pct": 100 * val["accuracy"] if "accuracy" in val else math.nan,
            "overrides": " ".join(r.overrides),
        })
    return pd.DataFrame(records, columns=[
        "path", "status", "reason", "group", "data", "image_size", "configuration", "unmatched", "seed",
        "attention", "stem", "accuracy_pct", "overrides",
    ])


# ----------------------------------------------------------------------------- rendering


def _p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _pm(mean, std) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _num(x, fmt) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The human-readable table (strings) of one data group's rows."""
    has_test = bool((df["test_n_seeds"] > 0).any())
    has_paper_prf = bool(df[["paper_precision_pct", "paper_recall_pct", "paper_f1_pct"]].notna().any().any())
    out = []
    for _, r in df.iterrows():
        d = {"Model": r["label"], "Seeds": r["seeds"]}
        d["Acc %"] = _pm(r["accuracy_pct"], r["accuracy_std_pct"])
        d["Acc 95% CI"] = (
            "—" if not r["accuracy_ci_method"]
            else f"[{r['accuracy_ci_low_pct']:.2f}, {r['accuracy_ci_high_pct']:.2f}] {r['accuracy_ci_method']}"
        )
        d["Paper Acc"] = _num(r["paper_accuracy_pct"], ".2f")
        d["P %"] = _pm(r["precision_pct"], r["precision_std_pct"])
        d["R %"] = _pm(r["recall_pct"], r["recall_std_pct"])
        d["F1 %"] = _pm(r["f1_pct"], r["f1_std_pct"])
        paper = [r[f"paper_{m}_pct"] for m in ("precision", "recall", "f1")]
        if has_paper_prf:
            d["Paper P / R / F1"] = " / ".join(_num(x, ".2f") for x in paper)
        if has_test:
            d["Test Acc %"] = _pm(r["test_accuracy_pct"], r["test_accuracy_std_pct"])
        if r["is_baseline"]:
            d["Δ Acc (pp)"], d["Δ 95% CI"], d["p (bootstrap)"], d["Sig."] = "baseline", "—", "—", "—"
        else:
            d["Δ Acc (pp)"] = _num(r["delta_accuracy_pp"], "+.2f")
            d["Δ 95% CI"] = (
                "—" if math.isnan(r["delta_ci_low_pp"])
                else f"[{r['delta_ci_low_pp']:+.2f}, {r['delta_ci_high_pp']:+.2f}]"
            )
            d["p (bootstrap)"] = _p(r["p_bootstrap"])
            d["Sig."] = "—" if r["significant"] is None else ("yes" if r["significant"] else "no")
        d["Params (M)"] = _num(r["params_m"], ".2f")
        d["MACs (G)"] = _num(r["macs_g"], ".3f")
        d["Train img/s"] = _num(r["train_images_per_s"], ".0f")
        d["Notes"] = r["notes"] or ""
        out.append(d)
    return pd.DataFrame(out)


def _md(df: pd.DataFrame) -> str:
    def esc(x):
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(esc, df.columns)) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "—": "--"}


def _tex_escape(s) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def _tex(df: pd.DataFrame, caption: str) -> str:
    shown = df.drop(columns=["Notes"])
    notes = [f"{m}: {n}" for m, n in zip(df["Model"], df["Notes"]) if n]
    lines = [
        r"\begin{table}[t]", r"\centering\small", rf"\caption{{{_tex_escape(caption)}}}",
        r"\resizebox{\textwidth}{!}{%", r"\begin{tabular}{l" + "r" * (len(shown.columns) - 1) + "}", r"\toprule",
        " & ".join(_tex_escape(c) for c in shown.columns) + r" \\", r"\midrule",
    ]
    lines += [" & ".join(_tex_escape(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(_tex_escape(n) for n in notes))
    lines.append(r"\end{table}")
    return "\n".join(lines)


STATISTICS_METHOD = """\
Every metric is computed over the whole validation split (no per-batch averaging) and shown in
percent as mean ± sample standard deviation (ddof = 1) over the completed seeds; "Seeds" counts
them against the seeds seen in the data group. The accuracy 95 % CI is a Student t-interval over
the seeds ("t") when there are at least two, else the Wilson score interval of the single run's
accuracy over the validation samples ("Wilson"). Δ Acc is the accuracy difference to the baseline
row on the same data, averaged over seed pairs (paired by seed number; samples matched by
validation index, targets checked equal). Its 95 % CI and p come from a paired bootstrap over the
validation samples ({n_boot:,} resamples, RNG seed 0; one resample of the sample indices is applied to
every seed pair; percentile CI; two-sided p from inverting the percentile interval). "Sig." is
"yes" when that bootstrap CI excludes 0 (alpha = 0.05), no correction for the multiple rows.
McNemar's exact test (two-sided binomial on the discordant samples: b = only the baseline right,
c = only the model right) is given per seed pair below each data group. Both tests hold the
trained models fixed: they measure noise from the validation sample, not from retraining, so
a difference that flips sign between seeds can still be marked significant; compare the seeds.
"""


def _paired_md(frames: dict, key: tuple) -> str:
    seen, lines = set(), []
    for df in frames.values():
        for _, r in _in_group(df, key).iterrows():
            if r["is_baseline"] or r["configuration"] in seen:
                continue
            seen.add(r["configuration"])
            ci = "—" if math.isnan(r["delta_ci_low_pp"]) else f"[{r['delta_ci_low_pp']:+.2f}, {r['delta_ci_high_pp']:+.2f}]"
            lines.append(
                f"| {r['label']} | {r['paired_seeds']} | {r['paired_samples']} | {_num(r['delta_accuracy_pp'], '+.2f')} "
                f"| {ci} | {_p(r['p_bootstrap'])} | {r['mcnemar'] or '—'} |"
            )
    head = "| Model | Seed pairs | Samples | Δ Acc (pp) | Bootstrap 95% CI | Bootstrap p | McNemar exact per seed |\n|---|---|---|---|---|---|---|"
    return head + "\n" + "\n".join(lines)


def _in_group(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    if key[1] is None:
        return df
    return df[(df["group"] == key[0]) & (df["data"] == key[1]) & (df["image_size"] == key[2])]


def write_tables(frames: dict, runs: list[Run], ablation: experiments.Ablation, out_dir: Path, select: str,
                 run_count: int, figures: list | None = None, n_boot: int = 10_000) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = data_groups(runs)
    written = []
    for table in ablation.tables:
        df = frames[table.name]
        md = [f"# {table.title}", "", f"Ours: mean ± std over seeds, {select}-epoch validation metrics, percent. "
              "Paper: as published (one run). Statistics: see summary.md.", ""]
        tex = [f"% {table.title} -- generated by python -m fer_ablation.collect; do not edit. Needs booktabs, graphicx."]
        for key in keys:
            shown = display_frame(_in_group(df, key))
            md += [f"## {group_title(key)}", "", _md(shown), ""]
            tex.append(_tex(shown, f"{table.title} -- {group_title(key)}"))
        for suffix, text in (("md", "\n".join(md)), ("tex", "\n\n".join(tex) + "\n")):
            (out_dir / f"{table.name}.{suffix}").write_text(text)
        df.to_csv(out_dir / f"{table.name}.csv", index=False)
        written += [out_dir / f"{table.name}.{s}" for s in ("md", "csv", "tex")]
    (out_dir / "summary.md").write_text(_summary(frames, runs, ablation, keys, select, run_count, figures, n_boot))
    written.append(out_dir / "summary.md")
    return written


def _summary(frames, runs, ablation, keys, select, run_count, figures, n_boot) -> str:
    counts = pd.Series([r.status for r in runs]).value_counts().to_dict() if runs else {}
    lines = [
        "# fer-ablation results", "",
        f"{run_count} run folders read ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); "
        f"{select}-epoch metrics; experiment file `experiments/{ablation.name}.yaml`.", "",
    ]
    if select != "best":
        lines += ["Paired tests use predictions.csv, which holds the best-epoch model's predictions.", ""]
    for key in keys:
        lines += [f"## {group_title(key)}", ""]
        for table in ablation.tables:
            lines += [f"### {table.title}", "", _md(display_frame(_in_group(frames[table.name], key))), ""]
        lines += ["### Paired tests against the baseline", "", _paired_md(frames, key), ""]
    lines += ["## Statistics", "", STATISTICS_METHOD.format(n_boot=n_boot)]
    lines += ["## Runs not in the statistics", ""]
    listed = False
    for status in ("unreadable", "inconsistent", "failed", "running"):
        for r in (r for r in runs if r.status == status):
            lines.append(f"- {status}: {r.describe()}: {r.reason or ''}".rstrip(": "))
            listed = True
    for r in (r for r in runs if r.status == "completed" and r.configuration is None):
        lines.append(f"- not in the experiment file: {r.describe()}: {r.unmatched}")
        listed = True
    if not listed:
        lines.append("None.")
    if figures:
        lines += ["", "## Figures", ""] + [f"- {p}" for p in figures]
    return "\n".join(lines) + "\n"


def log_wandb(frames: dict, out_dir: Path) -> None:
    """Log the tables as wandb.Table in an offline run under out_dir (wandb imported only here)."""
    import wandb

    run = wandb.init(project="fer-ablation", job_type="collect", mode="offline", dir=str(out_dir))
    try:
        for name, df in frames.items():
            run.log({name: wandb.Table(dataframe=df.astype(str))})
    finally:
        run.finish()


def collect(run_dirs=None, out_dir="results/tables", experiment: str = "paper", select: str = "best",
            figures_dir=None, use_wandb: bool = False, n_boot: int = 10_000) -> dict:
    """Read the runs under `run_dirs`, write the tables into `out_dir`; returns their DataFrames.

    Keys: one per table of the experiment file (metrics in percent, one row per data group and
    paper row) and "runs" (every run folder read, with its status and reason).
    """
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', got {select!r}")
    ablation = experiments.load(experiment)
    run_paths = find_run_dirs(run_dirs)
    runs = [r for r in (load_run(p, ablation) for p in run_paths) if r is not None]
    frames = build_tables(runs, ablation, select, n_boot)
    figures = None
    if figures_dir is not None:
        from fer_ablation import figures as figures_module

        figures = figures_module.make_figures(runs, figures_dir, ablation).paths
    write_tables(frames, runs, ablation, Path(out_dir), select, len(run_paths), figures, n_boot)
    frames["runs"] = runs_frame(runs, select)
    if use_wandb:
        try:
            log_wandb(frames, Path(out_dir))
        except ImportError:
            print("collect: --wandb given but wandb is not installed; skipped", file=sys.stderr)
    return frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_ablation.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", help="run folders or folders above them (default: ./outputs ./multirun)")
    parser.add_argument("--out", default="results/tables")
    parser.add_argument("--experiment", default="paper", help="experiments/<name>.yaml")
    parser.add_argument("--select", choices=("best", "last"), default="best", help="which epoch's metrics")
    parser.add_argument("--figures", default=None, help="also draw the figures into this folder")
    parser.add_argument("--wandb", action="store_true", help="also log the tables to an offline W&B run")
    parser.add_argument("--n-boot", type=int, default=10_000)
    args = parser.parse_args(argv)
    frames = collect(args.run_dirs or None, args.out, args.experiment, args.select, args.figures, args.wandb, args.n_boot)
    status = frames["runs"]["status"].value_counts().to_dict()
    print(f"collect: {len(frames['runs'])} runs ({', '.join(f'{n} {s}' for s, n in sorted(status.items())) or 'none found'})")
    print(f"collect: wrote {args.out}/table{{1,2,3}}.{{md,csv,tex}} and {args.out}/summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
