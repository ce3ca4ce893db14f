"""data.face_crop on the data path, with a stand-in detector: the crop, the cache key, the counts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_ablation.data import DataError, build_datamodule
from fer_ablation.data import faces
from fer_ablation.data.face import Box

SIZE = 40


class MarkedFaceDetector:
    """A 'face' is a white 10 x 10 square at (20, 10); an image without it has no face."""

    def __init__(self, *args, **kwargs):
        self.calls = 0

    def __call__(self, image: Image.Image):
        self.calls += 1
        return Box(20, 10, 10, 10) if np.asarray(image.convert("L"))[15, 25] == 255 else None


@pytest.fixture
def marked_faces(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "HaarFaceDetector", MarkedFaceDetector)
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for name in ("happy", "sad"):
        for i in range(6):
            pixels = rng.integers(0, 200, (SIZE, SIZE), dtype=np.uint8)
            if i < 4:  # 4 of 6 images per class have a face
                pixels[10:20, 20:30] = 255
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")
    return root


def cfg(root, tmp_path, **kw):
    return {"name": "imagefolder", "root": str(root), "image_size": 8, "val_fraction": 0.5,
            "classes": ["happiness", "sadness"], "cache_dir": str(tmp_path / "cache"), "augment": {"enabled": False},
            **kw}


def test_face_crop_is_in_the_cache_key_and_counted(marked_faces, tmp_path):
    plain = build_datamodule(cfg(marked_faces, tmp_path))
    plain.setup()
    cropped = build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", face_margin=0.0))
    cropped.setup()
    assert cropped._decoded["train"].cache_file != plain._decoded["train"].cache_file
    summary = cropped.describe()
    with_face = {s: sum(int(Path(p).stem) < 4 for p in cropped.split_paths(s)) for s in ("train", "val", "test")}
    assert sum(with_face.values()) == 8
    assert summary["faces"] == {s: {"found": n, "not_found": len(cropped.split_paths(s)) - n, "skipped": 0}
                                for s, n in with_face.items()}
    assert summary["face_crop"] == {"face_crop": "haar", "face_margin": 0.0, "no_face": "keep"}
    assert plain.describe()["faces"] == {} and plain.describe()["face_crop"] is None

    # a found face is the white square, cropped and resized; an image without one is kept whole
    images = np.asarray(cropped._decoded["train"].images)
    paths = cropped.split_paths("train")
    for image, path in zip(images, paths):
        whole = np.asarray(Image.open(path).convert("L").resize((8, 8), Image.Resampling.BILINEAR))
        if int(Path(path).stem) < 4:
            assert (image == 255).all()
        else:
            assert (image[0] == whole).all()

    again = build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", face_margin=0.0))
    again.setup()
    assert again._decoded["train"].reused and again.describe()["faces"] == summary["faces"]
    margin = build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", face_margin=0.5))
    margin.setup("fit")
    assert margin._decoded["train"].cache_file != cropped._decoded["train"].cache_file


def test_no_face_skip_leaves_images_out_without_counting_them_unreadable(marked_faces, tmp_path):
    dm = build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", no_face="skip", max_skipped_fraction=0.0))
    dm.setup()
    kept = dm.split_paths("train") + dm.split_paths("val") + dm.split_paths("test")
    assert len(kept) == 8 and all(int(Path(p).stem) < 4 for p in kept)
    counts = dm.describe()["faces"]
    assert sum(c["found"] for c in counts.values()) == 8
    assert all(c["not_found"] == c["skipped"] for c in counts.values())
    assert sum(c["found"] + c["not_found"] for c in counts.values()) == 12
    assert dm.skipped_files == []


def test_face_crop_settings_are_checked(marked_faces, tmp_path):
    with pytest.raises(DataError, match="face_crop='dlib'"):
        build_datamodule(cfg(marked_faces, tmp_path, face_crop="dlib"))
    with pytest.raises(DataError, match="no_face='drop'"):
        build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", no_face="drop"))
    with pytest.raises(DataError, match="in_memory"):
        build_datamodule(cfg(marked_faces, tmp_path, face_crop="haar", in_memory=False)).setup("fit")


def test_checkpoint_preprocessing_records_the_face_crop(compose_cfg):
    from fer_ablation.train.training import model_spec, preprocessing

    cfg = compose_cfg("data.face_crop=haar", "data.face_margin=0.1")
    pre = preprocessing(cfg, model_spec(cfg))
    assert (pre["face_crop"], pre["face_margin"]) == ("haar", 0.1)
    assert preprocessing(compose_cfg(), model_spec(cfg))["face_crop"] == "none"
