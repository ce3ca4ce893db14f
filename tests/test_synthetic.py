"""Tests for the synthetic facial-expression probe generator (fer_ablation/data/synthetic.py)."""

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_ablation.data import synthetic
from fer_ablation.data.errors import DataError
from fer_ablation.data.labels import CLASSES

SMALL = {"n_images": 28, "n_val": 7, "image_size": 24, "clutter": 0.5, "face_scale": (0.6, 0.9), "seed": 3}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_knobs_give_identical_bytes_and_other_seed_differs(tmp_path):
    synthetic.generate(tmp_path / "a", **SMALL)
    synthetic.generate(tmp_path / "b", **SMALL)
    synthetic.generate(tmp_path / "c", **{**SMALL, "seed": 4})
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == SMALL["n_images"] + 1 and a == b
    pngs = [name for name in a if name.endswith(".png")]
    assert sorted(pngs) == sorted(name for name in c if name.endswith(".png"))
    assert sum(a[name] != c[name] for name in pngs) == len(pngs)


def test_image_does_not_depend_on_generation_order():
    first = [np.asarray(synthetic.render(i, image_size=24)[0]) for i in (5, 9, 11)]
    again = [np.asarray(synthetic.render(i, image_size=24)[0]) for i in (11, 9, 5)][::-1]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)


def test_default_split_is_stratified_and_balanced():
    split = synthetic.split_indices(1880, 379)
    train, val = split["train"], split["val"]
    assert (len(train), len(val)) == (1501, 379)
    assert sorted(train + val) == list(range(1880))
    per_class_val = np.bincount(np.array(val) % 7, minlength=7)
    per_class_train = np.bincount(np.array(train) % 7, minlength=7)
    assert per_class_val.max() - per_class_val.min() <= 1 and set(per_class_val) <= {54, 55}
    assert set(per_class_train) <= {214, 215}


def test_report_split_adds_images_after_the_existing_ones(tmp_path):
    """n_test appends images n_images.. as test/: the train and val files stay byte-identical."""
    knobs = {**SMALL, "n_images": 21, "n_val": 7, "image_size": 16}
    synthetic.generate(tmp_path / "without", **knobs)
    summary = synthetic.generate(tmp_path / "with", **knobs, n_test=14)
    assert summary["counts"]["test"] == {name: 2 for name in CLASSES}
    before = {p.relative_to(tmp_path / "without"): p.read_bytes() for p in (tmp_path / "without").glob("*/*/*.png")}
    after = {p.relative_to(tmp_path / "with"): p.read_bytes() for p in (tmp_path / "with").glob("*/*/*.png")}
    assert {k: v for k, v in after.items() if k.parts[0] != "test"} == before
    assert sorted(int(k.stem) for k in after if k.parts[0] == "test") == list(range(21, 35))
    assert synthetic.split_indices(21, 7, 14)["test"] == list(range(21, 35))


def test_generate_writes_folders_counts_and_record(tmp_path):
    summary = synthetic.generate(tmp_path, **{**SMALL, "n_images": 30, "n_val": 9})
    for split, expected_total in (("train", 21), ("val", 9)):
        on_disk = {name: len(list((tmp_path / split / name).glob("*.png"))) for name in CLASSES}
        assert on_disk == summary["counts"][split]
        assert sum(on_disk.values()) == expected_total
        assert max(on_disk.values()) - min(on_disk.values()) <= 1
    for path in tmp_path.glob("*/*/*.png"):
        assert CLASSES[int(path.stem) % 7] == path.parent.name
    record = json.loads((tmp_path / "probe.json").read_text())
    assert record["counts"] == summary["counts"] and record["knobs"]["seed"] == SMALL["seed"]
    assert record["version"] == synthetic.GENERATOR_VERSION


@pytest.mark.parametrize("grayscale, mode", [(True, "L"), (False, "RGB")])
def test_size_mode_and_png_roundtrip(tmp_path, grayscale, mode):
    synthetic.generate(tmp_path, **{**SMALL, "n_images": 7, "n_val": 0, "image_size": 20, "grayscale": grayscale})
    for path in tmp_path.glob("train/*/*.png"):
        with Image.open(path) as image:
            assert image.mode == mode and image.size == (20, 20)
            expected, _ = synthetic.render(int(path.stem), image_size=20, clutter=SMALL["clutter"],
                                           face_scale=SMALL["face_scale"], seed=SMALL["seed"], grayscale=grayscale)
            np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))


def test_png_encoder_multi_block_roundtrip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (150, 170, 3), dtype=np.uint8)  # > 65535 raw bytes
    path = tmp_path / "x.png"
    path.write_bytes(synthetic.png_bytes(pixels))
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_face_box_follows_face_scale():
    heights = {}
    for lo, hi in ((0.3, 0.5), (0.6, 0.9)):
        heights[lo] = []
        for i in range(21):
            _, info = synthetic.render(i, image_size=48, face_scale=(lo, hi))
            x0, y0, x1, y1 = info["face_box"]
            assert lo <= info["face_scale"] <= hi
            # Rotation (<= 16 degrees) shortens the box a little, the jaw drop lengthens it by < 10 %.
            assert 0.9 * info["face_scale"] <= (y1 - y0) / 48 <= 1.1 * info["face_scale"]
            assert x1 - x0 < y1 - y0
            assert -0.1 * 48 < (x0 + x1) / 2 < 1.1 * 48 and -0.1 * 48 < (y0 + y1) / 2 < 1.1 * 48
            heights[lo].append((y1 - y0) / 48)
    assert max(heights[0.3]) < min(heights[0.6])
    assert np.mean(heights[0.3]) < 0.45 < 0.65 < np.mean(heights[0.6])


