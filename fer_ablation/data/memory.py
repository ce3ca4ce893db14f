"""The in-memory path: a uint8 tensor cache on disk, kept on the accelerator, batched by a device-side index.

Each split is decoded once into ``cache_dir/tensors/<key>.npy`` (uint8 [N, C, S, S], memory-mappable) plus
``<key>.json`` (kept sample indices, paths as :func:`~fer_ablation.data.folders.display_path` writes them, targets,
skipped files, the :func:`~fer_ablation.data.decode.pixel_hash` of every kept image for the duplicate guard), both
written atomically. The key hashes the decoding settings, ``decode.DECODE_VERSION`` and the
files' identity (paths as bytes, sizes, mtimes and labels; for csv rows the pixel bytes), so a changed, added or
removed file, or a change to decoding, invalidates it. The DataLoader path keeps only the json (``checks/<key>.json``)
so unreadable files are found once, up front, in both paths.

Batches: the split lives on the device as one uint8 tensor; a batch is ``images[idx]`` for a slice ``idx`` of an
index tensor on the same device. Training order is a permutation drawn on the CPU from a generator seeded with
(seed, epoch) -- so it is the same on every device and every rank -- then moved to the device. Lightning calls
``loader.sampler.set_epoch(epoch)`` at each epoch start; outside Lightning the epoch advances per pass.

Distributed (see :func:`train_shard`, :func:`eval_shard`): every rank draws the same permutation and takes
``perm[rank::world_size]`` truncated to ``N // world_size`` samples, so all ranks run the same number of
batches; evaluation takes ``rank::world_size`` with no padding, so every sample is scored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_ablation.atomic import atomic_file, write_atomic
from fer_ablation.data import decode
from fer_ablation.data.decode import decode_samples
from fer_ablation.data.folders import Samples, display_path

CACHE_VERSION = 3  # 2: pixel hashes stored with every split; 3: with perceptual hashes
MEMORY_LIMIT_BYTES = 4 * 2**30  # in_memory: auto uses the tensor cache below this size


def files_identity(samples: Samples) -> str:
    """Hash of what the samples are: paths, sizes, mtimes and labels (csv rows: the pixel bytes)."""
    h = hashlib.sha1()
    if samples.pixels is not None:
        h.update(np.ascontiguousarray(samples.pixels).tobytes())
    for path, target in zip(samples.paths, samples.targets):
        if samples.pixels is None:
            try:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            h.update(os.fsencode(path) + f"\0{size}\0{mtime}\0{target}\n".encode())
        else:
            h.update(f"{path}\0{target}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_key(settings: dict, samples: Samples) -> str:
    payload = json.dumps({"version": CACHE_VERSION, "decode_version": decode.DECODE_VERSION, "settings": settings,
                          "files": files_identity(samples)},
                         sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:24]


def estimate_cache_bytes(n_images: int, image_size: int, grayscale: bool) -> int:
    return n_images * (1 if grayscale else 3) * image_size * image_size


@dataclass
class DecodedSplit:
    """A split after decoding: ``samples`` are the readable ones, in the order of ``images``' rows."""

    samples: Samples
    images: np.ndarray | None  # uint8 [N, C, S, S] memory-mapped from the cache; None on the DataLoader path
    skipped: list[tuple[str, str]]
    reused: bool
    cache_file: Path
    hashes: list[str]  # decode.pixel_hash of each kept sample (before resizing), in the order of ``samples``
    faces: dict | None = None  # face-crop counts (data.faces.FaceCropper.counts) when the split was cropped

    def subset(self, rows) -> "DecodedSplit":
        """Only ``rows`` (positions in this split), in that order; the images are copied out of the memmap."""
        rows = list(rows)
        images = None if self.images is None else np.asarray(self.images)[rows]
        return DecodedSplit(self.samples.subset(rows), images, self.skipped, self.reused, self.cache_file,
                            [self.hashes[r] for r in rows], self.faces)


