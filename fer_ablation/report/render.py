"""The tables as text: Markdown (pandas `DataFrame.to_markdown`, i.e. tabulate's pipe format), LaTeX
(pandas `Styler.to_latex` with booktabs rules) and CSV, plus summary.md with the paired tests, the
statistics' method and every run left out of the statistics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fer_ablation import statistics as stats
from fer_ablation.config import experiments
from fer_ablation.report.claims import RULE_TEXT, baseline_verdict
from fer_ablation.report.grouping import configuration_rows, data_groups, group_notes, group_title, in_group, runs_in_group
from fer_ablation.report.runs import Run
from fer_ablation.report.rows import format_p

STATISTICS_METHOD = """\
Every metric is computed over the whole report split (no per-batch averaging; the split named under
each group's heading, which the checkpoint was not selected on: runs select on val and report on
test, or FER2013's PrivateTest with data.report_split=private; legacy records reported val, the
selection split) and shown in percent as mean ± sample standard deviation (ddof = 1) over the completed seeds; "Seeds" counts
them against the seeds seen in the data group. The accuracy 95 % CI is a Student t-interval over
the seeds ("t") when there are at least two, else the Wilson score interval of the single run's
accuracy over the report-split samples ("Wilson"). Precision, recall and F1 are torchmetrics' macro
averages over the classes of the runs' label set that occur in the targets or the predictions (a class
with tp + fp + fn = 0 gets weight 0; a data group whose label set is not the canonical seven names it
in its title); metrics.json also holds `*_macro_present`, the average over the classes the split has
images of.

**The verdict is over seeds.** Δ Acc is the accuracy difference to the baseline row on the same
data for each seed pair (paired by seed number), listed per seed, with its mean and the Student t
95 % CI over the pairs. p is the two-sided paired t-test over the seed pairs (scipy.stats.ttest_rel);
the CSV also gives the exact sign-flip permutation p over the pairs (p_seeds_permutation; with n
pairs it cannot go below 2^(1-n), so below 0.05 only from 6 pairs). Holm p is the Holm-Bonferroni
step-down adjustment over every configuration compared with the baseline in the data group (a
configuration shown in several tables is one test). "Sig." is "yes" when Holm p < 0.05, and is
shown only with at least 3 seed pairs ("—" otherwise: a t-test on 2 pairs has one degree of
freedom). The CSV holds the same columns for macro F1 (delta_f1_*, p_f1_*, significant_f1).
claims.md tests the paper's claims the same way (its own note gives the rules).

