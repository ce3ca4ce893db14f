"""The numbers of each table row: means over seeds, confidence intervals and paired tests against
the baseline, computed with the methods of `fer_ablation.statistics` (the one module that defines
them) from the runs of one cell.

A table frame has one row per (data group, paper row); metrics are in percent, and the paper's
reported numbers stand beside ours in `paper_*_pct` columns. Every number and test is computed on the
runs' report split (`Run.report_split`, never the split the checkpoint was selected on; `val` only for
legacy records), from the best or the last epoch (`select`); a second report split (FER2013's
PublicTest and PrivateTest) is shown in the `second_*` columns.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_ablation import statistics as stats
from fer_ablation.config import experiments
from fer_ablation.report.grouping import Cell, data_groups, make_cell, runs_in_group, seed_key
from fer_ablation.report.runs import LEGACY_NOTE, METRICS, Run

SHORT = {"accuracy": "accuracy", "precision_macro": "precision", "recall_macro": "recall", "f1_macro": "f1"}


def format_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _correct_matrix(runs_by_seed: dict, seeds: list, indices: np.ndarray, select: str = "best") -> np.ndarray:
    rows = []
    for seed in seeds:
        run = runs_by_seed[seed]
        pred = run.split_predictions(run.report_split, select).set_index("index").loc[indices]
        rows.append((pred["pred"].to_numpy() == pred["target"].to_numpy()))
    return np.array(rows, dtype=bool)


def paired_tests(model: dict, baseline: dict, n_boot: int = 10_000, select: str = "best") -> dict:
    """Paired tests of a configuration's completed runs against the baseline's in one data group.

    Seeds are paired by seed number; samples are matched by (report split, index) over the samples
    every paired run has, and their targets must agree. `select`: the best epoch's predictions
    (predictions.csv) or the last epoch's (predictions_last.csv). Returns the bootstrap result and
    the per-seed McNemar tests, or a `problem` string when no pairing is possible.
    """
    seeds = sorted(set(model) & set(baseline), key=seed_key)
    if not seeds:
        return {"problem": "no seed in common with the baseline"}
    pairs = [r for s in seeds for r in (model[s], baseline[s])]
    if len({r.report_split for r in pairs}) > 1:
        return {"problem": "the runs report different splits"}
    frames = [r.split_predictions(r.report_split, select).set_index("index")["target"] for r in pairs]
    if any(f.empty for f in frames):
        return {"problem": f"no {select}-epoch predictions of the report split in some runs"
                           + (" (legacy records keep only the best epoch's)" if select == "last" else "")}
    common = functools.reduce(lambda a, b: a.intersection(b), (f.index for f in frames))
    if len(common) == 0:
        return {"problem": "no report-split sample in common with the baseline"}
    common = np.sort(common.to_numpy())
    reference = frames[0].loc[common].to_numpy()
    for f in frames[1:]:
        differs = np.flatnonzero(f.loc[common].to_numpy() != reference)
        if differs.size:
            return {"problem": f"targets differ from the baseline's at {pairs[0].report_split} index "
                               f"{common[differs[0]]} (different splits?)"}
    m = _correct_matrix(model, seeds, common, select)
    b = _correct_matrix(baseline, seeds, common, select)
    largest = max(len(f) for f in frames)
    return {
        "bootstrap": stats.paired_bootstrap(m, b, n_boot=n_boot),
        "mcnemar": {s: stats.mcnemar_exact(m[i], b[i]) for i, s in enumerate(seeds)},
        "seeds": seeds,
        "samples": len(common),
        "problem": None if len(common) == largest else f"paired on the {len(common)} of {largest} samples all runs share",
    }


@dataclass(frozen=True)
class RowSpec:
    """What one table row summarises: a paper row, its cell and the baseline's cell in one data group."""

    table: experiments.Table
    row: experiments.Row
    cell: Cell
    baseline_cell: Cell
    is_baseline: bool
    n_expected: int  # seeds seen in the data group
    group_key: tuple


