"""Issue #23, "nothing silent, round two": each of the review's 15 cases, tried through the command lines a user
types (the Hydra mains called in-process with argv), exits non-zero with the cause or gives the right result.

Also #22's world size in the fingerprint and #21's one trained-model path (every CLI takes a run folder)."""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from fer_ablation import records
from fer_ablation.cli import evaluate as evaluate_cli
from fer_ablation.cli import export as export_cli
from fer_ablation.cli import gradcam as gradcam_cli
from fer_ablation.cli import predict as predict_cli
from fer_ablation.config import compose
from fer_ablation.data import build_datamodule
from fer_ablation.data.datamodule import resolve_data_config
from fer_ablation.data.decode import decode_file
from fer_ablation.data.labels import CLASSES
from fer_ablation.inference import predict
from fer_ablation.records.fingerprint import NOT_FINGERPRINTED, flatten, run_fingerprint
from fer_ablation.train.training import train

FOLDERS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
PER_CLASS = 12
RUN = ["logger=csv", "trainer=cpu", "trainer.enable_progress_bar=false", "data=imagefolder", "data.image_size=48",
       "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "threads=1",
       "trainer.precision=32-true"]


def noise_folder(root: Path, per_class: int = PER_CLASS, side: int = 48, seed: int = 0) -> Path:
    """root/<class>/<k>_<i>.png: random grayscale images, an unsplit image folder."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(FOLDERS):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(root / name / f"{k}_{i}.png")
    return root


def run_cli(module, *args: str) -> int:
    """`python -m fer_ablation.<module> args...` in this process: the exit status (Hydra exits 1 on an error)."""
    argv = sys.argv
    sys.argv = [f"{module.__name__}.py", *args]
    try:
        result = module.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return result or 0


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, one_thread):
    """A completed run on an unsplit image folder with data.split_seed=1, with the .hydra/config.yaml Hydra writes."""
    base = tmp_path_factory.mktemp("folder_run")
    root = noise_folder(base / "faces")
    cfg = compose([*RUN, f"data.root={root}", "data.split_seed=1"])
    run_dir = base / "run"
    train(cfg, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return root, run_dir


def _eval_paths(out: Path, split: str) -> set[str]:
    frame = pd.read_csv(out / records.PREDICTIONS)
    return set(frame.loc[frame["split"] == split, "path"])


# 1 ------------------------------------------------------------------------------------------------------------
def test_evaluate_uses_the_runs_own_split_definition(folder_run, tmp_path, capsys):
    root, run_dir = folder_run
    out = tmp_path / "eval"
    assert run_cli(evaluate_cli, f"ckpt_path={run_dir}", "data=imagefolder", f"data.root={root}", "splits=[test]",
                   "trainer=cpu", f"hydra.run.dir={out}") == 0
    assert _eval_paths(out, "test") == _eval_paths(run_dir, "test")  # the run's test images, none of its train
    definition = records.read_metrics(out)["split_definition"]
    assert definition["source"] == "run" and definition["split_seed"] == 1

    moved = tmp_path / "moved"
    assert run_cli(evaluate_cli, f"ckpt_path={run_dir}", "data=imagefolder", f"data.root={root}", "data.split_seed=0",
                   "trainer=cpu", f"hydra.run.dir={moved}") != 0
    assert "data.split_seed=0 (the run used 1)" in capsys.readouterr().err and not (moved / "metrics.json").exists()
    assert run_cli(evaluate_cli, f"ckpt_path={run_dir}", "data=imagefolder", f"data.root={root}", "splits=[all]",
                   "trainer=cpu", f"hydra.run.dir={moved}") != 0
    assert "scores its training images" in capsys.readouterr().err

    new = tmp_path / "new"  # the user says the images are new: their own split definition, recorded as such
    assert run_cli(evaluate_cli, f"ckpt_path={run_dir}", "data=imagefolder", f"data.root={root}", "data.split_seed=0",
                   "new_data=true", "trainer=cpu", f"hydra.run.dir={new}") == 0
    definition = records.read_metrics(new)["split_definition"]
    assert definition["source"] == "command line" and definition["split_seed"] == 0


# 2 ------------------------------------------------------------------------------------------------------------
def _fingerprint(*overrides):
    cfg = compose(["debug=smoke", "data.face_crop=haar", *overrides])
    data = resolve_data_config(cfg.data)
    return run_fingerprint(cfg, data, data["root"], list(data["classes"]), "32-true", cfg.model.pretrained)["hash"]


# keys whose other value the type does not give
OTHER_VALUES = {"data.dedup": "keep", "data.report_split": "private", "data.face_crop": "none",
                "data.no_face": "skip", "data.augment.padding_mode": "reflect", "data.root": "/elsewhere"}
CONTEXT = {"stem.": ["stem=sc"]}


def _fingerprint_of_data(**changes):
    """The fingerprint with keys of the resolved data config changed (as the data module would hold them)."""
    cfg = compose(["debug=smoke"])
    data = {**resolve_data_config(cfg.data), **changes}
    return run_fingerprint(cfg, data, data["root"], list(data["classes"]), "32-true", None)["hash"]


def _other_value(key: str, value):
    if key in OTHER_VALUES:
        return OTHER_VALUES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 + 0.01
    if isinstance(value, list) and key == "data.classes":
        return list(reversed(value))
    if isinstance(value, list):
        return [v / 2 + 0.01 for v in value]
    raise AssertionError(f"{key}={value!r}: give the test another value to try")


def _leaves(cfg, groups=("model", "stem", "data")) -> dict:
    return {f"{g}.{k}": v for g in groups for k, v in flatten(OmegaConf.to_container(cfg[g], resolve=True)).items()}


def test_every_model_and_data_key_is_fingerprinted_or_listed_with_a_reason(tmp_path):
    """Every key of the composed model, stem and data groups (each data set, stem and a few configurations) either
    changes the fingerprint when changed, or is in NOT_FINGERPRINTED with a reason."""
    keys = set()
    for data in ("synthetic", "fer2013", "imagefolder", "rafdb"):
        for stem in ("stride2", "sc"):
            for configuration in ("simam", "full", "plain_init"):
                keys |= set(_leaves(compose([f"data={data}", f"data.root={tmp_path}", f"stem={stem}",
                                             f"configuration={configuration}"])))
    # a module's options and placements are one key each: the arm (report.runs.resolve_configuration)
    keys = {next((g for g in ("model.options", "model.placement") if k.startswith(g)), k) for k in keys}
    assert all(reason for reason in NOT_FINGERPRINTED.values())
    assert _fingerprint_of_data(name="imagefolder", root="/x") != _fingerprint_of_data(name="synthetic", root="/x")
    leaves, bases = {}, {}
    for key in sorted(keys - set(NOT_FINGERPRINTED) - {"data.name"}):
        context = next((c for prefix, c in CONTEXT.items() if key.startswith(prefix)), [])
        if tuple(context) not in bases:
            leaves[tuple(context)] = _leaves(compose(["debug=smoke", "data.face_crop=haar", *context]))
            bases[tuple(context)] = _fingerprint(*context)
        value = _other_value(key, leaves[tuple(context)].get(key))
        assert _fingerprint(*context, f"{key}={json.dumps(value)}") != bases[tuple(context)], (
            f"{key}={value!r} changes the run but not its fingerprint: fingerprint it, or list it in "
            "fer_ablation.records.fingerprint.NOT_FINGERPRINTED with the reason")
    assert _fingerprint("model.in_chans=1") != _fingerprint()  # the review's case: 1 channel never pools with 3


# 2 (#22) --------------------------------------------------------------------------------------------------------
def test_fingerprint_has_world_size_and_global_batch():
    cfg = compose(["debug=smoke"])
    data = resolve_data_config(cfg.data)
    one = run_fingerprint(cfg, data, None, ["a", "b"], "32-true", None)
    assert "world_size" not in one["fields"]  # one process: hashes of runs recorded before the field stay valid
    four = run_fingerprint(cfg, data, None, ["a", "b"], "32-true", None, world_size=4)
    assert four["fields"]["world_size"] == 4 and four["fields"]["global_batch_size"] == 4 * data["batch_size"]
    assert four["hash"] != one["hash"]


# 3 ------------------------------------------------------------------------------------------------------------
def test_force_moves_every_file_of_the_old_run_aside(folder_run, tmp_path):
    root, original = folder_run
    run_dir = tmp_path / "run"
    shutil.copytree(original, run_dir)
    # what the old run wrote (the command's own .hydra/ and the folder lock aside)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*")
              if p.is_file() and p.relative_to(run_dir).parts[0] not in (".hydra", records.LOCK)}
    assert Path(records.PREDICTIONS_LAST) in before and Path("checkpoints") / "best.ckpt" in before
    train(compose([*RUN, f"data.root={root}", "data.split_seed=1", "force=true"]), run_dir)
    (aside,) = [p for p in run_dir.iterdir() if p.name.startswith(records.PREVIOUS)]
    for name, content in before.items():
        assert (aside / name).is_file() and (aside / name).read_bytes() == content, f"{name} of the old run was lost"
    assert (run_dir / records.PREDICTIONS_LAST).is_file()  # the new run's


# 4 ------------------------------------------------------------------------------------------------------------
def test_lossy_copies_across_splits_are_counted_named_and_droppable(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("FER_ABLATION_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "faces"
    noise_folder(root / "train", per_class=6)
    noise_folder(root / "test", per_class=2, seed=1)
    with Image.open(root / "train" / "happy" / "3_0.png") as img:
        img.save(root / "test" / "happy" / "jpeg_copy.jpg", quality=95)
    with Image.open(root / "train" / "sad" / "4_1.png") as img:
        img.resize((96, 96), Image.Resampling.BILINEAR).save(root / "test" / "sad" / "resized_copy.png")
    cfg = {"name": "imagefolder", "root": str(root), "image_size": 48, "val_fraction": 0.25}
    with caplog.at_level(logging.WARNING, logger="fer_ablation"):
        dm = build_datamodule(cfg)
        dm.setup("test")
    test = dm.duplicates["test"]
    assert test["of_train"] + test["of_val"] == 0 and test["near"] == 2 and test["dropped"] == 0
    assert {e.split(" ~ ")[0].rsplit("/", 1)[-1] for e in test["near_examples"]} == {"jpeg_copy.jpg", "resized_copy.png"}
    assert any("2 of 16 image(s) are likely near copies" in r.getMessage() for r in caplog.records)
    dropped = build_datamodule({**cfg, "dedup": "drop_near"})
    dropped.setup("test")
    assert dropped.duplicates["test"]["dropped"] == 2 and len(dropped.split_paths("test")) == 14


# 5, 11 ---------------------------------------------------------------------------------------------------------
def _probabilities(ckpt: Path, inputs: Path, out: Path) -> dict[str, list[float]]:
    """predict's probabilities per file name; `ckpt`: a run folder or a checkpoint file."""
    assert run_cli(predict_cli, f"ckpt_path={ckpt}", f"inputs={inputs}", f"out={out}",
                   f"hydra.run.dir={out}") == 0
    with (out / predict.PREDICTIONS).open() as handle:
        return {Path(r["path"]).name: [float(r[f"prob_{c}"]) for c in CLASSES] for r in csv.DictReader(handle)}


