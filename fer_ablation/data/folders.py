"""Image-folder sample sources: files on disk -> (path, canonical label) per split.

Two layouts are accepted (Hu et al. 2024, Sec. 2.1, train on a private set of 1,880 images split 1,501 / 379;
these are the two ways such a set is usually stored):

- split: ``root/train/<class>/*``, ``root/val/<class>/*`` (``valid``/``validation`` too), optional
  ``root/test/<class>/*``. Without a val folder, val is split off train (stratified, see below).
- unsplit: ``root/<class>/*``, split deterministically into train/val by :func:`stratified_split`.

Class folders are mapped to the canonical classes *by name* (aliases allowed), never by alphabetical order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_ablation.data.errors import DataError
from fer_ablation.data.labels import CLASSES, CLASS_TO_INDEX, accepted_names, canonical_class, filter_known_classes

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}

IMAGEFOLDER_LAYOUTS = (
    "  <root>/<class>/*.jpg|png|...                 (split into train/val by val_fraction, split_seed)\n"
    "  <root>/train/<class>/*, <root>/val/<class>/*  (optional <root>/test/<class>/*)"
)


@dataclass
class Samples:
    """One split: ``paths[i]`` is an image file (or ``<csv>:<line>`` for csv rows), ``targets[i]`` its class index.

    ``pixels`` holds the uint8 [N, H, W] images when they came decoded from a csv instead of files.
    """

    paths: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> "Samples":
        indices = list(indices)
        return Samples(
            [self.paths[i] for i in indices],
            [self.targets[i] for i in indices],
            None if self.pixels is None else self.pixels[indices],
        )

    def extend(self, other: "Samples") -> None:
        if self.pixels is not None or other.pixels is not None:
            raise TypeError("cannot extend csv-backed samples")
        self.paths += other.paths
        self.targets += other.targets


@dataclass
class SampleSplits:
    """Samples per split (``train``, ``val`` and optionally ``test``) plus how they were found."""

    splits: dict[str, Samples]
    layout: str
    skipped_classes: list[str] = field(default_factory=list)
    split_seed: int | None = None


def missing_root_error(root, name: str, layouts: str, problem: str = "does not exist") -> DataError:
    return DataError(f"{name} data root {str(root)!r} {problem}; accepted layouts:\n{layouts}")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path; hidden files are ignored."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return sorted(found)


def subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folder_samples(folder: Path, *, ignore_unknown: bool = False) -> tuple[Samples, list[str]]:
    """``folder/<class>/*`` -> Samples (sorted by path) and the class folders skipped as unknown."""
    dirs = subdirs(folder)
    known, skipped = filter_known_classes([d.name for d in dirs], source=str(folder), ignore_unknown=ignore_unknown)
    samples = Samples()
    for d in dirs:
        if d.name in known:
            label = CLASS_TO_INDEX[canonical_class(d.name)]
            files = list_images(d)
            samples.paths += [str(p) for p in files]
            samples.targets += [label] * len(files)
    order = sorted(range(len(samples)), key=samples.paths.__getitem__)
    return samples.subset(order), skipped


def stratified_split(targets, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic stratified split -> (train indices, val indices), each sorted.

    Rule: class c with n_c samples sends ``ceil(val_fraction * n_c)`` of them to val (at most n_c - 1, so
    train keeps every class), chosen by a permutation seeded with (seed, c). Rounding up per class keeps every
    class in val and gives a val share slightly above ``val_fraction``: the paper's 1,880 images -> 379 val
    (20.16 %) for class counts whose remainders add up to it, 376..382 in general.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    targets = np.asarray(targets, dtype=np.int64)
    train, val = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        n_val = min(math.ceil(val_fraction * len(idx) - 1e-9), len(idx) - 1)
        perm = np.random.default_rng([seed, int(c)]).permutation(len(idx))
        val += idx[perm[:n_val]].tolist()
        train += idx[perm[n_val:]].tolist()
    return sorted(train), sorted(val)


def find_split_dirs(root: Path) -> dict[str, Path]:
    """Map split name -> folder for the split layout's folders present in ``root`` (case-insensitive)."""
    by_name = {d.name.lower(): d for d in subdirs(root)}
    found = {}
    for split, names in SPLIT_DIRS.items():
        for n in names:
            if n in by_name:
                found[split] = by_name[n]
                break
    return found


def imagefolder_samples(root, *, val_fraction: float = 0.2, split_seed: int = 0,
                        ignore_unknown: bool = False, name: str = "imagefolder",
                        layouts: str = IMAGEFOLDER_LAYOUTS) -> SampleSplits:
    """Read an image-folder data set in either the split or the unsplit layout (see module docstring)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise missing_root_error(root, name, layouts)
    dirs = find_split_dirs(root)
    if "train" in dirs:
        splits, skipped = {}, []
        for split, folder in dirs.items():
            splits[split], sk = class_folder_samples(folder, ignore_unknown=ignore_unknown)
            skipped += sk
        layout = "split"
        if "val" not in splits:
            tr, va = stratified_split(splits["train"].targets, val_fraction, split_seed)
            splits["val"], splits["train"] = splits["train"].subset(va), splits["train"].subset(tr)
            layout = "split (val split off train)"
    elif dirs:
        raise DataError(f"{name} data root {str(root)!r} has {', '.join(d.name for d in dirs.values())}/ but no "
                        f"train/ folder; accepted layouts:\n{layouts}")
    else:
        samples, skipped = class_folder_samples(root, ignore_unknown=ignore_unknown)
        tr, va = stratified_split(samples.targets, val_fraction, split_seed)
        splits = {"train": samples.subset(tr), "val": samples.subset(va)}
        layout = "unsplit"
    if not sum(len(s) for s in splits.values()):
        raise missing_root_error(root, name, layouts, "holds no images in class folders "
                                 f"(accepted class names: {accepted_names()})")
    used_split = layout != "split"
    return SampleSplits(splits, layout, sorted(set(skipped)), split_seed if used_split else None)


def class_counts(targets) -> dict[str, int]:
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(CLASSES))
    return {c: int(n) for c, n in zip(CLASSES, counts)}
