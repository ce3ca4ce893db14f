"""FERDataModule: one LightningDataModule for FER2013, image folders, RAF-DB and the synthetic probe.

Batches are ``(uint8 images [B, C_stored, S, S], int64 targets [B], int64 indices [B])``; ``indices`` are
positions in ``split_paths(split)`` / ``split_targets(split)``. Float conversion, augmentation (training only)
and normalisation happen in :meth:`FERDataModule.device_transform`, batched on the batch's device, called by
Lightning through ``on_after_batch_transfer``.

Two paths give the same batches:
- in memory (``in_memory: true``, or ``auto`` when the uint8 cache is under 4 GiB): see
  :mod:`fer_ablation.data.memory`; the split lives on the trainer's root device and is sharded by rank
  without padding.
- DataLoader (``in_memory: false``): a Dataset decoding one file per item. Under DDP Lightning replaces the
  sampler with a ``DistributedSampler``, which pads the evaluation splits with repeated samples to equal
  length: deduplicate predictions by ``indices``.

Either way every file is decoded once at setup (then cached), so unreadable files are known up front:
they are skipped with a warning and listed in ``skipped_files``; a split with more than
``max_skipped_fraction`` of its files skipped raises DataError.

``name: synthetic`` generates the probe into the cache (``ensure_synthetic``) when ``root`` is null; a given
``root`` (e.g. the output of ``python -m fer_ablation.data.synthetic --out DIR``) is read as an image folder.

Split roles: ``train`` trains, ``val`` selects the checkpoint, ``test`` and (FER2013) ``private`` are report
splits that nothing is selected on; ``report_split`` (``test`` or ``private``) is the one the tables use. See
:meth:`FERDataModule.split_roles`.

Duplicate guard: every image's pixels are hashed as decoded, before resizing
(:func:`~fer_ablation.data.decode.pixel_hash`, cached with the split). An evaluation image identical to a
training image (for a report split: or to a val image) is dropped from its split when ``dedup: drop`` (kept
when ``keep``), counted in
:attr:`FERDataModule.duplicates` (with how many carry a label no training copy has) and named in the log;
repeats inside train are counted only. Near copies (a JPEG re-encode, a resized copy: a
:func:`~fer_ablation.data.decode.perceptual_hash` within ``NEAR_BITS`` of a reference image's) are counted
(``near``) and named in metrics.json and the log; ``dedup: drop_near`` drops them too. Not caught: crops, flips,
rotations, colour or brightness changes, and edits that move the low frequencies.

``classes`` is the label set (:mod:`fer_ablation.data.label_set`): images of other classes are left out and
counted. ``face_crop: haar`` crops faces while the uint8 cache is built (:mod:`fer_ablation.data.faces`; it
implies the in-memory path and is part of the cache key).

The cache directory is ``cache_dir``; its default (``conf/data/_common.yaml``) is ``FER_ABLATION_CACHE`` when
set, else ``~/.cache/fer_ablation``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError
from torch.utils.data import DataLoader

from fer_ablation.data.augment import BatchAugment, to_model_input
from fer_ablation.data.decode import FileDataset, hamming, split_hash
from fer_ablation.data.defaults import data_defaults
from fer_ablation.data.errors import DataError
from fer_ablation.data.faces import face_settings, make_cropper
from fer_ablation.data.fer2013 import fer2013_samples
from fer_ablation.data.folders import SampleSplits, display_path, imagefolder_samples
from fer_ablation.data.label_set import resolve_classes, select_classes
from fer_ablation.data.memory import (
    MEMORY_LIMIT_BYTES,
    DecodedSplit,
    MemoryLoader,
    estimate_cache_bytes,
    load_or_decode,
)
from fer_ablation.data.rafdb import rafdb_samples

log = logging.getLogger("fer_ablation")

NAMES = ("synthetic", "fer2013", "imagefolder", "rafdb")
SPLITS = ("train", "val", "test", "private")
REPORT_SPLITS = ("test", "private")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": REPORT_SPLITS, "predict": ("val", *REPORT_SPLITS)}
DEDUP = ("drop", "drop_near", "keep")
DUPLICATE_EXAMPLES = 5
# Perceptual hashes this close (of 64 bits) mark a likely copy. Measured on the probe set's 48 px faces and on
# noise images: a JPEG re-encode at quality 75-95 flips at most 4 bits, a resize to 24-150 px and back at most 6
# (noise) or 2 (faces); 85 of the probe's 2.55 million pairs of distinct images are within 4 bits.
NEAR_BITS = 4
# Data sets whose images cannot be near copies of each other, so the perceptual check is not run (their "near" is
# None): the probe renders image i from its own seed, and its large faces on plain backgrounds share coarse shapes
# (at 32 px the hash put 153 of 379 val images within 4 bits of some train image, every one a different face).
NO_NEAR_COPIES = {"synthetic"}


def near_copies(hashes: list[int], references: list[int], chunk: int = 512) -> dict[int, int]:
    """{position in `hashes`: position of its nearest reference} for the hashes within NEAR_BITS of a reference."""
    found: dict[int, int] = {}
    if not hashes or not references:
        return found
    refs = np.asarray(references, dtype=np.uint64)
    queries = np.asarray(hashes, dtype=np.uint64)
    for start in range(0, len(queries), chunk):
        distances = hamming(queries[start:start + chunk, None], refs[None, :])
        closest = distances.argmin(axis=1)
        for k in np.flatnonzero(distances[np.arange(len(closest)), closest] <= NEAR_BITS):
            found[start + int(k)] = int(closest[k])
    return found


def resolve_data_config(data_cfg) -> dict:
    """A plain dict of the data config: an OmegaConf node as composed, or a mapping whose missing keys take the
    values of ``conf/data/_common.yaml`` and, for keys only one data set has (the probe's knobs), of
    ``conf/data/<name>.yaml``. An unknown key is an error, as on Hydra's command line."""
    if isinstance(data_cfg, DictConfig):
        data_cfg = OmegaConf.to_container(data_cfg, resolve=True)
    name = data_cfg.get("name")
    if name not in NAMES:
        raise DataError(f"data.name {name!r} is not one of {', '.join(NAMES)}")
    common = data_defaults("_common")
    own = {k: v for k, v in data_defaults(name).items() if k not in common}
    defaults = OmegaConf.create({**common, **own})
    OmegaConf.set_struct(defaults, True)
    try:
        cfg = OmegaConf.to_container(OmegaConf.merge(defaults, dict(data_cfg)), resolve=True)
    except ConfigKeyError as err:
        raise DataError(f"data config: {str(err).splitlines()[0]}; expected the keys of "
                        f"conf/data/{name}.yaml") from err
    in_memory = cfg["in_memory"]
    if isinstance(in_memory, str):
        in_memory = {"auto": "auto", "true": True, "false": False}.get(in_memory.lower(), in_memory)
    if in_memory not in ("auto", True, False):
        raise DataError(f"data.in_memory must be auto, true or false, got {cfg['in_memory']!r}")
    cfg["in_memory"] = in_memory
    if cfg["report_split"] not in REPORT_SPLITS:
        raise DataError(f"data.report_split must be one of {', '.join(REPORT_SPLITS)}, got {cfg['report_split']!r}")
    if cfg["dedup"] not in DEDUP:
        raise DataError(f"data.dedup must be one of {', '.join(DEDUP)}, got {cfg['dedup']!r}")
    if cfg["name"] != "synthetic" and not cfg["root"]:
        raise DataError(f"data.root is required for data.name={cfg['name']} (only synthetic generates its own)")
    return cfg


class FERDataModule(L.LightningDataModule):
    """Data for one run; see the module docstring and ``build_datamodule``."""

    def __init__(self, data_cfg, in_chans: int = 3, seed: int = 0):
        super().__init__()
        self.cfg = resolve_data_config(data_cfg)
        self.in_chans, self.seed = int(in_chans), int(seed)
        self.classes: tuple[str, ...] = resolve_classes(self.cfg["classes"])
        self.num_classes = len(self.classes)
        self.face = face_settings(self.cfg)
        self.excluded_classes: dict[str, dict[str, int]] = {}
        self.cache_dir = Path(self.cfg["cache_dir"]).expanduser()
        aug = self.cfg["augment"]
        self.augment = None
        if aug["enabled"]:
            self.augment = BatchAugment(crop_padding=aug["crop_padding"], hflip=aug["hflip"],
                                        rotation_degrees=aug["rotation_degrees"], padding_mode=aug["padding_mode"],
                                        seed=self.seed)
        self._sources: SampleSplits | None = None
        self._root: Path | None = None
        self._decoded: dict[str, DecodedSplit] = {}
        self._on_device: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._in_memory: bool | None = None
        self._duplicates: dict[str, dict] = {}
        self.test_split = "test"  # the report split that test_dataloader serves (training.evaluate_splits sets it)

    # ---------------------------------------------------------------- samples and decoding
    def _samples(self) -> SampleSplits:
        if self._sources is None:
            cfg, name = self.cfg, self.cfg["name"]
            ignore = bool(cfg["ignore_unknown_classes"])
            if name == "synthetic" and not cfg["root"]:
                from fer_ablation.data.synthetic import ensure_synthetic

                self._root = ensure_synthetic(
                    self.cache_dir,
                    n_images=int(cfg["n_images"]), n_val=int(cfg["n_val"]), n_test=int(cfg["n_test"]),
                    image_size=int(cfg["image_size"]),
                    clutter=float(cfg["clutter"]), face_scale=tuple(cfg["face_scale"]), seed=int(cfg["seed"]),
                    grayscale=bool(cfg["grayscale"]))
            else:
                self._root = Path(cfg["root"]).expanduser()
            holdout = {"val_fraction": float(cfg["val_fraction"]), "split_seed": int(cfg["split_seed"])}
            if name == "fer2013":
                self._sources = fer2013_samples(self._root, ignore_unknown=ignore, **holdout)
            elif name == "rafdb":
                self._sources = rafdb_samples(self._root, **holdout)
            elif not cfg["holdout"]:
                self._sources = imagefolder_samples(self._root, ignore_unknown=ignore, name=name, whole=True)
            else:
                self._sources = imagefolder_samples(self._root, test_fraction=float(cfg["test_fraction"]),
                                                    ignore_unknown=ignore, name=name, **holdout)
            self._sources, self.excluded_classes = select_classes(self._sources, self.classes)
            if self.excluded_classes:
                counts = "; ".join(f"{split}: " + ", ".join(f"{c} {n}" for c, n in by_class.items())
                                   for split, by_class in self.excluded_classes.items())
                warnings.warn(f"{name} data at {self._root}: images of classes outside data.classes="
                              f"{list(self.classes)} are left out ({counts})", stacklevel=3)
            if cfg["holdout"] and cfg["report_split"] not in self._sources.splits:
                raise DataError(f"data.report_split={cfg['report_split']} but {name} data at {self._root} has no "
                                f"{cfg['report_split']} split (it has {', '.join(self._sources.splits)})")
        return self._sources

    @property
    def has_test(self) -> bool:
        return "test" in self._samples().splits

    @property
    def report_split(self) -> str:
        """The report split the tables use (``data.report_split``; present, checked when listing)."""
        self._samples()
        return str(self.cfg["report_split"])

    @property
    def eval_splits(self) -> list[str]:
        """The splits a run scores: val (selection) and every report split the data has."""
        return [s for s in ("val", *REPORT_SPLITS) if s in self._samples().splits]

    def split_roles(self) -> dict[str, dict]:
        """{split: {"role": train | select | report, "source": where it comes from, "n": images used}}."""
        sources = self._samples()
        roles = {"train": "train", "val": "select", "test": "report", "private": "report"}
        return {s: {"role": roles[s], "source": sources.sources.get(s, sources.layout),
                    "n": len(self._prepare(s).samples)} for s in SPLITS if s in sources.splits}

    @property
    def duplicates(self) -> dict:
        """The duplicate guard's counts: ``policy`` and, per prepared split, train: ``within`` (images repeating
        an earlier training image); evaluation splits: ``of_train`` (and for report splits ``of_val``, identical
        to a selection image), ``different_label`` (a label no copy has), ``dropped``, ``examples``."""
        return {"policy": self.cfg["dedup"], **{s: self._duplicates[s] for s in SPLITS if s in self._duplicates}}

    @property
    def in_memory(self) -> bool:
        if self._in_memory is None:
            setting = self.cfg["in_memory"]
            if self.face:
                if setting is False:
                    raise DataError(f"data.face_crop={self.face['face_crop']} crops once, into the uint8 cache: "
                                    "it needs data.in_memory=auto or true, got false")
                setting = True
            if setting == "auto":
                n = sum(len(s) for s in self._samples().splits.values())
                setting = estimate_cache_bytes(n, int(self.cfg["image_size"]), bool(self.cfg["grayscale"])) \
                    < MEMORY_LIMIT_BYTES
            self._in_memory = bool(setting)
        return self._in_memory

    @property
    def skipped_files(self) -> list[tuple[str, str]]:
        return [item for split in SPLITS if split in self._decoded for item in self._decoded[split].skipped]

    def _prepare(self, split: str) -> DecodedSplit:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split in self._decoded:
            return self._decoded[split]
        sources = self._samples()
        if split not in sources.splits:
            raise DataError(f"{self.cfg['name']} data at {self._root} has no {split} split")
        samples = sources.splits[split]
        cfg = self.cfg
        settings = {"name": cfg["name"], "root": str(self._root), "split": split, **self.face}
        decoded = load_or_decode(samples, cache_dir=self.cache_dir, settings=settings,
                                 image_size=int(cfg["image_size"]), grayscale=bool(cfg["grayscale"]),
                                 keep_pixels=self.in_memory, desc=f"decoding {cfg['name']} {split}",
                                 crop=make_cropper(self.face))
        self._check_split(split, len(samples), decoded)
        if split == "train":
            self._duplicates["train"] = {"within": len(decoded.hashes) - len(set(decoded.hashes))}
        else:
            decoded = self._guard_duplicates(split, decoded)
        self._decoded[split] = decoded
        return decoded

    def _guard_duplicates(self, split: str, decoded: DecodedSplit) -> DecodedSplit:
        """Count (and with dedup=drop remove) the images of an evaluation split identical to an image of train
        or, for a report split, of the selection split val (``of_train``, ``of_val``); count and name the near
        copies (``near``: within NEAR_BITS of a reference image's perceptual hash), removed with dedup=drop_near."""
        references = ["train"] + (["val"] if split != "val" else [])
        first_copy: dict[str, tuple[str, str]] = {}  # hash -> (reference split, its first path)
        labels: dict[str, set] = {}
        ref_paths, ref_perceptual = [], []
        for ref in references:
            prepared = self._prepare(ref)
            for digest, path, target in zip(prepared.hashes, prepared.samples.paths, prepared.samples.targets):
                first_copy.setdefault(digest, (ref, path))
                labels.setdefault(digest, set()).add(target)
                ref_paths.append(path)
                ref_perceptual.append(split_hash(digest)[1])
        copies = [i for i, digest in enumerate(decoded.hashes) if digest in first_copy]
        relabelled = sum(decoded.samples.targets[i] not in labels[decoded.hashes[i]] for i in copies)
        policy = self.cfg["dedup"]
        examples = [f"{display_path(decoded.samples.paths[i])} = {display_path(first_copy[decoded.hashes[i]][1])}"
                    for i in copies[:DUPLICATE_EXAMPLES]]
        counts = {f"of_{ref}": sum(first_copy[decoded.hashes[i]][0] == ref for i in copies) for ref in references}
        others = [i for i in range(len(decoded.samples)) if decoded.hashes[i] not in first_copy]
        checked = self.cfg["name"] not in NO_NEAR_COPIES
        nearest = near_copies([split_hash(decoded.hashes[i])[1] for i in others], ref_perceptual) if checked else {}
        near = [(others[k], ref) for k, ref in nearest.items()]
        near_examples = [f"{display_path(decoded.samples.paths[i])} ~ {display_path(ref_paths[r])}"
                         for i, r in near[:DUPLICATE_EXAMPLES]]
        drop = [] if policy == "keep" else copies + ([i for i, _ in near] if policy == "drop_near" else [])
        self._duplicates[split] = {**counts, "different_label": int(relabelled),
                                   "dropped": len(drop), "examples": examples,
                                   "near": len(near) if checked else None, "near_examples": near_examples}
        if copies:
            log.warning("%s %s: %d of %d image(s) identical to a %s image (%d with a different label), %s "
                        "(data.dedup=%s): %s%s", self.cfg["name"], split, len(copies), len(decoded.samples),
                        " or ".join(references), relabelled, "dropped from evaluation" if policy != "keep" else "kept",
                        policy, "; ".join(examples), "; ..." if len(copies) > len(examples) else "")
        if near:
            log.warning("%s %s: %d of %d image(s) are likely near copies of a %s image (perceptual hash within %d "
                        "of 64 bits: a re-encode or resize), %s (data.dedup=%s): %s%s", self.cfg["name"], split,
                        len(near), len(decoded.samples), " or ".join(references), NEAR_BITS,
                        "dropped from evaluation" if policy == "drop_near" else "kept", policy,
                        "; ".join(near_examples), "; ..." if len(near) > len(near_examples) else "")
        if not drop:
            return decoded
        dropped = set(drop)
        kept = decoded.subset(i for i in range(len(decoded.samples)) if i not in dropped)
        if not len(kept.samples):
            raise DataError(f"{self.cfg['name']} {split} split at {self._root}: all {len(drop)} images are "
                            f"copies of {' or '.join(references)} images; nothing is left to evaluate "
                            "(data.dedup=keep keeps them)")
        return kept

    def _check_split(self, split: str, n_listed: int, decoded: DecodedSplit) -> None:
        skipped = decoded.skipped
        if skipped:
            listing = "\n".join(f"  {p}: {r}" for p, r in skipped[:10]) + ("\n  ..." if len(skipped) > 10 else "")
            fraction, limit = len(skipped) / n_listed, float(self.cfg["max_skipped_fraction"])
            if fraction > limit:
                raise DataError(f"{len(skipped)} of {n_listed} {split} images ({fraction:.1%}) could not be read, "
                                f"more than max_skipped_fraction={limit}:\n{listing}")
            warnings.warn(f"skipped {len(skipped)} unreadable {split} image(s) of {n_listed}:\n{listing}",
                          stacklevel=3)
        counts = np.bincount(np.asarray(decoded.samples.targets, dtype=np.int64), minlength=self.num_classes)
        empty = [c for c, n in zip(self.classes, counts) if n == 0]
        if empty:
            warnings.warn(f"{self.cfg['name']} {split} split ({self._root}) has no images of class(es) "
                          f"{', '.join(empty)}; per-class metrics for them are undefined", stacklevel=3)

    def prepare_data(self) -> None:
        """Decode (or verify) the stage's splits once on local rank 0, so the other ranks find the cache."""
        trainer = getattr(self, "trainer", None)
        fn = trainer.state.fn if trainer is not None else None
        self.setup(fn.value if fn is not None else None)

    def setup(self, stage: str | None = None) -> None:
        if stage == "fit" and not self.cfg["holdout"]:
            raise DataError("data.holdout=false keeps every image in one split: training needs a val split to "
                            "select on and a report split; set data.holdout=true")
        for split in STAGE_SPLITS.get(stage, SPLITS):
            if split in self._samples().splits:
                self._prepare(split)

    def split_paths(self, split: str) -> list[str | None]:
        return list(self._prepare(split).samples.paths)

    def split_targets(self, split: str) -> torch.Tensor:
        return torch.as_tensor(self._prepare(split).samples.targets, dtype=torch.int64)

    # ---------------------------------------------------------------- loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        device = self._device()
        if split not in self._on_device or self._on_device[split][0].device != device:
            decoded = self._prepare(split)
            images = torch.from_numpy(np.array(decoded.images)).to(device)  # copy out of the read-only memmap
            self._on_device[split] = images, self.split_targets(split).to(device)
        return self._on_device[split]

    def _loader(self, split: str, train: bool):
        batch_size = int(self.cfg["batch_size"] if train else self.cfg["eval_batch_size"])
        if self.in_memory:
            rank, world_size = self._rank_world()
            images, targets = self._tensors(split)
            return MemoryLoader(images, targets, batch_size, shuffle=train, seed=self.seed, rank=rank,
                                world_size=world_size)
        decoded = self._prepare(split)
        dataset = FileDataset(decoded.samples, int(self.cfg["image_size"]), bool(self.cfg["grayscale"]))
        workers = int(self.cfg["num_workers"])
        return DataLoader(dataset, batch_size=batch_size, shuffle=train,
                          generator=torch.Generator().manual_seed(self.seed) if train else None,
                          drop_last=train and len(dataset) % batch_size == 1, num_workers=workers,
                          persistent_workers=workers > 0)

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False)

    def test_dataloader(self):
        return self._loader(self.test_split, train=False)

    def eval_dataloader(self, split: str):
        """Any split in evaluation order (no shuffle); batches still go through ``device_transform``."""
        return self._loader(split, train=False)

    # ---------------------------------------------------------------- on-device transform
    def device_transform(self, batch, train: bool):
        """uint8 batch -> (normalised float32 [B, in_chans, S, S], targets, indices); augments when ``train``."""
        images, targets, indices = batch
        x = to_model_input(images, self.in_chans, self.cfg["normalize"]["mean"], self.cfg["normalize"]["std"],
                           augment=self.augment if train else None)
        return x, targets, indices

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        return self.device_transform(batch, train=bool(trainer is not None and trainer.training))

    def describe(self) -> dict:
        """Short summary for logs: name, root, layout, split sizes, in_memory, skipped count, cache reuse."""
        sources = self._samples()
        sizes = {s: len(self._decoded[s].samples) if s in self._decoded else len(sources.splits[s])
                 for s in SPLITS if s in sources.splits}
        return {
            "name": self.cfg["name"], "root": str(self._root), "layout": sources.layout, "splits": sizes,
            "report_split": self.report_split, "split_sources": dict(sources.sources),
            "image_size": int(self.cfg["image_size"]), "grayscale": bool(self.cfg["grayscale"]),
            "in_memory": self.in_memory, "skipped": len(self.skipped_files),
            "skipped_classes": sources.skipped_classes, "split_seed": sources.split_seed,
            "listing_warnings": sources.listing_warnings,
            "cache_reused": {s: d.reused for s, d in self._decoded.items()},
            "classes": list(self.classes), "excluded_classes": self.excluded_classes,
            "face_crop": self.face or None,
            "faces": {s: d.faces for s, d in self._decoded.items() if d.faces is not None},
        }


def build_datamodule(data_cfg, in_chans: int = 3, seed: int = 0) -> FERDataModule:
    """The datamodule for ``cfg.data`` (an OmegaConf node or a mapping; see :func:`resolve_data_config`)."""
    return FERDataModule(data_cfg, in_chans=in_chans, seed=seed)
