"""The calibration study: its candidates compose, its chosen recipe is the default budget, and the CLI turns real
runs into CSV rows, a summary and a figure."""

import csv
import json

import pytest

from fer_ablation.cli import calibrate
from fer_ablation.config import compose


def test_every_candidate_composes_and_pins_its_knobs():
    study = calibrate.load_candidates()
    assert len(study["seeds"]) >= 2
    for name, candidate in study["candidates"].items():
        cfg = compose([*study["common"], *candidate["overrides"]])
        assert cfg.configuration == "baseline", name
        assert {o.split("=")[0].lstrip("+") for o in candidate["overrides"]} >= {
            "data.image_size", "data.batch_size", "trainer.max_epochs", "optimizer.lr"}, name


def test_the_chosen_candidate_is_the_default_budget():
    study = calibrate.load_candidates()
    chosen = study["candidates"][study["chosen"]]
    default, pinned = compose([]), compose(chosen["overrides"])
    for override in chosen["overrides"]:
        key = override.split("=")[0].lstrip("+")
        if key == "model.options.zero_init_residual":
            # measured as true; the default null is the same rule for a from-scratch model (zero bn3)
            assert _select(pinned, key) is True and _select(default, key) is None and default.model.pretrained is None
            continue
        assert _select(default, key) == _select(pinned, key), f"default {key} differs from the chosen recipe"


def _select(cfg, key):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def test_a_bad_candidate_file_is_refused(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("seeds: [0]\ncandidates:\n  broken: {overrides: data.image_size=32}\n")
    with pytest.raises(ValueError, match="broken.*list of overrides"):
        calibrate.load_candidates(path)


@pytest.mark.slow  # 19 s on a slowest-class CPU (trains two candidates and measures the raw loop)
def test_cli_measures_candidates_into_csv_summary_and_figure(tmp_path, monkeypatch):
    study = tmp_path / "study.yaml"
    study.write_text(
        "seeds: [0, 1]\ncommon: [configuration=baseline, logger=csv, debug=smoke]\nchosen: tiny\n"
        "candidates:\n  tiny: {overrides: [data.image_size=32, data.batch_size=16, trainer.max_epochs=1, optimizer.lr=1e-3]}\n")
    monkeypatch.setattr(calibrate, "reference_speed", lambda threads: 110.0)  # the raw loop is the bench's, tested there
    out = tmp_path / "out"
    assert calibrate.main(["--candidates", str(study), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "calibration.csv").open()))
    assert [(r["candidate"], r["seed"], r["status"]) for r in sorted(rows, key=lambda r: r["seed"])] == \
        [("tiny", "0", "completed"), ("tiny", "1", "completed")]
    for r in rows:
        metrics = json.loads(next((out / "runs" / "tiny").glob(f"*seed-{r['seed']}*/metrics.json")).read_text())
        assert float(r["accuracy"]) == round(100 * metrics["best"]["test"]["accuracy"], 2)   # the report split
        assert float(r["run_cpu_s"]) == metrics["cpu_s"] > 0
    meta = json.loads((out / "calibration.json").read_text())
    (summary,) = meta["summary"]
    mean = sum(float(r["accuracy"]) for r in rows) / 2
    assert summary["accuracy_mean"] == round(mean, 1) and meta["reference_raw_images_per_s"] == 110.0
    assert summary["scaled_wall_s_per_run"] == pytest.approx(summary["sweep_wall_s_per_run"] * 110 / 55, abs=0.2)
    assert (out / "calibration.png").stat().st_size > 10_000
