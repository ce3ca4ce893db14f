"""The paper's claims (experiments/<ablation>.yaml `claims:`) tested over seeds: claims.md and claims.csv.

Every claim compares one configuration with one or more others on report-split accuracy. Each
comparison is a seed-level paired test (`stats.seed_test`: differences paired by seed number, their
mean and Student t 95 % CI, two-sided paired t-test). The claims report is one family of tests per
data group: the Holm-Bonferroni adjustment runs over every distinct comparison the claims make
there that has a p-value.

A comparison is *supported* when its Holm p < 0.05 with a positive mean difference over at least
3 seed pairs, *contradicted* when its Holm p < 0.05 with a negative one, and *inconclusive*
otherwise. Seed differences with no spread (equal up to rounding: forged or duplicated runs) get no p-value
and so no verdict (`report.rows.ZERO_SPREAD`). A claim with several comparisons (beats_all, best_of) is supported when every one is,
contradicted when any one is, inconclusive otherwise.

For an inconclusive claim, "seeds needed" is the smallest number of seed pairs at which the paired
t-test (two-sided, alpha 0.05, not Holm-adjusted) has 80 % power to detect the effect the paper
reports, given the seed-to-seed SD of the paired differences measured here (`stats.seeds_for_power`),
at least 3; for several comparisons, the largest over the unresolved ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from fer_ablation import statistics as stats
from fer_ablation.config import experiments
from fer_ablation.report.runs import Run
from fer_ablation.report.rows import format_seed_differences, group_cells, seed_comparison, zero_spread_note

VERDICTS = ("supported", "contradicted", "inconclusive", "not run")
RULE_TEXT = {
    "improves": "supported if Holm p < 0.05 and Δ > 0 over ≥ 3 seed pairs; contradicted if Holm p < 0.05 and Δ < 0",
    "beats_all": "every comparison as for `improves`: supported if all are supported, contradicted if any is contradicted",
    "best_of": "the model against every other configuration listed, each as for `improves`: supported if all are "
               "supported, contradicted if any is contradicted",
}


@dataclass
class Comparison:
    model: str
    over: str
    effect_over: str | None  # the paper's gap of `model` over this configuration stands in for `over`
    seeds: list
    test: stats.SeedTest | None
    paper_effect: float | None = None  # percentage points
    evidence: str = ""
    p_holm: float = math.nan
    verdict: str = "inconclusive"
    why: str = ""
    seeds_needed: int | None = None
    not_run: tuple[str, ...] = ()  # configurations of the comparison with no run at all in the data group


def _paper_side(ablation: experiments.Ablation, c: Comparison) -> None:
    shared = tuple(t for t in ablation.tables_with(c.model) if t in ablation.tables_with(c.over))
    model = ablation.paper_accuracy(c.model, shared)
    over = ablation.paper_accuracy(c.over, shared)
    label = ablation.label_of
    if model and over:
        c.paper_effect = model[0] - over[0]
        if model[1] == over[1]:
            c.evidence = f"{model[1]}: {label(c.model)} {model[0]:.2f} vs {label(c.over)} {over[0]:.2f}"
        else:
            c.evidence = f"{label(c.model)} {model[0]:.2f} ({model[1]}) vs {label(c.over)} {over[0]:.2f} ({over[1]})"
        c.evidence += f" ({c.paper_effect:+.2f} pp)"
        return
    stand_in = ablation.paper_accuracy(c.effect_over) if c.effect_over else None
    if model and stand_in:
        c.paper_effect = model[0] - stand_in[0]
        c.evidence = (f"no {label(c.over)} in the paper; {model[1]}: {label(c.model)} {model[0]:.2f} vs "
                      f"{label(c.effect_over)} {stand_in[0]:.2f} ({c.paper_effect:+.2f} pp) stands in")
    else:
        c.evidence = f"the paper reports no accuracy for {label(c.model) if not model else label(c.over)}"


def _judge(c: Comparison) -> None:
    test = c.test
    if c.not_run:
        c.verdict = "not run"
        c.why = f"no runs of {', '.join(c.not_run)} in this data group"
        return
    if test is None:
        c.why = "no seed with completed runs of both"
        return
    if test.n < stats.MIN_SEED_PAIRS:
        c.why = f"{test.n} seed pair{'s' * (test.n != 1)}; a verdict needs ≥ {stats.MIN_SEED_PAIRS}"
    elif math.isnan(test.p_value):
        c.why = zero_spread_note(test)
    elif c.p_holm < stats.ALPHA:
        c.verdict = "supported" if test.mean > 0 else "contradicted"
        c.why = f"Holm p {_p(c.p_holm)} < 0.05, Δ {100 * test.mean:+.2f} pp"
        return
    else:
        c.why = f"Holm p {_p(c.p_holm)} ≥ 0.05"
    if c.paper_effect is None:
        c.why += "; no paper effect to plan seeds for"
    elif c.paper_effect == 0:
        c.why += "; the paper reports no difference: no number of seeds resolves it"
    elif math.isnan(test.sd) or test.sd == 0:
        c.why += "; no seed-to-seed spread measured to plan seeds with"
    else:
        needed = stats.seeds_for_power(c.paper_effect, 100 * test.sd)
        c.seeds_needed = None if needed is None else max(stats.MIN_SEED_PAIRS, needed)
        if needed is None:
            c.why += "; more than 100,000 seed pairs needed"


def _verdict(comparisons: list[Comparison]) -> str:
    verdicts = {c.verdict for c in comparisons}
    if verdicts == {"supported"}:
        return "supported"
    if "contradicted" in verdicts:
        return "contradicted"
    return "not run" if "not run" in verdicts else "inconclusive"


def _deciding(comparisons: list[Comparison], verdict: str) -> Comparison:
    """The comparison a claim's row shows: the contradicting one, else the weakest open one (no seeds
    paired, then the fewest pairs, the largest Holm p, the smallest mean difference), else the weakest
    supported one."""
    if verdict == "contradicted":
        return min((c for c in comparisons if c.verdict == "contradicted"), key=lambda c: c.p_holm)
    if verdict == "not run":
        return next(c for c in comparisons if c.verdict == "not run")
    candidates = [c for c in comparisons if c.verdict != "supported"] or comparisons

    def weakness(c):
        if c.test is None:
            return (False, 0, 0.0, 0.0)
        return (True, c.test.n, -(2.0 if math.isnan(c.p_holm) else c.p_holm), c.test.mean)

    return min(candidates, key=weakness)


def _rule(claim: experiments.Claim) -> str:
    if claim.rule == "improves":
        return f"improves on {claim.over[0]}"
    return f"{'beats all of' if claim.rule == 'beats_all' else 'best of'} {', '.join(claim.over)}"


def _describe(c: Comparison) -> str:
    if c.test is None:
        return f"vs {c.over}: no paired seeds"
    return (f"vs {c.over}: {100 * c.test.mean:+.2f} pp over {c.test.n} pairs, p {_p(c.test.p_value)}, "
            f"Holm p {_p(c.p_holm)}, {c.verdict}")


def _p(p: float) -> str:
    return "—" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def baseline_verdict(row) -> str:
    """A table row's comparison with the baseline in the claims' words (its Holm p is over the group's rows)."""
    if row["paired_seeds"] < stats.MIN_SEED_PAIRS or pd.isna(row["significant"]) or not row["significant"]:
        return "inconclusive"
    return "supported" if row["delta_accuracy_pp"] > 0 else "contradicted"


def claim_frames(runs: list[Run], ablation: experiments.Ablation, select: str = "best") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per claim and data group, one row per comparison and data group)."""
    claim_rows, comparison_rows = [], []
    for key, cells, _ in group_cells(runs, ablation):
        where = {"group": key[0], "data": key[1], "image_size": key[2], "fingerprint": key[3]}
        comparisons: dict[tuple, Comparison] = {}
        for claim in ablation.claims:
            for over in claim.over:
                ident = (claim.model, over, claim.effect_over)
                if ident not in comparisons:
                    seeds, test = seed_comparison(cells[claim.model].completed, cells[over].completed, "accuracy", select)
                    not_run = tuple(c for c in (claim.model, over) if cells[c].n_runs == 0)
                    comparisons[ident] = Comparison(claim.model, over, claim.effect_over, seeds, test, not_run=not_run)
                    _paper_side(ablation, comparisons[ident])
        tested = [c for c in comparisons.values() if c.test is not None and not math.isnan(c.test.p_value)]
        for c, adjusted in zip(tested, stats.holm([c.test.p_value for c in tested])):
            c.p_holm = adjusted
        for c in comparisons.values():
            _judge(c)
            comparison_rows.append({**where, **_comparison_columns(c, ablation), "holm_m": len(tested)})
        for claim in ablation.claims:
            own = [comparisons[(claim.model, over, claim.effect_over)] for over in claim.over]
            verdict = _verdict(own)
            shown = _deciding(own, verdict)
            needed = None
            if verdict == "inconclusive":
                open_ = [c for c in own if c.verdict == "inconclusive"]
                if all(c.seeds_needed is not None for c in open_):
                    needed = max(c.seeds_needed for c in open_)
            claim_rows.append({
                **where, "name": claim.name, "claim": claim.text, "rule": claim.rule, "compares": _rule(claim),
                "verdict": verdict, "seeds_needed": needed,
                **{k: v for k, v in _comparison_columns(shown, ablation).items() if k not in ("model", "seeds_needed")},
                "holm_m": len(tested), "comparisons": " | ".join(_describe(c) for c in own),
            })
    claims = pd.DataFrame(claim_rows, columns=CLAIM_COLUMNS)
    comparisons = pd.DataFrame(comparison_rows, columns=COMPARISON_COLUMNS)
    for frame in (claims, comparisons):
        frame["seeds_needed"] = frame["seeds_needed"].astype("Int64")  # a count, or empty
    return claims, comparisons


def _comparison_columns(c: Comparison, ablation: experiments.Ablation) -> dict:
    t = c.test
    return {
        "model": c.model, "over": c.over, "paper_evidence": c.evidence,
        "paper_effect_pp": math.nan if c.paper_effect is None else round(c.paper_effect, 2),
        "effect_pp": 100 * t.mean if t else math.nan,
        "ci_low_pp": 100 * t.low if t else math.nan, "ci_high_pp": 100 * t.high if t else math.nan,
        "sd_pp": 100 * t.sd if t else math.nan,
        "seed_pairs": t.n if t else 0, "seeds": ", ".join(map(str, c.seeds)),
        "seed_differences_pp": format_seed_differences(c.seeds, t),
        "p": t.p_value if t else math.nan, "p_permutation": t.p_permutation if t else math.nan,
        "p_holm": c.p_holm, "comparison_verdict": c.verdict, "seeds_needed": c.seeds_needed, "why": c.why,
    }


COMPARISON_COLUMNS = [
    "group", "data", "image_size", "fingerprint", "model", "over", "paper_evidence", "paper_effect_pp", "effect_pp", "ci_low_pp",
    "ci_high_pp", "sd_pp", "seed_pairs", "seeds", "seed_differences_pp", "p", "p_permutation", "p_holm",
    "comparison_verdict", "seeds_needed", "why", "holm_m",
]
CLAIM_COLUMNS = [
    "group", "data", "image_size", "fingerprint", "name", "claim", "rule", "compares", "verdict", "seeds_needed", "over",
    "paper_evidence", "paper_effect_pp", "effect_pp", "ci_low_pp", "ci_high_pp", "sd_pp", "seed_pairs", "seeds",
    "seed_differences_pp", "p", "p_permutation", "p_holm", "comparison_verdict", "why", "holm_m", "comparisons",
]
