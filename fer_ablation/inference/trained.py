"""One path from a trained model on disk to a module ready to score: a ``.ckpt`` file or a run folder.

``restore(ckpt_path)`` serves ``evaluate``, ``predict``, ``export`` and Grad-CAM: ``ckpt_path`` is a checkpoint
file or a run folder (its ``checkpoints/best.ckpt``). The module is rebuilt on the CPU in eval mode from
the checkpoint's hyper-parameters and weights only: nothing is downloaded, whatever the hyper-parameters say
about ImageNet weights (a checkpoint carries its own). Its class list must be a label set the suite knows
(names or aliases, no repeats), as long as the classifier's output, and, when the checkpoint sits in a run
folder, equal to the classes its metrics.json records: a checkpoint with replaced or reordered class names
would otherwise label every prediction wrongly without a word. Its preprocessing (decode -> face crop ->
resize -> channels -> normalise) comes from the ``preprocessing`` hyper-parameter (:class:`Preprocessing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from fer_ablation import records
from fer_ablation.data.augment import IMAGENET_MEAN, IMAGENET_STD, channel_normalization, to_model_input
from fer_ablation.data.decode import pil_to_array
from fer_ablation.data.face import DEFAULT_MARGIN

BEST = Path("checkpoints") / "best.ckpt"


def checkpoint_path(value) -> Path:
    """A .ckpt file, or a run folder (its checkpoints/best.ckpt); FileNotFoundError naming both otherwise."""
    path = Path(str(value)).expanduser()
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={value}: no checkpoint file at {path} "
                                "(expected a .ckpt written by a run, or a run folder)")
    return path


def run_folder(ckpt: Path) -> Path | None:
    """The run folder a checkpoint belongs to (<run>/checkpoints/*.ckpt with a metrics.json), or None."""
    run_dir = ckpt.resolve().parent.parent
    return run_dir if ckpt.parent.name == "checkpoints" and (run_dir / records.METRICS).is_file() else None


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input: decoded at ``image_size`` as L (``grayscale``) or RGB,
    then ``(x / 255 - mean) / std`` per model channel (``in_chans``), as in training."""

    image_size: int
    grayscale: bool
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    face_crop: str = "none"
    face_margin: float = DEFAULT_MARGIN

    @property
    def channel_mean(self) -> list[float]:
        """The mean subtracted from each of the model's ``in_chans`` channels (to_model_input's rule)."""
        return channel_normalization(self.in_chans, self.mean, self.std)[0]

    @property
    def channel_std(self) -> list[float]:
        return channel_normalization(self.in_chans, self.mean, self.std)[1]

    def to_array(self, image: Image.Image) -> np.ndarray:
        """uint8 [C, S, S] as the training data were decoded."""
        return pil_to_array(image, self.image_size, self.grayscale)

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, S, S] -> the model's float input."""
        return to_model_input(images, self.in_chans, self.mean, self.std)


def load_module(ckpt_path: Path | str, record_classes: Sequence[str] | None = None):
    """The checkpoint's FERModule on the CPU in eval mode (tensors and plain containers only are unpickled).

    ``ckpt_path``: a .ckpt file or a run folder; ``record_classes``: the classes the run's metrics.json records,
    which the checkpoint's must equal. No weights are downloaded: ``pretrained`` is forced off."""
    from fer_ablation.data.errors import DataError
    from fer_ablation.data.label_set import resolve_classes
    from fer_ablation.train.lit_module import FERModule

    path = checkpoint_path(ckpt_path)
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise ValueError(f"ckpt_path={path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from exc
    hparams = checkpoint.get("hyper_parameters") or {}
    stored = hparams.get("classes")
    try:
        classes = list(resolve_classes(stored, source=f"ckpt_path={path}: classes"))
    except DataError as exc:
        raise ValueError(f"{exc}; a checkpoint's class list must be a known label set") from None
    fc = checkpoint.get("state_dict", {}).get("model.fc.weight")
    if fc is not None and fc.shape[0] != len(classes):
        raise ValueError(f"ckpt_path={path}: {len(classes)} class names {list(stored)} for a classifier with "
                         f"{fc.shape[0]} outputs")
    if record_classes is not None and classes != list(record_classes):
        raise ValueError(f"ckpt_path={path}: classes {list(stored)} differ from {list(record_classes)} in the "
                         f"run's {records.METRICS}: the checkpoint's class names were changed")
    spec = {k: v for k, v in dict(hparams.get("model_spec") or {}).items() if k != "pretrained"}
    try:
        module = FERModule.load_from_checkpoint(path, map_location="cpu", weights_only=True, model_spec=spec,
                                                classes=classes, pretrained=None)
    except Exception as exc:  # any failure to unpickle or to match the weights: name the file
        raise ValueError(f"ckpt_path={path}: cannot load the checkpoint ({type(exc).__name__}: {exc})") from exc
    return module.eval()


def resolve_preprocessing(hparams: Mapping[str, Any], *, image_size: int | None = None,
                          grayscale: bool | None = None, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None, source: str = "the checkpoint") -> Preprocessing:
    """The checkpoint's ``preprocessing`` hyper-parameters, or the explicit values when it has none.

    An explicit value that contradicts the checkpoint is an error: a 48 px model fed 224 px inputs
    runs without complaint and scores near chance.
    """
    in_chans = int(hparams["model_spec"].get("in_chans", 3))
    stored = hparams.get("preprocessing")
    given = {"image_size": image_size, "grayscale": grayscale, "mean": mean, "std": std}
    if stored:
        stored = dict(stored)
        normalize = dict(stored.get("normalize") or {})
        values = {
            "image_size": stored.get("image_size"),
            "grayscale": stored.get("grayscale"),
            "mean": stored.get("mean", normalize.get("mean")),
            "std": stored.get("std", normalize.get("std")),
        }
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise ValueError(f"{source}: preprocessing {stored} lacks {missing}")
        for key, value in given.items():
            if value is not None and to_plain(value) != to_plain(values[key]):
                raise ValueError(f"{key}={to_plain(value)} contradicts {source}, trained with {key}={to_plain(values[key])}; "
                                 f"leave {key} unset to use the checkpoint's value")
        face_crop = str(stored.get("face_crop") or "none")
        face_margin = float(stored.get("face_margin", DEFAULT_MARGIN))
    else:
        if image_size is None or grayscale is None:
            raise ValueError(
                f"{source} holds no preprocessing (image size, grayscale); pass image_size= and grayscale= "
                "as the run was trained (data.image_size and data.grayscale in the run's .hydra/config.yaml), "
                "and mean=/std= if it changed data.normalize (default: ImageNet's)"
            )
        values = {"image_size": image_size, "grayscale": grayscale,
                  "mean": IMAGENET_MEAN if mean is None else mean, "std": IMAGENET_STD if std is None else std}
        face_crop, face_margin = "none", DEFAULT_MARGIN
    if not isinstance(values["grayscale"], bool):
        raise ValueError(f"grayscale must be true or false, got {values['grayscale']!r}")
    size = values["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_size must be a positive integer (pixels), got {size!r}")
    pre = Preprocessing(size, values["grayscale"], in_chans, tuple(float(v) for v in to_plain(values["mean"])),
                        tuple(float(v) for v in to_plain(values["std"])), face_crop, face_margin)
    if len(pre.channel_mean) != in_chans or len(pre.channel_std) != in_chans:
        raise ValueError(f"mean {list(pre.mean)} / std {list(pre.std)} do not fit a model with in_chans={in_chans}")
    if min(pre.channel_std) <= 0:
        raise ValueError(f"std must be positive, got {list(pre.std)}")
    return pre


def to_plain(value):
    """A config node or tuple as plain Python (lists, dicts), for comparing and printing."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value




@dataclass
class Trained:
    """A trained model as loaded: the module (CPU, eval mode) and where it came from."""

    module: Any  # FERModule
    checkpoint: Path
    run_dir: Path | None  # the run folder holding the checkpoint, when there is one
    record: dict | None  # that run's metrics.json

    @property
    def classes(self) -> list[str]:
        return list(self.module.hparams["classes"])

    def preprocessing(self, **given) -> Preprocessing:
        """How images become this model's input; ``given``: image_size / grayscale / mean / std set by the user,
        checked against the checkpoint's (and needed when a checkpoint predates recording them)."""
        return resolve_preprocessing(self.module.hparams, **given, source=f"ckpt_path={self.checkpoint}")


def restore(ckpt_path) -> Trained:
    """The trained model at ``ckpt_path``: a .ckpt file or a run folder (see the module docstring)."""
    path = checkpoint_path(ckpt_path)
    run_dir = run_folder(path)
    record = records.read_metrics(run_dir) if run_dir else None
    module = load_module(path, record_classes=(record or {}).get("classes"))
    return Trained(module, path, run_dir, record)
