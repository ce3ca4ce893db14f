"""predict: inputs, preprocessing from the checkpoint or the command, csv / annotation / Grad-CAM outputs, face crops."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fer_ablation.data import face
from fer_ablation.data.augment import to_model_input
from fer_ablation.data.decode import pil_to_array
from fer_ablation.data.face import Box
from fer_ablation.inference import predict, trained
from tests.checkpoint_helpers import save_checkpoint

# ../shared/data/fer2013 beside the checkout (a worktree sits one level deeper); never committed
_FER2013_CANDIDATES = [Path(__file__).resolve().parents[i] / "shared" / "data" / "fer2013" for i in (2, 3)]
FER2013 = next((p for p in _FER2013_CANDIDATES if p.is_dir()), _FER2013_CANDIDATES[0])
SIZE = 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, one_thread):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.ckpt", image_size=SIZE)


def _face_drawing(size=(160, 120), at=(40, 20), side=64) -> Image.Image:
    """A grey photo with a face-like drawing (oval, eyes, mouth) of `side` pixels at `at`."""
    image = Image.new("RGB", size, (120, 130, 140))
    draw = ImageDraw.Draw(image)
    x, y = at
    draw.ellipse((x, y, x + side, y + side), fill=(220, 180, 150))
    draw.ellipse((x + side // 4, y + side // 3, x + side // 4 + 8, y + side // 3 + 8), fill=(20, 20, 20))
    draw.ellipse((x + 3 * side // 4 - 8, y + side // 3, x + 3 * side // 4, y + side // 3 + 8), fill=(20, 20, 20))
    draw.arc((x + side // 4, y + side // 2, x + 3 * side // 4, y + 5 * side // 6), 0, 180, fill=(120, 20, 20), width=3)
    return image


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    _face_drawing().save(folder / "face.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(folder / "sub" / "noise.jpg")
    Image.fromarray(rng.integers(0, 256, (50, 50), dtype=np.uint8), mode="L").save(folder / "gray.bmp")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _cfg(compose_cfg, *overrides):
    return compose_cfg(*overrides, config_name="predict", smoke=False)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_csv_annotations_and_gradcam(compose_cfg, checkpoint, photos, tmp_path, one_thread):
    out = tmp_path / "out"
    cfg = _cfg(compose_cfg, f"ckpt_path={checkpoint}", f"inputs={photos}", f"image_size={SIZE}", "grayscale=true",
               "annotate=true", "gradcam=true", "batch_size=2")
    result = predict.predict(cfg, out)

    rows = _rows(out / "predictions.csv")
    classes = result.classes
    assert list(rows[0]) == ["path", "face_found", "face_x", "face_y", "face_w", "face_h", "pred",
                             *[f"prob_{c}" for c in classes]]
    assert sorted(Path(r["path"]).name for r in rows) == ["face.png", "gray.bmp", "noise.jpg"]
    for row in rows:
        probs = np.array([float(row[f"prob_{c}"]) for c in classes])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["pred"] == classes[int(probs.argmax())]
        assert row["face_found"] == "" and row["face_x"] == ""  # no detection asked for
    skipped = {Path(p).name: reason for p, reason in result.skipped}
    assert set(skipped) == {"broken.png", "empty.jpg"}  # notes.txt is not an image extension: not an input
    assert "empty file" in skipped["empty.jpg"]
    assert {Path(r["path"]).name for r in _rows(out / "skipped.csv")} == {"broken.png", "empty.jpg"}

    assert len(result.annotated) == 3 and len(result.gradcam) == 3
    annotated = out / "annotated" / "sub" / "noise.jpg.png"
    assert annotated in result.annotated
    with Image.open(annotated) as img:
        assert img.size == (64, 40)
    with Image.open(out / "gradcam" / "face.png.png") as img:
        assert img.size == (predict.GRADCAM_MIN_SIDE, predict.GRADCAM_MIN_SIDE)


def test_probabilities_are_the_models_on_training_preprocessing(compose_cfg, checkpoint, photos, tmp_path, one_thread):
    """Batching does not change a prediction, and each equals the model on the training decode + normalisation."""
    single = predict.predict(_cfg(compose_cfg, f"ckpt_path={checkpoint}", f"inputs={photos / 'face.png'}",
                                  f"image_size={SIZE}", "grayscale=false", "batch_size=1"), tmp_path / "one")
    batched = predict.predict(_cfg(compose_cfg, f"ckpt_path={checkpoint}", f"inputs={photos}",
                                   f"image_size={SIZE}", "grayscale=false", "batch_size=8"), tmp_path / "all")
    module = trained.load_module(checkpoint)
    with Image.open(photos / "face.png") as img:
        x = to_model_input(torch.from_numpy(pil_to_array(img, SIZE, grayscale=False))[None], 3)
    with torch.no_grad():
        expected = module(x).softmax(1)[0].tolist()
    row = next(r for r in batched.rows if r["path"].endswith("face.png"))
    for k, c in enumerate(single.classes):
        assert single.rows[0][f"prob_{c}"] == pytest.approx(expected[k], abs=1e-5)
        assert row[f"prob_{c}"] == pytest.approx(expected[k], abs=1e-5)


def test_preprocessing_required_without_checkpoint_metadata(compose_cfg, checkpoint, photos, tmp_path):
    cfg = _cfg(compose_cfg, f"ckpt_path={checkpoint}", f"inputs={photos}")
    with pytest.raises(ValueError, match="holds no preprocessing.*image_size= and grayscale="):
        predict.predict(cfg, tmp_path)


def test_preprocessing_from_checkpoint_metadata():
    hparams = {"model_spec": {"in_chans": 1},
               "preprocessing": {"image_size": 48, "grayscale": True, "normalize": {"mean": [0.5, 0.4, 0.3],
                                                                                   "std": [0.2, 0.2, 0.2]}}}
    pre = trained.resolve_preprocessing(hparams)
    assert (pre.image_size, pre.grayscale, pre.in_chans) == (48, True, 1)
    assert pre.channel_mean == pytest.approx([0.4]) and pre.channel_std == pytest.approx([0.2])
    assert trained.resolve_preprocessing(hparams, image_size=48).image_size == 48
    with pytest.raises(ValueError, match="image_size=224 contradicts .* image_size=48"):
        trained.resolve_preprocessing(hparams, image_size=224)
    with pytest.raises(ValueError, match="lacks"):
        trained.resolve_preprocessing({"model_spec": {}, "preprocessing": {"image_size": 48}})
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        trained.resolve_preprocessing({"model_spec": {}}, image_size=0, grayscale=True)


def test_expand_inputs(photos, compose_cfg):
    images = {"face.png", "gray.bmp", "noise.jpg", "broken.png", "empty.jpg"}
    assert {p.name for p in predict.expand_inputs(str(photos))} == images
    assert [p.name for p in predict.expand_inputs(f"{photos}/*.png")] == ["broken.png", "face.png"]
    assert {p.name for p in predict.expand_inputs(f"{photos}/**/*.jpg")} == {"empty.jpg", "noise.jpg"}
    both = predict.expand_inputs([str(photos / "face.png"), str(photos), str(photos / "notes.txt")])
    assert both[0].name == "face.png" and len(both) == len(images) + 1  # deduplicated; an explicit file is kept
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        predict.expand_inputs(str(photos / "nowhere.jpg"))
    with pytest.raises(ValueError, match=r"\*\.tif.*matched no image"):
        predict.expand_inputs(f"{photos}/*.tif")
    # the command line's override parser keeps globs and lists as given
    cfg = _cfg(compose_cfg, "ckpt_path=x.ckpt", f"inputs=[{photos}/*.png,{photos}/sub]")
    assert list(cfg.inputs) == [f"{photos}/*.png", f"{photos}/sub"]


# face crops ---------------------------------------------------------------------------------------

def test_square_box_geometry():
    # centred on the face, side = max(w, h) * (1 + 2 * margin)
    assert face.square_box(Box(100, 100, 40, 60), 0.25, 400, 300) == Box(75, 85, 90, 90)
    # at a border: shifted inside, never padded
    assert face.square_box(Box(0, 10, 40, 40), 0.5, 400, 300) == Box(0, 0, 80, 80)
    assert face.square_box(Box(380, 280, 20, 20), 0.5, 400, 300) == Box(360, 260, 40, 40)
    # larger than the image: capped at the shorter side
    assert face.square_box(Box(10, 5, 100, 100), 0.5, 200, 120) == Box(0, 0, 120, 120)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        face.square_box(Box(0, 0, 10, 10), -0.1, 100, 100)


def test_crop_face_with_a_mocked_detector():
    image = Image.new("L", (200, 100), 0)
    image.paste(255, (120, 30, 160, 70))  # the "face": 40 x 40 white square
    crop, box = face.crop_face(image, lambda img: Box(120, 30, 40, 40), margin=0.25)
    assert box == Box(110, 20, 60, 60) and crop.size == (60, 60)
    pixels = np.asarray(crop)
    assert pixels[10:50, 10:50].min() == 255 and pixels[:10].max() == 0  # the face, centred, with its margin
    same, none = face.crop_face(image, lambda img: None)
    assert none is None and same is image


def test_predict_face_crop_columns_and_no_face(compose_cfg, checkpoint, photos, tmp_path, monkeypatch, one_thread):
    class FakeDetector:
        def __init__(self, **kwargs):
            assert kwargs == {"scale_factor": 1.1, "min_neighbors": 5, "min_size": 24}

        def __call__(self, image):
            return Box(40, 20, 64, 64) if image.size == (160, 120) else None

    monkeypatch.setattr(predict, "HaarFaceDetector", FakeDetector)
    overrides = [f"ckpt_path={checkpoint}", f"inputs=[{photos}/face.png,{photos}/gray.bmp]", f"image_size={SIZE}",
                 "grayscale=true", "face_crop=haar", "face_margin=0.25", "annotate=true"]
    result = predict.predict(_cfg(compose_cfg, *overrides), tmp_path / "keep")
    rows = {Path(r["path"]).name: r for r in _rows(tmp_path / "keep" / "predictions.csv")}
    assert {k: rows["face.png"][k] for k in ("face_found", "face_x", "face_y", "face_w", "face_h")} == \
        {"face_found": "1", "face_x": "24", "face_y": "4", "face_w": "96", "face_h": "96"}
    assert rows["gray.bmp"]["face_found"] == "0" and rows["gray.bmp"]["face_x"] == ""
    with Image.open(tmp_path / "keep" / "annotated" / "face.png.png") as img:
        assert img.convert("RGB").getpixel((24, 60)) == (255, 64, 32)  # the box's left edge is drawn
    assert len(result.annotated) == 2

    skipping = predict.predict(_cfg(compose_cfg, *overrides, "no_face=skip"), tmp_path / "skip")
    assert [Path(r["path"]).name for r in skipping.rows] == ["face.png"]
    assert [(Path(p).name, why) for p, why in skipping.skipped] == [("gray.bmp", "no face found")]


def test_haar_cascade_ships_with_opencv():
    path = face.cascade_path()
    assert path.name == face.CASCADE_FILE and path.stat().st_size > 100_000


@pytest.mark.skipif(not FER2013.is_dir(), reason=f"{FER2013} is absent")
def test_haar_finds_fer2013_faces_pasted_off_centre(one_thread):
    """Real faces at random positions and scales on a larger noise background (nothing is written to disk)."""
    files = sorted((FER2013 / "test" / "happy").glob("*.jpg"))[:12]
    detector = face.HaarFaceDetector()
    rng = random.Random(0)
    hits = 0
    for i, path in enumerate(files):
        side = rng.randint(72, 120)
        background = Image.fromarray(np.random.default_rng(i).integers(90, 170, (240, 320), dtype=np.uint8))
        x, y = rng.randint(0, 320 - side), rng.randint(0, 240 - side)
        with Image.open(path) as img:
            background.paste(img.convert("L").resize((side, side), Image.Resampling.BILINEAR), (x, y))
        box = detector(background)
        if box is None:
            continue
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        assert x <= cx <= x + side and y <= cy <= y + side, f"{path.name}: box {box} is not on the face"
        assert 0.6 * side <= box.w <= 1.2 * side
        hits += 1
    print(f"the cascade found {hits} of {len(files)} faces")
    assert hits >= len(files) // 2, f"the cascade found {hits} of {len(files)} faces"


@pytest.mark.slow
def test_cli(checkpoint, photos, tmp_path):
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "fer_ablation.predict", f"ckpt_path={checkpoint}",
                           f"inputs={photos}/*.png", f"image_size={SIZE}", "grayscale=true", f"out={out}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [Path(r["path"]).name for r in _rows(out / "predictions.csv")] == ["face.png"]
    assert "skipped" in done.stdout + done.stderr and "broken.png" in done.stdout + done.stderr