def test_float_and_16_bit_images_decode_as_in_training_in_every_entry_point(folder_run, tmp_path):
    _, run_dir = folder_run
    photos = tmp_path / "photos"
    photos.mkdir()
    pixels = np.random.default_rng(3).integers(0, 256, (40, 40)).astype(np.uint8)
    Image.fromarray(pixels).save(photos / "eight_bit.png")
    Image.fromarray(pixels.astype(np.float32) / 255, mode="F").save(photos / "float_0_1.tif")  # 5
    Image.fromarray(pixels.astype(np.uint16) * 257).save(photos / "sixteen_bit.pgm")  # 11
    for name in ("float_0_1.tif", "sixteen_bit.pgm"):
        np.testing.assert_array_equal(decode_file(str(photos / name), 48, True),
                                      decode_file(str(photos / "eight_bit.png"), 48, True))
    best = run_dir / "checkpoints" / "best.ckpt"
    probs = _probabilities(best, photos, tmp_path / "pred")
    assert set(probs) == {"eight_bit.png", "float_0_1.tif", "sixteen_bit.pgm"}  # none skipped
    assert probs["float_0_1.tif"] == probs["eight_bit.png"] == probs["sixteen_bit.pgm"]
    black = tmp_path / "black"
    black.mkdir()
    Image.new("L", (1, 1)).save(black / "black.png")
    assert _probabilities(best, black, tmp_path / "black_pred")["black.png"] != probs["float_0_1.tif"]
    Image.fromarray(np.full((8, 8), -3.0, np.float32), mode="F").save(black / "negative.tif")
    with pytest.raises(ValueError, match="float image .* expected 0..1 or 0..255"):
        decode_file(str(black / "negative.tif"), 48, True)


