"""`python -m fer_ablation.predict ckpt_path=PATH inputs=PATH_OR_GLOB`: classify the faces in photos.

    python -m fer_ablation.predict ckpt_path=best.ckpt inputs=photos/ face_crop=haar annotate=true
    python -m fer_ablation.predict ckpt_path=best.ckpt 'inputs=shots/**/*.jpg' gradcam=true out=preds/
    python -m fer_ablation.predict ckpt_path=old.ckpt inputs=a.png image_size=48 grayscale=true
    python -m fer_ablation.predict ckpt_path=outputs/runs/<run> inputs=photos/

``ckpt_path`` is a checkpoint file or a run folder (its ``checkpoints/best.ckpt``), loaded by
:func:`fer_ablation.inference.trained.restore` (nothing is downloaded; the class list is checked).

``inputs`` is an image file, a folder (searched recursively for image files), a glob, or a list of
them. Each image is read by the training data's reader (``fer_ablation.data.decode.read_image``: EXIF
orientation applied, 16-bit and float images scaled to 8 bits as in training), optionally cropped to its largest face
(``face_crop=haar``, :mod:`fer_ablation.data.face`), then decoded and normalised exactly as the training
data were (``fer_ablation.data.decode.pil_to_array``: L or RGB, bilinear resize to the model's size;
``fer_ablation.data.augment.to_model_input``: channels and mean/std). The preprocessing comes from
the checkpoint's ``preprocessing`` hyper-parameters; checkpoints without them need ``image_size=``
and ``grayscale=`` (and ``mean=``/``std=`` when the run changed ``data.normalize``).

Writes ``predictions.csv`` (path, the square face crop's box, predicted class, probability per
class) into the Hydra output folder or ``out=``; ``annotate=true`` writes copies of the images with
the box and label drawn to ``annotated/``; ``gradcam=true`` writes a Grad-CAM overlay of the
predicted class (Selvaraju et al., ICCV 2017; the last Bottleneck of layer4, as
:mod:`fer_ablation.gradcam`) on the model's input to ``gradcam/``. Unreadable files are named in
the log and in ``skipped.csv`` and left out.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw, ImageFont

from fer_ablation.atomic import write_atomic
from fer_ablation.config import resolvers
from fer_ablation.data.decode import read_image
from fer_ablation.data.face import Box, HaarFaceDetector, crop_face
from fer_ablation.data.faces import FACE_CROPS, NO_FACE
from fer_ablation.data.folders import IMAGE_EXTENSIONS, list_images
from fer_ablation.inference import trained
from fer_ablation.inference.trained import Preprocessing, to_plain

log = logging.getLogger("fer_ablation")
resolvers.register()

PROGRESS_MIN_IMAGES = 100
ANNOTATE_MAX_SIDE = 1024  # annotated copies of larger photos are scaled down to this longer side
GRADCAM_MIN_SIDE = 224  # overlays of small model inputs are scaled up to this side to be legible
PREDICTIONS = "predictions.csv"
SKIPPED = "skipped.csv"


def expand_inputs(inputs: str | Sequence[str]) -> list[Path]:
    """Files, folders (image files inside, recursively) and globs -> image paths, first occurrence kept."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ValueError("inputs is empty: give an image, a folder or a glob")
    found: dict[Path, None] = {}
    for item in items:
        item = os.path.expanduser(str(item))
        if any(c in item for c in "*?["):
            paths = []
            for match in sorted(glob.glob(item, recursive=True)):
                match = Path(match)
                if match.is_dir():
                    paths += list_images(match)
                elif match.suffix.lower() in IMAGE_EXTENSIONS:
                    paths.append(match)
        elif Path(item).is_dir():
            paths = list_images(Path(item))
        elif Path(item).exists():
            paths = [Path(item)]  # named explicitly: tried whatever its extension, reported if unreadable
        else:
            raise FileNotFoundError(f"inputs: {item!r} does not exist (expected an image, a folder or a glob)")
        if not paths:
            raise ValueError(f"inputs: {item!r} matched no image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        found.update(dict.fromkeys(paths))
    return list(found)


def output_names(paths: Sequence[Path]) -> list[Path]:
    """Relative PNG names for per-image outputs: the path below the inputs' common folder, + '.png'."""
    resolved = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in resolved])) if resolved else Path()
    return [p.relative_to(root).with_name(p.name + ".png") for p in resolved]


