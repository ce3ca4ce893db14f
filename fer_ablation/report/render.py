"""The tables as text: Markdown (pandas `DataFrame.to_markdown`, i.e. tabulate's pipe format), LaTeX
(pandas `Styler.to_latex` with booktabs rules) and CSV, plus summary.md with the paired tests, the
statistics' method and every run left out of the statistics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fer_ablation import experiments
from fer_ablation.report.grouping import data_groups, group_notes, group_title, in_group, runs_in_group
from fer_ablation.report.runs import Run
from fer_ablation.report.statistics import format_p

STATISTICS_METHOD = """\
Every metric is computed over the whole report split (no per-batch averaging; the split named under
each group's heading, which the checkpoint was not selected on: runs select on val and report on
test, or FER2013's PrivateTest with data.report_split=private; legacy records reported val, the
selection split) and shown in percent as mean ± sample standard deviation (ddof = 1) over the completed seeds; "Seeds" counts
them against the seeds seen in the data group. The accuracy 95 % CI is a Student t-interval over
the seeds ("t") when there are at least two, else the Wilson score interval of the single run's
accuracy over the report-split samples ("Wilson"). Δ Acc is the accuracy difference to the baseline
row on the same data, averaged over seed pairs (paired by seed number; samples matched by
report-split index, targets checked equal; with --select last, the last epoch's predictions). Its
95 % CI and p come from a paired bootstrap over the report-split samples ({n_boot:,} resamples, RNG seed 0; one resample of the sample indices is applied to
every seed pair; percentile CI; two-sided p from inverting the percentile interval). "Sig." is
"yes" when that bootstrap CI excludes 0 (alpha = 0.05), no correction for the multiple rows.
McNemar's exact test (two-sided binomial on the discordant samples: b = only the baseline right,
c = only the model right) is given per seed pair below each data group. Both tests hold the
trained models fixed: they measure noise from the report sample, not from retraining, so
a difference that flips sign between seeds can still be marked significant; compare the seeds.
"""

# LaTeX for the characters the tables use. One escaper for the cells, the caption and the notes (pandas
# has no public escape function for the text around the tabular it writes).
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "—": "--"}


def _pm(mean, std) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _num(x, fmt) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _delta_ci(r) -> str:
    if math.isnan(r["delta_ci_low_pp"]):
        return "—"
    return f"[{r['delta_ci_low_pp']:+.2f}, {r['delta_ci_high_pp']:+.2f}]"


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The human-readable table (strings) of one data group's rows."""
    has_second = bool((df["second_n_seeds"] > 0).any())
    second = ", ".join(sorted({s for s in df["second_split"] if s}))
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
        if has_paper_prf:
            d["Paper P / R / F1"] = " / ".join(_num(r[f"paper_{m}_pct"], ".2f") for m in ("precision", "recall", "f1"))
        if has_second:
            d[f"{second} Acc %"] = _pm(r["second_accuracy_pct"], r["second_accuracy_std_pct"])
        if r["is_baseline"]:
            d["Δ Acc (pp)"], d["Δ 95% CI"], d["p (bootstrap)"], d["Sig."] = "baseline", "—", "—", "—"
        else:
            d["Δ Acc (pp)"] = _num(r["delta_accuracy_pp"], "+.2f")
            d["Δ 95% CI"] = _delta_ci(r)
            d["p (bootstrap)"] = format_p(r["p_bootstrap"])
            d["Sig."] = "—" if r["significant"] is None else ("yes" if r["significant"] else "no")
        d["Params (M)"] = _num(r["params_m"], ".2f")
        d["MACs (G)"] = _num(r["macs_g"], ".3f")
        d["Train img/s"] = _num(r["train_images_per_s"], ".0f")
        d["Notes"] = r["notes"] or ""
        out.append(d)
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame) -> str:
    """A Markdown pipe table of string cells, written as they are (no number parsing)."""

    def esc(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    shown = df.map(esc).rename(columns=esc)
    return shown.to_markdown(index=False, disable_numparse=True)


def tex_escape(s) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex(df: pd.DataFrame, caption: str) -> str:
    """One table float: a booktabs tabular scaled to the text width, the rows' notes below it."""
    shown = df.drop(columns=["Notes"])
    tabular = (
        shown.style.hide(axis="index")
        .format(tex_escape)
        .format_index(tex_escape, axis=1)
        .to_latex(column_format="l" + "r" * (len(shown.columns) - 1), hrules=True)
    )
    lines = [r"\begin{table}[t]", r"\centering\small", rf"\caption{{{tex_escape(caption)}}}",
             r"\resizebox{\textwidth}{!}{%", tabular.rstrip("\n") + "}"]
    notes = [f"{m}: {n}" for m, n in zip(df["Model"], df["Notes"]) if n]
    if notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(tex_escape(n) for n in notes))
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _paired_markdown(frames: dict, key: tuple) -> str:
    seen, rows = set(), []
    for df in frames.values():
        for _, r in in_group(df, key).iterrows():
            if r["is_baseline"] or r["configuration"] in seen:
                continue
            seen.add(r["configuration"])
            rows.append({
                "Model": r["label"], "Seed pairs": r["paired_seeds"], "Samples": r["paired_samples"],
                "Δ Acc (pp)": _num(r["delta_accuracy_pp"], "+.2f"), "Bootstrap 95% CI": _delta_ci(r),
                "Bootstrap p": format_p(r["p_bootstrap"]), "McNemar exact per seed": r["mcnemar"] or "—",
            })
    columns = ["Model", "Seed pairs", "Samples", "Δ Acc (pp)", "Bootstrap 95% CI", "Bootstrap p", "McNemar exact per seed"]
    return markdown(pd.DataFrame(rows, columns=columns))


