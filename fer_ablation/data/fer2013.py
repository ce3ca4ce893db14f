"""FER2013 (Goodfellow et al., 2013, arXiv:1307.0414) sample source.

Protocol (Goodfellow et al. 2013; the common FER2013 benchmark): train on Training (28,709), select on
PublicTest (3,589), report PrivateTest (3,589).
Two distributions are accepted:

- image folders ``root/train/<class>/Training_*`` and ``root/test/<class>/{PublicTest_*, PrivateTest_*}``:
  ``PrivateTest_*`` files in test/ are the test split, every other file there is val; an optional
  ``root/val/<class>/`` also goes to val. The PrivateTest half may be absent (then there is no test split).
- the original ``fer2013.csv`` (columns emotion, pixels, Usage; emotion 0..6 = angry, disgust, fear, happy,
  sad, surprise, neutral; 48x48 pixels as 2,304 space-separated values); ``root`` is the csv file or a folder
  holding it. When a folder holds both, the image folders are used.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from fer_ablation.data.errors import DataError
from fer_ablation.data.folders import (
    ListingNotes,
    SampleSplits,
    Samples,
    class_folder_samples,
    find_split_dirs,
    missing_root_error,
)
from fer_ablation.data.labels import CLASS_TO_INDEX, fer2013_class

FER2013_SIZE = 48
USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}
FER2013_LAYOUTS = (
    "  <root>/train/<class>/Training_*.jpg, <root>/test/<class>/PublicTest_*.jpg (val) [+ PrivateTest_*.jpg (test)]\n"
    "  <root>/fer2013.csv, or the csv file itself (columns emotion, pixels, Usage)"
)


def fer2013_samples(root, *, ignore_unknown: bool = False) -> SampleSplits:
    """Read FER2013 from its image-folder layout or from ``fer2013.csv`` (see module docstring)."""
    root = Path(root).expanduser()
    if root.is_file():
        return fer2013_csv_samples(root)
    if not root.is_dir():
        raise missing_root_error(root, "fer2013", FER2013_LAYOUTS)
    dirs = find_split_dirs(root)
    if "train" in dirs:
        return _folder_samples(root, dirs, ignore_unknown)
    if (root / "fer2013.csv").is_file():
        return fer2013_csv_samples(root / "fer2013.csv")
    raise missing_root_error(root, "fer2013", FER2013_LAYOUTS, "holds neither train/ nor fer2013.csv")


def _folder_samples(root: Path, dirs: dict[str, Path], ignore_unknown: bool) -> SampleSplits:
    splits = {"train": Samples(), "val": Samples(), "test": Samples()}
    skipped, notes = [], ListingNotes()
    for folder_split, folder in dirs.items():
        samples, sk = class_folder_samples(folder, ignore_unknown=ignore_unknown, notes=notes)
        skipped += sk
        if folder_split == "test":
            private = [i for i, p in enumerate(samples.paths) if Path(p).name.startswith("PrivateTest")]
            private_set = set(private)
            splits["test"].extend(samples.subset(private))
            splits["val"].extend(samples.subset(i for i in range(len(samples)) if i not in private_set))
        else:
            splits[folder_split].extend(samples)
    notes.warn(root)
    if not len(splits["test"]):
        del splits["test"]
    if not len(splits["train"]) + len(splits["val"]):
        raise missing_root_error(root, "fer2013", FER2013_LAYOUTS, "holds no images in its class folders")
    if not len(splits["val"]):
        raise DataError(f"fer2013 data root {str(root)!r} has no validation images (PublicTest_* files in test/ "
                        f"or a val/ folder); accepted layouts:\n{FER2013_LAYOUTS}")
    return SampleSplits(splits, "image folders", sorted(set(skipped)), listing_warnings=notes.counts())


def _parse_pixels(text: str, where: str) -> np.ndarray:
    n_expected = FER2013_SIZE * FER2013_SIZE
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy warns (instead of failing) on a bad token
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            raise DataError(f"{where}: pixels {text[:40]!r}... is not a list of integers") from None
    if values.size != n_expected:
        raise DataError(f"{where}: pixels has {values.size} values, expected {n_expected} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: pixel values must be in 0..255, got {values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(FER2013_SIZE, FER2013_SIZE)


def _utf8_lines(f, path: Path):
    """Lines of the binary file ``f`` as text; a line that is not UTF-8 raises DataError naming the file and line
    (decoding per line, because a text-mode file decodes ahead in blocks and cannot say which line failed)."""
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} line {number}: not valid UTF-8 text ({exc.reason} at byte {exc.start} "
                            f"of the line)") from None


def fer2013_csv_samples(path) -> SampleSplits:
    """Parse ``fer2013.csv``; a bad row raises DataError naming its line number and value."""
    path = Path(path).expanduser()
    per_split: dict[str, tuple[list[str], list[int], list[np.ndarray]]] = {}
    with path.open("rb") as f:
        reader = csv.DictReader(_utf8_lines(f, path))
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing csv column(s) {sorted(missing)}; expected emotion, pixels, Usage "
                            f"(got {reader.fieldnames})")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            usage = (row["Usage"] or "").strip()
            split = USAGE_TO_SPLIT.get(usage.lower())
            if split is None:
                raise DataError(f"{where}: Usage {usage!r} is not one of Training, PublicTest, PrivateTest")
            label = CLASS_TO_INDEX[fer2013_class((row["emotion"] or "").strip(), source=where)]
            pixels = _parse_pixels(row["pixels"] or "", where)
            paths, targets, images = per_split.setdefault(split, ([], [], []))
            paths.append(f"{path}:{reader.line_num}")
            targets.append(label)
            images.append(pixels)
    if "train" not in per_split or "val" not in per_split:
        raise DataError(f"{path}: needs Training and PublicTest rows, found {sorted(per_split) or 'no rows'}")
    splits = {s: Samples(p, t, np.stack(im)) for s, (p, t, im) in per_split.items()}
    return SampleSplits(splits, "fer2013.csv")
