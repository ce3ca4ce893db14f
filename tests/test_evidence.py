"""Clean evidence: split roles, the duplicate guard and run fingerprints, on a small FER2013-layout folder in
which some PublicTest images are copies of Training images (some relabelled)."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_ablation import records
from fer_ablation.config import compose
from fer_ablation.data import DataError, build_datamodule
from fer_ablation.data import memory
from fer_ablation.data.datamodule import resolve_data_config
from fer_ablation.records.fingerprint import run_fingerprint

FOLDERS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
N_TRAIN, N_PUBLIC = 8, 3  # per class
# (Training file, class folder its PublicTest copy goes into): two copies with the same label, two relabelled
COPIES = [("happy/Training_3_0.png", "happy"), ("sad/Training_4_1.png", "sad"),
          ("angry/Training_0_2.png", "fear"), ("neutral/Training_6_3.png", "surprise")]
BASE = ["logger=csv", "trainer=cpu", "trainer.enable_progress_bar=false", "data=fer2013", "data.image_size=48",
        "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.log_every_n_steps=1"]


def make_fer2013(root: Path) -> Path:
    """train/<class>/Training_*.png, test/<class>/PublicTest_*.png with COPIES as PublicTest_copy_*.png; the PNG
    copies are re-encoded (other bytes, same pixels) and one Training image is repeated inside train."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(FOLDERS):
        for i in range(N_TRAIN):
            path = root / "train" / name / f"Training_{k}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(path)
        for i in range(N_PUBLIC):
            path = root / "test" / name / f"PublicTest_{k}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(path)
    for j, (source, folder) in enumerate(COPIES):
        with Image.open(root / "train" / source) as img:
            img.save(root / "test" / folder / f"PublicTest_copy_{j}.png", compress_level=0)
    shutil.copy(root / "train" / "happy" / "Training_3_5.png", root / "train" / "happy" / "Training_3_99.png")
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_ABLATION_CACHE", str(tmp_path / "cache"))


def test_duplicates_counted_dropped_named_and_cached(tmp_path, caplog):
    root = make_fer2013(tmp_path / "fer")
    cfg = {"name": "fer2013", "root": str(root), "image_size": 24, "val_fraction": 0.25}
    with caplog.at_level(logging.WARNING, logger="fer_ablation"):
        dm = build_datamodule(cfg)
        dm.setup("fit"), dm.setup("test")
    dup = dm.duplicates
    assert dup["policy"] == "drop"
    # the repeat inside Training: counted inside train, or (when the hold-out put one copy in val) dropped from val
    assert dup["train"]["within"] + dup["val"]["of_train"] == 1 and dup["val"]["dropped"] == dup["val"]["of_train"]
    # a copy's source may have been held out into val: a report image identical to a val image counts too
    assert dup["test"]["of_train"] + dup["test"]["of_val"] == 4
    assert dup["test"]["different_label"] == 2 and dup["test"]["dropped"] == 4
    test_paths = [Path(p).name for p in dm.split_paths("test")]
    assert len(test_paths) == 7 * N_PUBLIC and not any("copy" in p for p in test_paths)
    assert dm.split_roles()["test"] == {"role": "report", "source": "PublicTest (test/ folder)", "n": 7 * N_PUBLIC}
    assert dm.split_roles()["val"]["role"] == "select"
    assert not set(dm.split_paths("val")) & set(dm.split_paths("train"))
    logged = "\n".join(r.getMessage() for r in caplog.records if "test:" in r.getMessage())
    assert "4 of 25 image(s) identical to a train or val image (2 with a different label), dropped" in logged
    assert "PublicTest_copy_2.png = " in logged and "Training_0_2.png" in logged

    # a second data module reads the hashes with the uint8 cache: nothing is decoded again
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    original = memory.decode_samples
    memory.decode_samples = no_decoding
    try:
        again = build_datamodule(cfg)
        again.setup("fit"), again.setup("test")
    finally:
        memory.decode_samples = original
    assert again.duplicates == dup and again.split_paths("test") == dm.split_paths("test")

    kept = build_datamodule({**cfg, "dedup": "keep"})
    kept.setup("test")
    assert kept.duplicates["test"]["of_train"] + kept.duplicates["test"]["of_val"] == 4
    assert kept.duplicates["test"]["dropped"] == 0
    assert len(kept.split_paths("test")) == 7 * N_PUBLIC + 4
    with pytest.raises(DataError, match="dedup must be one of drop, drop_near, keep"):
        build_datamodule({**cfg, "dedup": "maybe"})


