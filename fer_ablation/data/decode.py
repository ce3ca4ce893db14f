"""Decoding: an image file (or a csv pixel array) -> uint8 [C, S, S], C = 1 (grayscale) or 3 (RGB).

The EXIF orientation tag is applied first (``PIL.ImageOps.exif_transpose``), so a photo stored sideways with
orientation 6 or 8 comes out upright as a viewer shows it (EXIF 2.32, tag 0x0112). Any PIL mode is accepted:
16-bit images are scaled to 8 bits by the type's range (v * 255 / 65535, whatever the image's own maximum),
palette and alpha images are converted without their alpha, then the image is converted to L or RGB and resized
(stretched, bilinear with antialiasing) to ``image_size`` x ``image_size``. 32-bit integer images have no
defined 8-bit scaling and are refused; float images (mode F) in 0..1 are scaled by 255, those in 0..255 (some value
above 1) are taken as they are, others (negative, above 255, NaN) are refused. Files that cannot be decoded (missing, empty, truncated, not an image)
are reported, never silently replaced. ``crop`` (a :class:`~fer_ablation.data.faces.FaceCropper`) cuts the
face out of the upright 8-bit image before the conversion and resize.

Each decoded image also gets a content hash (:func:`pixel_hash`) of its pixels after this decoding, before
any face crop and before resizing, so byte-different files with the same pixels (a PNG and a
re-encoded PNG, a csv row and a file) match, and a perceptual hash (:func:`perceptual_hash`, 64 bits of its low
DCT frequencies) that near copies (a JPEG re-encode, a resized copy) share up to a few bits; the data module uses
both to find evaluation images that are copies of training images. The two travel as one string,
``"<pixel hash>/<perceptual hash in hex>"`` (:func:`split_hash`).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from fer_ablation.data.faces import NoFaceFound
from fer_ablation.data.folders import Samples, display_path

Crop = Callable[[Image.Image], Image.Image] | None

PROGRESS_MIN_FILES = 2000
# Part of the cache key: bump it whenever the pixels decoding gives for a file change, so old caches are not reused.
# 2: 16-bit images scaled by 65535 (not by their own maximum); EXIF orientation applied.
# 3: float images in 0..1 scaled by 255 (they were rounded to 0/1, nearly black).
DECODE_VERSION = 3
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def bits_per_sample(img: Image.Image) -> int:
    """Bit depth of a mode-I image's file: Pillow opens 16-bit PGM/PPM (rescaled to 0..65535) and, in older
    versions, 16-bit PNG as mode I; a TIFF says so in its BitsPerSample tag (0x0102); other sources are 32-bit."""
    if img.format in ("PNG", "PPM"):
        return 16
    tags = getattr(img, "tag_v2", None)
    bits = tags.get(0x0102) if tags is not None else None
    return int(bits[0] if isinstance(bits, tuple) else bits) if bits else 32


def to_8bit(img: Image.Image) -> Image.Image:
    """Bring high-bit-depth and palette/alpha modes to L or RGB(A) without clipping bright values to 255."""
    if img.mode in MODES_16BIT or img.mode == "I":
        bits = 16 if img.mode in MODES_16BIT else bits_per_sample(img)
        if bits > 16:
            raise ValueError(f"{bits}-bit integer image (mode I, {img.format or 'unknown format'}) has no defined "
                             "8-bit scaling; convert it to 8 or 16 bits")
        arr = np.asarray(img).astype(np.float64) * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("float image (mode F) with non-finite values")
        low, high = float(arr.min()), float(arr.max())
        if low < 0 or high > 255:
            raise ValueError(f"float image (mode F) with values {low:g}..{high:g}: expected 0..1 or 0..255")
        scale = 255.0 if high <= 1.0 else 1.0  # 0..1 is the float convention; 0..255 when any value exceeds 1
        return Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        return img.convert("RGBA")
    return img


def pixel_hash(img: Image.Image) -> str:
    """Short SHA-1 of an L or RGB image's mode, size and pixel bytes (the duplicate guard's identity)."""
    h = hashlib.sha1(f"{img.mode}\0{img.size[0]}x{img.size[1]}\0".encode())
    h.update(img.tobytes())
    return h.hexdigest()[:20]


PERCEPTUAL_SIDE, PERCEPTUAL_BITS_SIDE = 32, 8
_DCT = np.cos(np.pi * np.outer(np.arange(PERCEPTUAL_BITS_SIDE), 2 * np.arange(PERCEPTUAL_SIDE) + 1)
              / (2 * PERCEPTUAL_SIDE))  # the lowest 8 rows of the 32-point DCT-II basis


def perceptual_hash(img: Image.Image) -> int:
    """64-bit DCT hash of an image's luma (pHash, Zauner 2010: "Implementation and Benchmarking of Perceptual
    Image Hash Functions"): the image resized to 32x32 (Lanczos), its 8x8 lowest 2-D DCT-II frequencies, one bit per
    frequency above their median. A JPEG re-encode or a resized copy flips few bits (:func:`hamming`)."""
    small = np.asarray(img.convert("L").resize((PERCEPTUAL_SIDE, PERCEPTUAL_SIDE), Image.Resampling.LANCZOS),
                       dtype=np.float64)
    low = _DCT @ small @ _DCT.T
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between 64-bit hashes, broadcast (uint64 arrays)."""
    return np.bitwise_count(np.bitwise_xor(a, b))