def _background_residual(image: Image.Image, head_box) -> float:
    """Std of pixels outside the head box after removing a fitted plane (the lighting gradient)."""
    pixels = np.asarray(image, dtype=np.float64)
    size = pixels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    x0, y0, x1, y1 = head_box
    outside = (xx < x0 - 1) | (xx > x1 + 1) | (yy < y0 - 1) | (yy > y1 + 1)
    design = np.stack([np.ones(outside.sum()), xx[outside], yy[outside]], axis=1)
    values = pixels[outside]
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(np.std(values - design @ coef))


def test_clutter_zero_leaves_a_plain_background():
    plain, cluttered = [], []
    for i in range(14):
        for clutter, out in ((0.0, plain), (1.0, cluttered)):
            image, info = synthetic.render(i, image_size=48, clutter=clutter, face_scale=(0.3, 0.4))
            out.append(_background_residual(image, info["head_box"]))
    # Plain: only sensor noise remains around the plane; clutter adds objects and textures.
    assert max(plain) < synthetic.NOISE_SIGMA[1] + 2
    assert np.median(cluttered) > 2 * np.median(plain)
    assert sum(c > p + 3 for p, c in zip(plain, cluttered)) >= 10


def test_ensure_synthetic_reuses_cache_and_keys_by_knobs(tmp_path, monkeypatch):
    knobs = {**SMALL, "n_images": 14, "n_val": 7, "n_test": 7, "image_size": 16}
    root = synthetic.ensure_synthetic(tmp_path, **knobs)
    assert root.parent == tmp_path / "synthetic"
    assert [len(list(root.glob(f"{s}/*/*.png"))) for s in ("train", "val", "test")] == [7, 7, 7]
    stamp = (root / "probe.json").stat().st_mtime_ns

    calls = []
    real_generate = synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))
    assert synthetic.ensure_synthetic(tmp_path, **knobs) == root
    assert calls == [] and (root / "probe.json").stat().st_mtime_ns == stamp

    other = synthetic.ensure_synthetic(tmp_path, **{**knobs, "clutter": 0.0})
    assert other != root and calls == [1]

    next(root.glob("train/*/*.png")).unlink()  # an incomplete folder is regenerated
    assert synthetic.ensure_synthetic(tmp_path, **knobs) == root
    assert len(list(root.glob("*/*/*.png"))) == 21 and calls == [1, 1]
    folders = [p.name for p in (tmp_path / "synthetic").iterdir() if not p.name.endswith(".lock")]
    assert sorted(folders) == sorted([root.name, other.name])


def test_concurrent_runs_generate_the_probe_once_and_never_replace_it_under_a_reader(tmp_path, monkeypatch):
    # two jobs of a parallel sweep start together on a fresh cache: the second must wait and reuse the first's
    # folder (it used to regenerate and delete the folder the first job was already reading: missing files)
    knobs = {**SMALL, "n_images": 14, "n_val": 7, "n_test": 7, "image_size": 16}
    calls, real_generate = [], synthetic.generate

    def slow_generate(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)   # both callers are inside ensure_synthetic before the first one finishes
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate", slow_generate)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        roots = list(pool.map(lambda _: synthetic.ensure_synthetic(tmp_path, **knobs), range(2)))
    assert roots[0] == roots[1] and calls == [1]
    assert len(list(roots[0].glob("*/*/*.png"))) == 21


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fer_ablation.data.synthetic", *args], capture_output=True,
                          text=True, timeout=60)


def test_cli_writes_folders_and_prints_summary(tmp_path):
    sheet = tmp_path / "sheet.png"
    result = _cli("--out", str(tmp_path / "probe"), "--n", "21", "--n-val", "7", "--n-test", "7", "--size", "16", "--seed", "1",
                  "--clutter", "0.2", "--face-scale", "0.5", "0.7", "--rgb", "--contact-sheet", str(sheet))
    assert result.returncode == 0, result.stderr
    assert "total" in result.stdout and "14" in result.stdout and "happiness" in result.stdout
    record = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert record["knobs"] == {"n_images": 21, "n_val": 7, "n_test": 7, "image_size": 16, "clutter": 0.2,
                               "face_scale": [0.5, 0.7], "seed": 1, "grayscale": False}
    assert len(list((tmp_path / "probe").glob("val/*/*.png"))) == len(list((tmp_path / "probe").glob("test/*/*.png"))) == 7
    with Image.open(sheet) as image:
        assert image.height >= 7 * 32


@pytest.mark.parametrize("args, words", [
    (["--clutter", "1.5"], ["clutter", "[0, 1]", "1.5"]),
    (["--face-scale", "0.8", "0.5"], ["face_scale", "lo <= hi"]),
    (["--face-scale", "0.5", "1.5"], ["face_scale", "1.5"]),
    (["--size", "8"], ["image_size", "16", "8"]),
    (["--n", "50", "--n-val", "50"], ["n_val", "50"]),
])
def test_cli_rejects_invalid_knobs(tmp_path, args, words):
    result = _cli("--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    assert all(word in result.stderr for word in words), result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", [{"clutter": -0.1}, {"face_scale": (0.0, 0.5)}, {"face_scale": (0.5,)},
                                 {"image_size": 15}, {"n_val": 28}])
def test_invalid_knobs_raise_data_error(tmp_path, bad):
    with pytest.raises(DataError, match=next(iter(bad))):
        synthetic.generate(tmp_path, **{**SMALL, **bad})
