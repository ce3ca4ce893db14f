"""Runs that never lie about their state (issue #17): checkpoints every epoch, force, non-finite
outputs, evaluate's splits and preprocessing, run folder names, damaged records, signals, locks."""

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from fer_ablation import records
from fer_ablation.config.resolvers import MAX_NAME, run_name
from fer_ablation.train import training
from fer_ablation.train.lit_module import FERModule, NonFiniteOutputError
from fer_ablation.train.training import train

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["debug=smoke", "logger=csv", "trainer=cpu", "trainer.enable_progress_bar=false"]
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def cli_env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_cli(args, cwd=ROOT, module="fer_ablation.run", timeout=400):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def constant_eval_outputs(monkeypatch, value: float) -> None:
    """Eval-mode logits all equal to `value` (training untouched): a flat val accuracy, or NaN outputs."""
    forward = FERModule.forward

    def patched(self, x):
        out = forward(self, x)
        return out if self.training else torch.full_like(out, value)

    monkeypatch.setattr(FERModule, "forward", patched)


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    """5 epochs whose val accuracy never improves after epoch 1: the best epoch is 1, the last 5."""
    from fer_ablation.config import compose
    from tests.conftest import SMOKE

    run_dir = tmp_path_factory.mktemp("flat")
    with pytest.MonkeyPatch.context() as mp:
        constant_eval_outputs(mp, 0.0)
        cfg = compose([*SMOKE, "trainer.max_epochs=5", "trainer.limit_train_batches=1", "threads=1"])
        train(cfg, run_dir)
    return cfg, run_dir


def test_last_checkpoint_is_written_every_epoch_and_best_has_no_optimizer_state(flat_run):
    _, run_dir = flat_run
    assert records.read_metrics(run_dir)["best"]["epoch"] == 1
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 4  # the final epoch (0-based), though it was no improvement
    assert best["epoch"] == 0
    assert "optimizer_states" in last and "optimizer_states" not in best
    prep = best["hyper_parameters"]["preprocessing"]
    assert prep["image_size"] == 48 and prep["in_chans"] == 3 and prep["grayscale"] is True
    assert prep["normalize"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_force_moves_the_old_run_aside_and_starts_from_scratch(flat_run, tmp_path, monkeypatch):
    cfg, old = flat_run
    run_dir = tmp_path / "run"
    shutil.copytree(old, run_dir)
    before = records.read_metrics(run_dir)
    seen = {}

    def fit(cfg, run_dir, *args):
        seen["history"] = records.read_history(run_dir)
        seen["checkpoints"] = sorted(p.name for p in (run_dir / "checkpoints").glob("*")) \
            if (run_dir / "checkpoints").exists() else []
        seen["resume"] = training._resume_checkpoint(run_dir)
        return {"status": "completed"}

    monkeypatch.setattr("fer_ablation.train.training._fit", fit)
    cfg = cfg.copy()
    cfg.force = True
    train(cfg, run_dir)
    assert seen == {"history": [], "checkpoints": [], "resume": None}
    aside = list(run_dir.glob("previous-*"))
    assert len(aside) == 1
    assert records.read_metrics(aside[0]) == before  # nothing deleted
    assert (aside[0] / "checkpoints" / "last.ckpt").is_file() and (aside[0] / "history.csv").is_file()


def test_non_finite_outputs_at_evaluation_fail_the_run(compose_cfg, tmp_path, monkeypatch):
    constant_eval_outputs(monkeypatch, float("nan"))
    with pytest.raises(NonFiniteOutputError, match="non-finite"):
        train(compose_cfg("trainer.limit_train_batches=1", "threads=1"), tmp_path)
    metrics = records.read_metrics(tmp_path)
    assert metrics["status"] == "failed" and "NaN" in metrics["error"]
    assert "best" not in metrics and not (tmp_path / "predictions.csv").exists()


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.image_size=0", "data.image_size=0"),
    ("data.image_size=16", "at least 32"),
])
def test_invalid_numbers_fail_before_any_data_is_read(compose_cfg, tmp_path, monkeypatch, override, expected):
    monkeypatch.setattr("fer_ablation.train.training.build_datamodule",
                        lambda *a, **k: pytest.fail("data was read before the settings were checked"))
    with pytest.raises(ValueError, match=expected):
        train(compose_cfg(override), tmp_path)
    assert records.read_metrics(tmp_path)["status"] == "failed"