def _seed_scores(out: dict, runs: list[Run], select: str) -> None:
    val = [r.scores(r.report_split, select) or {} for r in runs]
    for metric in METRICS:
        mean, std = stats.mean_std([v[metric] for v in val if metric in v])
        out[f"{SHORT[metric]}_pct"] = 100 * mean
        out[f"{SHORT[metric]}_std_pct"] = 100 * std
    accuracies = [v["accuracy"] for v in val if "accuracy" in v]
    n_samples = (val[0].get("n") or len(runs[0].split_predictions(runs[0].report_split))) if len(val) == 1 else None
    ci = stats.accuracy_ci(accuracies, n_samples)
    out.update(accuracy_ci_low_pct=100 * ci.low, accuracy_ci_high_pct=100 * ci.high, accuracy_ci_method=ci.method)
    second = {r.path: next((s for s in ("test", "private") if s != r.report_split and r.scores(s, select)), None)
              for r in runs}
    names = sorted({s for s in second.values() if s})
    accuracies = [r.scores(second[r.path], select)["accuracy"] for r in runs if second[r.path]]
    mean, std = stats.mean_std(accuracies)
    out.update(report_split=", ".join(sorted({r.report_split for r in runs})), second_split=", ".join(names),
               second_accuracy_pct=100 * mean, second_accuracy_std_pct=100 * std, second_n_seeds=len(accuracies))


def seed_comparison(model: dict, baseline: dict, metric: str = "accuracy", select: str = "best"):
    """(seeds, stats.SeedTest) of one report-split metric over the seeds both cells completed (paired by
    seed number), or ([], None) when they share no seed with the metric."""
    def score(run):
        return (run.scores(run.report_split, select) or {}).get(metric)

    seeds = [s for s in sorted(set(model) & set(baseline), key=seed_key)
             if score(model[s]) is not None and score(baseline[s]) is not None]
    if not seeds:
        return [], None
    test = stats.seed_test([score(model[s]) for s in seeds], [score(baseline[s]) for s in seeds])
    if test.n >= 2 and test.sd < ZERO_SPREAD:
        # a t-test divides by the spread: with none, its p is ~0 (or undefined) whatever the evidence
        test = dataclasses.replace(test, low=math.nan, high=math.nan, p_value=math.nan, p_permutation=math.nan)
    return seeds, test


# Seed differences whose SD is below this (a millionth of accuracy, less than one image of any test set under a
# million images) have no spread: equal up to rounding, as forged or duplicated runs give.
ZERO_SPREAD = 1e-6


def zero_spread_note(test: stats.SeedTest) -> str:
    """Why a comparison of seed pairs with no spread gets no p-value and no verdict."""
    return (f"every seed pair gave the same difference ({100 * test.mean:+.2f} pp): with no seed-to-seed spread "
            "there is no p-value and no verdict (are the seeds really different runs?)")


def format_seed_differences(seeds: list, test: stats.SeedTest | None) -> str:
    """`seed 0: +1.23; seed 1: -4.56` (percentage points)."""
    if test is None:
        return ""
    return "; ".join(f"seed {s}: {100 * d:+.2f}" for s, d in zip(seeds, test.differences))


# (metric, column prefix of the seed-level columns): accuracy is the tables' verdict, macro F1 rides along
SEED_METRICS = (("accuracy", ""), ("f1_macro", "f1_"))


