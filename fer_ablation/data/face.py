"""Face detection and square face crops for photos that are not tight face crops.

Detector: OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml``; Viola & Jones,
"Rapid Object Detection using a Boosted Cascade of Simple Features", CVPR 2001; Lienhart & Maydt,
"An Extended Set of Haar-like Features for Rapid Object Detection", ICIP 2002), loaded from the
``cv2/data`` folder of the ``opencv-python-headless`` 4.x wheel, so nothing is downloaded at run time
(the 5.0 wheel no longer ships the XML files: the dependency is pinned below 5).

Crop: the largest detection (w x h) is grown by ``margin`` times its side on every side into a square
of side ``max(w, h) * (1 + 2 * margin)`` centred on the detection. The square is clipped to the image:
its side is capped at the image's shorter side and it is shifted inside the image, so a crop never
contains padding the model did not see in training (a face at the border ends up off-centre instead).

On FER2013 faces (48 px crops scaled to 96-200 px and pasted onto a 640 x 480 noise background) the
cascade's box covers about 0.94 of the pasted crop's side (median of 85 detections), centred: FER2013
crops are tight, so the default margin of 0.03 per side reproduces their framing. With the default
parameters it found 203 of 300 PublicTest faces (64-160 px, random positions on a 480 x 360 noise
background) where they were (square crop IoU >= 0.5 with the pasted crop, median 0.84), missed 89
and boxed something else in 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

CASCADE_FILE = "haarcascade_frontalface_default.xml"
DEFAULT_MARGIN = 0.03
# Detection runs on a copy whose longer side is at most this many pixels (the cascade's cost grows with
# the pixel count); boxes are scaled back to the original image.
DETECT_MAX_SIDE = 640


class Box(NamedTuple):
    """An axis-aligned box in pixels: left, top, width, height (integers, image coordinates)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def ltrb(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.w, self.y + self.h


def cascade_path() -> Path:
    """The frontal-face cascade inside the installed OpenCV wheel; fails with the fix when it is missing."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / CASCADE_FILE
    if not folder or not path.is_file():
        raise FileNotFoundError(
            f"OpenCV {cv2.__version__} has no {CASCADE_FILE} (looked in {folder!r}); the face detector needs "
            "the cascade files of the 4.x wheels: pip install 'opencv-python-headless>=4.8,<5'"
        )
    return path


@dataclass
class HaarFaceDetector:
    """Largest frontal face in an image, or None. ``scale_factor``, ``min_neighbors`` and ``min_size`` are
    ``cv2.CascadeClassifier.detectMultiScale``'s parameters (min_size in pixels of the detection copy)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    max_side: int = DETECT_MAX_SIDE

    def __post_init__(self):
        import cv2

        if self.scale_factor <= 1.0:
            raise ValueError(f"face detector scale_factor must be > 1, got {self.scale_factor}")
        if self.min_neighbors < 0 or self.min_size < 1 or self.max_side < self.min_size:
            raise ValueError(f"face detector: min_neighbors={self.min_neighbors} must be >= 0, "
                             f"min_size={self.min_size} >= 1 and max_side={self.max_side} >= min_size")
        path = cascade_path()
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise OSError(f"OpenCV could not load the face cascade {path}")

    def detect_all(self, image: Image.Image) -> list[Box]:
        """Every detection, in the image's pixel coordinates."""
        gray = image.convert("L")
        scale = min(1.0, self.max_side / max(gray.size))
        if scale < 1.0:
            gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))),
                               Image.Resampling.BILINEAR)
        found = self._cascade.detectMultiScale(np.asarray(gray), scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        return [Box(*(round(int(v) / scale) for v in box)) for box in found]

    def __call__(self, image: Image.Image) -> Box | None:
        boxes = self.detect_all(image)
        return max(boxes, key=lambda b: b.area) if boxes else None


def square_box(face: Box, margin: float, width: int, height: int) -> Box:
    """The square crop around ``face`` grown by ``margin`` per side, clipped to a width x height image."""
    if margin < 0:
        raise ValueError(f"face margin must be >= 0 (a fraction of the face's side), got {margin}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    side = min(round(max(face.w, face.h) * (1 + 2 * margin)), width, height)
    side = max(side, 1)
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    x = min(max(round(cx - side / 2), 0), width - side)
    y = min(max(round(cy - side / 2), 0), height - side)
    return Box(x, y, side, side)


def crop_face(image: Image.Image, detector: Callable[[Image.Image], Box | None],
              margin: float = DEFAULT_MARGIN) -> tuple[Image.Image, Box | None]:
    """(square face crop, its box in ``image``) for the largest face, or (``image``, None) when none is found."""
    face = detector(image)
    if face is None:
        return image, None
    box = square_box(face, margin, image.width, image.height)
    return image.crop(box.ltrb()), box