def summary(frames: dict, runs: list[Run], ablation: experiments.Ablation, select: str, run_count: int,
            figures: list | None = None, n_boot: int = 10_000) -> str:
    """summary.md: every table per data group, the paired tests, the method and the runs left out."""
    counts = pd.Series([r.status for r in runs]).value_counts().to_dict() if runs else {}
    lines = [
        "# fer-ablation results", "",
        f"{run_count} run folders read ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}); "
        f"{select}-epoch metrics; experiment file `experiments/{ablation.name}.yaml`.", "",
    ]
    if select != "best":
        lines += ["Paired tests use predictions_last.csv, the last epoch's predictions.", ""]
    for key in data_groups(runs):
        lines += [f"## {group_title(key)}", "", *_notes_lines(runs, key)]
        for table in ablation.tables:
            lines += [f"### {table.title}", "", markdown(display_frame(in_group(frames[table.name], key))), ""]
        lines += ["### Paired tests against the baseline", "", _paired_markdown(frames, key), ""]
    lines += ["## Statistics", "", STATISTICS_METHOD.format(n_boot=n_boot)]
    lines += ["## Runs not in the statistics", ""]
    left_out = [f"- {status}: {r.describe()}: {r.reason or ''}".rstrip(": ")
                for status in ("unreadable", "inconsistent", "failed", "running") for r in runs if r.status == status]
    left_out += [f"- not in the experiment file: {r.describe()}: {r.unmatched}"
                 for r in runs if r.status == "completed" and r.configuration is None]
    lines += left_out or ["None."]
    if figures:
        lines += ["", "## Figures", ""] + [f"- {p}" for p in figures]
    return "\n".join(lines) + "\n"


def _notes_lines(runs: list[Run], key: tuple) -> list[str]:
    notes = group_notes(runs_in_group(runs, key))
    return [*notes, ""] if notes else []


def write_tables(frames: dict, runs: list[Run], ablation: experiments.Ablation, out_dir: Path | str, select: str,
                 run_count: int, figures: list | None = None, n_boot: int = 10_000) -> list[Path]:
    """Write <table>.{md,csv,tex} for every table of the ablation file and summary.md into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = data_groups(runs)
    written = []
    for table in ablation.tables:
        df = frames[table.name]
        md = [f"# {table.title}", "", f"Ours: mean ± std over seeds, {select}-epoch metrics on the report split "
              "named under each group (never the split the checkpoint was selected on), percent. "
              "Paper: as published (one run). Statistics: see summary.md.", ""]
        tex = [f"% {table.title} -- generated by python -m fer_ablation.collect; do not edit. Needs booktabs, graphicx."]
        for key in keys:
            shown = display_frame(in_group(df, key))
            notes = _notes_lines(runs, key)
            md += [f"## {group_title(key)}", "", *notes, markdown(shown), ""]
            tex.append(latex(shown, " ".join([f"{table.title} -- {group_title(key)}.", *notes]).strip()))
        (out_dir / f"{table.name}.md").write_text("\n".join(md))
        (out_dir / f"{table.name}.tex").write_text("\n\n".join(tex) + "\n")
        df.to_csv(out_dir / f"{table.name}.csv", index=False)
        written += [out_dir / f"{table.name}.{s}" for s in ("md", "csv", "tex")]
    (out_dir / "summary.md").write_text(summary(frames, runs, ablation, select, run_count, figures, n_boot))
    written.append(out_dir / "summary.md")
    return written