@dataclass
class PredictResult:
    out_dir: Path
    classes: list[str]
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    annotated: list[Path] = field(default_factory=list)
    gradcam: list[Path] = field(default_factory=list)


@dataclass
class _Item:
    path: Path
    name: Path
    box: Box | None
    face_found: bool | None
    array: np.ndarray
    image: Image.Image | None  # the original, scaled down by `scale`, kept only for annotation
    scale: float = 1.0


def predict(cfg: DictConfig, out_dir: Path | str) -> PredictResult:
    """Run the checkpoint on every input image and write predictions.csv (and the optional images)."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if int(cfg.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.no_face not in NO_FACE:
        raise ValueError(f"no_face={cfg.no_face!r}: expected one of {list(NO_FACE)}")
    loaded = trained.restore(cfg.ckpt_path)
    module = loaded.module
    pre = loaded.preprocessing(image_size=cfg.image_size, grayscale=cfg.grayscale, mean=cfg.mean, std=cfg.std)
    face_crop = pre.face_crop if cfg.face_crop is None else str(cfg.face_crop)
    if face_crop not in FACE_CROPS:
        raise ValueError(f"face_crop={face_crop!r}: expected one of {list(FACE_CROPS)}")
    margin = pre.face_margin if cfg.face_margin is None else float(cfg.face_margin)
    detector = HaarFaceDetector(**OmegaConf.to_container(cfg.face_detector)) if face_crop == "haar" else None
    paths = expand_inputs(to_plain(cfg.inputs))
    names = output_names(paths)
    result = PredictResult(out_dir, list(module.hparams["classes"]))
    log.info("predicting %d image(s) with %s (%d px, %s, face_crop=%s)", len(paths), cfg.ckpt_path,
             pre.image_size, "grayscale" if pre.grayscale else "RGB", face_crop)

    batch_size = int(cfg.batch_size)
    with tqdm(total=len(paths), desc="predict", unit="img", disable=len(paths) < PROGRESS_MIN_IMAGES) as bar:
        for start in range(0, len(paths), batch_size):
            items = []
            for path, name in zip(paths[start:start + batch_size], names[start:start + batch_size]):
                item = _prepare(path, name, pre, detector, margin, keep_image=bool(cfg.annotate))
                bar.update(1)
                if isinstance(item, str):
                    log.warning("skipped %s: %s", path, item)
                    result.skipped.append((str(path), item))
                elif item.face_found is False and cfg.no_face == "skip":
                    log.warning("skipped %s: no face found", path)
                    result.skipped.append((str(path), "no face found"))
                else:
                    items.append(item)
            if items:
                _run_batch(module, pre, items, cfg, result)

    _write_csv(out_dir / PREDICTIONS, result)
    if result.skipped:
        write_atomic(out_dir / SKIPPED, _csv(["path", "reason"], result.skipped))
    found = [r for r in result.rows if r["face_found"] != ""]
    log.info("%d image(s) predicted, %d skipped%s; wrote %s", len(result.rows), len(result.skipped),
             f", a face found in {sum(r['face_found'] for r in found)} of {len(found)}" if found else "",
             out_dir / PREDICTIONS)
    return result


def _prepare(path: Path, name: Path, pre: Preprocessing, detector, margin: float, keep_image: bool) -> _Item | str:
    """The item ready for the model, or the reason it cannot be read."""
    try:
        image = read_image(path)
    except FileNotFoundError:
        return "missing file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"unreadable: {exc}"
    box, found = None, None
    crop = image
    if detector is not None:
        crop, box = crop_face(image, detector, margin)
        found = box is not None
    kept, scale = None, 1.0
    if keep_image:
        kept = image.convert("RGB")
        kept.thumbnail((ANNOTATE_MAX_SIDE, ANNOTATE_MAX_SIDE), Image.Resampling.BILINEAR)
        scale = kept.width / image.width
    return _Item(path, name, box, found, pre.to_array(crop), kept, scale)


def _run_batch(module, pre: Preprocessing, items: list[_Item], cfg: DictConfig, result: PredictResult) -> None:
    images = torch.from_numpy(np.stack([item.array for item in items]))
    x = pre.to_input(images)
    with torch.no_grad():
        probs = module(x).float().softmax(dim=1)
    if not torch.isfinite(probs).all():
        bad = [str(items[i].path) for i in torch.nonzero(~torch.isfinite(probs).all(dim=1)).flatten().tolist()]
        raise FloatingPointError(f"the model gave non-finite probabilities for {bad}: the checkpoint or the "
                                 "preprocessing is broken")
    preds = probs.argmax(dim=1).tolist()
    classes = result.classes
    for item, p, pred in zip(items, probs.tolist(), preds):
        box = item.box
        result.rows.append({
            "path": str(item.path),
            "face_found": "" if item.face_found is None else int(item.face_found),
            "face_x": box.x if box else "", "face_y": box.y if box else "",
            "face_w": box.w if box else "", "face_h": box.h if box else "",
            "pred": classes[pred],
            **{f"prob_{c}": p[k] for k, c in enumerate(classes)},
        })
    out_dir = result.out_dir
    if cfg.annotate:
        for item, p, pred in zip(items, probs, preds):
            path = out_dir / "annotated" / item.name
            annotate(item.image, item.box, f"{classes[pred]} {100 * float(p[pred]):.0f}%",
                     scale=item.scale).save(_mkdir(path))
            result.annotated.append(path)
    if cfg.gradcam:
        from fer_ablation.inference.gradcam import cam_maps  # matplotlib and pytorch-grad-cam load only when asked

        maps = cam_maps(module.model, x, preds)
        for item, cam, pred, p in zip(items, maps, preds, probs):
            path = out_dir / "gradcam" / item.name
            overlay(item.array, cam, f"{classes[pred]} {100 * float(p[pred]):.0f}%").save(_mkdir(path))
            result.gradcam.append(path)


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _font(size: int):
    return ImageFont.load_default(size=max(10, size))


def annotate(image: Image.Image, box: Box | None, label: str, scale: float = 1.0) -> Image.Image:
    """A copy of ``image`` with ``box`` (in original pixels, times ``scale``) and ``label`` drawn."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 250))
    font = _font(round(max(out.size) / 30))
    if box is not None:
        l, t, r, b = (round(v * scale) for v in box.ltrb())
        draw.rectangle((l, t, r - 1, b - 1), outline=(255, 64, 32), width=width)
        anchor = (l, max(0, t - font.size - 2 * width))
    else:
        anchor = (width, width)
    text_box = draw.textbbox(anchor, label, font=font)
    draw.rectangle(text_box, fill=(0, 0, 0))
    draw.text(anchor, label, fill=(255, 255, 255), font=font)
    return out


def overlay(array: np.ndarray, cam: np.ndarray, label: str) -> Image.Image:
    """The model's uint8 input [C, S, S] with the Grad-CAM map blended in (JET colours), labelled."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    picture = array.astype(np.float32) / 255.0
    picture = np.repeat(picture, 3, axis=0) if picture.shape[0] == 1 else picture
    picture = picture.transpose(1, 2, 0)
    side = max(GRADCAM_MIN_SIDE, picture.shape[0])
    blended = Image.fromarray(show_cam_on_image(picture, cam, use_rgb=True))
    return annotate(blended.resize((side, side), Image.Resampling.BILINEAR), None, label)


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _write_csv(path: Path, result: PredictResult) -> None:
    columns = ["path", "face_found", "face_x", "face_y", "face_w", "face_h", "pred",
               *[f"prob_{c}" for c in result.classes]]
    rows = [[f"{row[c]:.6g}" if c.startswith("prob_") else row[c] for c in columns] for row in result.rows]
    write_atomic(path, _csv(columns, rows))