# 6, 7 ----------------------------------------------------------------------------------------------------------
def test_evaluate_refuses_a_contradicting_whole_group_override_and_empty_splits(folder_run, tmp_path, capsys):
    root, run_dir = folder_run
    args = [f"ckpt_path={run_dir}", "data=imagefolder", f"data.root={root}", "trainer=cpu"]
    assert run_cli(evaluate_cli, *args, "data.normalize={mean:[0.5,0.5,0.5],std:[0.5,0.5,0.5]}",
                   f"hydra.run.dir={tmp_path / 'a'}") != 0
    assert "data.normalize.mean=[0.5, 0.5, 0.5] (the model was trained with" in capsys.readouterr().err
    assert run_cli(evaluate_cli, *args, "splits=[]", f"hydra.run.dir={tmp_path / 'b'}") != 0
    assert "splits=[]: nothing to score" in capsys.readouterr().err
    assert not (tmp_path / "a" / "metrics.json").exists() and not (tmp_path / "b" / "metrics.json").exists()


# 8, 14 ---------------------------------------------------------------------------------------------------------
def _tampered_run(run_dir: Path, to: Path, **changes) -> Path:
    shutil.copytree(run_dir, to)
    path = to / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in changes.items():
        checkpoint["hyper_parameters"][key] = value
    torch.save(checkpoint, path)
    return to


