"""Figures from the run records: training curves (the paper's Fig. 6) and confusion matrices.

* curves_<group>.png: validation accuracy and loss per epoch (history.csv) of the baseline and of
  the full model (configuration `full`: CA + SimAM + SC), mean over seeds with a min-max band.
* confusion_<group>_<configuration>.png: confusion matrix of each configuration on the validation
  split (predictions.csv, counts summed over seeds), normalised by true class (rows sum to 100 %).

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

from fer_ablation import experiments  # noqa: E402
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


def make_figures(runs: list[Run], out_dir, ablation: experiments.Ablation | None = None) -> Figures:
    """Draw every figure for the completed runs into out_dir; returns the files and what was skipped."""
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
        for configuration in ablation.configurations:
            chosen = list(completed_per_seed([r for r in in_group if r.configuration == configuration]).values())
            if chosen:
                path = out / f"confusion_{tag}_{configuration}.png"
                confusion(chosen, ablation, key, configuration, path)
                report.paths.append(path)
    return report

