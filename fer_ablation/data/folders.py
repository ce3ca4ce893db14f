"""Image-folder sample sources: files on disk -> (path, canonical label) per split.

Two layouts are accepted (Hu et al. 2024, Sec. 2.1, train on a private set of 1,880 images split 1,501 / 379;
these are the two ways such a set is usually stored):

- split: ``root/train/<class>/*``, ``root/val/<class>/*`` (``valid``/``validation`` too), ``root/test/<class>/*``.
  A missing val folder is split off train (``val_fraction``), then a missing test folder (``test_fraction``).
- unsplit: ``root/<class>/*``, split deterministically into train/val/test by :func:`stratified_split`
  (val first, ``val_fraction`` of all images, then test, ``test_fraction`` of all images, from the rest).

Split roles: ``val`` selects the checkpoint, ``test`` is the report split; they never share an image file.

Class folders are mapped to the canonical classes *by name* (aliases allowed), never by alphabetical order.
Images in subfolders of a class folder take that class (as torchvision's ``ImageFolder`` does). What the listing
does that a user may not expect is warned about once per kind, with a count and examples, and counted in
``SampleSplits.listing_warnings``: images in such subfolders, several folders merged into one class by alias
(``happy`` and ``happiness``), files ignored for their extension, and file names that are not valid UTF-8
(read all the same; shown with ``\\xNN`` escapes, see :func:`display_path`).
"""

from __future__ import annotations

import math
import os
import warnings
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
    """Samples per split (``train``, ``val``, ``test`` and for FER2013 optionally ``private``) plus how they
    were found; ``sources`` says where each split comes from (a folder, a hold-out of train, a csv Usage)."""

    splits: dict[str, Samples]
    layout: str
    skipped_classes: list[str] = field(default_factory=list)
    split_seed: int | None = None
    listing_warnings: dict[str, int] = field(default_factory=dict)  # ListingNotes.counts()
    sources: dict[str, str] = field(default_factory=dict)


