"""The training run end to end on the smoke-sized probe set: records, re-scoring, seeds, W&B."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from fer_ablation import records
from fer_ablation.config import compose
from fer_ablation.train import fast_path
from fer_ablation.train.lit_module import score
from fer_ablation.train.training import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    from tests.conftest import SMOKE

    cfg = compose([*SMOKE, "trainer.max_epochs=2"])
    run_dir = tmp_path_factory.mktemp("baseline")
    metrics = train(cfg, run_dir)
    return cfg, run_dir, metrics


def test_run_leaves_a_complete_record(baseline_run):
    cfg, run_dir, metrics = baseline_run
    on_disk = records.read_metrics(run_dir)
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert (on_disk["attention"], on_disk["stem"], on_disk["seed"], on_disk["data"]) == ("none", "stride2", 0, "synthetic")
    assert on_disk["accelerator"] == "cpu" and on_disk["device"].startswith("cpu")
    assert on_disk["params"] == 23_522_375 and on_disk["macs"] > 0 and on_disk["train_images_per_s"] > 0
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss"):
        assert on_disk["best"]["val"][key] is not None
    assert set(on_disk["best"]["val"]["per_class_f1"]) == set(on_disk["classes"])
    assert all(0 <= on_disk["best"]["val"][k] <= 1 for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro"))
    assert 1 <= on_disk["best"]["epoch"] <= 2 and on_disk["last"]["epoch"] == 2
    if on_disk["best"]["epoch"] == 2:   # the best checkpoint is the last epoch's weights: the same scores
        assert {k: v for k, v in on_disk["best"].items() if k != "epoch"} == \
            {k: v for k, v in on_disk["last"].items() if k != "epoch"}
    assert on_disk["cpu_s"] > 0 and on_disk["threads"] >= 1   # what the calibration study reads
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    # the first epoch with the highest val accuracy (ModelCheckpoint keeps only strict improvements)
    assert on_disk["best"]["epoch"] == int(history["epoch"][history["val_accuracy"].idxmax()])
    assert history[["train_loss", "val_accuracy", "lr", "epoch_s", "step_s"]].notna().all().all()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()
    # split roles: selected on val (the probe's 70), reported on test (70 more images); both epochs' predictions
    assert on_disk["splits"] == {
        "train": {"role": "train", "source": "train/ folder", "n": 70},
        "val": {"role": "select", "source": "val/ folder", "n": 70},
        "test": {"role": "report", "source": "test/ folder", "n": 70}}
    assert on_disk["report_split"] == "test" and on_disk["best"]["test"]["n"] == 70
    assert on_disk["duplicates"]["test"]["of_train"] == 0 and on_disk["duplicates"]["policy"] == "drop"
    assert set(on_disk["fingerprint"]["fields"]) >= {"data", "max_epochs", "optimizer", "precision", "pretrained"}
    # the precision is the machine's choice (bf16 where the CPU has it natively): recorded, and the same everywhere
    assert on_disk["fingerprint"]["fields"]["precision"] == on_disk["precision"] == fast_path.choose(None, None, "cpu").precision
    last = records.read_predictions_frame(run_dir, "last")
    assert sorted(last["split"].unique()) == ["test", "val"] and len(last) == 140


def test_rescoring_predictions_reproduces_metrics_exactly(baseline_run):
    _, run_dir, metrics = baseline_run
    predictions = pd.read_csv(run_dir / "predictions.csv")
    classes = metrics["classes"]
    assert list(predictions.columns) == ["split", "index", "path", "target", "pred", *[f"prob_{c}" for c in classes]]
    val = predictions[predictions.split == "val"]
    assert val["index"].is_unique and len(val) == metrics["best"]["val"]["n"] == 70
    preds, target = torch.tensor(val.pred.values), torch.tensor(val.target.values)
    assert multiclass_accuracy(preds, target, num_classes=7, average="micro").item() == metrics["best"]["val"]["accuracy"]
    assert (val.pred.values == val.target.values).mean() == pytest.approx(metrics["best"]["val"]["accuracy"], abs=1e-7)
    assert multiclass_f1_score(preds, target, num_classes=7, average="macro").item() == metrics["best"]["val"]["f1_macro"]
    probs = val[[f"prob_{c}" for c in classes]].to_numpy()
    assert (probs.argmax(1) == val.pred.values).all()
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-4)


def test_accuracy_is_micro_not_macro():
    # 8 samples of class 0 all right, 2 of class 1 all wrong: micro 0.8, macro (1 + 0) / 2 = 0.5
    targets = torch.tensor([0] * 8 + [1] * 2)
    probs = torch.zeros(10, 2)
    probs[:, 0] = 1.0
    metrics = score(probs, targets, ["a", "b"], loss=0.0)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["recall_macro"] == pytest.approx(0.5)
    assert metrics["per_class_f1"]["b"] == 0.0
    assert metrics["confusion_matrix"] == [[8, 0], [2, 0]]


def test_same_seed_same_metrics(compose_cfg, tmp_path):
    cfg = compose_cfg("trainer.limit_train_batches=1", "seed=3")
    first, again = train(cfg, tmp_path / "first"), train(cfg, tmp_path / "again")
    assert again["best"] == first["best"] and again["last"] == first["last"]
    assert (tmp_path / "first" / "predictions.csv").read_text() == (tmp_path / "again" / "predictions.csv").read_text()


def test_completed_run_is_skipped_unless_forced(baseline_run, monkeypatch, tmp_path):
    cfg, run_dir, metrics = baseline_run
    monkeypatch.setattr("fer_ablation.train.training._fit", lambda *a, **k: pytest.fail("retrained a completed run"))
    assert train(cfg, run_dir) == records.read_metrics(run_dir)
    cfg = cfg.copy()
    cfg.force = True
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))  # a copy: force moves the records aside
    with pytest.raises(pytest.fail.Exception):
        train(cfg, tmp_path)


def test_failed_run_records_status_and_reason(compose_cfg, tmp_path):
    cfg = compose_cfg("model.attention=ca+nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        train(cfg, tmp_path)
    failed = records.read_metrics(tmp_path)
    assert failed["status"] == "failed" and "nonsense" in failed["error"]
    assert not (tmp_path / "predictions.csv").exists()


def test_nonfinite_loss_stops_the_run(compose_cfg, tmp_path):
    cfg = compose_cfg("optimizer.lr=1e30")
    with pytest.raises(FloatingPointError, match="training loss is"):
        train(cfg, tmp_path)
    assert records.read_metrics(tmp_path)["status"] == "failed"


def test_evaluate_scores_a_checkpoint_with_the_same_contract(baseline_run, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, run_dir, metrics = baseline_run
    cfg = compose_cfg(f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "trainer=cpu",
                      "trainer.enable_progress_bar=false", "data.n_images=140", "data.n_val=70", "data.n_test=70",
                      config_name="evaluate", smoke=False)
    result = evaluate(cfg, tmp_path)
    assert result["best"]["val"]["accuracy"] == metrics["best"]["val"]["accuracy"]
    assert result["best"]["epoch"] == metrics["best"]["epoch"]  # best.ckpt's own epoch
    assert result["best"]["test"]["accuracy"] == metrics["best"]["test"]["accuracy"]
    # scored in the precision the run recorded (bf16 on a CPU with native bf16), which is what reproduces it
    assert result["precision"] == metrics["precision"] and "metrics.json records" in result["precision_choice"]
    assert result["absent_classes"] == {"val": [], "test": []}
    assert len(records.read_predictions(tmp_path)) == 140


def test_wandb_offline_run_folder_without_secrets(compose_cfg, tmp_path, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg("logger=wandb", "trainer.limit_train_batches=1")
    train(cfg, tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    import wandb

    assert wandb.run is None  # the job ended its W&B run
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
              and secret.encode() in p.read_bytes()]
    assert leaked == []  # no key in configs, logs, records or the W&B run


def test_used_by_command_runs_a_two_job_sweep(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "fer_ablation.run", "-m", "model.attention=ca,simam", "stem=sc",
           "debug=smoke", "logger=csv", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={tmp_path}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if (p / "metrics.json").is_file())
    assert runs == ["debug-smoke_model.attention-ca_stem-sc", "debug-smoke_model.attention-simam_stem-sc"]
    for name, attention in zip(runs, ["ca", "simam"]):
        m = records.read_metrics(tmp_path / name)
        assert (m["status"], m["attention"], m["stem"]) == ("completed", attention, "sc")
        assert (tmp_path / name / ".hydra" / "overrides.yaml").is_file()
        assert len(pd.read_csv(tmp_path / name / "predictions.csv")) == m["best"]["val"]["n"] + m["best"]["test"]["n"]
