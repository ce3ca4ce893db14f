"""fer_ablation.report.figures: curves and confusion matrices drawn from fabricated run folders."""

import numpy as np
import pandas as pd
from matplotlib.image import imread

from fer_ablation.cli import collect as cli
from fer_ablation.report import figures
from fer_ablation.report.runs import load_runs

try:  # the run-folder fabricator lives beside this file
    from test_collect import PAPER, write_run
except ImportError:  # tests/ imported as a package
    from tests.test_collect import PAPER, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.read_bytes()[:8] == PNG_MAGIC and imread(path).ndim == 3


def test_curves_and_confusion_per_data_group(tmp_path):
    for s in (0, 1):
        write_run(tmp_path / "runs", "baseline", s)
        write_run(tmp_path / "runs", "full", s)
    write_run(tmp_path / "runs", "simam", 0, data="fer2013", image_size=64)  # no baseline/full: no curves there
    write_run(tmp_path / "runs", "sc", 0, status="failed", error="boom")  # failed: not drawn
    report = figures.make_figures(load_runs([tmp_path / "runs"], PAPER), tmp_path / "fig", PAPER)
    names = sorted(p.name for p in report.paths)
    assert names == [
        "confusion_fer2013-64px_simam.png",
        "confusion_synthetic-48px_baseline.png",
        "confusion_synthetic-48px_full.png",
        "curves_synthetic-48px.png",
    ]
    assert all(_is_png(p) for p in report.paths)
    assert any("fer2013" in note and "baseline" in note for note in report.skipped)


def test_confusion_counts_sum_over_seeds(tmp_path):
    paths = [write_run(tmp_path, "baseline", s) for s in (0, 1)]
    runs = load_runs([tmp_path], PAPER)
    counts = figures.confusion_counts(runs, 7)
    expected = np.zeros((7, 7), dtype=int)
    for path in paths:
        report = pd.read_csv(path / "predictions.csv").query("split == 'test'")  # the report split, not val
        for t, p in zip(report["target"], report["pred"]):
            expected[t, p] += 1
    assert (counts == expected).all() and counts.sum() == 80


def test_collect_cli_draws_figures(tmp_path, capsys):
    write_run(tmp_path / "runs", "full", 0)  # curves of the full model alone: the baseline is missing
    out = tmp_path / "fig"
    assert cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "tables"), "--figures", str(out), "--n-boot", "200"]) == 0
    assert "no completed baseline run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["confusion_synthetic-48px_full.png", "curves_synthetic-48px.png"]
    assert all(_is_png(p) for p in out.iterdir())
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert f"- {out / 'curves_synthetic-48px.png'}" in summary


def test_unreadable_history_is_skipped_and_reported(tmp_path):
    for s in (0, 1):
        write_run(tmp_path / "runs", "baseline", s)
    broken = write_run(tmp_path / "runs", "full", 0)
    (broken / "history.csv").write_text("epoch,val_accuracy,val_loss\n0,not-a-number,1.0\n")
    report = figures.make_figures(load_runs([tmp_path / "runs"], PAPER), tmp_path / "fig", PAPER)
    assert (tmp_path / "fig" / "curves_synthetic-48px.png") in report.paths  # the baseline's curve is drawn
    assert any(str(broken) in note and "history" in note for note in report.skipped)