def _seed_columns(out: dict, notes: list, spec: RowSpec, select: str) -> None:
    for metric, prefix in SEED_METRICS:
        name = "accuracy" if not prefix else "f1"
        out.update({
            f"delta_{name}_pp": math.nan, f"delta_{name}_seeds_pp": "", f"delta_{prefix}ci_low_pp": math.nan,
            f"delta_{prefix}ci_high_pp": math.nan, f"p_{prefix}seeds": math.nan, f"p_{prefix}seeds_permutation": math.nan,
            f"p_{prefix}holm": math.nan, f"significant{'_' + name if prefix else ''}": None, f"holm_{prefix}m": 0,
        })
        if spec.is_baseline or not spec.cell.completed or not spec.baseline_cell.completed:
            continue
        seeds, test = seed_comparison(spec.cell.completed, spec.baseline_cell.completed, metric, select)
        if test is None:
            continue
        out.update({
            f"delta_{name}_pp": 100 * test.mean, f"delta_{name}_seeds_pp": format_seed_differences(seeds, test),
            f"delta_{prefix}ci_low_pp": 100 * test.low, f"delta_{prefix}ci_high_pp": 100 * test.high,
            f"p_{prefix}seeds": test.p_value, f"p_{prefix}seeds_permutation": test.p_permutation,
        })
        if metric == "accuracy":
            out["paired_seeds"] = test.n
            if test.n >= 2 and math.isnan(test.p_value):
                notes.append(zero_spread_note(test))


def _paired_columns(out: dict, notes: list, spec: RowSpec, n_boot: int, select: str = "best") -> None:
    """The per-seed diagnostics for fixed trained models: paired bootstrap over samples and McNemar."""
    out.update(
        bootstrap_delta_pp=math.nan, bootstrap_ci_low_pp=math.nan, bootstrap_ci_high_pp=math.nan,
        p_bootstrap=math.nan, paired_samples=0, mcnemar="",
    )
    if spec.is_baseline or not spec.cell.completed:
        return
    if not spec.baseline_cell.completed:
        notes.append("no completed baseline run to compare with")
        return
    result = paired_tests(spec.cell.completed, spec.baseline_cell.completed, n_boot, select)
    if "bootstrap" in result:
        boot = result["bootstrap"]
        out.update(
            bootstrap_delta_pp=100 * boot.delta, bootstrap_ci_low_pp=100 * boot.low,
            bootstrap_ci_high_pp=100 * boot.high, p_bootstrap=boot.p_value, paired_samples=boot.n_samples,
            mcnemar="; ".join(
                f"seed {s}: b={t.b} c={t.c} p{'' if t.p_value < 0.001 else '='}{format_p(t.p_value)}"
                for s, t in result["mcnemar"].items()
            ),
        )
        unpaired = sorted(set(spec.cell.completed) - set(result["seeds"]), key=seed_key)
        if unpaired:
            notes.append("not paired (no baseline run): seed " + ", ".join(map(str, unpaired)))
    if result.get("problem"):
        notes.append(f"paired test: {result['problem']}")


def add_holm(rows: list[dict]) -> None:
    """Holm-adjust the seed-level p-values of one data group's rows, in place.

    The family is every configuration compared with the baseline in the group that has a p-value (a
    configuration shown in several tables is one test); `significant` is Holm p < alpha with at
    least stats.MIN_SEED_PAIRS seed pairs, None with fewer.
    """
    for metric, prefix in SEED_METRICS:
        flag = "significant" + ("_f1" if prefix else "")
        tests = {}
        for r in rows:
            if not r["is_baseline"] and not math.isnan(r[f"p_{prefix}seeds"]):
                tests[r["configuration"]] = r[f"p_{prefix}seeds"]
        adjusted = dict(zip(tests, stats.holm(list(tests.values()))))
        for r in rows:
            r[f"holm_{prefix}m"] = len(tests)
            if r["configuration"] in adjusted and not r["is_baseline"]:
                r[f"p_{prefix}holm"] = adjusted[r["configuration"]]
                r[flag] = bool(adjusted[r["configuration"]] < stats.ALPHA) if r["paired_seeds"] >= stats.MIN_SEED_PAIRS else None