**Per-seed diagnostics for fixed trained models** (below each data group, not a verdict): a paired
bootstrap over the report-split samples ({n_boot:,} resamples, RNG seed 0; one resample of the sample
indices is applied to every seed pair; percentile CI; two-sided p from inverting the percentile
interval; samples matched by report-split index, targets checked equal; with --select last, the last epoch's predictions) and McNemar's exact test per
seed pair (two-sided binomial on the discordant samples: b = only the baseline right, c = only the
model right). Both hold the trained models fixed: they measure noise from the report sample,
not from retraining, so a difference that flips sign between seeds can still look significant there.
"""

# LaTeX for the characters the tables use. One escaper for the cells, the caption and the notes (pandas
# has no public escape function for the text around the tabular it writes).
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "—": "--",
        "≥": r"$\geq$", "<": r"$<$", ">": r"$>$"}


def _pm(mean, std) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _num(x, fmt) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _delta_ci(r, prefix: str = "delta_") -> str:
    if math.isnan(r[f"{prefix}ci_low_pp"]):
        return "—"
    return f"[{r[f'{prefix}ci_low_pp']:+.2f}, {r[f'{prefix}ci_high_pp']:+.2f}]"


def _missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def _per_seed(text) -> str:
    """`seed 0: +1.23; seed 1: -4.56` -> `s0 +1.23, s1 -4.56`."""
    if _missing(text) or not text:
        return "—"
    return ", ".join("s" + part.strip().removeprefix("seed ").replace(": ", " ") for part in str(text).split(";"))


def verdict_note(df: pd.DataFrame) -> str:
    """What Δ, p, Holm p and Sig. of one data group's table are, and why a Sig. cell is "—"."""
    compared = df[~df["is_baseline"].astype(bool)]
    m = int(df["holm_m"].max()) if len(df) else 0
    note = (
        "Δ: accuracy minus the baseline's, per seed pair (paired by seed number); its mean and 95 % Student t CI "
        "over the pairs. p: paired t-test over the seed pairs (scipy.stats.ttest_rel) -- the verdict. "
        f"Holm p: Holm-Bonferroni over the {m} configuration(s) compared with the baseline in this data group. "
        f"Sig.: Holm p < 0.05, shown only with ≥ {stats.MIN_SEED_PAIRS} seed pairs."
    )
    few = compared[(compared["paired_seeds"] > 0) & (compared["paired_seeds"] < stats.MIN_SEED_PAIRS)]
    if len(few):
        counts = sorted(set(int(n) for n in few["paired_seeds"]))
        note += (f" Here {len(few)} row(s) have only {' or '.join(map(str, counts))} seed pair(s), so Sig. is \"—\": "
                 "too few retrainings to tell an effect from seed-to-seed noise.")
    none = compared[compared["paired_seeds"] == 0]
    if len(none):
        note += f" {len(none)} row(s) have no seed pair with the baseline (see Notes)."
    return note + " Bootstrap and McNemar (summary.md) are per-seed diagnostics for fixed trained models."


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
            for column in ("Δ Acc (pp)", "Δ per seed", "Δ 95% CI", "p", "Holm p", "Sig."):
                d[column] = "baseline" if column == "Δ Acc (pp)" else "—"
        else:
            d["Δ Acc (pp)"] = _num(r["delta_accuracy_pp"], "+.2f")
            d["Δ per seed"] = _per_seed(r["delta_accuracy_seeds_pp"])
            d["Δ 95% CI"] = _delta_ci(r)
            d["p"] = format_p(r["p_seeds"])
            d["Holm p"] = format_p(r["p_holm"])
            d["Sig."] = "—" if _missing(r["significant"]) else ("yes" if r["significant"] else "no")
        d["Params (M)"] = _num(r["params_m"], ".2f")
        d["MACs (G)"] = _num(r["macs_g"], ".3f")
        d["Train img/s"] = _num(r["train_images_per_s"], ".0f")
        d["Notes"] = r["notes"] or ""
        out.append(d)
    return pd.DataFrame(out)


def headline_frame(frames: dict, ablation: experiments.Ablation, key: tuple) -> pd.DataFrame:
    """The narrow table of one data group: every configuration once (tables' order), its seeds, accuracy,
    the paper's, Δ against the baseline with its CI, and the verdict on that comparison."""
    out = []
    for r in configuration_rows([frames[t.name] for t in ablation.tables], key):
        if r["is_baseline"]:
            delta, verdict = "baseline", "—"
        elif not r["paired_seeds"]:
            delta, verdict = "—", "not run" if str(r["seeds"]).startswith("0/") else "no paired seeds"
        else:
            delta = f"{r['delta_accuracy_pp']:+.2f} {_delta_ci(r)}".rstrip(" —")
            verdict = baseline_verdict(r)
            if verdict != "inconclusive":
                verdict = f"{'better' if verdict == 'supported' else 'worse'} (Holm p {format_p(r['p_holm'])})"
        out.append({"Model": r["label"], "Seeds": r["seeds"], "Acc % (mean ± sd)": _pm(r["accuracy_pct"], r["accuracy_std_pct"]),
                    "Paper": _num(r["paper_accuracy_pct"], ".2f"), "Δ vs baseline (pp) [95% CI]": delta,
                    "Verdict": verdict})
    return pd.DataFrame(out)


def headline_markdown(frames: dict, runs: list[Run], ablation: experiments.Ablation, select: str) -> str:
    """headline.md: the narrow table of each data group, the way a result is read first."""
    lines = ["# The ablation at a glance", "",
             f"Each configuration once: {select}-epoch report-split accuracy over its completed seeds; Δ against the "
             "baseline per seed pair with its 95 % t CI; verdict: better / worse when the Holm-adjusted paired t-test "
             f"over ≥ {stats.MIN_SEED_PAIRS} seed pairs gives p < 0.05, else inconclusive. Full tables: table1-3.md, "
             "controls.md; the paper's claims: claims.md.", ""]
    for key in data_groups(runs):
        lines += [f"## {group_title(key)}", "", markdown(headline_frame(frames, ablation, key)), ""]
    return "\n".join(lines)


def markdown(df: pd.DataFrame) -> str:
    """A Markdown pipe table of string cells, written as they are (no number parsing)."""

    def esc(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    shown = df.map(esc).rename(columns=esc)
    return shown.to_markdown(index=False, disable_numparse=True)


def tex_escape(s) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex(df: pd.DataFrame, caption: str, note: str = "") -> str:
    """One table float: a booktabs tabular scaled to the text width, the rows' notes and `note` below it."""
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
    if note:
        notes.append(note)
    if notes:
        lines.append(r"\par\footnotesize " + r" \\ ".join(tex_escape(n) for n in notes))
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _paired_markdown(tables: list, key: tuple) -> str:
    rows = []
    for r in configuration_rows(tables, key):
        if r["is_baseline"]:
            continue
        rows.append({
            "Model": r["label"], "Seed pairs": r["paired_seeds"], "Samples": r["paired_samples"],
            "Δ Acc (pp)": _num(r["bootstrap_delta_pp"], "+.2f"), "Bootstrap 95% CI": _delta_ci(r, "bootstrap_"),
            "Bootstrap p": format_p(r["p_bootstrap"]), "McNemar exact per seed": r["mcnemar"] or "—",
        })
    columns = ["Model", "Seed pairs", "Samples", "Δ Acc (pp)", "Bootstrap 95% CI", "Bootstrap p", "McNemar exact per seed"]
    return markdown(pd.DataFrame(rows, columns=columns))


def summary(frames: dict, runs: list[Run], ablation: experiments.Ablation, select: str, run_count: int,
            figures: list | None = None, n_boot: int = 10_000) -> str:
    """summary.md: every table per data group, the paired tests, the method and the runs left out."""
    counts = pd.Series([r.status for r in runs]).value_counts().to_dict() if runs else {}
    evaluations = run_count - len(runs)  # folders whose metrics.json is an evaluation record, not a run
    lines = [
        "# fer-ablation results", "",
        f"{len(runs)} run folders read ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'})"
        + (f", {evaluations} evaluation record(s) left out" if evaluations else "") + "; "
        f"{select}-epoch metrics; experiment file `experiments/{ablation.name}.yaml`.", "",
    ]
    if select != "best":
        lines += ["Paired tests use predictions_last.csv, the last epoch's predictions.", ""]
    for key in data_groups(runs):
        lines += [f"## {group_title(key)}", "", *_notes_lines(runs, key)]
        for table in ablation.tables:
            lines += [f"### {table.title}", "", markdown(display_frame(in_group(frames[table.name], key))), ""]
        lines += ["### Per-seed diagnostics for fixed trained models (not the verdict)", "",
                  "Report-split sample noise only: each seed's trained models are held fixed (see Statistics).", "",
                  _paired_markdown([frames[t.name] for t in ablation.tables], key), ""]
    lines += ["## Statistics", "", STATISTICS_METHOD.format(n_boot=n_boot)]
    lines += ["## Runs not in the statistics", ""]
    left_out = [f"- {status}: {r.describe()}: {r.reason or ''}".rstrip(": ")
                for status in ("unreadable", "inconsistent", "failed", "interrupted", "running") for r in runs if r.status == status]
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
    """Write <table>.{md,csv,tex} for every table of the ablation file, summary.md and, when the file
    states claims, claims.{md,csv} into out_dir."""
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
            rows = in_group(df, key)
            shown = display_frame(rows)
            notes = _notes_lines(runs, key)
            md += [f"## {group_title(key)}", "", *notes, markdown(shown), "", verdict_note(rows), ""]
            tex.append(latex(shown, " ".join([f"{table.title} -- {group_title(key)}.", *notes]).strip(),
                             verdict_note(rows)))
        (out_dir / f"{table.name}.md").write_text("\n".join(md))
        (out_dir / f"{table.name}.tex").write_text("\n\n".join(tex) + "\n")
        df.to_csv(out_dir / f"{table.name}.csv", index=False)
        written += [out_dir / f"{table.name}.{s}" for s in ("md", "csv", "tex")]
    (out_dir / "headline.md").write_text(headline_markdown(frames, runs, ablation, select))
    written.append(out_dir / "headline.md")
    (out_dir / "summary.md").write_text(summary(frames, runs, ablation, select, run_count, figures, n_boot))
    written.append(out_dir / "summary.md")
    if "claims" in frames:
        (out_dir / "claims.md").write_text(claims_markdown(frames["claims"], frames["comparisons"], ablation, keys, select))
        frames["claims"].to_csv(out_dir / "claims.csv", index=False)
        written += [out_dir / "claims.md", out_dir / "claims.csv"]
    return written


def claims_markdown(claims: pd.DataFrame, comparisons: pd.DataFrame, ablation: experiments.Ablation, keys: list,
                    select: str) -> str:
    """claims.md: one verdict per claim and data group, then every comparison behind them."""
    lines = [f"# The paper's claims, tested over seeds (`experiments/{ablation.name}.yaml`)", "",
             f"{select}-epoch report-split accuracy. Δ: model minus the configuration it is compared with, per seed "
             "pair; mean and 95 % Student t CI over the pairs; p: two-sided paired t-test over the pairs; Holm p: "
             "Holm-Bonferroni over every comparison of this report in the data group. Rules:", ""]
    lines += [f"- **{rule}**: {text}." for rule, text in RULE_TEXT.items()]
    lines += ["", "**not run**: a configuration the claim needs has no run in the data group (and no comparison "
              "contradicts it); `make demo` runs Tables 1 and 3 and the controls, `make demo-full` every configuration.",
              "", "Anything else is **inconclusive**. For an inconclusive claim, *seeds needed* is the smallest "
              "number of seed pairs n (at least 3) at which the two-sided paired t-test at alpha 0.05 has 80 % power "
              "against the paper's effect δ given the SD s of the paired differences measured here: power(n) = "
              "P[|T| > t_{n-1, 0.975}], T ~ noncentral t(n - 1, (δ / s) √n) (scipy.stats.nct); alpha is not "
              "Holm-adjusted, so this is a lower bound. A claim that compares several rows needs the largest n of its "
              "open comparisons. The row shows the comparison that decides the verdict (the contradicting one, "
              "else the weakest open one); all are listed below.", ""]
    for key in keys:
        rows = in_group(claims, key)
        lines += [f"## {group_title(key)}", ""]
        shown = pd.DataFrame([{
            "Claim": r["claim"], "Compares": r["compares"], "Paper": r["paper_evidence"],
            "Ours: Δ (pp) [95% CI]": _effect_ci(r), "Seeds": f"{r['seed_pairs']} ({r['seeds'] or '—'})",
            "p": format_p(r["p"]), "Holm p": format_p(r["p_holm"]), "Verdict": r["verdict"],
            "Seeds needed": "—" if _missing(r["seeds_needed"]) else str(int(r["seeds_needed"])), "Why": r["why"],
        } for _, r in rows.iterrows()], columns=["Claim", "Compares", "Paper", "Ours: Δ (pp) [95% CI]", "Seeds", "p",
                                                 "Holm p", "Verdict", "Seeds needed", "Why"])
        lines += [markdown(shown), "", "### Every comparison", ""]
        every = pd.DataFrame([{
            "Model": r["model"], "vs": r["over"], "Paper": r["paper_evidence"], "Ours: Δ (pp) [95% CI]": _effect_ci(r),
            "Δ per seed": _per_seed(r["seed_differences_pp"]), "SD (pp)": _num(r["sd_pp"], ".2f"),
            "p": format_p(r["p"]), "Holm p": format_p(r["p_holm"]), "Verdict": r["comparison_verdict"],
            "Seeds needed": "—" if _missing(r["seeds_needed"]) else str(int(r["seeds_needed"])),
        } for _, r in in_group(comparisons, key).iterrows()],
            columns=["Model", "vs", "Paper", "Ours: Δ (pp) [95% CI]", "Δ per seed", "SD (pp)", "p", "Holm p",
                     "Verdict", "Seeds needed"])
        lines += [markdown(every), ""]
    return "\n".join(lines)


def _effect_ci(r) -> str:
    if _missing(r["effect_pp"]):
        return "—"
    if _missing(r["ci_low_pp"]):
        return f"{r['effect_pp']:+.2f}"
    return f"{r['effect_pp']:+.2f} [{r['ci_low_pp']:+.2f}, {r['ci_high_pp']:+.2f}]"
