"""Decoding: an image file (or a csv pixel array) -> uint8 [C, S, S], C = 1 (grayscale) or 3 (RGB).

Any PIL mode is accepted: 16-bit and 32-bit integer images are scaled to 8 bits, palette and alpha images are
converted without their alpha, then the image is converted to L or RGB and resized (stretched, bilinear with
antialiasing) to ``image_size`` x ``image_size``. Files that cannot be decoded (missing, empty, truncated,
not an image) are reported, never silently replaced.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from fer_ablation.data.folders import Samples, display_path

PROGRESS_MIN_FILES = 2000


def to_8bit(img: Image.Image) -> Image.Image:
    """Bring high-bit-depth and palette/alpha modes to L or RGB(A) without clipping bright values to 255."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        if arr.max(initial=0) > 255:  # 16-bit range (PNG I;16 loads as mode I in recent Pillow)
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        return img.convert("RGBA")
    return img


def pil_to_array(img: Image.Image, image_size: int, grayscale: bool) -> np.ndarray:
    img = to_8bit(img).convert("L" if grayscale else "RGB")
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = np.array(img, dtype=np.uint8)
    return arr[None] if grayscale else arr.transpose(2, 0, 1)


def decode_file(path: str, image_size: int, grayscale: bool) -> np.ndarray:
    """Decode one file; raises OSError/ValueError with a reason for missing, empty or broken files."""
    if os.path.getsize(path) == 0:
        raise OSError("empty file")
    with Image.open(path) as img:
        img.load()  # decodes fully, so a truncated file raises here
        return pil_to_array(img, image_size, grayscale)


def decode_item(samples: Samples, i: int, image_size: int, grayscale: bool) -> np.ndarray:
    if samples.pixels is not None:
        return pil_to_array(Image.fromarray(samples.pixels[i], mode="L"), image_size, grayscale)
    return decode_file(samples.paths[i], image_size, grayscale)


def _try_decode(args):
    samples, i, image_size, grayscale = args
    try:
        return decode_item(samples, i, image_size, grayscale), None
    except FileNotFoundError:
        return None, "missing file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"unreadable: {exc}"


def decode_samples(samples: Samples, image_size: int, grayscale: bool, *, keep_pixels: bool = True,
                   desc: str = "decoding") -> tuple[np.ndarray | None, list[int], list[tuple[str, str]]]:
    """Decode every sample -> (uint8 [N_ok, C, S, S] or None, indices decoded, [(path, reason)] skipped).

    Skipped paths are given as :func:`~fer_ablation.data.folders.display_path` shows them (safe to write).

    Threads decode in parallel (PIL releases the GIL); a progress bar appears for large splits.
    """
    channels = 1 if grayscale else 3
    out = np.empty((len(samples), channels, image_size, image_size), np.uint8) if keep_pixels else None
    kept, skipped = [], []
    jobs = ((samples, i, image_size, grayscale) for i in range(len(samples)))
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(_try_decode, jobs)
        for i, (arr, reason) in enumerate(tqdm(results, total=len(samples), desc=desc, unit="img",
                                               disable=len(samples) < PROGRESS_MIN_FILES)):
            if reason is not None:
                skipped.append((display_path(samples.paths[i]), reason))
                continue
            if out is not None:
                out[len(kept)] = arr
            kept.append(i)
    return (None if out is None else out[: len(kept)]), kept, skipped


class FileDataset(torch.utils.data.Dataset):
    """The DataLoader path: decodes one sample per item -> (uint8 [C, S, S], target, index)."""

    def __init__(self, samples: Samples, image_size: int, grayscale: bool):
        self.samples, self.image_size, self.grayscale = samples, image_size, grayscale

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        image = decode_item(self.samples, i, self.image_size, self.grayscale)
        return torch.from_numpy(image), self.samples.targets[i], i
