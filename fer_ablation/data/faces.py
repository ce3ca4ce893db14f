"""Face crops applied while the uint8 cache is built (``data.face_crop``, ``data.face_margin``, ``data.no_face``).

The detector and the crop are :mod:`fer_ablation.data.face` (OpenCV's frontal-face Haar cascade, the largest face,
a square grown by the margin); the same code serves ``python -m fer_ablation.predict``, and the checkpoint's
``preprocessing`` records the setting, so prediction crops as training did. An image without a detected face
is kept uncropped (``no_face: keep``) or left out of the split (``skip``); both are counted per split in
``describe()["faces"]`` (metrics.json ``data_summary``).
"""

from __future__ import annotations

import threading
from typing import Callable

from PIL import Image

from fer_ablation.data.errors import DataError
from fer_ablation.data.face import Box, HaarFaceDetector, crop_face

FACE_CROPS = ("none", "haar")
NO_FACE = ("keep", "skip")


class NoFaceFound(Exception):
    """No face in an image under ``no_face: skip``: the image is left out (counted, not an unreadable file)."""


class FaceCropper:
    """Callable PIL image -> square face crop (or the image, or NoFaceFound); counts what it did.

    Decoding runs in threads: detection and counting are serialised by a lock (the cascade object is shared).
    """

    def __init__(self, detector: Callable[[Image.Image], Box | None], margin: float, no_face: str = "keep"):
        if no_face not in NO_FACE:
            raise DataError(f"data.no_face={no_face!r}: expected one of {list(NO_FACE)}")
        if margin < 0:
            raise DataError(f"data.face_margin={margin!r}: expected a fraction >= 0 of the face's side")
        self.detector, self.margin, self.no_face = detector, float(margin), no_face
        self._lock = threading.Lock()
        self.found = self.not_found = 0

    def __call__(self, image: Image.Image) -> Image.Image:
        with self._lock:
            cropped, box = crop_face(image, self.detector, self.margin)
            if box is None:
                self.not_found += 1
            else:
                self.found += 1
        if box is None and self.no_face == "skip":
            raise NoFaceFound()
        return cropped

    def counts(self) -> dict[str, int]:
        skipped = self.not_found if self.no_face == "skip" else 0
        return {"found": self.found, "not_found": self.not_found, "skipped": skipped}


def face_settings(cfg: dict) -> dict:
    """The face-crop keys of a resolved data config, checked; empty for ``face_crop: none`` (so the cache key of
    uncropped data is what it was before face crops existed)."""
    mode = str(cfg["face_crop"])
    if mode not in FACE_CROPS:
        raise DataError(f"data.face_crop={cfg['face_crop']!r}: expected one of {list(FACE_CROPS)}")
    if mode == "none":
        return {}
    if str(cfg["no_face"]) not in NO_FACE:
        raise DataError(f"data.no_face={cfg['no_face']!r}: expected one of {list(NO_FACE)}")
    return {"face_crop": mode, "face_margin": float(cfg["face_margin"]), "no_face": str(cfg["no_face"])}


def make_cropper(settings: dict) -> FaceCropper | None:
    """The cropper for :func:`face_settings`' result (None when it is empty)."""
    if not settings:
        return None
    return FaceCropper(HaarFaceDetector(), settings["face_margin"], settings["no_face"])
