"""The claims report: verdict rules, Holm over the report's comparisons and the seeds-needed power
calculation, on fabricated runs with exact per-seed accuracies (tests/test_collect.py's helpers)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fer_ablation import config
from fer_ablation.config import experiments
from fer_ablation.report import claims as claims_module
from fer_ablation.report import render
from fer_ablation.report.runs import load_runs
from tests.test_collect import BASE, SHIFT, write_verdict_sweep

CLAIMS = """
claims:
  - {name: up, claim: "CA improves ResNet50", improves: {model: ca, over: baseline}}
  - {name: down, claim: "SC improves ResNet50", improves: {model: sc, over: baseline}}
  - {name: both, claim: "SimAM+CA beats SimAM and CA", beats_all: {model: simam_ca, over: [simam, ca]}}
  - {name: best, claim: "the full model is the best", best_of: {model: full, among: [ca, full, simam]}}
  - {name: gate, claim: "ECA beats the gate", improves: {model: eca, over: gate}, effect_over: baseline}
"""


@pytest.fixture
def ablation(tmp_path):
    text = (config.EXPERIMENTS_DIR / "paper.yaml").read_text().split("\nclaims:")[0]
    (tmp_path / "claims_test.yaml").write_text(text + CLAIMS)
    return experiments.load("claims_test", tmp_path)


def accuracy(configuration, seeds=(0, 1, 2)):
    return [BASE[s] + (SHIFT[configuration][s] if configuration != "baseline" else 0) for s in seeds]


def seeds_by_brute_force(effect, sd):
    """The first n with paired t-test power >= 0.8, straight from scipy.stats.nct."""
    for n in range(2, 100_000):
        crit = scipy_stats.t.ppf(0.975, n - 1)
        nc = effect / sd * math.sqrt(n)
        if scipy_stats.nct.sf(crit, n - 1, nc) + scipy_stats.nct.cdf(-crit, n - 1, nc) >= 0.8:
            return n


def test_verdicts_follow_the_stated_rules(tmp_path, ablation):
    write_verdict_sweep(tmp_path / "runs")
    claims, comparisons = claims_module.claim_frames(load_runs([tmp_path / "runs"], ablation), ablation)
    verdict = claims.set_index("name")["verdict"].to_dict()
    assert verdict == {"up": "supported", "down": "contradicted", "both": "contradicted", "best": "inconclusive",
                       "gate": "not run"}
    # the gate arm was not run: "not run" (a sweep without that arm), not a verdict on the data
    assert claims.set_index("name").loc["gate", "why"] == "no runs of gate in this data group"
    every = comparisons.set_index(["model", "over"])
    # simam_ca beats ca but loses to simam: beats_all is contradicted by its one contradicting comparison
    assert every.loc[("simam_ca", "ca"), "comparison_verdict"] == "supported"
    assert every.loc[("simam_ca", "simam"), "comparison_verdict"] == "contradicted"
    assert claims.set_index("name").loc["both", "over"] == "simam"

    # p is the paired t-test over seeds; Holm runs over the 6 comparisons with seeds (eca vs gate has none)
    p = {k: scipy_stats.ttest_rel(accuracy(k[0]), accuracy(k[1])).pvalue for k in every.index if k[1] != "gate"}
    assert len(p) == 6 and (every["holm_m"] == 6).all()
    ordered = sorted(p, key=p.get)
    running = 0.0
    for i, key in enumerate(ordered):
        running = max(running, min(1.0, (6 - i) * p[key]))
        assert every.loc[key, "p"] == pytest.approx(p[key]) and every.loc[key, "p_holm"] == pytest.approx(running)
    up = claims.set_index("name").loc["up"]
    d = np.array(accuracy("ca")) - np.array(BASE)
    low, high = scipy_stats.t.interval(0.95, 2, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(3))
    assert (up["effect_pp"], up["ci_low_pp"], up["ci_high_pp"]) == pytest.approx((100 * d.mean(), 100 * low, 100 * high))
    assert up["seed_pairs"] == 3 and up["seeds"] == "0, 1, 2" and up["paper_effect_pp"] == pytest.approx(1.32)
    assert up["paper_evidence"] == "Table 1: ResNet50+CA 75.13 vs ResNet50 73.81 (+1.32 pp)"
    assert pd.isna(up["seeds_needed"])  # resolved: nothing to plan

    # inconclusive best_of: seeds needed = the largest of its open comparisons, each from the paper's effect
    # (full 76.91 vs CA 75.13, vs SimAM 76.19) and the measured SD of the paired differences
    best = claims.set_index("name").loc["best"]
    needed = []
    for over, paper in (("ca", 76.91 - 75.13), ("simam", 76.91 - 76.19)):
        row = every.loc[("full", over)]
        if row["comparison_verdict"] == "inconclusive":
            sd = 100 * np.std(np.array(accuracy("full")) - np.array(accuracy(over)), ddof=1)
            assert row["seeds_needed"] == max(3, seeds_by_brute_force(paper, sd))
            needed.append(row["seeds_needed"])
    assert needed and best["seeds_needed"] == max(needed)
    gate = claims.set_index("name").loc["gate"]
    assert gate["why"] == "no runs of gate in this data group" and pd.isna(gate["seeds_needed"])
    assert "no ResNet50 constant gate x0.5 in the paper" in gate["paper_evidence"] and "+0.26 pp" in gate["paper_evidence"]


def test_claims_files_one_verdict_per_claim(tmp_path, ablation):
    write_verdict_sweep(tmp_path / "runs")
    runs = load_runs([tmp_path / "runs"], ablation)
    claims, comparisons = claims_module.claim_frames(runs, ablation)
    frames = {"claims": claims, "comparisons": comparisons}
    md = render.claims_markdown(claims, comparisons, ablation, [r.group_key for r in runs[:1]], "best")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    verdict_rows = [line for line in rows if any(f"| {v} " in line for v in claims_module.VERDICTS)]
    assert len(verdict_rows) == 5 + len(comparisons)  # one per claim, one per comparison
    assert "power(n) = P[|T| > t_{n-1, 0.975}]" in md and "noncentral t" in md
    assert all(text in md for text in claims_module.RULE_TEXT.values())
    assert set(frames["claims"]["verdict"]) <= set(claims_module.VERDICTS)


def test_fewer_than_three_seed_pairs_are_inconclusive_with_seeds_planned(tmp_path, ablation):
    write_verdict_sweep(tmp_path / "runs", seeds=(0, 1))
    claims, _ = claims_module.claim_frames(load_runs([tmp_path / "runs"], ablation), ablation)
    ran = claims["name"] != "gate"   # the one claim whose arm no run has
    assert claims.loc[ran, "verdict"].eq("inconclusive").all() and claims.loc[~ran, "verdict"].eq("not run").all()
    up = claims.set_index("name").loc["up"]
    assert up["why"].startswith("2 seed pairs; a verdict needs ≥ 3") and up["p"] < 0.05
    sd = 100 * np.std(np.array(accuracy("ca", (0, 1))) - np.array(BASE[:2]), ddof=1)
    assert up["seeds_needed"] == max(3, seeds_by_brute_force(1.32, sd))