def test_run_names_are_flat_short_stable_and_pasteable():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cases = {
        "data.root=/data/fer2013,data=fer2013": "/",
        "data.root=../../elsewhere": "..",
        ",".join(f"model.options.key_number_{i}=value_{i}" for i in range(13)): "long",
        "debug=smoke,model.attention=ca+simam,stem=sc": "plain",
    }
    parser = OverridesParser.create()
    for overrides, what in cases.items():
        name = run_name(overrides)
        assert name == run_name(overrides)  # stable: a requeued job finds its folder
        assert "/" not in name and ".." not in name and "=" not in name and "," not in name, (what, name)
        assert 0 < len(name) <= MAX_NAME and not name.startswith(".")
        path = f"outputs/runs/{name}/checkpoints/best.ckpt"
        assert parser.parse_override(f"ckpt_path={path}").value() == path
    assert run_name("debug=smoke,model.attention=ca+simam,stem=sc") == "debug-smoke_model.attention-ca+simam_stem-sc"
    # a lossy or shortened name carries a hash of the full overrides, so two such runs never share a folder
    assert run_name("data.root=/x/y") != run_name("data.root=_x_y")
    long_a = ",".join(f"k{i}=v{i}" for i in range(40))
    assert run_name(long_a) != run_name(long_a + "0")


def test_configuration_then_model_override_trains_what_the_folder_says(tmp_path):
    done = run_cli(["configuration=baseline", "model.attention=ca", *QUIET, "trainer.limit_train_batches=1",
                    "trainer.limit_val_batches=1", "threads=1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert "model.attention-ca" in run_dir.name and "=" not in run_dir.name and "," not in run_dir.name
    metrics = records.read_metrics(run_dir)
    assert metrics["attention"] == "ca" and metrics["params"] != 23_522_375  # not the baseline
    assert records.read_config(run_dir).model.attention == "ca"
    # the run's checkpoint path pasted back unquoted into evaluate, and the run folder as ckpt_path
    for path in (run_dir / "checkpoints" / "best.ckpt", run_dir):
        rel = os.path.relpath(path, tmp_path)
        shown = run_cli([f"ckpt_path={rel}", "--cfg", "job"], cwd=tmp_path, module="fer_ablation.evaluate")
        assert shown.returncode == 0 and f"ckpt_path: {rel}" in shown.stdout, shown.stderr[-2000:]


@pytest.mark.slow
def test_a_job_whose_folder_cannot_be_made_fails_alone(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "job0").write_text("a file where the job's folder should go")
    done = run_cli(["-m", "seed=1,0", *QUIET, "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                    "threads=1", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job${hydra.job.num}"])
    assert done.returncode != 0
    assert "job0" in done.stderr and "seed=1" in done.stderr  # the failed job is named
    assert records.read_metrics(sweep / "job1")["status"] == "completed"  # the next job ran


def test_damaged_metrics_json_is_named_and_moved_aside(compose_cfg, tmp_path, monkeypatch, caplog):
    (tmp_path / "metrics.json").write_text('{"status": "compl')
    monkeypatch.setattr("fer_ablation.train.training._fit", lambda *a, **k: {"status": "completed"})
    with caplog.at_level(logging.WARNING, logger="fer_ablation"):
        train(compose_cfg(), tmp_path)
    assert str(tmp_path / "metrics.json") in caplog.text
    (aside,) = tmp_path.glob("previous-*")
    assert (aside / "metrics.json").read_text() == '{"status": "compl'
    with pytest.raises(records.RecordError, match="metrics.json"):
        records.read_metrics(aside)


def test_damaged_checkpoint_is_moved_aside_and_the_run_restarts(flat_run, tmp_path, caplog):
    _, old = flat_run
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("last.ckpt", "best.ckpt"):
        (run_dir / "checkpoints" / name).write_bytes((old / "checkpoints" / name).read_bytes())
    assert training._resume_checkpoint(run_dir) == run_dir / "checkpoints" / "last.ckpt"  # intact: resume
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="fer_ablation"):
        assert training._resume_checkpoint(run_dir) is None
    assert str(last) in caplog.text and "restarting from epoch 1" in caplog.text
    (aside,) = run_dir.glob("previous-*")
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert not last.exists()


def test_sigterm_records_interrupted_and_exits_non_zero(tmp_path):
    run_dir = tmp_path / "run"
    args = [*QUIET, "trainer.max_epochs=4", "trainer.limit_train_batches=1", "threads=1", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "fer_ablation.run", *args], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not records.read_history(run_dir) and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode not in (0, None), err[-2000:]
    metrics = records.read_metrics(run_dir)
    assert metrics["status"] == "interrupted" and "SIGTERM" in metrics["error"]


def test_ctrl_c_and_submitit_requeue_exits_stay_non_zero():
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemExit(1)  # what Lightning does with Ctrl-C inside fit
    except SystemExit as exc:
        assert training._interruption(exc) == ("interrupted by SIGINT (Ctrl-C)", 130)
    assert training._interruption(SIGTERMException()) == ("interrupted by SIGTERM", 143)
    assert training._interruption(SystemExit(-1))[1] == -1  # submitit exits -1 after requeueing the job


def test_a_run_folder_in_use_is_refused_until_its_owner_dies(compose_cfg, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fer_ablation import records\n"
        f"with records.run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(600)")],
        env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(records.RunFolderInUse, match=f"pid {holder.pid}"):
            train(compose_cfg(), tmp_path)
        assert not (tmp_path / "metrics.json").exists()  # the refused run wrote nothing
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    with records.run_lock(tmp_path) as lock:  # a dead owner's lock is taken over
        assert f"pid {os.getpid()}" in lock.read_text()


