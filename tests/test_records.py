import json
import os

import pytest

from fer_ablation import records


def test_metrics_roundtrip_and_nonfinite_become_null(tmp_path):
    records.write_metrics(tmp_path, {"status": "completed", "best": {"val": {"loss": float("nan"), "accuracy": 0.5}}})
    back = records.read_metrics(tmp_path)
    assert back["status"] == "completed"
    assert back["best"]["val"] == {"loss": None, "accuracy": 0.5}
    assert records.read_metrics(tmp_path / "absent") is None


def test_interrupted_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    records.write_metrics(tmp_path, {"status": "running"})

    def explode(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(KeyboardInterrupt):
        records.write_metrics(tmp_path, {"status": "completed", "big": list(range(10000))})
    monkeypatch.undo()
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_predictions_roundtrip(tmp_path):
    classes = ["a", "b"]
    rows = [{"split": "val", "index": 3, "path": "x.png", "target": 1, "pred": 0, "probs": [0.75, 0.25]}]
    records.write_predictions(tmp_path, classes, rows)
    back = records.read_predictions(tmp_path)
    assert back == [{"split": "val", "index": 3, "path": "x.png", "target": 1, "pred": 0,
                     "prob_a": "0.75", "prob_b": "0.25"}]


def test_history_keeps_columns_and_blanks(tmp_path):
    records.write_history(tmp_path, [{"epoch": 1, "train_loss": 1.5, "val_accuracy": None}])
    (row,) = records.read_history(tmp_path)
    assert row["epoch"] == 1.0 and row["train_loss"] == 1.5 and row["val_accuracy"] is None
    assert list(row) == list(records.HISTORY_COLUMNS)
