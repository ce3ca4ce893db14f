"""Synthetic facial-expression probe: procedurally drawn faces, deterministic, calibrated to be learnable mid-range.

A stand-in data set for CPU demos and tests, built with numpy + PIL only (no assets, fonts or downloads).
Each of the seven canonical expressions (``fer_ablation.data.labels.CLASSES``) is encoded in facial geometry the
way FER cues work (Ekman & Friesen's action units, simplified):

- anger: brows lowered and drawn together (inner ends down), eyes narrowed, lips pressed thin;
- disgust: nose wrinkle, upper lip raised on one side, brows slightly lowered, eyes narrowed;
- fear: brows raised and drawn together, eyes wide open, mouth stretched sideways and slightly open;
- happiness: wide mouth with corners up, teeth showing, cheeks narrowing the eyes;
- sadness: inner brow ends raised, mouth corners down, eyelids drooping;
- surprise: brows raised and arched, eyes wide open, jaw dropped with an open round mouth;
- neutral: everything at rest.

Each face shows its expression at a random intensity between ``INTENSITY_LOW`` and 1 (blended from neutral), on
top of per-person jitter of every cue. Nuisance variation: identity (face shape, skin tone, feature spacing, hair,
ears), pose (shift, in-plane rotation, scale within ``face_scale``), lighting gradient, contrast, sensor noise,
partial occlusion of the face, and background clutter (shapes, textures, distractor face-like blobs) whose amount
and contrast grow with ``clutter`` (0 = plain background). Faces are drawn at ``SUPERSAMPLE`` times the output
size and box-averaged down for antialiasing.

Determinism: image ``i`` is drawn from ``numpy.random.Generator(PCG64(SeedSequence([seed, i])))`` only, so
it does not depend on generation order; its label is ``CLASSES[i % 7]``. Points are rotated with a rational
(libm-free) parametrisation and rounded to integer pixels before drawing (the unit-circle table is computed once),
downsampling, lighting and noise use only elementwise IEEE arithmetic, and PNGs are written by a small encoder
with stored (uncompressed) deflate blocks, because zlib and zlib-ng compress the same pixels into different bytes.
Same knobs -> byte-identical files for the same numpy and Pillow versions.

Usage::

    python -m fer_ablation.data.synthetic --out /tmp/probe --seed 0
    python -m fer_ablation.data.synthetic --contact-sheet results/figures/probe_contact_sheet.png
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer_ablation.data.defaults import data_defaults
from fer_ablation.data.errors import DataError
from fer_ablation.data.labels import CLASSES

log = logging.getLogger(__name__)

# Bump whenever the drawing changes: it is part of the cache key, so old caches are never reused.
GENERATOR_VERSION = 2
SUPERSAMPLE = 4

# The probe's defaults are those of `data=synthetic` (conf/data/synthetic.yaml), the one place they are written.
DEFAULT_KNOBS: dict = {k: v for k, v in data_defaults("synthetic").items()
                       if k in ("n_images", "n_val", "n_test", "image_size", "clutter", "face_scale", "seed",
                                "grayscale")}
DEFAULT_KNOBS["face_scale"] = tuple(DEFAULT_KNOBS["face_scale"])

# Difficulty: tuned so that the default CPU budget (conf/config.yaml: from-scratch ResNet50, 48 px, batch 16,
# AdamW + cosine, 4 epochs) lands mid-range; the measured accuracies, and how they move with clutter and
# face_scale, are in the README ("The probe data set").
INTENSITY_LOW = 0.8           # weakest expression intensity (fraction of the full cue, blended from neutral)
JITTER_SCALE = 0.5            # multiplies CUE_JITTER (per-person resting variation of the cues)
NOISE_SIGMA = (2.0, 6.0)      # sensor noise standard deviation range, in 0..255 levels
LIGHT_GRADIENT = 0.4          # max relative brightness change across the image
MAX_ROTATION_TAN = 0.09       # tan(theta/2) bound of the in-plane rotation: about +-10 degrees
OCCLUSION_PROB = 0.1
SKIN_TONE = (0.0, 0.45)       # range of skin tones, 0 = light .. 1 = dark
MIN_FACE_CONTRAST = 50.0      # min luminance difference between skin and plain background, in 0..255 levels
CONTRAST = (0.85, 1.1)        # global contrast factor range
IDENTITY_SPREAD = 0.6         # scales the ranges of face shape and feature spacing
HAIR_DARKNESS = 3.0           # hair colour = mix(dark, blond, u ** HAIR_DARKNESS)

# Expression cues at full intensity, as changes from the neutral face (units: face height; factors for *_open,
# mouth_w, lip_t). brow_tilt > 0 raises the inner brow ends; mouth_curve > 0 lifts the corners.
NEUTRAL_FACE = {
    "brow_raise": 0.0, "brow_tilt": 0.0, "brow_in": 0.0, "brow_arch": 0.015, "eye_open": 1.0,
    "mouth_w": 1.0, "mouth_curve": 0.0, "mouth_open": 0.0, "lip_t": 1.0, "wrinkle": 0.0,
    "jaw": 0.0, "teeth": 0.0, "sneer": 0.0,
}
EXPRESSIONS = {
    "anger": {"brow_raise": -0.05, "brow_tilt": -0.12, "brow_in": 0.04, "brow_arch": 0.0, "eye_open": 0.45,
              "mouth_w": 0.75, "lip_t": 0.3, "mouth_curve": -0.025},
    "disgust": {"wrinkle": 1.0, "brow_raise": -0.03, "brow_tilt": -0.04, "eye_open": 0.55, "mouth_curve": -0.04,
                "sneer": 0.09, "mouth_open": 0.015, "teeth": 1.0},
    "fear": {"brow_raise": 0.06, "brow_tilt": 0.08, "brow_in": 0.025, "eye_open": 1.8, "mouth_w": 1.35,
             "mouth_open": 0.06, "mouth_curve": -0.03, "teeth": 1.0},
    "happiness": {"mouth_w": 1.4, "mouth_curve": 0.12, "mouth_open": 0.06, "teeth": 1.0, "eye_open": 0.6,
                  "brow_raise": 0.005},
    "sadness": {"brow_tilt": 0.12, "brow_raise": 0.005, "brow_arch": -0.015, "eye_open": 0.65,
                "mouth_curve": -0.1, "mouth_w": 0.9, "lip_t": 1.2},
    "surprise": {"brow_raise": 0.09, "brow_arch": 0.04, "eye_open": 1.9, "mouth_w": 0.7, "mouth_open": 0.2,
                 "jaw": 0.06},
    "neutral": {},
}
# Per-person resting variation of each cue (half-width of a triangular distribution).
CUE_JITTER = {
    "brow_raise": 0.012, "brow_tilt": 0.015, "brow_in": 0.008, "brow_arch": 0.008, "eye_open": 0.12,
    "mouth_w": 0.08, "mouth_curve": 0.012, "mouth_open": 0.006, "lip_t": 0.2, "wrinkle": 0.1,
    "jaw": 0.01, "teeth": 0.0, "sneer": 0.006,
}

LIGHT_SKIN, DARK_SKIN = (250, 222, 196), (92, 58, 40)
_N_CIRCLE = 48
_CIRCLE = np.stack([np.cos(np.arange(_N_CIRCLE) * (2 * np.pi / _N_CIRCLE)),
                    np.sin(np.arange(_N_CIRCLE) * (2 * np.pi / _N_CIRCLE))], axis=1)
_U = np.linspace(-1.0, 1.0, 17)   # parameter along eyes, brows and lips


# ----------------------------------------------------------------------------------------------------- knobs ---

def check_knobs(*, n_images, n_val, image_size, clutter, face_scale, seed, grayscale, n_test=0) -> dict:
    """Validate the knobs; return them normalised (plain ints/floats/tuple). Raises DataError naming the value."""
    try:
        lo, hi = (float(v) for v in face_scale)
    except (TypeError, ValueError):
        raise DataError(f"face_scale must be two numbers (lo, hi) with 0 < lo <= hi <= 1, got {face_scale!r}")
    if not 0 < lo <= hi <= 1:
        raise DataError(f"face_scale must satisfy 0 < lo <= hi <= 1 (face size relative to the image side), "
                        f"got ({lo}, {hi})")
    if not 0.0 <= float(clutter) <= 1.0:
        raise DataError(f"clutter must be in [0, 1] (0 = plain background), got {clutter}")
    if int(image_size) < 16:
        raise DataError(f"image_size must be at least 16 pixels, got {image_size}")
    if int(n_images) < len(CLASSES):
        raise DataError(f"n_images must be at least {len(CLASSES)} (one per class), got {n_images}")
    if not 0 <= int(n_val) < int(n_images):
        raise DataError(f"n_val must satisfy 0 <= n_val < n_images = {n_images}, got {n_val}")
    if int(n_test) < 0:
        raise DataError(f"n_test must be >= 0 (images of the report split test), got {n_test}")
    return {"n_images": int(n_images), "n_val": int(n_val), "n_test": int(n_test), "image_size": int(image_size),
            "clutter": float(clutter), "face_scale": (lo, hi), "seed": int(seed), "grayscale": bool(grayscale)}


def _render_knobs(knobs: dict) -> dict:
    """The knobs `render` takes (all but the set's size and split)."""
    return {k: knobs[k] for k in ("image_size", "clutter", "face_scale", "seed", "grayscale")}


def split_indices(n_images: int, n_val: int, n_test: int = 0) -> dict[str, list[int]]:
    """Stratified split of images 0..n_images-1: image i has class i % 7; each class gives the last of its images
    to val, with per-class val counts proportional to class sizes (largest remainder, ties to the lower class
    index). The report split test is n_test further images, n_images..n_images+n_test-1 (classes as balanced as
    i % 7 makes them), so adding it leaves every train and val image as it was."""
    per_class = [list(range(c, n_images, len(CLASSES))) for c in range(len(CLASSES))]
    exact = [n_val * len(ix) / n_images for ix in per_class]
    quota = [int(q) for q in exact]
    by_remainder = sorted(range(len(CLASSES)), key=lambda c: (-(exact[c] - quota[c]), c))
    for c in by_remainder[: n_val - sum(quota)]:
        quota[c] += 1
    train = sorted(i for ix, q in zip(per_class, quota) for i in ix[: len(ix) - q])
    val = sorted(i for ix, q in zip(per_class, quota) for i in ix[len(ix) - q:])
    splits = {"train": train, "val": val}
    if n_test:
        splits["test"] = list(range(n_images, n_images + n_test))
    return splits


# --------------------------------------------------------------------------------------------------- drawing ---

def _tri(rng, half_width, size=None):
    """Triangular noise on [-half_width, half_width] (sum of two uniforms: no libm, identical on every machine)."""
    return (rng.random(size) + rng.random(size) - 1.0) * half_width


def _luminance(rgb):
    return rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114


def _mix(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _ellipse(cx, cy, rx, ry):
    return np.stack([cx + rx * _CIRCLE[:, 0], cy + ry * _CIRCLE[:, 1]], axis=1)


class _Canvas:
    """A supersampled RGB canvas drawing polygons and polylines given in face coordinates (units of face height,
    origin at the face centre, y down), mapped through a similarity transform (scale, rotation, shift)."""

    def __init__(self, image, scale, cos, sin, cx, cy):
        self.draw = ImageDraw.Draw(image)
        self.s, self.cos, self.sin, self.cx, self.cy = scale, cos, sin, cx, cy

    def to_pixels(self, pts):
        pts = np.asarray(pts, dtype=np.float64)
        x = self.cx + self.s * (self.cos * pts[:, 0] - self.sin * pts[:, 1])
        y = self.cy + self.s * (self.sin * pts[:, 0] + self.cos * pts[:, 1])
        return np.stack([x, y], axis=1)

    def polygon(self, pts, color, clip=None):
        px = self.to_pixels(pts)
        if clip is not None:
            px = np.clip(px, clip[:2], clip[2:])
        self.draw.polygon([tuple(p) for p in np.rint(px).astype(int).tolist()], fill=color)

    def line(self, pts, color, width):
        w = max(1, int(round(width * self.s)))
        self.draw.line([tuple(p) for p in np.rint(self.to_pixels(pts)).astype(int).tolist()], fill=color,
                       width=w, joint="curve")


def _sample_person(rng):
    """Identity: face shape, feature spacing and colours; ranges shrink around their middle by IDENTITY_SPREAD."""
    def pick(lo, hi):
        return (lo + hi) / 2 + (rng.random() - 0.5) * (hi - lo) * IDENTITY_SPREAD

    aspect = pick(0.70, 0.84)
    skin = _mix(LIGHT_SKIN, DARK_SKIN, rng.uniform(*SKIN_TONE))
    return {
        "aspect": aspect, "chin_taper": pick(0.15, 0.4),
        "eye_y": pick(-0.08, -0.02), "eye_dx": pick(0.155, 0.19) * aspect / 0.77,
        "eye_hw": pick(0.075, 0.09), "eye_h": pick(0.042, 0.052),
        "brow_gap": pick(0.08, 0.1), "brow_hw": pick(0.075, 0.095), "brow_t": pick(0.04, 0.055),
        "nose_y": pick(0.12, 0.17), "nose_hw": pick(0.04, 0.06),
        "mouth_y": pick(0.27, 0.3), "mouth_hw": pick(0.14, 0.17), "lip_t": pick(0.022, 0.03),
        "skin": skin, "hair": _mix((20, 15, 12), (200, 160, 90), rng.random() ** HAIR_DARKNESS),
        "iris": _mix((25, 20, 15), (90, 120, 150), rng.random()),
        "lips": _mix(skin, (70, 20, 28), pick(0.55, 0.75)),
        "has_hair": rng.random() < 0.8, "hairline": pick(-0.42, -0.3), "has_ears": rng.random() < 0.85,
    }


def _sample_cues(rng, label):
    intensity = rng.uniform(INTENSITY_LOW, 1.0)
    full = {**NEUTRAL_FACE, **EXPRESSIONS[label]}
    cues = {k: v + intensity * (full[k] - v) + _tri(rng, JITTER_SCALE * CUE_JITTER[k])
            for k, v in NEUTRAL_FACE.items()}
    cues["sneer_side"] = 1.0 if rng.random() < 0.5 else -1.0
    return cues, intensity


def _outline(p, jaw):
    """Face outline: an ellipse whose lower half narrows toward the chin and stretches down with the jaw drop."""
    c, s = _CIRCLE[:, 0], _CIRCLE[:, 1]
    lower = np.maximum(s, 0.0)
    x = 0.5 * p["aspect"] * c * (1.0 - p["chin_taper"] * lower * lower)
    y = 0.5 * s * (1.0 + 2.0 * jaw * lower)
    return np.stack([x, y], axis=1)


def _draw_face(cv, p, q):
    """Draw the face (hair, ears, skin, brows, eyes, nose, mouth); return the outline points for the face box."""
    skin, dark = p["skin"], _mix(p["skin"], (0, 0, 0), 0.35)
    outline = _outline(p, q["jaw"])
    head = [outline]
    if p["has_hair"]:
        back = _ellipse(0.0, -0.06, 0.56 * p["aspect"], 0.5)
        head.append(back)
        cv.polygon(back, p["hair"])
    if p["has_ears"]:
        for side in (-1, 1):
            ear = _ellipse(side * 0.5 * p["aspect"], p["eye_y"] + 0.06, 0.045, 0.085)
            head.append(ear)
            cv.polygon(ear, _mix(skin, (0, 0, 0), 0.12))
    cv.polygon(outline, skin)
    if p["has_hair"]:
        top = outline[outline[:, 1] < p["hairline"]]
        cv.polygon(top, p["hair"])

    u = _U
    ey = p["eye_y"]
    for side in (-1, 1):
        # Brow: u = -1 at the inner end.
        bx = side * (p["eye_dx"] + p["brow_hw"] * u - q["brow_in"] * (1 - u) / 2)
        by = ey - p["brow_gap"] - q["brow_raise"] + q["brow_tilt"] * u / 2 - q["brow_arch"] * (1 - u * u)
        half_t = p["brow_t"] / 2 * (1.0 - 0.35 * (u + 1) / 2)
        cv.polygon(np.concatenate([np.stack([bx, by - half_t], 1), np.stack([bx, by + half_t], 1)[::-1]]),
                   _mix(p["hair"], (0, 0, 0), 0.75))
        # Eye: almond between an upper and a lower lid curve; iris clipped to the lids.
        ex = side * p["eye_dx"]
        xs = ex + p["eye_hw"] * u
        opening = max(q["eye_open"], 0.08)
        up = ey - p["eye_h"] * opening * (1 - u * u) ** 0.8
        lo = ey + p["eye_h"] * 0.55 * opening * (1 - u * u) ** 0.9
        cv.polygon(np.concatenate([np.stack([xs, up], 1), np.stack([xs, lo], 1)[::-1]]), (238, 236, 230))
        for radius, color in ((p["eye_h"] * 0.95, p["iris"]), (p["eye_h"] * 0.45, (12, 10, 10))):
            circ = _ellipse(ex, ey, radius, radius)
            t = np.clip((circ[:, 0] - ex) / p["eye_hw"], -1.0, 1.0)
            circ[:, 1] = np.clip(circ[:, 1], ey - p["eye_h"] * opening * (1 - t * t) ** 0.8,
                                 ey + p["eye_h"] * 0.55 * opening * (1 - t * t) ** 0.9)
            cv.polygon(circ, color)
        cv.line(np.stack([xs, up], 1), (20, 15, 15), 0.016)
        cv.line(np.stack([xs, lo], 1)[3:-3], dark, 0.006)

    # Nose: side shading, base arc and nostrils (raised and widened by the wrinkle); wrinkle lines on the bridge.
    w = q["wrinkle"]
    ny = p["nose_y"] - 0.015 * max(w, 0.0)
    nhw = p["nose_hw"] * (1 + 0.2 * max(w, 0.0))
    for side in (-1, 1):
        cv.line([(side * 0.025, ey + 0.05), (side * nhw * 0.85, ny - 0.015)], _mix(skin, dark, 0.5), 0.008)
        cv.polygon(_ellipse(side * nhw * 0.5, ny + 0.004, 0.014, 0.008), dark)
    cv.line(np.stack([nhw * u, ny + 0.012 * (1 - u * u)], 1), _mix(skin, dark, 0.7), 0.008)
    if w > 0.15:
        color = _mix(skin, (20, 15, 15), 0.75 * min(1.0, w))
        for k in range(3):
            yk = ey + 0.01 + 0.028 * k
            cv.line([(-0.05, yk + 0.01), (0.0, yk), (0.05, yk + 0.01)], color, 0.014)

    # Mouth: lips around a seam; corners lifted by the curve, the upper lip raised on one side by the sneer.
    my = p["mouth_y"] + q["jaw"] * 0.5
    hw = p["mouth_hw"] * max(q["mouth_w"], 0.4)
    xs = hw * u
    bend = 1 - u * u
    corner = q["mouth_curve"] * u * u
    sneer = q["sneer"] * np.maximum(q["sneer_side"] * u, 0.0) * bend ** 0.5
    half_open = max(q["mouth_open"], 0.0) / 2 * bend ** 0.6
    seam_up = my - corner - half_open - sneer
    seam_lo = my - corner + half_open
    lip = p["lip_t"] * max(q["lip_t"], 0.2) * bend ** 0.5
    cv.polygon(np.concatenate([np.stack([xs, seam_up - lip], 1), np.stack([xs, seam_lo + lip * 1.3], 1)[::-1]]),
               p["lips"])
    if max(q["mouth_open"], 0.0) + q["sneer"] > 0.012:
        cv.polygon(np.concatenate([np.stack([xs, seam_up], 1), np.stack([xs, seam_lo], 1)[::-1]]), (55, 20, 25))
        if q["teeth"] > 0.5:
            teeth_lo = np.minimum(seam_up + 0.45 * (seam_lo - seam_up) + 0.006, seam_lo)
            cv.polygon(np.concatenate([np.stack([xs * 0.92, seam_up], 1), np.stack([xs * 0.92, teeth_lo], 1)[::-1]]),
                       (236, 234, 222))
    else:
        cv.line(np.stack([xs, (seam_up + seam_lo) / 2], 1), (25, 10, 12), 0.016)
    return outline, np.concatenate(head)


def _draw_clutter(image, rng, clutter, bg):
    """Background clutter: ``round(clutter * U(4, 10))`` objects whose contrast to the background scales with
    clutter: shapes, line bundles, stripe/checker/noise textures and small distractor faces."""
    side = image.size[0]
    draw = ImageDraw.Draw(image)
    for _ in range(int(round(clutter * rng.uniform(4, 10)))):
        kind = rng.integers(7)
        color = _mix(bg, tuple(int(v) for v in rng.integers(0, 256, 3)), clutter)
        x0, y0 = (int(v) for v in rng.integers(-side // 4, side, 2))
        w, h = (int(v) for v in rng.integers(side // 8, side // 2, 2))
        box = (x0, y0, x0 + w, y0 + h)
        if kind == 0:
            draw.rectangle(box, fill=color)
        elif kind == 1:
            draw.ellipse(box, fill=color)
        elif kind == 2:
            pts = rng.integers(-side // 8, side + side // 8, (int(rng.integers(3, 6)), 2))
            draw.polygon([tuple(p) for p in pts.tolist()], fill=color)
        elif kind == 3:
            for _ in range(int(rng.integers(2, 6))):
                pts = rng.integers(0, side, (2, 2))
                draw.line([tuple(p) for p in pts.tolist()], fill=color, width=int(rng.integers(2, side // 24 + 3)))
        elif kind == 4:
            step = int(rng.integers(6, 16))
            for k in range(0, w, step):
                draw.line([(x0 + k, y0), (x0 + k + int(rng.integers(-step, step + 1)), y0 + h)], fill=color,
                          width=step // 3)
        elif kind == 5:
            cells = rng.integers(0, 256, (int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3))
            if rng.random() < 0.5:  # a checkerboard rather than random blocks
                odd = (np.indices(cells.shape[:2]).sum(0) % 2 == 1)[..., None]
                cells = np.where(odd, cells[0, 0], 255 - cells[0, 0])
            patch = np.asarray(Image.fromarray(cells.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST),
                               dtype=np.float64)
            patch = np.rint(np.asarray(bg, np.float64) + clutter * (patch - np.asarray(bg, np.float64)))
            image.paste(Image.fromarray(patch.astype(np.uint8)), (x0, y0))
        else:
            face_skin = _mix(bg, _mix(LIGHT_SKIN, DARK_SKIN, rng.random()), clutter)
            ink = _mix(face_skin, (20, 15, 15), 0.8)
            r = max(w, h) // 2
            draw.ellipse((x0, y0, x0 + int(r * 1.5), y0 + 2 * r), fill=face_skin)
            for dx in (0.45, 1.05):
                ex, ey = x0 + int(r * dx), y0 + int(r * 0.7)
                draw.ellipse((ex, ey, ex + r // 5, ey + r // 6), fill=ink)
            draw.line([(x0 + int(r * 0.5), y0 + int(r * 1.4)), (x0 + int(r * 1.05), y0 + int(r * 1.4))], fill=ink,
                      width=max(1, r // 10))


def render(index: int, *, image_size: int = 48, clutter: float = 0.5, face_scale=(0.6, 0.9), seed: int = 0,
           grayscale: bool = True) -> tuple[Image.Image, dict]:
    """Draw probe image ``index`` (class ``CLASSES[index % 7]``).

    Returns the image (mode "L" or "RGB", ``image_size`` square) and an info dict: ``label``, ``label_index``,
    ``intensity``, ``face_scale`` (drawn face height / image side), ``face_box`` (x0, y0, x1, y1 of the face
    outline in output pixels, possibly beyond the image), ``head_box`` (same, including hair and ears; occluders
    stay inside it), ``occluded``.
    """
    label_index = index % len(CLASSES)
    label = CLASSES[label_index]
    rng_face, rng_pose, rng_bg, rng_photo = (np.random.Generator(np.random.PCG64(s))
                                             for s in np.random.SeedSequence([seed, index]).spawn(4))
    person = _sample_person(rng_face)
    cues, intensity = _sample_cues(rng_face, label)

    side = image_size * SUPERSAMPLE
    bg = tuple(int(v) for v in rng_bg.integers(0, 256, 3))
    while abs(_luminance(bg) - _luminance(person["skin"])) < MIN_FACE_CONTRAST:
        bg = tuple(int(v) for v in rng_bg.integers(0, 256, 3))
    image = Image.new("RGB", (side, side), bg)
    if clutter > 0:
        _draw_clutter(image, rng_bg, clutter, bg)

    scale = rng_pose.uniform(*face_scale)
    t = rng_pose.uniform(-MAX_ROTATION_TAN, MAX_ROTATION_TAN)
    cos, sin = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
    margin_x = max(0.03, (1 - 0.8 * scale) / 2 - 0.02)
    margin_y = max(0.03, (1 - scale) / 2)
    cx = side * (0.5 + rng_pose.uniform(-margin_x, margin_x))
    cy = side * (0.5 + rng_pose.uniform(-margin_y, margin_y))
    cv = _Canvas(image, scale * side, cos, sin, cx, cy)
    outline, head = _draw_face(cv, person, cues)
    face_px, head_px = cv.to_pixels(outline), cv.to_pixels(head)
    head_box = (*head_px.min(0), *head_px.max(0))

    occluded = bool(rng_photo.random() < OCCLUSION_PROB)
    if occluded:  # a hand, scarf or hat-like blob somewhere on the face, clipped to the head box
        ox, oy = rng_photo.uniform(-0.35, 0.35), rng_photo.uniform(-0.45, 0.45)
        rx, ry = rng_photo.uniform(0.1, 0.3) * person["aspect"], rng_photo.uniform(0.06, 0.18)
        color = tuple(int(v) for v in rng_photo.integers(0, 256, 3))
        shape = _ellipse(ox, oy, rx, ry) if rng_photo.random() < 0.5 else np.array(
            [(ox - rx, oy - ry), (ox + rx, oy - ry), (ox + rx, oy + ry), (ox - rx, oy + ry)])
        cv.polygon(shape, color, clip=np.array(head_box))

    pixels = np.asarray(image, dtype=np.float64)
    pixels = pixels.reshape(image_size, SUPERSAMPLE, image_size, SUPERSAMPLE, 3).sum(axis=(1, 3)) / SUPERSAMPLE ** 2
    if grayscale:
        pixels = _luminance(np.moveaxis(pixels, -1, 0))[..., None]
    # Lighting: a linear gain gradient in a random direction, a global contrast/brightness change, sensor noise.
    gx, gy = rng_photo.random(2) * 2 - 1
    norm = np.sqrt(gx * gx + gy * gy) + 1e-9
    coords = (np.arange(image_size) + 0.5) / image_size - 0.5
    gain = 1 + rng_photo.uniform(0, LIGHT_GRADIENT) * (gx / norm * coords[None, :] + gy / norm * coords[:, None])
    contrast, offset = rng_photo.uniform(*CONTRAST), rng_photo.uniform(-20, 20)
    sigma = rng_photo.uniform(*NOISE_SIGMA)
    noise = _tri(rng_photo, sigma * np.sqrt(6.0), pixels.shape)
    pixels = (pixels * gain[..., None] - 128) * contrast + 128 + offset + noise
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    out = Image.fromarray(pixels[..., 0] if grayscale else pixels, "L" if grayscale else "RGB")
    info = {
        "label": label, "label_index": label_index, "intensity": float(intensity), "face_scale": float(scale),
        "face_box": tuple(float(v) / SUPERSAMPLE for v in (*face_px.min(0), *face_px.max(0))),
        "head_box": tuple(float(v) / SUPERSAMPLE for v in head_box), "occluded": occluded,
    }
    return out, info


# ------------------------------------------------------------------------------------------------ files -------

def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode a uint8 array (H, W) or (H, W, 3) as PNG with filter 0 and stored deflate blocks (no compression),
    so the bytes depend only on the pixels, never on the zlib implementation.

    Kept instead of Pillow's PNG writer: Pillow compresses with the zlib it was built against, and zlib and
    zlib-ng give different bytes for the same pixels, which would break the byte-identical probe
    (tests/test_synthetic.py) across installations. The format is the PNG specification (ISO/IEC 15948).
    """
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(pixels, dtype=np.uint8))
    blocks = []
    for start in range(0, len(raw), 65535):
        part = raw[start:start + 65535]
        blocks.append(struct.pack("<BHH", start + 65535 >= len(raw), len(part), 0xFFFF ^ len(part)) + part)
    idat = b"\x78\x01" + b"".join(blocks) + struct.pack(">I", zlib.adler32(raw))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if pixels.ndim == 2 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def generate(out_dir, *, n_images=1880, n_val=379, n_test=0, image_size=48, clutter=0.5, face_scale=(0.6, 0.9),
             seed=0, grayscale=True) -> dict:
    """Write ``out_dir/{train,val,test}/<class>/<index:05d>.png`` (test when ``n_test``) and ``out_dir/probe.json``
    (knobs, version, counts).

    Returns a summary: ``knobs``, ``version``, ``counts`` ({split: {class: n}}), ``seconds``.
    """
    knobs = check_knobs(n_images=n_images, n_val=n_val, n_test=n_test, image_size=image_size, clutter=clutter,
                        face_scale=face_scale, seed=seed, grayscale=grayscale)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    render_knobs = _render_knobs(knobs)
    counts = {}
    for split, indices in split_indices(knobs["n_images"], knobs["n_val"], knobs["n_test"]).items():
        counts[split] = {name: 0 for name in CLASSES}
        for name in CLASSES:
            (out_dir / split / name).mkdir(parents=True, exist_ok=True)
        for i in indices:
            image, info = render(i, **render_knobs)
            (out_dir / split / info["label"] / f"{i:05d}.png").write_bytes(png_bytes(np.asarray(image)))
            counts[split][info["label"]] += 1
    record = {"generator": "fer_ablation.data.synthetic", "version": GENERATOR_VERSION,
              "knobs": {**knobs, "face_scale": list(knobs["face_scale"])}, "classes": list(CLASSES), "counts": counts}
    (out_dir / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    return {"knobs": knobs, "version": GENERATOR_VERSION, "counts": counts,
            "seconds": round(time.perf_counter() - start, 3)}


def _describe(knobs: dict) -> str:
    return (f"generator v{GENERATOR_VERSION}, {knobs['image_size']} px, clutter {knobs['clutter']}, "
            f"face_scale {tuple(knobs['face_scale'])}, seed {knobs['seed']}, {'grayscale' if knobs['grayscale'] else 'RGB'}")


def cache_key(**knobs) -> str:
    """Short hash of the normalised knobs and the generator version: the cache folder name."""
    norm = check_knobs(**{**DEFAULT_KNOBS, **knobs})
    text = json.dumps({**norm, "face_scale": list(norm["face_scale"]), "version": GENERATOR_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _is_complete(root: Path, n_files: int) -> bool:
    try:
        record = json.loads((root / "probe.json").read_text())
    except (OSError, ValueError):
        return False
    expected = sum(sum(c.values()) for c in record.get("counts", {}).values())
    return expected == n_files and sum(1 for _ in root.glob("*/*/*.png")) == n_files


def ensure_synthetic(cache_dir, **knobs) -> Path:
    """Return ``cache_dir/synthetic/<key>/`` holding the probe for these knobs, generating it once.

    Generation goes to a temporary sibling folder renamed into place (``os.replace``), so a crashed run never
    leaves a half-written folder under the final name; an incomplete folder is regenerated. Concurrent runs (the
    parallel launcher's first jobs) take turns on a lock file: one generates, the others wait and reuse its folder,
    so no process replaces a folder another one is reading.
    """
    knobs = check_knobs(**{**DEFAULT_KNOBS, **knobs})
    root = Path(cache_dir).expanduser() / "synthetic" / cache_key(**knobs)
    n_files = knobs["n_images"] + knobs["n_test"]
    if _is_complete(root, n_files):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(root, n_files):  # generated by another process while this one waited
            return root
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            log.info("probe set: generating %d images (%s) into %s", n_files, _describe(knobs), root)
            summary = generate(tmp, **knobs)
            log.info("probe set: generated in %.1f s", summary["seconds"])
            if root.exists():
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def contact_sheet(out_png, *, per_class: int = 6, zoom: int = 2, image_size: int = 48, clutter: float = 0.5,
                  face_scale=(0.6, 0.9), seed: int = 0, grayscale: bool = True) -> Path:
    """Save a grid of the first ``per_class`` samples of each class (a row per class, labelled, ``zoom``x nearest)."""
    knobs = check_knobs(n_images=1880, n_val=0, image_size=image_size, clutter=clutter, face_scale=face_scale,
                        seed=seed, grayscale=grayscale)
    render_knobs = _render_knobs(knobs)
    cell, gap, label_w = image_size * zoom, 4, 80
    sheet = Image.new("RGB", (label_w + per_class * (cell + gap), len(CLASSES) * (cell + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for c, name in enumerate(CLASSES):
        y = gap + c * (cell + gap)
        draw.text((4, y + cell // 2 - 6), name, fill="black", font=font)
        for k in range(per_class):
            image, _ = render(c + k * len(CLASSES), **render_knobs)
            sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST),
                        (label_w + k * (cell + gap), y))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png


# --------------------------------------------------------------------------------------------------- CLI -------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fer_ablation.data.synthetic",
        description="Generate the synthetic facial-expression probe: train/, val/ and test/<class>/*.png "
                    "(stratified split) plus probe.json, and/or a contact sheet of samples.")
    parser.add_argument("--out", type=Path, help="output folder for the image folders")
    parser.add_argument("--seed", type=int, default=DEFAULT_KNOBS["seed"], help="random seed (default: %(default)s)")
    parser.add_argument("--n", type=int, default=DEFAULT_KNOBS["n_images"], help="total images (default: %(default)s)")
    parser.add_argument("--n-val", type=int, default=DEFAULT_KNOBS["n_val"],
                        help="validation images, split stratified by class (default: %(default)s)")
    parser.add_argument("--n-test", type=int, default=DEFAULT_KNOBS["n_test"],
                        help="report-split images, after the --n images (default: %(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULT_KNOBS["image_size"],
                        help="image side in pixels, >= 16 (default: %(default)s)")
    parser.add_argument("--clutter", type=float, default=DEFAULT_KNOBS["clutter"],
                        help="background clutter in [0, 1], 0 = plain background (default: %(default)s)")
    parser.add_argument("--face-scale", type=float, nargs=2, metavar=("LO", "HI"),
                        default=DEFAULT_KNOBS["face_scale"],
                        help="range of face height relative to the image side, 0 < LO <= HI <= 1 "
                             "(default: %(default)s)")
    parser.add_argument("--rgb", action="store_true", help="write RGB images (default: grayscale)")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG",
                        help="also write a contact sheet (6 samples per class) to this PNG")
    args = parser.parse_args(argv)
    if args.out is None and args.contact_sheet is None:
        parser.error("give --out DIR and/or --contact-sheet PNG")
    knobs = {"n_images": args.n, "n_val": args.n_val, "n_test": args.n_test, "image_size": args.size, "clutter": args.clutter,
             "face_scale": tuple(args.face_scale), "seed": args.seed, "grayscale": not args.rgb}
    try:
        check_knobs(**knobs)
    except DataError as err:
        parser.error(str(err))
    if args.out is not None:
        summary = generate(args.out, **knobs)
        print(f"wrote {args.n + args.n_test} images to {args.out} in {summary['seconds']:.1f} s  ({_describe(summary['knobs'])})")
        counts = summary["counts"]
        print(f"{'class':<10}" + "".join(f" {split:>6}" for split in counts))
        for name in CLASSES:
            print(f"{name:<10}" + "".join(f" {c[name]:>6}" for c in counts.values()))
        print(f"{'total':<10}" + "".join(f" {sum(c.values()):>6}" for c in counts.values()))
    if args.contact_sheet is not None:
        knobs.pop("n_images"), knobs.pop("n_val"), knobs.pop("n_test")
        print(f"wrote contact sheet {contact_sheet(args.contact_sheet, **knobs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
