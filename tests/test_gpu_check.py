"""`make gpu-check DEVICE=cpu SMOKE=1`'s script end to end, reduced to one sweep run."""

import json

import pytest

from fer_ablation.cli import gpu_check
from fer_ablation.report.tables import collect


def test_smoke_check_writes_every_step_and_its_runs_make_table1(tmp_path):
    out = tmp_path / "check"
    data = gpu_check.main(["--device", "cpu", "--smoke", "--out", str(out), "--sweep-configs", "baseline"])

    written = json.loads((out / "check.json").read_text())
    assert written == json.loads(json.dumps(data))
    assert (written["status"], written["mode"], written["card"]) == ("completed", "smoke", "cpu")
    assert written["steps"]["environment"]["device"] == "cpu" and written["steps"]["environment"]["torch"]

    (row,) = written["steps"]["bench"]
    assert row["status"] == "completed", row
    assert (row["config"], row["image_size"], row["channels_last"]) == ("baseline", 48, True)
    assert row["raw_images_per_s"] > 0 and row["suite_images_per_s"] > 0
    assert json.loads((out / "bench.json").read_text()) == written["steps"]["bench"]

    (run,) = written["steps"]["sweep"]["runs"]
    assert (run["configuration"], run["seed"], run["status"], run["returncode"]) == ("baseline", 0, "completed", 0)
    assert run["device"].startswith("cpu") and run["process_wall_s"] > 0
    run_dir = out / "runs" / "baseline-s0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run["accuracy"] == metrics["best"][metrics["report_split"]]["accuracy"]
    assert not (run_dir / "checkpoints").exists()
    assert "training on cpu" in (out / "runs" / "baseline-s0.log").read_text()  # large, and no table reads them

    frames = collect([out / "runs"], tmp_path / "tables", "paper", n_boot=100)
    assert (frames["runs"]["status"] == "completed").all() and len(frames["runs"]) == 1
    baseline = frames["table1"].set_index("configuration").loc["baseline"]
    assert baseline["seeds"].startswith("1/") and baseline["accuracy_pct"] == \
        pytest.approx(100 * run["accuracy"], abs=0.01)
    assert (tmp_path / "tables" / "table1.md").is_file()


def test_gpu_plan_composes_from_scratch_fer2013_runs_on_the_gpu(compose_cfg):
    from fer_ablation.cli import bench

    plan = gpu_check.gpu_plan("/data/fer2013")
    assert set(plan.sweep_configs) == {"baseline", "sc", "ca", "sc_ca"} and plan.budget_s <= 480
    for configuration in plan.sweep_configs:
        cfg = compose_cfg(f"configuration={configuration}", *plan.sweep_overrides, smoke=False)
        assert (cfg.data.name, cfg.data.root, cfg.data.image_size) == ("fer2013", "/data/fer2013", 48)
        assert cfg.model.pretrained is None and cfg.trainer.accelerator == "gpu"
    setting = bench.Setting("full", "cuda", 224, plan.batch_size, plan.precision, True, True)
    cfg = compose_cfg(*bench.suite_overrides(setting, steps=plan.steps, eval_batches=1,
                                             extra=plan.bench_overrides), smoke=False)
    assert (cfg.data.name, cfg.data.image_size, cfg.trainer.precision, cfg.speed.compile) == \
        ("fer2013", 224, "bf16-mixed", True)
