"""Sample sources (FER2013 folders and csv, image folders, RAF-DB), decoding and the datamodule's error handling.

Every fixture image is generated here with PIL (a few pixels in size); the real FER2013 folder is only listed.
"""

import csv
import json
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer_ablation.data import CLASSES, DataError, build_datamodule
from fer_ablation.data.decode import decode_file
from fer_ablation.data.fer2013 import fer2013_csv_samples, fer2013_samples
from fer_ablation.data.folders import imagefolder_samples, stratified_split
from fer_ablation.data.rafdb import rafdb_samples

pytestmark = pytest.mark.filterwarnings("ignore:.*has no images of class")
REAL_FER2013 = Path("/work/shared/data/fer2013")
IDX = {c: i for i, c in enumerate(CLASSES)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_ABLATION_CACHE", str(tmp_path / "cache"))


def write_image(path, size=(12, 10), mode="L", seed=0):
    """A random image of ``size`` (w, h) saved in ``mode``; returns its path."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)
    img.save(path)
    return path


def make_class_folders(root, counts, ext="png", prefix="img"):
    """Images with distinct pixels, also across folders (train/ and val/ never share an image)."""
    offset = 1000 * (zlib.crc32(Path(root).name.encode()) % 10_000)
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(Path(root) / name / f"{prefix}_{i:03d}.{ext}", seed=offset + 100 * k + i)


def cfg(root, **kw):
    return {"name": "imagefolder", "root": str(root), "image_size": 16, "max_skipped_fraction": 0.0, **kw}


# ---------------------------------------------------------------- FER2013
def test_fer2013_folders_private_test_and_aliases(tmp_path):
    for k, name in enumerate(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]):
        write_image(tmp_path / "train" / name / f"Training_{k}0.jpg", seed=k)
        write_image(tmp_path / "train" / name / f"Training_{k}1.jpg", seed=k + 10)
        write_image(tmp_path / "test" / name / f"PublicTest_{k}.jpg", seed=k + 20)
        write_image(tmp_path / "test" / name / f"PrivateTest_{k}.jpg", seed=k + 30)
    write_image(tmp_path / "test" / "happy" / "other_name.jpg")
    s = fer2013_samples(tmp_path, val_fraction=0.1)
    # val: a stratified hold-out of Training (one image of each class); test = PublicTest; private = PrivateTest
    assert {k: len(v) for k, v in s.splits.items()} == {"train": 7, "val": 7, "test": 8, "private": 7}
    assert all(Path(p).name.startswith("Training_") for p in s.splits["val"].paths)
    assert all(Path(p).name.startswith("PrivateTest_") for p in s.splits["private"].paths)
    assert sum(Path(p).name == "other_name.jpg" for p in s.splits["test"].paths) == 1
    assert s.sources["val"] == "stratified hold-out of Training (0.1, split_seed 0)"
    for split in s.splits.values():  # folder names mapped by name: angry -> anger (0), happy -> happiness (3)
        for path, target in zip(split.paths, split.targets):
            folder = Path(path).parent.name
            assert CLASSES[target] == {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(folder, folder)

    dm = build_datamodule({"name": "fer2013", "root": str(tmp_path), "image_size": 16, "report_split": "private"})
    dm.setup("fit")
    assert dm.eval_splits == ["val", "test", "private"] and dm.report_split == "private"
    assert {s: r["role"] for s, r in dm.split_roles().items()} == {
        "train": "train", "val": "select", "test": "report", "private": "report"}
    dm.test_split = "private"
    images, targets, indices = next(iter(dm.test_dataloader()))
    assert images.shape == (7, 1, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(targets, dm.split_targets("private")[indices])


def test_fer2013_folders_without_private_test(tmp_path):
    for k, name in enumerate(("angry", "happy")):
        write_image(tmp_path / "train" / name / "Training_1.jpg", seed=k)
        write_image(tmp_path / "train" / name / "Training_2.jpg", seed=k + 10)
        write_image(tmp_path / "test" / name / "PublicTest_1.jpg", seed=k + 20)
    s = fer2013_samples(tmp_path)
    assert set(s.splits) == {"train", "val", "test"}
    dm = build_datamodule({"name": "fer2013", "root": str(tmp_path)})
    assert dm.has_test and dm.eval_splits == ["val", "test"]
    with pytest.raises(DataError, match="report_split=private .* has no private split"):
        build_datamodule({"name": "fer2013", "root": str(tmp_path), "report_split": "private"}).setup("fit")


def write_fer_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    return path


def pixels(value, n=2304):
    return " ".join([str(value)] * n)


def test_fer2013_csv(tmp_path):
    rows = [(k % 7, pixels(k * 10), usage) for k, usage in
            enumerate(["Training"] * 7 + ["PublicTest"] * 3 + ["PrivateTest"] * 2)]
    write_fer_csv(tmp_path / "fer2013.csv", rows)
    rows += [(k % 7, pixels(k + 1), "Training") for k in range(7)]  # two Training images per class
    write_fer_csv(tmp_path / "fer2013.csv", rows)
    for root in (tmp_path, tmp_path / "fer2013.csv"):
        s = fer2013_samples(root)
        assert {k: len(v) for k, v in s.splits.items()} == {"train": 7, "test": 3, "private": 2, "val": 7}
    assert sorted(s.splits["train"].targets) == list(range(7))
    assert s.splits["test"].paths[0] == f"{tmp_path / 'fer2013.csv'}:9"  # header is line 1
    assert s.splits["private"].pixels.shape == (2, 48, 48) and int(s.splits["private"].pixels[1, 5, 5]) == 110

    dm = build_datamodule({"name": "fer2013", "root": str(tmp_path), "image_size": 24})
    dm.setup("test")
    dm.test_split = "private"
    images, targets, _ = next(iter(dm.test_dataloader()))
    assert images.shape == (2, 1, 24, 24) and torch.all(images[1] == 110)


@pytest.mark.parametrize("bad_row, message", [
    ((3, pixels(1, 2303), "Training"), "line 3: pixels has 2303 values, expected 2304"),
    ((7, pixels(1), "Training"), "FER2013 emotion '7' in .*line 3 is not one of 0..6"),
    ((2, pixels(300), "Training"), "line 3: pixel values must be in 0..255"),
    ((2, pixels(1)[:-1] + "x", "Training"), "line 3: pixels .* is not a list of integers"),
    ((2, pixels(1), "Validation"), "line 3: Usage 'Validation' is not one of"),
])
def test_fer2013_csv_bad_rows(tmp_path, bad_row, message):
    path = write_fer_csv(tmp_path / "fer2013.csv", [(0, pixels(1), "Training"), bad_row, (1, pixels(2), "PublicTest")])
    with pytest.raises(DataError, match=message):
        fer2013_csv_samples(path)


@pytest.mark.skipif(not REAL_FER2013.is_dir(), reason="real FER2013 folder not present")
def test_real_fer2013_counts():
    s = fer2013_samples(REAL_FER2013, val_fraction=0.1)
    train_counts = np.bincount(s.splits["train"].targets, minlength=7) + np.bincount(s.splits["val"].targets, minlength=7)
    test_counts = np.bincount(s.splits["test"].targets, minlength=7)
    # README: angry 3995/467, disgust 436/56, fear 4097/496, happy 7215/895, sad 4830/653, surprise 3171/415,
    # neutral 4965/607 (train/test), in canonical order
    assert train_counts.tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert test_counts.tolist() == [467, 56, 496, 895, 653, 415, 607]
    # val: ceil(0.1 n) of each class of Training
    assert np.bincount(s.splits["val"].targets, minlength=7).tolist() == [math.ceil(0.1 * n) for n in train_counts]
    assert set(s.splits) == {"train", "val", "test"}
    first = decode_file(s.splits["test"].paths[0], 48, True)  # decode one file only
    assert first.shape == (1, 48, 48) and first.dtype == np.uint8


# ---------------------------------------------------------------- image folders
def test_split_folder_layout_with_aliases(tmp_path):
    make_class_folders(tmp_path / "train", {"Angry": 3, "happiness": 2, "Surprised": 2})
    make_class_folders(tmp_path / "Val", {"anger": 1, "happy": 1, "surprise": 1})
    make_class_folders(tmp_path / "test", {"scared": 2})
    s = imagefolder_samples(tmp_path)
    assert s.layout == "split" and s.split_seed is None
    assert sorted(s.splits["train"].targets) == [0, 0, 0, 3, 3, 5, 5]
    assert sorted(s.splits["val"].targets) == [0, 3, 5]
    assert s.splits["test"].targets == [2, 2]


def test_train_and_test_folders_without_val(tmp_path):
    make_class_folders(tmp_path / "train", {"angry": 5, "happy": 5})
    make_class_folders(tmp_path / "test", {"angry": 1, "happy": 1})
    s = imagefolder_samples(tmp_path, val_fraction=0.2, split_seed=0)
    assert s.layout == "split (val split off train)" and s.split_seed == 0
    assert {k: len(v) for k, v in s.splits.items()} == {"train": 8, "val": 2, "test": 2}


def test_unsplit_folder_stratified_split(tmp_path):
    make_class_folders(tmp_path, {"angry": 10, "happy": 6, "sad": 3, "neutral": 1})
    s = imagefolder_samples(tmp_path, val_fraction=0.2, split_seed=3)
    assert s.layout == "unsplit" and s.split_seed == 3
    val = np.bincount(s.splits["val"].targets, minlength=7)
    train = np.bincount(s.splits["train"].targets, minlength=7)
    # ceil(0.2 n) per class, at most n - 1: 10 -> 2, 6 -> 2, 3 -> 1, 1 -> 0
    assert val[[0, 3, 4, 6]].tolist() == [2, 2, 1, 0]
    test = np.bincount(s.splits["test"].targets, minlength=7)
    assert (train + test)[[0, 3, 4, 6]].tolist() == [8, 4, 2, 1] and test.sum() > 0  # test: held out of the rest
    assert not set(s.splits["val"].paths) & set(s.splits["train"].paths)
    assert not set(s.splits["test"].paths) & (set(s.splits["train"].paths) | set(s.splits["val"].paths))
    again = imagefolder_samples(tmp_path, val_fraction=0.2, split_seed=3)
    assert again.splits["val"].paths == s.splits["val"].paths
    other = imagefolder_samples(tmp_path, val_fraction=0.2, split_seed=4)
    assert other.splits["val"].paths != s.splits["val"].paths


def test_stratified_split_gives_the_papers_1501_379():
    # 1,880 images over 7 classes; per-class ceil(0.2 * n) gives 379 val for these counts (the paper's numbers)
    counts = [261, 122, 273, 419, 298, 247, 260]
    targets = np.repeat(np.arange(7), counts)
    train, val = stratified_split(targets, 0.2, seed=0)
    assert (len(train), len(val)) == (1501, 379)
    assert sorted(train + val) == list(range(1880))
    assert np.bincount(targets[val]).tolist() == [math.ceil(0.2 * n) for n in counts]
    assert stratified_split(targets, 0.2, seed=0) == (train, val)
    # classes are drawn independently: changing one class's members leaves the others' choice unchanged
    _, val_other = stratified_split(np.concatenate([targets, [6]]), 0.2, seed=0)
    assert [v for v in val_other if targets[v] != 6 if v < 1880] == [v for v in val if targets[v] != 6]


def test_unknown_class_folder_error_and_ignore(tmp_path):
    make_class_folders(tmp_path, {"angry": 4, "pain": 2, "happy": 4})
    with pytest.raises(DataError) as err:
        build_datamodule(cfg(tmp_path)).setup("fit")
    msg = str(err.value)
    assert "'pain'" in msg and str(tmp_path) in msg and "angry" in msg and "happiness" in msg
    with pytest.warns(UserWarning, match="pain"):
        dm = build_datamodule(cfg(tmp_path, ignore_unknown_classes=True, val_fraction=0.25, test_fraction=0.25))
        dm.setup("fit")
    assert dm.describe()["skipped_classes"] == ["pain"]
    assert sorted(dm.split_targets("train").tolist() + dm.split_targets("val").tolist()
                  + dm.split_targets("test").tolist()) == [0] * 4 + [3] * 4


def test_listing_warnings_nested_merged_and_ignored(tmp_path):
    make_class_folders(tmp_path / "train", {"angry": 4, "happy": 3, "happiness": 2})
    make_class_folders(tmp_path / "val", {"angry": 2, "happy": 2})
    write_image(tmp_path / "train" / "angry" / "rejected" / "a.png")
    write_image(tmp_path / "train" / "angry" / "rejected" / "deeper" / "b.png")
    write_image(tmp_path / "val" / "happy" / "more" / "c.png")
    for name in ("notes.txt", "face.heic", "img_000.png.bak"):
        (tmp_path / "train" / "happy" / name).write_text("x")
    (tmp_path / "val" / "angry" / "list.csv").write_text("x")
    (tmp_path / "val" / "angry" / ".DS_Store").write_text("x")  # hidden files are not reported
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        s = imagefolder_samples(tmp_path)
    messages = [str(w.message) for w in record]
    nested = [m for m in messages if "subfolders" in m]
    merged = [m for m in messages if "merged" in m]
    ignored = [m for m in messages if "extension" in m]
    assert len(nested) == len(merged) == len(ignored) == 1 and len(messages) == 3, messages
    assert "3 image(s)" in nested[0] and str(Path("rejected") / "deeper" / "b.png") in nested[0]
    assert "happiness" in merged[0] and "'happy'" in merged[0] and str(tmp_path / "train") in merged[0]
    assert "4 file(s)" in ignored[0] and "notes.txt" in ignored[0] and ".heic" in ignored[0]
    assert s.listing_warnings == {"nested_files": 3, "merged_alias_folders": 1, "ignored_extensions": 4,
                                  "non_utf8_names": 0}
    # nested files keep their class folder's label; merged folders are one class
    train = s.splits["train"].targets + s.splits["test"].targets  # test: held out of train/
    assert sorted(train) == [0] * 6 + [3] * 5 and sorted(s.splits["val"].targets) == [0, 0, 3, 3, 3]

    dm = build_datamodule(cfg(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup("fit")
    assert dm.describe()["listing_warnings"] == s.listing_warnings


def test_fer2013_folders_report_listing_warnings(tmp_path):
    for name in ("angry", "happy", "Happy"):
        write_image(tmp_path / "train" / name / "Training_1.jpg")
        write_image(tmp_path / "test" / name / "PublicTest_1.jpg")
    (tmp_path / "train" / "angry" / "Training_2.jpg.part").write_text("x")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        s = fer2013_samples(tmp_path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2, messages
    assert any("2 class(es) merged" in m and "'Happy', 'happy'" in m for m in messages)
    assert any("1 file(s)" in m and "Training_2.jpg.part" in m for m in messages)
    assert s.listing_warnings == {"nested_files": 0, "merged_alias_folders": 2, "ignored_extensions": 1,
                                  "non_utf8_names": 0}


def test_clean_folder_gives_no_listing_warning(tmp_path):
    make_class_folders(tmp_path, {"angry": 3, "happy": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = imagefolder_samples(tmp_path)
    assert s.listing_warnings == {"nested_files": 0, "merged_alias_folders": 0, "ignored_extensions": 0,
                                  "non_utf8_names": 0}


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_missing_or_empty_root(tmp_path, make):
    root = tmp_path / "data"
    if make != "missing":
        root.mkdir()
    if make == "no_images":
        (root / "angry").mkdir()
        (root / "angry" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as err, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        build_datamodule(cfg(root)).setup("fit")
    msg = str(err.value)
    assert str(root) in msg and "accepted layouts" in msg and "<root>/train/<class>" in msg
    # a folder of files with other extensions says which files it ignored before it reports no images
    assert [str(w.message).count("notes.txt") for w in record] == ([1] if make == "no_images" else [])


def test_config_errors(tmp_path):
    with pytest.raises(DataError, match="not one of synthetic, fer2013, imagefolder, rafdb"):
        build_datamodule({"name": "ckplus"})
    with pytest.raises(DataError, match="root is required"):
        build_datamodule({"name": "fer2013"})
    with pytest.raises(DataError, match="in_memory"):
        build_datamodule({"name": "imagefolder", "root": str(tmp_path), "in_memory": "sometimes"})


def test_omegaconf_config_and_defaults(tmp_path):
    from omegaconf import OmegaConf

    make_class_folders(tmp_path, {"angry": 5, "happy": 5})
    dm = build_datamodule(OmegaConf.create({"name": "imagefolder", "root": str(tmp_path), "augment": {"hflip": False}}))
    assert dm.cfg["batch_size"] == 32 and dm.cfg["image_size"] == 48 and dm.cfg["augment"]["crop_padding"] == 4
    assert dm.augment.hflip is False
    dm.setup("fit")
    d = dm.describe()
    assert d["splits"] == {"train": 6, "val": 2, "test": 2} and d["in_memory"] is True and d["skipped"] == 0
    assert d["layout"] == "unsplit" and d["split_seed"] == 0


# ---------------------------------------------------------------- decoding
@pytest.mark.parametrize("grayscale", [True, False])
def test_mixed_modes_and_sizes(tmp_path, grayscale):
    modes = ["L", "RGB", "RGBA", "P", "I;16", "LA", "1"]
    sizes = [(10, 10), (60, 50), (13, 31), (48, 48), (20, 12), (9, 17), (33, 33)]
    for k, (mode, size) in enumerate(zip(modes, sizes)):
        write_image(tmp_path / "train" / "happy" / f"{k}_{mode.replace(';', '')}.png", size, mode, seed=k)
        write_image(tmp_path / "val" / "happy" / f"{k}.png", size, mode, seed=k + 7)
        write_image(tmp_path / "test" / "happy" / f"{k}.png", size, mode, seed=k + 14)
    dm = build_datamodule(cfg(tmp_path, image_size=24, grayscale=grayscale))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with no images
        dm.setup("fit")
    assert dm.skipped_files == []
    images, targets, indices = next(iter(dm.train_dataloader()))
    assert images.shape == (7, 1 if grayscale else 3, 24, 24) and images.dtype == torch.uint8
    assert (targets == 3).all() and sorted(indices.tolist()) == list(range(7))


def test_decoding_values(tmp_path):
    # grayscale: PIL's ITU-R 601 luma; 16-bit images scaled to 8 bits (not clipped); no resize at native size
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "red.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "white16.png")
    Image.fromarray(np.full((8, 8), 257 * 100, np.uint16)).save(tmp_path / "grey16.png")
    assert (decode_file(str(tmp_path / "red.png"), 8, True) == 76).all()
    assert decode_file(str(tmp_path / "red.png"), 8, False)[:, 0, 0].tolist() == [255, 0, 0]
    assert (decode_file(str(tmp_path / "white16.png"), 8, True) == 255).all()
    assert (decode_file(str(tmp_path / "grey16.png"), 4, True) == 100).all()
    gradient = np.tile(np.arange(0, 240, 30, dtype=np.uint8), (8, 1))
    Image.fromarray(gradient).save(tmp_path / "grad.png")
    assert np.array_equal(decode_file(str(tmp_path / "grad.png"), 8, True)[0], gradient)


def test_16bit_scaled_by_the_types_range(tmp_path):
    # a near-black 16-bit image stays near black: 200/65535 of full scale is 0.8/255, not its own maximum
    dark = np.full((8, 8), 200, np.uint16)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert (decode_file(str(tmp_path / "dark16.png"), 8, True) <= 1).all()
    # one pixel at 256 does not change how the others are scaled
    dark[0, 0] = 256
    Image.fromarray(dark).save(tmp_path / "dark16_one_bright.png")
    assert (decode_file(str(tmp_path / "dark16_one_bright.png"), 8, True) <= 1).all()
    # 16-bit PGM (Pillow opens it as mode I with values on the 0..65535 scale)
    (tmp_path / "dark16.pgm").write_bytes(b"P5\n8 8\n65535\n" + np.full(64, 200, ">u2").tobytes())
    assert (decode_file(str(tmp_path / "dark16.pgm"), 8, True) <= 1).all()
    Image.fromarray(np.full((8, 8), 257 * 50, np.uint16)).save(tmp_path / "grey16.tif")
    assert (decode_file(str(tmp_path / "grey16.tif"), 8, True) == 50).all()


def test_32bit_integer_image_is_refused_not_guessed(tmp_path):
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(tmp_path / "int32.tif")
    with pytest.raises(ValueError, match="32-bit integer image .*convert it to 8 or 16 bits"):
        decode_file(str(tmp_path / "int32.tif"), 8, True)


def upright_and_stored(orientation):
    """(upright image, the file's pixels that a viewer rotates to upright under EXIF ``orientation``)."""
    upright = np.zeros((16, 16), np.uint8)
    upright[:8, :8] = 255  # white top-left quadrant: every rotation moves it to another corner
    # orientation 6: displayed = stored rotated 90 degrees clockwise; 8: counter-clockwise
    stored = np.rot90(upright, 1 if orientation == 6 else -1)
    return upright, stored


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_exif_orientation_applied(tmp_path, orientation, ext):
    upright, stored = upright_and_stored(orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation tag
    path = tmp_path / f"rotated.{ext}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 95} if ext == "jpg" else {}))
    decoded = decode_file(str(path), 16, True)[0].astype(int)
    assert np.abs(decoded - upright).mean() < 10, f"orientation {orientation} not applied:\n{decoded // 255}"


def non_utf8_folder(tmp_path):
    """An unsplit folder with one readable and one empty file whose names are not valid UTF-8."""
    make_class_folders(tmp_path / "data", {"angry": 5, "happy": 5})
    root = os.fsencode(tmp_path / "data")
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(root + b"/happy/caf\xe9_latin1.png")
    open(root + b"/angry/broken_\xff.png", "wb").close()
    return tmp_path / "data"


@pytest.mark.parametrize("in_memory", [True, False])
def test_non_utf8_file_names(tmp_path, in_memory):
    from fer_ablation.data.folders import display_path, is_valid_utf8

    root = non_utf8_folder(tmp_path)
    dm = build_datamodule(cfg(root, in_memory=in_memory, max_skipped_fraction=0.5))
    with pytest.warns(UserWarning) as record:
        dm.setup("fit")
    split = next(s for s in ("train", "val", "test") if any(os.fsencode(p).endswith(b"caf\xe9_latin1.png")
                                                     for p in dm.split_paths(s)))
    row = [os.fsencode(p).endswith(b"caf\xe9_latin1.png") for p in dm.split_paths(split)].index(True)
    assert len(dm.split_paths("train") + dm.split_paths("val") + dm.split_paths("test")) == 11  # decoded
    dm.test_split = split
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    found = [images[indices.tolist().index(row)] for images, _, indices in loader if row in indices.tolist()]
    assert len(found) == 1 and (found[0] == 90).all()
    # the unreadable one is skipped and named with its bytes escaped, in the list and in the warning
    assert dm.skipped_files == [(str(root / "angry" / "broken_\\xff.png"), "unreadable: empty file")]
    messages = [str(w.message) for w in record]
    assert any("broken_\\xff.png" in m for m in messages)
    assert any("caf\\xe9_latin1.png" in m and "not valid UTF-8" in m for m in messages)
    for m in messages:
        m.encode("utf-8")  # every warning can be written to a UTF-8 log
    assert display_path(dm.split_paths(split)[row]).endswith("caf\\xe9_latin1.png")
    assert display_path(str(root)) == str(root)
    assert dm.describe()["listing_warnings"]["non_utf8_names"] == 2
    # the cache index names files the same way (no lone surrogates that strict UTF-8 readers reject)
    index = [json.loads(f.read_text()) for f in (tmp_path / "cache").rglob("*.json")]
    written = [p for meta in index for p in meta["paths"] + [p for p, _ in meta["skipped"]]]
    assert len(index) == 3 and len(written) == 12 and all(is_valid_utf8(p) for p in written)  # train, val, test
    assert sum(p.endswith(("caf\\xe9_latin1.png", "broken_\\xff.png")) for p in written) == 2


def make_broken(tmp_path):
    make_class_folders(tmp_path / "train", {"angry": 10, "happy": 10})
    make_class_folders(tmp_path / "val", {"angry": 2, "happy": 2})
    make_class_folders(tmp_path / "test", {"angry": 2, "happy": 2})
    (tmp_path / "train" / "angry" / "empty.png").write_bytes(b"")
    good = write_image(tmp_path / "x" / "big.png", (40, 40), "RGB").read_bytes()
    (tmp_path / "train" / "happy" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "train" / "happy" / "text.jpg").write_text("not an image")


def test_unreadable_files_skipped_and_counted(tmp_path):
    make_broken(tmp_path)
    for in_memory in (True, False):
        dm = build_datamodule(cfg(tmp_path, max_skipped_fraction=0.2, in_memory=in_memory))
        with pytest.warns(UserWarning, match="skipped 3 unreadable train image"):
            dm.setup("fit")
        assert sorted(Path(p).name for p, _ in dm.skipped_files) == ["empty.png", "text.jpg", "truncated.png"]
        assert dict((Path(p).name, r) for p, r in dm.skipped_files)["empty.png"] == "unreadable: empty file"
        assert len(dm.split_paths("train")) == 20 and dm.describe()["skipped"] == 3
        assert sum(len(b[1]) for b in dm.train_dataloader()) == 20


def test_too_many_unreadable_files_fail(tmp_path):
    make_broken(tmp_path)
    with pytest.raises(DataError, match=r"(?s)3 of 23 train images \(13.0%\) could not be read.*truncated.png"):
        build_datamodule(cfg(tmp_path, max_skipped_fraction=0.1)).setup("fit")


def test_class_without_images_warns(tmp_path):
    make_class_folders(tmp_path / "train", {"angry": 2, "happy": 2})
    make_class_folders(tmp_path / "val", {"angry": 2})
    dm = build_datamodule(cfg(tmp_path))
    with pytest.warns(UserWarning, match=r"val split .* no images of class\(es\) disgust, fear, happiness"):
        dm.setup("fit")


# ---------------------------------------------------------------- RAF-DB
def make_rafdb(root, aligned=True):
    entries = [("train_00001.jpg", 5), ("train_00002.jpg", 1), ("train_00003.jpg", 7), ("test_0001.jpg", 4),
               ("test_0002.jpg", 6), ("train_00004.jpg", 5), ("train_00005.jpg", 1)]
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {c}\n" for n, c in entries))
    for k, (name, _) in enumerate(entries):
        stem = Path(name).stem
        path = root / "Image" / ("aligned" if aligned else "original") / (f"{stem}_aligned.jpg" if aligned else name)
        write_image(path, (20, 20), "RGB", seed=k)


@pytest.mark.parametrize("aligned", [True, False])
def test_rafdb(tmp_path, aligned):
    make_rafdb(tmp_path, aligned)
    s = rafdb_samples(tmp_path)
    assert set(s.splits) == {"train", "val", "test"}
    # labels 5, 1, 7 = sadness, surprise, neutral; 4, 6 = happiness, anger; test_* is the report split test,
    # val (selection) one image of each class of train_* that has two (a class keeps at least one in train)
    assert sorted(s.splits["train"].targets) == sorted([IDX["sadness"], IDX["surprise"], IDX["neutral"]])
    assert sorted(s.splits["val"].targets) == sorted([IDX["sadness"], IDX["surprise"]])
    assert all(Path(p).name.startswith("train_") for p in s.splits["val"].paths)
    assert s.splits["test"].targets == [IDX["happiness"], IDX["anger"]]
    assert all(Path(p).is_file() for p in s.splits["train"].paths)
    dm = build_datamodule({"name": "rafdb", "root": str(tmp_path), "grayscale": False, "image_size": 20})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm.setup("fit")
    assert dm.eval_splits == ["val", "test"] and dm.split_roles()["test"]["role"] == "report"
    images, _, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, 20, 20)


def test_rafdb_missing_image_and_bad_label(tmp_path):
    make_rafdb(tmp_path)
    os.remove(tmp_path / "Image" / "aligned" / "train_00002_aligned.jpg")
    dm = build_datamodule({"name": "rafdb", "root": str(tmp_path), "max_skipped_fraction": 0.5})
    with pytest.warns(UserWarning, match="skipped 1 unreadable (train|val)"):
        dm.setup("fit")
    assert dm.skipped_files == [(str(tmp_path / "Image" / "aligned" / "train_00002_aligned.jpg"), "missing file")]
    with open(tmp_path / "EmoLabel" / "list_patition_label.txt", "a") as f:
        f.write("train_00009.jpg 9\n")
    with pytest.raises(DataError, match="RAF-DB label .9. in .*line 8 is not one of 1..7"):
        rafdb_samples(tmp_path)
    with pytest.raises(DataError, match="accepted layouts"):
        rafdb_samples(tmp_path / "Image")


def test_rafdb_non_utf8_image_name(tmp_path):
    make_rafdb(tmp_path)
    with open(tmp_path / "EmoLabel" / "list_patition_label.txt", "ab") as f:
        f.write(b"train_caf\xe9.jpg 4\n")
    Image.new("RGB", (20, 20), (90, 90, 90)).save(os.fsencode(tmp_path) + b"/Image/aligned/train_caf\xe9_aligned.jpg")
    s = rafdb_samples(tmp_path)
    assert os.fsencode(s.splits["train"].paths[-1]).endswith(b"/train_caf\xe9_aligned.jpg")
    assert s.splits["train"].targets[-1] == IDX["happiness"]
    assert (decode_file(s.splits["train"].paths[-1], 20, True) == 90).all()


def test_fer2013_csv_not_utf8_names_the_file(tmp_path):
    path = write_fer_csv(tmp_path / "fer2013.csv", [(0, pixels(1), "Training"), (1, pixels(2), "PublicTest")])
    with open(path, "ab") as f:
        f.write(b'2,"1 2 \xff",Training\n')
    with pytest.raises(DataError, match=r"fer2013.csv.* line 4: not valid UTF-8"):
        fer2013_csv_samples(path)


# ---------------------------------------------------------------- synthetic probe through the datamodule
def test_synthetic_through_datamodule():
    dm = build_datamodule({"name": "synthetic", "n_images": 70, "n_val": 14, "n_test": 21, "image_size": 32})
    dm.setup("fit")
    assert dm.describe()["splits"] == {"train": 56, "val": 14, "test": 21}
    assert {s: r["role"] for s, r in dm.split_roles().items()} == {"train": "train", "val": "select", "test": "report"}
    assert np.bincount(dm.split_targets("test"), minlength=7).tolist() == [3] * 7
    assert all(int(Path(p).stem) >= 70 for p in dm.split_paths("test"))  # new indices after the 70
    assert np.bincount(dm.split_targets("val"), minlength=7).tolist() == [2] * 7
    images, _, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (14, 1, 32, 32)


def test_holdout_false_keeps_an_unsplit_folder_whole_and_training_refuses_it(tmp_path):
    for k, name in enumerate(CLASSES):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("L", (40, 40), color=30 * k + i).save(tmp_path / name / f"{i}.png")
    dm = build_datamodule({"name": "imagefolder", "root": str(tmp_path), "holdout": False, "cache_dir": str(tmp_path / "c")})
    assert dm.describe()["splits"] == {"train": 21}
    with pytest.raises(DataError, match="data.holdout=false"):
        dm.setup("fit")
    split = build_datamodule({"name": "imagefolder", "root": str(tmp_path), "cache_dir": str(tmp_path / "c")})
    assert set(split.describe()["splits"]) == {"train", "val", "test"}