def test_records_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = records.write_metrics(tmp_path, {"status": "running"})
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert records.write_metrics(tmp_path, {"status": "running"}).stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_keep_last_checkpoint_false_drops_it_once_completed(compose_cfg, tmp_path):
    cfg = compose_cfg("keep_last_checkpoint=false", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                      "threads=1")
    assert train(cfg, tmp_path)["status"] == "completed"
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def evaluate_cfg(compose_cfg, ckpt, *overrides, probe=True):
    data = ["data.n_images=140", "data.n_val=70"] if probe else []
    return compose_cfg(f"ckpt_path={ckpt}", "trainer=cpu", "trainer.enable_progress_bar=false", *data, *overrides,
                       config_name="evaluate", smoke=False)


def test_evaluate_scores_exactly_the_splits_asked_for(flat_run, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, run_dir = flat_run
    result = evaluate(evaluate_cfg(compose_cfg, run_dir, "splits=[train]"), tmp_path)
    assert set(result["best"]) == {"epoch", "train"} and result["best"]["train"]["n"] == 70
    assert set(pd.read_csv(tmp_path / "predictions.csv")["split"]) == {"train"}
    with pytest.raises(ValueError, match="no split"):
        evaluate(evaluate_cfg(compose_cfg, run_dir, "splits=[private]"), tmp_path / "none")


def test_evaluate_scores_an_unsplit_folder_whole(flat_run, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, run_dir = flat_run
    root = tmp_path / "faces"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (40, 40), color=30 * k + i).save(root / name / f"{i}.png")
    result = evaluate(evaluate_cfg(compose_cfg, run_dir, "data=imagefolder", f"data.root={root}",
                                   probe=False), tmp_path / "out")
    assert set(result["best"]) == {"epoch", "all"} and result["best"]["all"]["n"] == 21
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 21


def test_evaluate_uses_the_checkpoints_preprocessing(flat_run, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, run_dir = flat_run
    # imagefolder's default is RGB and the command says 64 px: the checkpoint (48 px, grayscale) wins ...
    result = evaluate(evaluate_cfg(compose_cfg, run_dir, "data.image_size=64", "data.grayscale=false"), tmp_path / "a")
    assert result["image_size"] == 48 and result["preprocessing"]["grayscale"] is True
    # ... and an explicit override that contradicts it is an error
    with pytest.raises(ValueError, match="data.image_size=64 .*trained with 48"):
        evaluate(evaluate_cfg(compose_cfg, run_dir, "data.image_size=64"), tmp_path / "b",
                 explicit=["ckpt_path", "data.image_size"])


def test_collector_reads_training_runs_only(flat_run, compose_cfg, tmp_path, capsys):
    from fer_ablation.inference.evaluate import evaluate
    from fer_ablation.report.runs import load_runs

    _, run_dir = flat_run
    evaluate(evaluate_cfg(compose_cfg, run_dir), tmp_path / "eval")
    runs = load_runs([run_dir, tmp_path / "eval"])
    assert [r.path for r in runs] == [run_dir]
    assert "skipped 1 evaluation record" in capsys.readouterr().err
    # records moved aside by force=true are not runs either
    outputs = tmp_path / "outputs"
    (outputs / "run" / "previous-20260101T000000Z").mkdir(parents=True)
    for folder in (outputs / "run", outputs / "run" / "previous-20260101T000000Z"):
        for name in ("metrics.json", "predictions.csv"):
            (folder / name).write_bytes((run_dir / name).read_bytes())
    assert [r.path for r in load_runs([outputs])] == [outputs / "run"]


@pytest.mark.slow
def test_rerun_after_kill_9_mid_run_repeats_at_most_one_epoch(tmp_path):
    run_dir = tmp_path / "run"
    args = [*QUIET, "trainer.max_epochs=6", "trainer.limit_train_batches=1", "threads=1", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "fer_ablation.run", *args], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and len(records.read_history(run_dir)) < 3 and proc.poll() is None:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    trained_before = len(records.read_history(run_dir))
    assert 3 <= trained_before < 6 and records.read_metrics(run_dir)["status"] == "running"

    done = run_cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    found = [int(n) for n in re.findall(r"epochs 1-(\d+) done, continuing at epoch", done.stdout + done.stderr)]
    assert len(found) == 1 and trained_before - found[0] <= 1, (found, trained_before)  # at most one epoch again
    assert records.read_metrics(run_dir)["status"] == "completed"
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
