"""Figures from the run records: training curves (the paper's Fig. 6), confusion matrices and the forest plot.

* curves_<group>.png: validation accuracy and loss per epoch (history.csv) of the baseline and of
  the full model (configuration `full`: CA + SimAM + SC), mean over seeds with a min-max band.
* confusion_<group>_<configuration>.png: confusion matrix of each configuration on the report
  split (predictions.csv, counts summed over seeds), normalised by true class (rows sum to 100 %).

* forest_<group>.png: Δ report-split accuracy of every configuration against the baseline and of every claim
  comparison against another arm: each seed pair as a dot, the mean and 95 % t CI coloured by the verdict
  (Holm over the group, as in the tables and claims.md), the paper's Δ as a cross.

<group> is the data group's label (its `group`, else `<data>_<size>px`), as in the tables.
Only completed runs are drawn, from the records `fer_ablation.report.runs` read (matplotlib Agg, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fer_ablation.config import experiments  # noqa: E402
from fer_ablation.report.claims import baseline_verdict  # noqa: E402
from fer_ablation.report.grouping import completed_per_seed, data_groups, group_tag, group_title, runs_in_group  # noqa: E402
from fer_ablation.report.runs import Run  # noqa: E402

FULL = "full"


@dataclass
class Figures:
    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _history(run: Run) -> pd.DataFrame | None:
    """The run's history with the columns the curves need; None (skipped and reported) otherwise."""
    history = run.history()
    if history is None or not {"epoch", "val_accuracy", "val_loss"} <= set(history.columns):
        return None
    return history


def curves(runs: list[Run], ablation: experiments.Ablation, key: tuple, path: Path, report: Figures) -> None:
    """Validation accuracy and loss per epoch, baseline vs full: mean over seeds, min-max band."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    drawn = 0
    for configuration, colour in ((ablation.baseline, "tab:blue"), (FULL, "tab:red")):
        histories = []
        for run in completed_per_seed([r for r in runs if r.configuration == configuration]).values():
            history = _history(run)
            if history is None:
                report.skipped.append(f"{run.path}: no readable history.csv with epoch, val_accuracy, val_loss")
            else:
                histories.append(history.set_index("epoch"))
        if not histories:
            report.skipped.append(f"curves {group_title(key)}: no completed {configuration} run with a history")
            continue
        drawn += 1
        label = f"{ablation.label_of(configuration)} ({len(histories)} seed{'s' * (len(histories) > 1)})"
        for ax, column, scale in ((ax_acc, "val_accuracy", 100.0), (ax_loss, "val_loss", 1.0)):
            table = pd.concat([h[column] for h in histories], axis=1) * scale
            ax.plot(table.index, table.mean(axis=1), color=colour, label=label)
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.2, linewidth=0)
    if drawn == 0:
        plt.close(fig)
        return
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title="Validation loss")
    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{group_title(key)}: mean over seeds, band = min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    report.paths.append(path)


def confusion_counts(runs: list[Run], num_classes: int) -> np.ndarray:
    """Confusion counts [true, predicted] on each run's report split, summed over the runs."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for run in runs:
        val = run.split_predictions(run.report_split)
        np.add.at(counts, (val["target"].to_numpy(), val["pred"].to_numpy()), 1)
    return counts