def display_path(path) -> str:
    """``path`` as text that any UTF-8 file or log can hold: unchanged when it is valid UTF-8, otherwise the
    bytes that are not (which Python keeps as surrogate escapes, PEP 383) written as ``\\xNN``."""
    text = os.fspath(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("ascii")


def is_valid_utf8(path) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


EXAMPLES = 3


def _examples(items: list[str]) -> str:
    return ", ".join(items[:EXAMPLES]) + (", ..." if len(items) > EXAMPLES else "")


@dataclass
class ListingNotes:
    """What listing class folders did that a user may not expect; :meth:`warn` reports each kind once."""

    nested: list[str] = field(default_factory=list)  # images in a subfolder of a class folder
    merged: list[str] = field(default_factory=list)  # "<class> <- 'a', 'b' in <folder>", one per merged class
    ignored: list[str] = field(default_factory=list)  # files whose extension is not an image type
    non_utf8: list[str] = field(default_factory=list)  # display_path of names that are not valid UTF-8

    def counts(self) -> dict[str, int]:
        return {"nested_files": len(self.nested), "merged_alias_folders": len(self.merged),
                "ignored_extensions": len(self.ignored), "non_utf8_names": len(self.non_utf8)}

    def warn(self, root) -> None:
        where = display_path(root)
        if self.nested:
            warnings.warn(f"{len(self.nested)} image(s) in subfolders of class folders in {where} are used with "
                          f"their class folder's label, e.g. {_examples(self.nested)}", stacklevel=3)
        if self.merged:
            warnings.warn(f"{len(self.merged)} class(es) merged from several alias folders in {where}: "
                          f"{'; '.join(self.merged)}", stacklevel=3)
        if self.ignored:
            by_ext: dict[str, int] = {}
            for name in self.ignored:
                ext = os.path.splitext(name)[1].lower() or "(none)"
                by_ext[ext] = by_ext.get(ext, 0) + 1
            tally = ", ".join(f"{ext} {n}" for ext, n in sorted(by_ext.items()))
            warnings.warn(f"ignored {len(self.ignored)} file(s) in class folders in {where} whose extension is not "
                          f"one of {', '.join(sorted(IMAGE_EXTENSIONS))} ({tally}), e.g. {_examples(self.ignored)}",
                          stacklevel=3)
        if self.non_utf8:
            warnings.warn(f"{len(self.non_utf8)} file name(s) in {where} are not valid UTF-8; they are read, and "
                          f"written with \\xNN escapes in records, e.g. {_examples(self.non_utf8)}", stacklevel=3)


def missing_root_error(root, name: str, layouts: str, problem: str = "does not exist") -> DataError:
    return DataError(f"{name} data root {str(root)!r} {problem}; accepted layouts:\n{layouts}")


def list_images(folder: Path, notes: ListingNotes | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path; hidden files and folders are ignored.

    ``notes`` collects images in subfolders, files with other extensions and names that are not valid UTF-8.
    """
    found, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                (found if Path(name).suffix.lower() in IMAGE_EXTENSIONS else ignored).append(Path(dirpath) / name)
    found.sort()
    if notes is not None:
        notes.nested += [display_path(p) for p in found if p.parent != folder]
        notes.ignored += [display_path(p) for p in sorted(ignored)]
        notes.non_utf8 += [display_path(p) for p in found if not is_valid_utf8(p)]
    return found


def subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folder_samples(folder: Path, *, ignore_unknown: bool = False,
                         notes: ListingNotes | None = None) -> tuple[Samples, list[str]]:
    """``folder/<class>/*`` -> Samples (sorted by path) and the class folders skipped as unknown.

    ``notes`` collects what :class:`ListingNotes` reports, including class folders merged by alias.
    """
    dirs = subdirs(folder)
    known, skipped = filter_known_classes([d.name for d in dirs], source=display_path(folder),
                                          ignore_unknown=ignore_unknown)
    samples = Samples()
    by_class: dict[str, list[str]] = {}
    for d in dirs:
        if d.name in known:
            name = canonical_class(d.name)
            by_class.setdefault(name, []).append(d.name)
            files = list_images(d, notes)
            samples.paths += [str(p) for p in files]
            samples.targets += [CLASS_TO_INDEX[name]] * len(files)
    if notes is not None:
        notes.merged += [f"{name} <- {', '.join(repr(display_path(n)) for n in sorted(names))} in "
                         f"{display_path(folder)}" for name, names in by_class.items() if len(names) > 1]
    order = sorted(range(len(samples)), key=samples.paths.__getitem__)
    return samples.subset(order), skipped


def stratified_split(targets, val_fraction: float = 0.2, seed: int = 0, stream: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic stratified split -> (train indices, val indices), each sorted.

    Rule: class c with n_c samples sends ``ceil(val_fraction * n_c)`` of them to val (at most n_c - 1, so
    train keeps every class), chosen by a permutation seeded with (seed, c). Rounding up per class keeps every
    class in val and gives a val share slightly above ``val_fraction``: the paper's 1,880 images -> 379 val
    (20.16 %) for class counts whose remainders add up to it, 376..382 in general. ``stream`` > 0 draws from an
    independent stream (seeded with (seed, c, stream)), used for a second hold-out from what the first left.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    targets = np.asarray(targets, dtype=np.int64)
    train, val = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        n_val = min(math.ceil(val_fraction * len(idx) - 1e-9), len(idx) - 1)
        perm = np.random.default_rng([seed, int(c), *([stream] if stream else [])]).permutation(len(idx))
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


def hold_out(splits: dict[str, Samples], sources: dict[str, str], split: str, fraction: float, seed: int, *,
             of_total: int | None = None, stream: int = 0, where: str = "train") -> None:
    """Move a stratified ``fraction`` of ``splits["train"]`` into ``splits[split]`` (in place) and say so in
    ``sources``. ``of_total``: the fraction is of that many images (the whole set), not of train's."""
    train = splits["train"]
    share = fraction if of_total is None else min(fraction * of_total / max(len(train), 1), 0.999)
    kept, held = stratified_split(train.targets, share, seed, stream)
    if not held:
        raise DataError(f"{split} split: a {fraction:g} hold-out from {where} ({len(train)} images) is empty (a "
                        f"class gives an image only when it has at least two); add images or a {split}/ folder")
    splits[split], splits["train"] = train.subset(held), train.subset(kept)
    sources[split] = f"stratified hold-out of {where} ({fraction:g}{' of all images' if of_total else ''}, split_seed {seed})"


def no_report_split_error(name: str, root, how: str) -> DataError:
    return DataError(f"{name} data at {display_path(root)} has no report split: {how}. The checkpoint is selected "
                     "on val, so the reported numbers need a split it was not selected on")


def imagefolder_samples(root, *, val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0,
                        ignore_unknown: bool = False, name: str = "imagefolder",
                        layouts: str = IMAGEFOLDER_LAYOUTS, whole: bool = False) -> SampleSplits:
    """Read an image-folder data set in either the split or the unsplit layout (see module docstring).

    ``whole``: an unsplit folder is not held out at all -- every image in ``train`` (for scoring a whole
    folder; a split folder is refused then)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise missing_root_error(root, name, layouts)
    if not 0.0 <= float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    dirs = find_split_dirs(root)
    notes = ListingNotes()
    sources: dict[str, str] = {}
    if whole and dirs:
        raise DataError(f"{name} data root {str(root)!r} has {', '.join(d.name for d in dirs.values())}/ folders: "
                        "data.holdout=false scores an unsplit folder whole; give the splits to score instead")
    if "train" in dirs:
        splits, skipped = {}, []
        for split, folder in dirs.items():
            splits[split], sk = class_folder_samples(folder, ignore_unknown=ignore_unknown, notes=notes)
            sources[split] = f"{folder.name}/ folder"
            skipped += sk
        held = [s for s in ("val", "test") if s not in splits]
        layout = "split" + (f" ({' and '.join(held)} split off train)" if held else "")
        if "val" not in splits:
            hold_out(splits, sources, "val", val_fraction, split_seed)
        if "test" not in splits:
            if not test_fraction:
                raise no_report_split_error(name, root, "no test/ folder and test_fraction is 0")
            hold_out(splits, sources, "test", test_fraction, split_seed, stream=1)
    elif dirs:
        raise DataError(f"{name} data root {str(root)!r} has {', '.join(d.name for d in dirs.values())}/ but no "
                        f"train/ folder; accepted layouts:\n{layouts}")
    else:
        samples, skipped = class_folder_samples(root, ignore_unknown=ignore_unknown, notes=notes)
        if not len(samples):
            notes.warn(root)
            raise missing_root_error(root, name, layouts, "holds no images in class folders "
                                     f"(accepted class names: {accepted_names()})")
        splits = {"train": samples}
        if whole:
            notes.warn(root)
            return SampleSplits(splits, "unsplit", sorted(set(skipped)), None, notes.counts(),
                                {"train": "every image (data.holdout=false)"})
        if not test_fraction:
            raise no_report_split_error(name, root, "the unsplit layout needs test_fraction > 0")
        hold_out(splits, sources, "val", val_fraction, split_seed, where="all images")
        hold_out(splits, sources, "test", test_fraction, split_seed, of_total=len(samples), stream=1,
                 where="the rest")
        sources["train"] = "the rest"
        layout = "unsplit"
    notes.warn(root)
    if not sum(len(s) for s in splits.values()):
        raise missing_root_error(root, name, layouts, "holds no images in class folders "
                                 f"(accepted class names: {accepted_names()})")
    used_split = layout != "split"
    return SampleSplits(splits, layout, sorted(set(skipped)), split_seed if used_split else None, notes.counts(),
                        sources)


def class_counts(targets) -> dict[str, int]:
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(CLASSES))
    return {c: int(n) for c, n in zip(CLASSES, counts)}