def pil_to_array_hashed(img: Image.Image, image_size: int, grayscale: bool, crop: Crop = None) -> tuple[np.ndarray, str]:
    """(uint8 [C, S, S], :func:`pixel_hash` of the image before resizing + "/" + its :func:`perceptual_hash` in hex)."""
    img = to_8bit(img)
    mode = "L" if grayscale else "RGB"
    # the file's pixels, before any face crop: copies match as files
    digest = f"{pixel_hash(img.convert(mode))}/{perceptual_hash(img):016x}"
    if crop is not None:
        img = crop(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    img = img.convert(mode)
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = np.array(img, dtype=np.uint8)
    return (arr[None] if grayscale else arr.transpose(2, 0, 1)), digest


def split_hash(digest: str) -> tuple[str, int]:
    """(pixel hash, perceptual hash) of a digest of :func:`pil_to_array_hashed`."""
    exact, _, perceptual = digest.partition("/")
    return exact, int(perceptual, 16)


def pil_to_array(img: Image.Image, image_size: int, grayscale: bool, crop: Crop = None) -> np.ndarray:
    return pil_to_array_hashed(img, image_size, grayscale, crop)[0]


def read_image(path) -> Image.Image:
    """The file's image upright (EXIF orientation applied) in an 8-bit mode (:func:`to_8bit`): the one reader of
    image files for training, evaluation and ``predict``; OSError/ValueError with the reason for missing, empty,
    broken or undecodable files."""
    if os.path.getsize(path) == 0:
        raise OSError("empty file")
    with Image.open(path) as img:
        img.load()  # decodes fully, so a truncated file raises here
        ImageOps.exif_transpose(img, in_place=True)  # in place keeps the format and tags to_8bit reads
        return to_8bit(img)


def decode_file_hashed(path: str, image_size: int, grayscale: bool, crop: Crop = None) -> tuple[np.ndarray, str]:
    """Decode one file -> (array, pixel hash); raises OSError/ValueError with a reason (see :func:`read_image`)."""
    return pil_to_array_hashed(read_image(path), image_size, grayscale, crop)


def decode_file(path: str, image_size: int, grayscale: bool, crop: Crop = None) -> np.ndarray:
    return decode_file_hashed(path, image_size, grayscale, crop)[0]


def decode_item_hashed(samples: Samples, i: int, image_size: int, grayscale: bool,
                       crop: Crop = None) -> tuple[np.ndarray, str]:
    if samples.pixels is not None:
        return pil_to_array_hashed(Image.fromarray(samples.pixels[i], mode="L"), image_size, grayscale, crop)
    return decode_file_hashed(samples.paths[i], image_size, grayscale, crop)


def decode_item(samples: Samples, i: int, image_size: int, grayscale: bool, crop: Crop = None) -> np.ndarray:
    return decode_item_hashed(samples, i, image_size, grayscale, crop)[0]


NO_FACE = "no face"  # _try_decode's reason for an image left out by the face crop (not an unreadable file)


def _try_decode(args):
    samples, i, image_size, grayscale, crop = args
    try:
        return decode_item_hashed(samples, i, image_size, grayscale, crop), None
    except NoFaceFound:
        return None, NO_FACE
    except FileNotFoundError:
        return None, "missing file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"unreadable: {exc}"


def decode_samples(samples: Samples, image_size: int, grayscale: bool, *, keep_pixels: bool = True,
                   desc: str = "decoding", crop: Crop = None
                   ) -> tuple[np.ndarray | None, list[int], list[tuple[str, str]], list[str]]:
    """Decode every sample -> (uint8 [N_ok, C, S, S] or None, indices decoded, [(path, reason)] skipped,
    pixel hashes of the decoded ones).

    Images that ``crop`` leaves out (no face found) are in neither list; the cropper counts them.

    Skipped paths are given as :func:`~fer_ablation.data.folders.display_path` shows them (safe to write).

    Threads decode in parallel (PIL releases the GIL); a progress bar appears for large splits.
    """
    channels = 1 if grayscale else 3
    out = np.empty((len(samples), channels, image_size, image_size), np.uint8) if keep_pixels else None
    kept, skipped, hashes = [], [], []
    jobs = ((samples, i, image_size, grayscale, crop) for i in range(len(samples)))
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(_try_decode, jobs)
        for i, (decoded, reason) in enumerate(tqdm(results, total=len(samples), desc=desc, unit="img",
                                                   disable=len(samples) < PROGRESS_MIN_FILES)):
            if reason == NO_FACE:
                continue
            if reason is not None:
                skipped.append((display_path(samples.paths[i]), reason))
                continue
            arr, digest = decoded
            if out is not None:
                out[len(kept)] = arr
            kept.append(i)
            hashes.append(digest)
    return (None if out is None else out[: len(kept)]), kept, skipped, hashes


class FileDataset(torch.utils.data.Dataset):
    """The DataLoader path: decodes one sample per item -> (uint8 [C, S, S], target, index)."""

    def __init__(self, samples: Samples, image_size: int, grayscale: bool):
        self.samples, self.image_size, self.grayscale = samples, image_size, grayscale

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        image = decode_item(self.samples, i, self.image_size, self.grayscale)
        return torch.from_numpy(image), self.samples.targets[i], i
