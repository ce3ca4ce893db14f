"""Scale-out and fault tolerance: kill -9 and resume, launchers, DDP, failures that stay contained."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fer_ablation import records
from fer_ablation.report.tables import collect
from fer_ablation.train.training import train

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["debug=smoke", "logger=csv", "trainer.enable_progress_bar=false"]


def run_command(args, timeout=400, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "fer_ablation.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = [*QUIET, "trainer.max_epochs=3", "trainer.limit_train_batches=1", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fer_ablation.run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(records.read_history(run_dir)) < 1:
        time.sleep(0.2)
    while time.time() < deadline and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert records.read_metrics(run_dir)["status"] == "running"
    killed_after = len(records.read_history(run_dir))
    assert 1 <= killed_after < 3

    done = run_command(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr + done.stdout
    metrics = records.read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 3
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1, 2, 3]


def test_failing_job_does_not_stop_the_sweep_and_the_tables_mark_it(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_command(["-m", "hydra/launcher=local", "model.attention=none,bogus", *QUIET,
                        "trainer.limit_train_batches=1", f"hydra.sweep.dir={sweep}"])
    assert done.returncode != 0  # Hydra reports the failed job ...
    suffix = "_trainer.limit_train_batches-1"
    ok = records.read_metrics(sweep / f"debug-smoke_model.attention-none{suffix}")
    failed = records.read_metrics(sweep / f"debug-smoke_model.attention-bogus{suffix}")
    assert ok["status"] == "completed"  # ... but the other job finished
    assert failed["status"] == "failed" and "bogus" in failed["error"] and "valid" in failed["error"].lower()
    tables = collect([sweep], tmp_path / "tables")
    runs = tables["runs"]
    assert sorted(runs["status"].tolist()) == ["completed", "failed"]
    assert "failed" in (tmp_path / "tables" / "summary.md").read_text()


def test_parallel_launcher_runs_two_jobs_at_once(tmp_path):
    done = run_command(["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "threads=1", "seed=0,1",
                        *QUIET, "trainer.limit_train_batches=1", f"hydra.sweep.dir={tmp_path}"])
    assert done.returncode == 0, done.stderr[-3000:]
    seeds = sorted(records.read_metrics(p)["seed"] for p in tmp_path.iterdir() if (p / "metrics.json").is_file())
    assert seeds == [0, 1]


@pytest.mark.slow  # 23 s on a slowest-class CPU (two DDP processes)
def test_ddp_on_two_cpu_processes_scores_each_sample_once(tmp_path):
    run_dir = tmp_path / "ddp"
    done = run_command([*QUIET, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "threads=1",
                        "data.n_val=71", "data.n_images=141", f"hydra.run.dir={run_dir}"])
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = records.read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["best"]["val"]["n"] == 71
    predictions = pd.read_csv(run_dir / "predictions.csv")
    val = predictions[predictions["split"] == "val"]
    assert sorted(val["index"]) == list(range(71))  # odd size: no padding duplicate, none missing
    assert (val.pred == val.target).mean() == pytest.approx(metrics["best"]["val"]["accuracy"])


def test_bad_model_name_fails_before_any_data_is_read(compose_cfg, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the model configuration was checked")

    monkeypatch.setattr("fer_ablation.train.training.build_datamodule", no_data)
    cases = [
        (["model.attention=nope"], "simam"),
        (["model.attention=simam", "+model.placement.simam=everywhere"], "first_last"),
        (["model.attention=eca", "+model.placement.simam=blocks"], "simam"),
        (["model.attention=ca", "+model.options.ca.reduce=8"], "valid: kernel, reduction, gate"),
    ]
    for overrides, valid_choice_listed in cases:
        with pytest.raises(ValueError, match=valid_choice_listed):
            train(compose_cfg(*overrides), tmp_path / overrides[-1])