def test_run_on_fer2013_layout_selects_on_val_reports_test_without_duplicates(tmp_path, caplog, one_thread):
    from fer_ablation.train.training import train

    root = make_fer2013(tmp_path / "fer")
    cfg = compose([*BASE, f"data.root={root}", "data.val_fraction=0.25"])
    with caplog.at_level(logging.WARNING, logger="fer_ablation"):
        metrics = train(cfg, tmp_path / "run")
    assert metrics == records.read_metrics(tmp_path / "run")
    assert metrics["report_split"] == "test"
    assert {s: v["role"] for s, v in metrics["splits"].items()} == {"train": "train", "val": "select", "test": "report"}
    assert metrics["splits"]["val"]["source"].startswith("stratified hold-out of Training (0.25")
    assert metrics["splits"]["test"]["n"] == metrics["best"]["test"]["n"] == 7 * N_PUBLIC
    dup = metrics["duplicates"]
    assert metrics["splits"]["train"]["n"] + metrics["splits"]["val"]["n"] + dup["val"]["dropped"] == 7 * N_TRAIN + 1
    assert dup["test"]["of_train"] + dup["test"]["of_val"] == 4
    assert dup["test"]["different_label"] == 2 and dup["test"]["dropped"] == 4
    assert dup["train"]["within"] + dup["val"]["of_train"] == 1
    assert any("PublicTest_copy_" in r.getMessage() for r in caplog.records)
    best = records.read_predictions_frame(tmp_path / "run")
    last = records.read_predictions_frame(tmp_path / "run", "last")
    for frame in (best, last):
        assert sorted(frame["split"].unique()) == ["test", "val"]
        assert not frame["path"].str.contains("PublicTest_copy_").any()
    fields = metrics["fingerprint"]["fields"]
    assert fields["data"]["root"] == str(root.resolve()) and fields["max_epochs"] == 1
    assert fields["data"]["val_fraction"] == 0.25 and fields["pretrained"] is None

    from fer_ablation.report.runs import load_run

    run = load_run(tmp_path / "run")
    assert run.status == "completed", run.reason
    assert run.report_split == "test" and len(run.split_predictions("test", "last")) == 7 * N_PUBLIC


def _fingerprint(*overrides, smoke=True):
    cfg = compose([*(["debug=smoke"] if smoke else []), *overrides])
    data = resolve_data_config(cfg.data)
    return run_fingerprint(cfg, data, data["root"], ["a", "b"], "32-true", cfg.model.pretrained)


def test_fingerprint_changes_with_the_recipe_not_with_arm_or_seed():
    base = _fingerprint()
    assert base == _fingerprint()  # stable
    assert len(base["hash"]) == 12 and base["fields"]["data"]["probe"]["n_test"] == 70
    for same in (["seed=3"], ["configuration=full"], ["model.attention=ca"], ["trainer.enable_progress_bar=true"]):
        assert _fingerprint(*same)["hash"] == base["hash"], same
    for differs in (["trainer.max_epochs=3"], ["optimizer.lr=0.01"], ["data.clutter=0.3"], ["data.split_seed=1"],
                    ["data.batch_size=8"], ["scheduler=multistep"], ["loss.label_smoothing=0.1"],
                    ["trainer.limit_train_batches=3"], ["data.augment.hflip=false"], ["data.report_split=test",
                                                                                     "data.dedup=keep"]):
        assert _fingerprint(*differs)["hash"] != base["hash"], differs
    assert _fingerprint("model.pretrained=imagenet")["hash"] != base["hash"]


def test_paper_experiment_fails_instead_of_training_from_scratch():
    cfg = compose(["experiment=paper"])
    assert cfg.model.pretrained == "imagenet" and cfg.model.pretrained_fallback is False


def test_fingerprint_names_the_resolved_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "faces").mkdir()
    relative = _fingerprint("data=imagefolder", "data.root=faces", smoke=False)
    absolute = _fingerprint("data=imagefolder", f"data.root={tmp_path / 'faces'}", smoke=False)
    other = _fingerprint("data=imagefolder", f"data.root={tmp_path / 'other'}", smoke=False)
    assert relative == absolute and relative["fields"]["data"]["root"] == str(tmp_path / "faces")
    assert other["hash"] != relative["hash"] and "probe" not in relative["fields"]["data"]