def load_or_decode(samples: Samples, *, cache_dir, settings: dict, image_size: int, grayscale: bool,
                   keep_pixels: bool = True, desc: str = "decoding", crop=None) -> DecodedSplit:
    """Reuse the cache for these samples and settings when present, else decode and write it atomically.

    ``crop``: a :class:`~fer_ablation.data.faces.FaceCropper`, whose settings must be in ``settings``."""
    key = cache_key({**settings, "image_size": image_size, "grayscale": grayscale}, samples)
    folder = Path(cache_dir).expanduser() / ("tensors" if keep_pixels else "checks")
    meta_file, npy_file = folder / f"{key}.json", folder / f"{key}.npy"
    if meta_file.is_file() and (not keep_pixels or npy_file.is_file()):
        meta = json.loads(meta_file.read_text())
        images = np.load(npy_file, mmap_mode="r") if keep_pixels else None
        skipped = [(p, r) for p, r in meta["skipped"]]
        return DecodedSplit(samples.subset(meta["kept"]), images, skipped, True, npy_file if keep_pixels else meta_file,
                            list(meta["hashes"]), meta.get("faces"))

    images, kept, skipped, hashes = decode_samples(samples, image_size, grayscale, keep_pixels=keep_pixels,
                                                   desc=desc, crop=crop)
    folder.mkdir(parents=True, exist_ok=True)
    if keep_pixels:
        with atomic_file(npy_file) as f:
            np.save(f, images)
    kept_samples = samples.subset(kept)
    meta = {"kept": kept, "paths": [display_path(p) for p in kept_samples.paths], "targets": kept_samples.targets,
            "skipped": skipped, "hashes": hashes, "settings": settings, "image_size": image_size,
            "grayscale": grayscale, "faces": crop.counts() if crop is not None else None}
    write_atomic(meta_file, json.dumps(meta))
    if keep_pixels:
        images = np.load(npy_file, mmap_mode="r")
    return DecodedSplit(kept_samples, images, skipped, False, npy_file if keep_pixels else meta_file, hashes,
                        meta["faces"])


def train_shard(permutation: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's training samples: ``permutation[rank::world_size]`` cut to ``N // world_size`` (same on all ranks)."""
    return permutation[rank::world_size][: len(permutation) // world_size]


def eval_shard(n: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's evaluation samples: ``rank::world_size``; together the ranks cover 0..n-1 exactly once."""
    return torch.arange(rank, n, world_size)


def train_batch_count(n: int, batch_size: int) -> int:
    """Batches for ``n`` training samples; a last batch of one sample is dropped (BatchNorm cannot train on it)."""
    full, rest = divmod(n, batch_size)
    return full + (rest > 1 or (rest == 1 and full == 0))


def eval_batch_count(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class EpochShuffle:
    """Seeded per-epoch permutation. Named ``sampler`` on the loader so Lightning's ``set_epoch`` call finds it."""

    def __init__(self, seed: int = 0):
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def permutation(self, n: int, epoch: int | None = None) -> torch.Tensor:
        epoch = self.epoch if epoch is None else epoch
        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class MemoryLoader:
    """Iterable of (uint8 images [B, C, S, S], int64 targets [B], int64 indices [B]) on ``images.device``.

    ``shuffle=True`` is the training order (per-epoch permutation, sharded by :func:`train_shard`);
    otherwise samples come in order, sharded by :func:`eval_shard`.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images, self.targets = images, targets.to(images.device)
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self.sampler = EpochShuffle(seed) if shuffle else None
        self.batch_sampler = None  # Lightning's shuffle check reads it; batching is done here

    def __len__(self) -> int:
        n = len(self.targets)
        if self.sampler is not None:
            return train_batch_count(n // self.world_size, self.batch_size)
        return eval_batch_count(len(range(self.rank, n, self.world_size)), self.batch_size)

    def indices(self) -> torch.Tensor:
        """This rank's sample order for the coming pass (training: advances the epoch)."""
        n = len(self.targets)
        if self.sampler is None:
            return eval_shard(n, self.rank, self.world_size)
        order = train_shard(self.sampler.permutation(n), self.rank, self.world_size)
        self.sampler.epoch += 1
        return order

    def __iter__(self):
        order = self.indices().to(self.images.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.images[idx], self.targets[idx], idx
