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


def test_predictions_frame_types_and_malformed_files(tmp_path):
    records.write_predictions(tmp_path, ["a", "b"], [
        {"split": "val", "index": i, "path": f"{i}.png", "target": i % 2, "pred": 0, "probs": [0.6, 0.4]}
        for i in range(3)
    ])
    frame = records.read_predictions_frame(tmp_path)
    assert frame["index"].tolist() == [0, 1, 2] and frame["target"].tolist() == [0, 1, 0]
    assert str(frame["pred"].dtype) == "int64" and frame["prob_a"].tolist() == [0.6] * 3
    with pytest.raises(FileNotFoundError, match="no predictions.csv"):
        records.read_predictions_frame(tmp_path / "absent")
    cases = {
        "split,index,target\nval,0,1\n": r"lacks columns \['pred'\]",
        "split,index,target,pred\nval,0,1,x\n": "non-integer",
        "split,index,target,pred\nval,0,1,1\nval,0,1,0\n": "repeats a",
    }
    for text, message in cases.items():
        (tmp_path / "predictions.csv").write_text(text)
        with pytest.raises(records.RecordError, match=message):
            records.read_predictions_frame(tmp_path)


def test_hydra_files(tmp_path):
    assert records.read_overrides(tmp_path) == [] and records.read_config(tmp_path) is None
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=1\n- configuration=full\n")
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\ngroup: g-${seed}\n")
    assert records.read_overrides(tmp_path) == ["seed=1", "configuration=full"]
    assert records.read_config(tmp_path).group == "g-1"  # unresolved on disk, resolved on access
    (tmp_path / ".hydra" / "overrides.yaml").write_text("seed: 1\n")
    with pytest.raises(records.RecordError, match="overrides.yaml holds dict, expected a list"):
        records.read_overrides(tmp_path)
    (tmp_path / ".hydra" / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(records.RecordError, match="config.yaml holds a list"):
        records.read_config(tmp_path)