def test_a_checkpoints_class_list_must_be_a_known_label_set_and_the_runs(folder_run, tmp_path, capsys):
    _, run_dir = folder_run
    photo = tmp_path / "face.png"
    Image.new("L", (48, 48), 128).save(photo)
    replaced = _tampered_run(run_dir, tmp_path / "replaced", classes=list("abcdefg"))
    assert run_cli(predict_cli, f"ckpt_path={replaced / 'checkpoints' / 'best.ckpt'}", f"inputs={photo}", f"out={tmp_path / 'p1'}",
                   f"hydra.run.dir={tmp_path / 'p1'}") != 0
    assert "unknown class name 'a'" in capsys.readouterr().err
    reversed_ = _tampered_run(run_dir, tmp_path / "reversed", classes=list(reversed(CLASSES)))
    assert run_cli(predict_cli, f"ckpt_path={reversed_ / 'checkpoints' / 'best.ckpt'}", f"inputs={photo}", f"out={tmp_path / 'p2'}",
                   f"hydra.run.dir={tmp_path / 'p2'}") != 0
    assert "the checkpoint's class names were changed" in capsys.readouterr().err
    short = _tampered_run(run_dir, tmp_path / "short", classes=list(CLASSES[:6]))
    assert run_cli(export_cli, f"ckpt_path={short / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'x.onnx'}", f"hydra.run.dir={tmp_path / 'p3'}") != 0
    assert "6 class names" in (err := capsys.readouterr().err) and "classifier with 7 outputs" in err
    assert not (tmp_path / "p1" / predict.PREDICTIONS).exists() and not (tmp_path / "p2" / predict.PREDICTIONS).exists()