def table_row(spec: RowSpec, select: str = "best", n_boot: int = 10_000) -> dict:
    """One row of a table frame (see the module docstring)."""
    runs = spec.cell.runs
    out = {
        "group": spec.group_key[0],
        "data": spec.group_key[1],
        "image_size": spec.group_key[2],
        "fingerprint": spec.group_key[3],
        "table": spec.table.name,
        "label": spec.row.label,
        "configuration": spec.row.configuration,
        "n_completed": len(runs),
        "n_expected": spec.n_expected,
        "seeds": f"{len(runs)}/{spec.n_expected}",
    }
    _seed_scores(out, runs, select)
    for metric in METRICS:
        reported = spec.row.reported.get(SHORT[metric])
        out[f"paper_{SHORT[metric]}_pct"] = math.nan if reported is None else float(reported)
    notes = list(spec.cell.notes)
    out["is_baseline"] = spec.is_baseline
    out["paired_seeds"] = 0
    if any(r.legacy for r in runs):
        notes.append(LEGACY_NOTE)
    _seed_columns(out, notes, spec, select)
    _paired_columns(out, notes, spec, n_boot, select)
    firsts = {k: next((r.metrics[k] for r in runs if isinstance(r.metrics.get(k), (int, float))), None)
              for k in ("params", "macs")}
    out["params_m"] = firsts["params"] / 1e6 if firsts["params"] is not None else math.nan
    out["macs_g"] = firsts["macs"] / 1e9 if firsts["macs"] is not None else math.nan
    speeds = [r.metrics["train_images_per_s"] for r in runs if isinstance(r.metrics.get("train_images_per_s"), (int, float))]
    out["train_images_per_s"] = float(np.mean(speeds)) if speeds else math.nan
    out["notes"] = "; ".join(notes)
    return out


def build_tables(runs: list[Run], ablation: experiments.Ablation, select: str = "best", n_boot: int = 10_000) -> dict:
    """{table name: DataFrame} with one row per (data group, paper row); metrics in percent."""
    rows = {t.name: [] for t in ablation.tables}
    for key, cells, seeds_seen in group_cells(runs, ablation):
        in_group = []
        for table in ablation.tables:
            for row in table.rows:
                spec = RowSpec(
                    table=table, row=row, cell=cells[row.configuration], baseline_cell=cells[ablation.baseline],
                    is_baseline=row.configuration == ablation.baseline, n_expected=len(seeds_seen), group_key=key,
                )
                rows[table.name].append(table_row(spec, select, n_boot))
                in_group.append(rows[table.name][-1])
        add_holm(in_group)
    return {name: pd.DataFrame(r) for name, r in rows.items()}


def group_cells(runs: list[Run], ablation: experiments.Ablation):
    """(data group key, {configuration: Cell}, seeds seen in the group) for every data group."""
    for key in data_groups(runs):
        group = runs_in_group(runs, key)
        seeds_seen = {r.seed for r in group if r.configuration in ablation.configurations}
        cells = {c: make_cell([r for r in group if r.configuration == c], seeds_seen) for c in ablation.configurations}
        yield key, cells, seeds_seen


def runs_frame(runs: list[Run], select: str = "best") -> pd.DataFrame:
    """Every run folder read, one row each, with its status and why it is not in the statistics."""
    rows = []
    for r in runs:
        scores = (r.scores(r.report_split, select) or {}) if r.metrics else {}
        rows.append({
            "path": str(r.path), "status": r.status, "reason": r.reason, "group": r.group, "data": r.data,
            "image_size": r.image_size, "fingerprint": r.fingerprint if r.metrics else None,
            "configuration": r.configuration, "unmatched": r.unmatched, "seed": r.seed,
            "attention": r.metrics.get("attention"), "stem": r.metrics.get("stem"),
            "report_split": r.report_split if r.metrics else None,
            "accuracy_pct": 100 * scores["accuracy"] if "accuracy" in scores else math.nan,
            "overrides": " ".join(r.overrides),
        })
    return pd.DataFrame(rows, columns=[
        "path", "status", "reason", "group", "data", "image_size", "fingerprint", "configuration", "unmatched",
        "seed", "attention", "stem", "report_split", "accuracy_pct", "overrides",
    ])