def confusion(runs: list[Run], ablation: experiments.Ablation, key: tuple, configuration: str, path: Path) -> None:
    classes = runs[0].classes
    largest = max(int(r.split_predictions(r.report_split)[["target", "pred"]].max().max()) for r in runs)
    classes = classes + [str(i) for i in range(len(classes), largest + 1)]
    counts = confusion_counts(runs, len(classes))
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(support > 0, counts / support, np.nan)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(normalised * 100, vmin=0, vmax=100, cmap="Blues")
    for (i, j), value in np.ndenumerate(normalised):
        if not np.isnan(value):
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(f"{ablation.label_of(configuration)}, {group_title(key)}\n"
                 f"{'/'.join(sorted({r.report_split for r in runs}))} split, {len(runs)} seed(s), {int(counts.sum())} predictions; % of true class", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def make_figures(runs: list[Run], out_dir, ablation: experiments.Ablation | None = None,
                 frames: dict | None = None) -> Figures:
    """Draw every figure for the completed runs into out_dir; returns the files and what was skipped.
    With the collector's `frames`, also the forest plot of each data group."""
    ablation = ablation or experiments.load("paper")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = Figures()
    done = [r for r in runs if r.status == "completed" and r.configuration in ablation.configurations]
    for key in data_groups(done):
        if key[1] is None:
            break
        in_group = runs_in_group(done, key)
        tag = group_tag(key)
        curves(in_group, ablation, key, out / f"curves_{tag}.png", report)
        rows = forest_rows(frames, ablation, key) if frames else []
        if rows:
            forest(rows, key, out / f"forest_{tag}.png")
            report.paths.append(out / f"forest_{tag}.png")
        for configuration in ablation.configurations:
            chosen = list(completed_per_seed([r for r in in_group if r.configuration == configuration]).values())
            if chosen:
                path = out / f"confusion_{tag}_{configuration}.png"
                confusion(chosen, ablation, key, configuration, path)
                report.paths.append(path)
    return report



def seed_values(text) -> list[float]:
    """The per-seed differences of a `seed 0: +1.23; seed 1: -4.56` column (percentage points)."""
    if not isinstance(text, str) or not text:
        return []
    return [float(part.split(":")[1]) for part in text.split(";")]


def forest_rows(frames: dict, ablation: experiments.Ablation, key: tuple) -> list[dict]:
    """The forest plot's rows for one data group: every configuration with runs against the baseline (from
    the tables), then every claim comparison against another arm (from the comparisons)."""
    from fer_ablation.report.grouping import configuration_rows, in_group

    rows = []
    paper_baseline = ablation.paper_accuracy(ablation.baseline)
    for r in configuration_rows([frames[t.name] for t in ablation.tables], key):
        if r["is_baseline"] or not r["paired_seeds"]:
            continue
        paper = (r["paper_accuracy_pct"] - paper_baseline[0]
                 if paper_baseline and not pd.isna(r["paper_accuracy_pct"]) else None)
        rows.append({"label": f"{r['label']} vs {ablation.label_of(ablation.baseline)}",
                     "seeds": seed_values(r["delta_accuracy_seeds_pp"]), "mean": r["delta_accuracy_pp"],
                     "low": r["delta_ci_low_pp"], "high": r["delta_ci_high_pp"], "paper": paper,
                     "verdict": baseline_verdict(r)})
    if "comparisons" in frames:
        for _, c in in_group(frames["comparisons"], key).iterrows():
            if c["over"] == ablation.baseline or not c["seed_pairs"]:
                continue
            rows.append({"label": f"{ablation.label_of(c['model'])} vs {ablation.label_of(c['over'])}",
                         "seeds": seed_values(c["seed_differences_pp"]), "mean": c["effect_pp"],
                         "low": c["ci_low_pp"], "high": c["ci_high_pp"],
                         "paper": None if pd.isna(c["paper_effect_pp"]) else c["paper_effect_pp"],
                         "verdict": c["comparison_verdict"]})
    return rows


VERDICT_COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def forest(rows: list[dict], key: tuple, path: Path) -> None:
    """Δ accuracy per comparison: seeds as dots, mean and 95 % t CI as a bar, the paper's Δ as a cross."""
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        colour = VERDICT_COLOURS.get(r["verdict"], "tab:grey")
        if not pd.isna(r["low"]):
            ax.plot([r["low"], r["high"]], [yi, yi], color=colour, lw=2.2, solid_capstyle="butt")
        ax.scatter(r["seeds"], [yi] * len(r["seeds"]), s=14, color="black", alpha=0.55, zorder=3)
        ax.scatter([r["mean"]], [yi], s=46, marker="D", color=colour, zorder=4)
        if r["paper"] is not None:
            ax.scatter([r["paper"]], [yi], s=60, marker="x", color="tab:purple", zorder=5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['label']}  ({r['verdict']})" for r in rows], fontsize=8)
    ax.set_xlabel("Δ report-split accuracy (pp)\ndots: seed pairs; diamond and bar: mean and 95 % t CI; "
                  "x: the paper's Δ", fontsize=8)
    ax.set_title(f"{group_title(key)}\ncolour: verdict (paired t-test over seeds, Holm over the group)", fontsize=9)
    handles = [plt.Line2D([], [], color=c, lw=2.2, label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(plt.Line2D([], [], color="tab:purple", marker="x", ls="", label="paper"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
