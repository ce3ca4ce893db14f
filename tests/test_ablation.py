"""Issues #5 and #15 end to end: the paper's smoke-sized multirun over three seeds, then `make tables`."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fer_ablation import records
from fer_ablation.cli import collect
from fer_ablation.config import experiments
from fer_ablation.report.claims import VERDICTS

ROOT = Path(__file__).resolve().parent.parent
PAPER = experiments.load("paper")


@pytest.mark.slow  # 39 smoke-sized training runs: about 4 min on 2 idle CPU cores
def test_paper_smoke_sweep_then_tables_gives_every_row_and_claim_with_three_seeds(tmp_path):
    sweep, tables, figures = tmp_path / "outputs", tmp_path / "tables", tmp_path / "figures"
    # demo_full: every configuration of the tables file (the paper's sweep leaves plain_init out)
    cmd = [sys.executable, "-m", "fer_ablation.run", "-m", "experiment=demo_full", "debug=smoke", "seed=0,1,2",
           "logger=csv", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                          text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]

    run_dirs = [p for p in sweep.iterdir() if (p / "metrics.json").is_file()]
    assert len(run_dirs) == len(PAPER.sweeps["demo_full"]) * 3 == 39  # 13 configurations run, not 22 rows
    assert {records.read_metrics(p)["status"] for p in run_dirs} == {"completed"}

    assert collect.main([str(sweep), "--out", str(tables), "--figures", str(figures), "--n-boot", "2000"]) == 0
    every = pd.concat([pd.read_csv(tables / f"{t.name}.csv") for t in PAPER.tables])
    tested = every.loc[every["p_seeds"].notna(), "configuration"].nunique()  # Holm's family: all but the baseline unless a p is undefined
    assert 0 < tested <= len(PAPER.configurations) - 1
    for table in PAPER.tables:
        df = pd.read_csv(tables / f"{table.name}.csv")
        assert df["label"].tolist() == [row.label for row in table.rows]
        assert (df["seeds"] == "3/3").all()
        for row, (_, got) in zip(table.rows, df.iterrows()):
            for key, value in row.reported.items():
                assert got[f"paper_{key}_pct"] == value
            assert 0 <= got["accuracy_pct"] <= 100 and got["accuracy_ci_method"] == "t"
            if row.configuration != PAPER.baseline:
                assert got["paired_seeds"] == 3 and got["paired_samples"] == 70
                assert got["delta_accuracy_seeds_pp"].count("seed") == 3
                assert 0 <= got["p_bootstrap"] <= 1 and got["mcnemar"].count("seed") == 3
                assert math.isfinite(got["delta_accuracy_pp"]) and got["holm_m"] == tested
                if math.isnan(got["p_seeds"]):  # every seed pair the same difference of 0: no test
                    assert pd.isna(got["significant"])
                else:
                    assert got["p_holm"] >= got["p_seeds"] and got["significant"] == (got["p_holm"] < 0.05)
        for suffix in ("md", "tex"):
            assert table.rows[0].label in (tables / f"{table.name}.{suffix}").read_text()
    assert "McNemar" in (tables / "summary.md").read_text()
    claims = pd.read_csv(tables / "claims.csv")
    assert claims["name"].tolist() == [c.name for c in PAPER.claims]  # one verdict per claim
    assert set(claims["verdict"]) <= set(VERDICTS) and (claims["seed_pairs"] <= 3).all()
    assert claims.loc[claims["verdict"] != "inconclusive", "seeds_needed"].isna().all()
    assert "Every comparison" in (tables / "claims.md").read_text()
    drawn = sorted(p.name for p in figures.glob("*.png"))
    assert "curves_smoke-synthetic-48px.png" in drawn
    assert sum(name.startswith("confusion_") for name in drawn) == len(PAPER.configurations)