def test_predict_never_downloads_weights_a_checkpoint_names(folder_run, tmp_path, monkeypatch):
    _, run_dir = folder_run

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached ImageNet file either
    spec = {**torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["model_spec"],
            "pretrained": "imagenet"}
    named = _tampered_run(run_dir, tmp_path / "imagenet", pretrained="imagenet", model_spec=spec)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("L", (48, 48), 90).save(photos / "face.png")
    best = Path("checkpoints") / "best.ckpt"
    assert _probabilities(named / best, photos, tmp_path / "p") == _probabilities(run_dir / best, photos, tmp_path / "q")


# 9 (the p-value side is tests/test_collect.py::test_identical_seed_differences_get_no_p_value_and_no_verdict) ---
def test_cells_flag_seeds_with_byte_identical_predictions(tmp_path):
    from fer_ablation.report import tables
    from tests.test_collect import write_run

    for s in (0, 1, 2):
        write_run(tmp_path, "baseline", s)
    ca = [write_run(tmp_path, "ca", s) for s in (0, 1)]
    for name in (records.PREDICTIONS, records.PREDICTIONS_LAST):  # seed 1 is seed 0's run, copied
        shutil.copy(ca[0] / name, ca[1] / name)
    records.write_metrics(ca[1], {**records.read_metrics(ca[0]), "seed": 1})
    frames = tables.collect([tmp_path], tmp_path / "tables", n_boot=100)
    notes = frames["table1"].set_index("configuration").loc["ca", "notes"]
    assert "byte-identical predictions.csv in seeds 0, 1" in notes
    assert "byte-identical" not in frames["table1"].set_index("configuration").loc["baseline", "notes"]


# 10 -----------------------------------------------------------------------------------------------------------
def test_a_failed_export_leaves_out_as_it_was(folder_run, tmp_path, monkeypatch, capsys):
    _, run_dir = folder_run
    best = Path("checkpoints") / "best.ckpt"
    out = tmp_path / "fer.onnx"
    out.write_bytes(b"a good export from before")

    def failed_attempt(*args):
        assert run_cli(export_cli, f"ckpt_path={run_dir / best}", f"out={out}", f"hydra.run.dir={tmp_path / 'h'}",
                       *args) != 0
        assert out.read_bytes() == b"a good export from before"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left

    failed_attempt("parity.atol=0", "parity.rtol=0")
    assert "not faithful and was not written" in capsys.readouterr().err
    nan_run = _tampered_run(run_dir, tmp_path / "nan_run")
    checkpoint = torch.load(nan_run / best, weights_only=True)
    checkpoint["state_dict"]["model.fc.weight"].fill_(float("nan"))
    torch.save(checkpoint, nan_run / best)
    code = run_cli(export_cli, f"ckpt_path={nan_run / best}", f"out={out}", f"hydra.run.dir={tmp_path / 'h'}")
    assert code != 0 and "non-finite logits" in capsys.readouterr().err
    assert out.read_bytes() == b"a good export from before"

    import onnx

    def full_disk(model, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full_disk)
    failed_attempt()
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert run_cli(export_cli, f"ckpt_path={run_dir / best}", f"out={out}", f"hydra.run.dir={tmp_path / 'h'}") == 0
    assert out.read_bytes()[:4] != b"a go" and out.stat().st_size > 1_000_000


