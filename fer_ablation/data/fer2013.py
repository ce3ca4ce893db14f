"""FER2013 (Goodfellow et al., 2013, arXiv:1307.0414) sample source.

Splits and their roles: ``train`` = Training (28,709) minus ``val``; ``val`` (selects the checkpoint) = a
stratified hold-out of Training (``val_fraction``, ``split_seed``), or a ``root/val/<class>/`` folder when there
is one; ``test`` (a report split) = PublicTest (3,589); ``private`` (a second report split) = PrivateTest (3,589)
when the data has it. The checkpoint is never selected on a split that is reported.
Two distributions are accepted:

- image folders ``root/train/<class>/Training_*`` and ``root/test/<class>/{PublicTest_*, PrivateTest_*}``:
  ``PrivateTest_*`` files in test/ are the private split, every other file there is the test split.
  The PrivateTest half may be absent (the copy in ``../shared/data/fer2013`` has none).
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
    hold_out,
    missing_root_error,
    no_report_split_error,
)
from fer_ablation.data.labels import CLASS_TO_INDEX, fer2013_class

FER2013_SIZE = 48
USAGE_TO_SPLIT = {"training": "train", "publictest": "test", "privatetest": "private"}
SPLIT_SOURCES = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
FER2013_LAYOUTS = (
    "  <root>/train/<class>/Training_*.jpg, <root>/test/<class>/PublicTest_*.jpg (test) [+ PrivateTest_*.jpg (private)]\n"
    "  <root>/fer2013.csv, or the csv file itself (columns emotion, pixels, Usage)"
)


def fer2013_samples(root, *, val_fraction: float = 0.1, split_seed: int = 0,
                    ignore_unknown: bool = False) -> SampleSplits:
    """Read FER2013 from its image-folder layout or from ``fer2013.csv`` (see module docstring)."""
    root = Path(root).expanduser()
    if root.is_file():
        return fer2013_csv_samples(root, val_fraction=val_fraction, split_seed=split_seed)
    if not root.is_dir():
        raise missing_root_error(root, "fer2013", FER2013_LAYOUTS)
    dirs = find_split_dirs(root)
    if "train" in dirs:
        return _folder_samples(root, dirs, ignore_unknown, val_fraction, split_seed)
    if (root / "fer2013.csv").is_file():
        return fer2013_csv_samples(root / "fer2013.csv", val_fraction=val_fraction, split_seed=split_seed)
    raise missing_root_error(root, "fer2013", FER2013_LAYOUTS, "holds neither train/ nor fer2013.csv")


def _selection_split(splits: dict[str, Samples], sources: dict[str, str], root, val_fraction: float,
                     split_seed: int) -> None:
    """Carve val out of Training unless a val/ folder gave one; drop empty report splits; need one report split."""
    if "val" not in splits:
        if not len(splits["train"]):
            raise missing_root_error(root, "fer2013", FER2013_LAYOUTS, "holds no Training images")
        hold_out(splits, sources, "val", val_fraction, split_seed, where="Training")
    for split in ("test", "private"):
        if split in splits and not len(splits[split]):
            del splits[split], sources[split]
    if "test" not in splits and "private" not in splits:
        raise no_report_split_error("fer2013", root, "no PublicTest or PrivateTest images")


def _folder_samples(root: Path, dirs: dict[str, Path], ignore_unknown: bool, val_fraction: float,
                    split_seed: int) -> SampleSplits:
    splits = {"train": Samples(), "test": Samples(), "private": Samples()}
    sources = {s: f"{SPLIT_SOURCES[s]} ({'test' if s != 'train' else 'train'}/ folder)" for s in splits}
    skipped, notes = [], ListingNotes()
    for folder_split, folder in dirs.items():
        samples, sk = class_folder_samples(folder, ignore_unknown=ignore_unknown, notes=notes)
        skipped += sk
        if folder_split == "test":
            private = [i for i, p in enumerate(samples.paths) if Path(p).name.startswith("PrivateTest")]
            private_set = set(private)
            splits["private"].extend(samples.subset(private))
            splits["test"].extend(samples.subset(i for i in range(len(samples)) if i not in private_set))
        elif folder_split == "val":
            splits["val"] = samples
            sources["val"] = f"{folder.name}/ folder"
        else:
            splits[folder_split].extend(samples)
    notes.warn(root)
    if not sum(len(s) for s in splits.values()):
        raise missing_root_error(root, "fer2013", FER2013_LAYOUTS, "holds no images in its class folders")
    _selection_split(splits, sources, root, val_fraction, split_seed)
    return SampleSplits(splits, "image folders", sorted(set(skipped)), split_seed, notes.counts(), sources)


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


def fer2013_csv_samples(path, *, val_fraction: float = 0.1, split_seed: int = 0) -> SampleSplits:
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
    if "train" not in per_split or not {"test", "private"} & set(per_split):
        found = sorted(SPLIT_SOURCES[s] for s in per_split) or "no rows"
        raise DataError(f"{path}: needs Training rows and PublicTest or PrivateTest rows, found {found}")
    splits = {s: Samples(p, t, np.stack(im)) for s, (p, t, im) in per_split.items()}
    sources = {s: f"{SPLIT_SOURCES[s]} rows of {path.name}" for s in splits}
    _selection_split(splits, sources, path, val_fraction, split_seed)
    return SampleSplits(splits, "fer2013.csv", split_seed=split_seed, sources=sources)
