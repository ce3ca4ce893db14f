"""Label sets as config (data.classes): an 8-class CK+-style folder, a 3-class subset, cross-set evaluation,
and the collector keeping runs of different label sets apart."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fer_ablation import records
from fer_ablation.data import DataError, build_datamodule
from fer_ablation.data.label_set import resolve_classes
from fer_ablation.train.lit_module import score

# CK+'s folder names (Lucey et al. 2010): the seven under their usual aliases, plus contempt
CKPLUS = {"anger": 6, "contempt": 6, "disgust": 6, "fear": 6, "happy": 6, "sadness": 6, "surprise": 6, "neutral": 6}
EIGHT = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
THREE = ["happiness", "neutral", "surprise"]


def make_ckplus(root: Path, seed: int = 0) -> Path:
    """`seed`: other images (a folder the runs did not train on, which evaluate may score whole)."""
    for k, (name, n) in enumerate(CKPLUS.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.random.default_rng(10 * k + i + 1000 * seed).integers(0, 256, (40, 40), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"S{k:03d}_{i:03d}.png")
    return root


def data_cfg(root, **kw):
    return {"name": "imagefolder", "root": str(root), "image_size": 16, "val_fraction": 0.5, **kw}


def test_label_set_names_map_by_alias_and_bad_lists_fail():
    assert resolve_classes(["Happy", "neutral", "contemptuous"]) == ("happiness", "neutral", "contempt")
    with pytest.raises(DataError, match="'pain'"):
        resolve_classes(["happy", "pain"])
    with pytest.raises(DataError, match="a second time"):
        resolve_classes(["happy", "happiness"])
    with pytest.raises(DataError, match="at least two"):
        resolve_classes(["happy"])


def test_default_label_set_skips_and_counts_contempt(tmp_path):
    dm = build_datamodule(data_cfg(make_ckplus(tmp_path / "ck")))
    with pytest.warns(UserWarning, match=r"left out \(train: contempt 1; val: contempt 3; test: contempt 2\)"):
        dm.setup("fit")
    assert dm.num_classes == 7
    excluded = dm.describe()["excluded_classes"]
    assert excluded == {"train": {"contempt": 1}, "val": {"contempt": 3}, "test": {"contempt": 2}}
    assert sum(len(dm.split_paths(s)) for s in ("train", "val", "test")) == 42
    assert not any("contempt" in p for p in dm.split_paths("train"))


def test_subset_relabels_in_the_given_order(tmp_path):
    root = make_ckplus(tmp_path / "ck")
    dm = build_datamodule(data_cfg(root, classes=THREE))
    dm.setup("fit")
    assert dm.classes == tuple(THREE)
    paths, targets = dm.split_paths("train"), dm.split_targets("train").tolist()
    folder_to_index = {"happy": 0, "neutral": 1, "surprise": 2}
    assert [folder_to_index[Path(p).parent.name] for p in paths] == targets
    excluded = dm.describe()["excluded_classes"]
    assert {n: sum(by_class.get(n, 0) for by_class in excluded.values()) for n in EIGHT if n not in THREE} == \
        {n: 6 for n in EIGHT if n not in THREE}


def test_present_class_macro_averages_beside_all_class_ones():
    # a 3-class model on a split that has no images of class c: c's F1 is 0 in the all-class average
    targets = torch.tensor([0, 0, 1, 1])
    probs = torch.eye(3)[[0, 1, 1, 2]]  # predictions a, b, b, c
    metrics = score(probs, targets, ["a", "b", "c"], loss=0.0)
    f1 = metrics["per_class_f1"]
    assert metrics["classes_present"] == ["a", "b"]
    assert metrics["f1_macro_present"] == pytest.approx((f1["a"] + f1["b"]) / 2)
    assert metrics["f1_macro"] == pytest.approx((f1["a"] + f1["b"] + 0.0) / 3)
    assert metrics["f1_macro_present"] > metrics["f1_macro"]
    # recall: a 1 of 2, b 1 of 2 (one b predicted c), c undefined (0 in torchmetrics' all-class macro)
    assert metrics["recall_macro_present"] == pytest.approx(0.5)
    assert metrics["recall_macro"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def label_set_runs(tmp_path_factory, one_thread):
    from fer_ablation.config import compose
    from fer_ablation.train.training import train

    root = make_ckplus(tmp_path_factory.mktemp("ckplus"))
    runs = tmp_path_factory.mktemp("runs")
    out = {}
    for name, classes in (("eight", EIGHT), ("three", THREE)):
        # debug=smoke sets the probe's knobs, which an image folder does not have: its budget by hand
        cfg = compose(["logger=csv", "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                       "data.batch_size=16", "configuration=baseline", "data=imagefolder", f"data.root={root}",
                       f"data.classes=[{','.join(classes)}]", "data.image_size=32", "data.val_fraction=0.5",
                       "trainer.limit_train_batches=1", "threads=1"])
        out[name] = train(cfg, runs / name), runs / name
    return root, runs, out


def test_eight_and_three_class_models_follow_the_label_set(label_set_runs):
    _, _, out = label_set_runs
    for name, classes in (("eight", EIGHT), ("three", THREE)):
        metrics, run_dir = out[name]
        assert metrics["status"] == "completed"
        assert metrics["classes"] == classes and metrics["num_classes"] == len(classes)
        val = metrics["best"]["val"]
        assert np.asarray(val["confusion_matrix"]).shape == (len(classes), len(classes))
        assert list(val["per_class_f1"]) == classes
        predictions = pd.read_csv(run_dir / "predictions.csv")
        assert [c for c in predictions.columns if c.startswith("prob_")] == [f"prob_{c}" for c in classes]
        assert predictions["target"].max() < len(classes)
        state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
        assert state["state_dict"]["model.fc.weight"].shape[0] == len(classes)
    excluded = out["three"][0]["data_summary"]["excluded_classes"]
    assert sum(sum(c.values()) for c in excluded.values()) == 5 * 6


def test_collector_keeps_label_sets_in_separate_groups(label_set_runs, tmp_path):
    from fer_ablation.report import tables

    _, runs, out = label_set_runs
    assert out["eight"][0]["group"] == out["three"][0]["group"]  # same label: only the class lists differ
    frames = tables.collect([runs], tmp_path / "tables", select="best")
    rows = frames["table3"]
    baseline = rows[(rows["configuration"] == "baseline") & rows["seeds"].str.startswith("1/")]
    assert len(baseline) == 2 and baseline["group"].nunique() == 2
    assert any("8 classes" in g for g in baseline["group"]) and any("3 classes: happiness, neutral, surprise" in g
                                                                    for g in baseline["group"])
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert "8 classes" in md and "3 classes" in md


def test_evaluating_on_another_label_set_maps_by_name_and_reports(label_set_runs, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, _, out = label_set_runs
    _, run_dir = out["three"]
    root = make_ckplus(tmp_path / "other", seed=1)
    cfg = compose_cfg(f"ckpt_path={run_dir}", "trainer=cpu", "trainer.enable_progress_bar=false",
                      "data=imagefolder", f"data.root={root}", config_name="evaluate", smoke=False)
    result = evaluate(cfg, tmp_path / "eval")
    assert result["classes"] == THREE
    assert result["best"]["all"]["n"] == 3 * 6
    assert result["unscored_classes"] == {"all": {n: 6 for n in EIGHT if n not in THREE}}
    assert json.loads((tmp_path / "eval" / records.METRICS).read_text())["unscored_classes"] == \
        result["unscored_classes"]
    assert set(result["best"]["all"]) >= {"f1_macro", "f1_macro_present", "classes_present"}


def test_evaluate_refuses_a_label_set_other_than_the_checkpoints(label_set_runs, compose_cfg, tmp_path):
    from fer_ablation.inference.evaluate import evaluate

    _, _, out = label_set_runs
    root = make_ckplus(tmp_path / "other", seed=1)
    cfg = compose_cfg(f"ckpt_path={out['three'][1]}", "trainer=cpu", "data=imagefolder", f"data.root={root}",
                      "data.classes=[happy,sad]", config_name="evaluate", smoke=False)
    with pytest.raises(ValueError, match=r"data.classes=\['happy', 'sad'\] differs"):
        evaluate(cfg, tmp_path / "eval", explicit=["data.classes"])
    # the same classes under aliases are the checkpoint's
    cfg.data.classes = ["happy", "neutral", "surprised"]
    assert evaluate(cfg, tmp_path / "same", explicit=["data.classes"])["classes"] == THREE