# 12 -----------------------------------------------------------------------------------------------------------
def test_a_run_that_failed_before_loading_data_is_a_failed_run_of_its_group(folder_run, tmp_path):
    from fer_ablation.report import tables
    from fer_ablation.report.grouping import data_groups
    from fer_ablation.report.runs import LEGACY, LEGACY_NOTE, load_runs

    root, run_dir = folder_run
    shutil.copytree(run_dir, tmp_path / "runs" / "done")
    failed = tmp_path / "runs" / "failed"
    with pytest.raises(Exception, match="no such folder|does not exist|not found"):
        train(compose([*RUN, f"data.root={tmp_path / 'missing'}", "seed=1"]), failed)
    record = records.read_metrics(failed)
    assert record["status"] == "failed" and "fingerprint" not in record
    runs = load_runs([tmp_path / "runs"])
    groups = data_groups(runs)
    assert len(groups) == 1 and groups[0].fingerprint not in (LEGACY, None)
    frames = tables.collect([tmp_path / "runs"], tmp_path / "tables", n_boot=100)
    baseline = frames["table1"].set_index("configuration").loc["baseline"]
    assert "failed: seed 1:" in baseline["notes"] and str(tmp_path / "missing") in baseline["notes"]
    assert LEGACY_NOTE not in (tmp_path / "tables" / "summary.md").read_text()


# 13 -----------------------------------------------------------------------------------------------------------
def test_a_run_that_stops_before_its_first_validation_says_so(tmp_path, one_thread):
    from tests.conftest import SMOKE

    with pytest.raises(RuntimeError, match="before its first validation"):
        train(compose([*SMOKE, "+trainer.max_steps=1", "threads=1"]), tmp_path / "run")
    record = records.read_metrics(tmp_path / "run")
    assert record["status"] == "failed" and "before its first validation" in record["error"]


# 15 -----------------------------------------------------------------------------------------------------------
def test_history_keeps_its_format_across_a_resume(tmp_path):
    from fer_ablation.train.training import RunRecorder

    rows = [{"epoch": e, "train_loss": 1.0 / e, "lr": 0.1} for e in (1, 2, 3)]
    records.write_history(tmp_path, rows)
    written = (tmp_path / records.HISTORY).read_text()

    class Resumed:  # what a resume from epoch 2's checkpoint gives the recorder
        current_epoch = 2

    recorder = RunRecorder(tmp_path)
    recorder.on_train_start(Resumed(), None)
    records.write_history(tmp_path, recorder.rows)
    rewritten = (tmp_path / records.HISTORY).read_text()
    assert rewritten.splitlines()[1:] == written.splitlines()[1:3]
    assert [line.split(",")[0] for line in rewritten.splitlines()[1:]] == ["1", "2"]


# #21: one trained-model path -----------------------------------------------------------------------------------
def test_predict_on_a_runs_own_images_gives_its_recorded_probabilities(folder_run, tmp_path):
    _, run_dir = folder_run
    recorded = pd.read_csv(run_dir / records.PREDICTIONS)
    test = recorded[recorded["split"] == "test"]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in test["path"]:
        shutil.copy(path, inputs / Path(path).name)
    probs = _probabilities(run_dir, inputs, tmp_path / "pred")
    for _, row in test.iterrows():
        np.testing.assert_allclose(probs[Path(row["path"]).name], [row[f"prob_{c}"] for c in CLASSES],
                                   rtol=1e-4, atol=1e-6)


def test_gradcam_takes_a_run_folder_or_a_checkpoint_in_one(folder_run, tmp_path, capsys):
    _, run_dir = folder_run
    for i, target in enumerate((run_dir, run_dir / "checkpoints" / "best.ckpt")):
        out = tmp_path / f"cam{i}.png"
        assert gradcam_cli.main([str(target), "--n", "1", "--out", str(out)]) == 0
        assert out.is_file()
    bare = tmp_path / "bare.ckpt"
    shutil.copy(run_dir / "checkpoints" / "best.ckpt", bare)
    assert gradcam_cli.main([str(bare), "--out", str(tmp_path / "x.png")]) == 2
    assert "needs a run folder" in capsys.readouterr().err


def test_export_takes_a_run_folder(folder_run, tmp_path):
    import onnx

    _, run_dir = folder_run
    out = tmp_path / "fer.onnx"
    assert run_cli(export_cli, f"ckpt_path={run_dir}", f"out={out}", f"hydra.run.dir={tmp_path / 'h'}") == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["classes"]) == list(CLASSES) and meta["image_size"] == "48"
