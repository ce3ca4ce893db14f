"""RAF-DB basic-emotion sample source (Li, Deng & Du, "Reliable Crowdsourcing and Deep Locality-Preserving
Learning for Expression Recognition in the Wild", CVPR 2017).

Layout: ``root/EmoLabel/list_patition_label.txt`` (sic; ``list_partition_label.txt`` is accepted too) with lines
``train_00001.jpg 5``, labels 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral; images in
``root/Image/aligned/<stem>_aligned.jpg`` (preferred when that folder exists) or ``root/Image/original/<name>``.

Splits: ``test_*`` (the official test partition) is the ``test`` split, the reported one; the checkpoint is
selected on ``val``, a stratified hold-out of ``train_*`` (``val_fraction``, ``split_seed``), never on test.
A listed image that is missing on disk is skipped like an unreadable file (counted in ``skipped_files``).
"""

from __future__ import annotations

import os
from pathlib import Path

from fer_ablation.data.errors import DataError
from fer_ablation.data.folders import SampleSplits, Samples, hold_out, missing_root_error
from fer_ablation.data.labels import CLASS_TO_INDEX, rafdb_class

LIST_FILES = ("list_patition_label.txt", "list_partition_label.txt")
PREFIX_TO_SPLIT = {"train": "train", "test": "test"}
RAFDB_LAYOUTS = (
    "  <root>/EmoLabel/list_patition_label.txt  (lines 'train_00001.jpg 5', labels 1..7)\n"
    "  <root>/Image/aligned/train_00001_aligned.jpg  or  <root>/Image/original/train_00001.jpg"
)


def rafdb_samples(root, *, val_fraction: float = 0.1, split_seed: int = 0) -> SampleSplits:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise missing_root_error(root, "rafdb", RAFDB_LAYOUTS)
    list_file = next((root / "EmoLabel" / n for n in LIST_FILES if (root / "EmoLabel" / n).is_file()), None)
    if list_file is None:
        raise missing_root_error(root, "rafdb", RAFDB_LAYOUTS, "has no EmoLabel/list_patition_label.txt")
    aligned = (root / "Image" / "aligned").is_dir()
    splits = {"train": Samples(), "test": Samples()}
    # names are file names: decoded as the file system does, so bytes that are not UTF-8 still find their file
    for line_num, line in enumerate(os.fsdecode(list_file.read_bytes()).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{list_file} line {line_num}"
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{where}: expected '<name>.jpg <label 1..7>', got {line!r}")
        name, code = parts
        split = PREFIX_TO_SPLIT.get(name.split("_", 1)[0].lower())
        if split is None:
            raise DataError(f"{where}: image name {name!r} does not start with train_ or test_")
        if aligned:
            path = root / "Image" / "aligned" / f"{Path(name).stem}_aligned{Path(name).suffix}"
        else:
            path = root / "Image" / "original" / name
        splits[split].paths.append(str(path))
        splits[split].targets.append(CLASS_TO_INDEX[rafdb_class(code, source=where)])
    if not len(splits["train"]) or not len(splits["test"]):
        raise DataError(f"{list_file}: needs train_* and test_* entries, found "
                        f"{len(splits['train'])} train and {len(splits['test'])} test")
    sources = {"train": f"train_* of {list_file.name}", "test": f"test_* of {list_file.name}"}
    hold_out(splits, sources, "val", val_fraction, split_seed, where="train_*")
    return SampleSplits(splits, "aligned" if aligned else "original", split_seed=split_seed, sources=sources)
