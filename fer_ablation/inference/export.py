"""`python -m fer_ablation.export ckpt_path=PATH format=onnx`: the trained model as an ONNX file.

    python -m fer_ablation.export ckpt_path=best.ckpt format=onnx out=fer.onnx
    python -m fer_ablation.export ckpt_path=old.ckpt format=onnx image_size=48 grayscale=true
    python -m fer_ablation.export ckpt_path=outputs/runs/<run> out=fer.onnx

The graph maps the model's float input ``input`` [N, in_chans, S, S] to ``logits`` [N, classes]
(softmax them for probabilities); N is dynamic, S is the training size. Exported with PyTorch's
TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), which needs neither
``onnxscript`` nor ``torch.export``-traceable code. The file's ``metadata_props`` say how to build
the input from an image, as training did (``fer_ablation.data.decode`` then
``fer_ablation.data.augment.to_model_input``):

    classes      JSON list, the order of the logits
    image_size   S: resize the (face) image to S x S, bilinear
    grayscale    true: decode as luma (L), repeated over in_chans channels; false: RGB (reduced
                 to BT.601 luma when in_chans is 1)
    in_chans     the input's channel count
    mean, std    JSON lists, one per input channel: input = (pixel / 255 - mean) / std
    face_crop, face_margin   how the training images were cropped to faces (none: not cropped)
    model_spec   JSON, the architecture (attention modules, stem)

Then a parity check: onnxruntime's logits against PyTorch's on random images (two batch sizes,
to exercise the dynamic axis). The largest absolute difference is printed and bounded by
``parity.atol + parity.rtol * max |logit|``: float32 rounding grows with the logits' magnitude (a
trained model's logits of about 250 differed by 4e-4, relative 1.6e-6). The file is built and checked
in a temporary folder beside ``out``, which it replaces (atomically) only once the check passed: above the
bound, or on any failure (non-finite logits, a full disk), the export fails and ``out`` is left as it was.
``ckpt_path`` is a checkpoint file or a run folder (:func:`fer_ablation.inference.trained.restore`).

Every attention module (CA, SimAM, BAM, ECA, CoordAtt, ACmix, SE, CBAM) and both stems export at opset 17
and pass the parity check (randomly initialised, 32 px, CPU; ``pytest -m slow tests/test_export.py``). The
tracer warns about SimAM's ``n = H * W - 1``: it is recorded as a constant, which is right because the input
size is fixed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from fer_ablation.atomic import atomic_file
from fer_ablation.config import resolvers
from fer_ablation.inference import trained
from fer_ablation.inference.trained import Preprocessing

resolvers.register()

FORMATS = ("onnx",)
INPUT, OUTPUT = "input", "logits"


class ParityError(AssertionError):
    """onnxruntime's outputs differ from PyTorch's by more than the bound."""


@dataclass
class Parity:
    max_abs_diff: float  # largest |onnxruntime - PyTorch| over every logit
    max_abs_logit: float  # largest |PyTorch logit|, the scale of float32 rounding

    def bound(self, atol: float, rtol: float) -> float:
        return atol + rtol * self.max_abs_logit


@dataclass
class ExportResult:
    path: Path
    parity: Parity
    bound: float
    metadata: dict[str, str]


def metadata(classes, pre: Preprocessing, model_spec: dict) -> dict[str, str]:
    return {
        "classes": json.dumps(list(classes)),
        "image_size": str(pre.image_size),
        "grayscale": json.dumps(pre.grayscale),
        "in_chans": str(pre.in_chans),
        "mean": json.dumps(pre.channel_mean),
        "std": json.dumps(pre.channel_std),
        "face_crop": pre.face_crop,
        "face_margin": str(pre.face_margin),
        "model_spec": json.dumps(dict(model_spec), sort_keys=True, default=str),
    }


def sample_inputs(pre: Preprocessing, n: int, seed: int = 0) -> torch.Tensor:
    """Random uint8 images (as decoded: 1 or 3 channels) through the training normalisation."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1 if pre.grayscale else 3, pre.image_size, pre.image_size),
                           generator=g, dtype=torch.uint8)
    return pre.to_input(images)


def export_onnx(model: torch.nn.Module, pre: Preprocessing, path: Path | str, props: dict[str, str],
                opset: int = 17) -> Path:
    """Write the ONNX file (dynamic batch axis) with ``props`` as its metadata and check it with onnx's checker."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with torch.no_grad():
        torch.onnx.export(model, (sample_inputs(pre, 2),), str(path), dynamo=False, opset_version=int(opset),
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    graph = onnx.load(str(path))
    for key, value in props.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return path


def parity(model: torch.nn.Module, pre: Preprocessing, path: Path | str, batch_sizes=(3, 1),
           seed: int = 0) -> Parity:
    """Largest |logit difference| between onnxruntime (CPU) and PyTorch on random images, and the logits' scale."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, scale = 0.0, 0.0
    for i, n in enumerate(batch_sizes):
        x = sample_inputs(pre, n, seed=seed + 1 + i)
        with torch.no_grad():
            expected = model.eval()(x).float().numpy()
        (got,) = session.run([OUTPUT], {INPUT: x.numpy()})
        if got.shape != expected.shape:
            raise ParityError(f"{path}: onnxruntime gave logits of shape {got.shape} for a batch of {n}, "
                              f"PyTorch {expected.shape}")
        diff = np.abs(got - expected)
        if not np.isfinite(diff).all():
            raise ParityError(f"{path}: non-finite logits (onnxruntime or PyTorch) for a batch of {n}")
        worst = max(worst, float(diff.max()))
        scale = max(scale, float(np.abs(expected).max()))
    return Parity(worst, scale)


def export(cfg: DictConfig, out_dir: Path | str) -> ExportResult:
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r}: expected one of {list(FORMATS)}")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    atol, rtol = float(cfg.parity.atol), float(cfg.parity.rtol)
    if atol < 0 or rtol < 0:
        raise ValueError(f"parity.atol={atol} and parity.rtol={rtol} must be >= 0")
    loaded = trained.restore(cfg.ckpt_path)
    module = loaded.module
    pre = loaded.preprocessing(image_size=cfg.image_size, grayscale=cfg.grayscale, mean=cfg.mean, std=cfg.std)
    path = Path(cfg.out) if cfg.out else Path(out_dir) / f"{Path(str(cfg.ckpt_path)).stem}.onnx"
    props = metadata(module.hparams["classes"], pre, module.hparams["model_spec"])
    path.parent.mkdir(parents=True, exist_ok=True)
    # built and checked beside `out`, which it replaces only once it passed: a failure leaves `out` as it was
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        candidate = Path(scratch) / path.name
        export_onnx(module.model, pre, candidate, props, opset=cfg.opset)
        check = parity(module.model, pre, candidate, seed=int(cfg.parity.seed))
        bound = check.bound(atol, rtol)
        print(f"{path}: onnxruntime vs PyTorch logits, max abs difference {check.max_abs_diff:.3g} "
              f"(bound {bound:.3g} = {atol:g} + {rtol:g} x max |logit| {check.max_abs_logit:.3g})")
        if not check.max_abs_diff <= bound:
            raise ParityError(f"{path}: onnxruntime's logits differ from PyTorch's by up to "
                              f"{check.max_abs_diff:.3g} (> {bound:.3g} = parity.atol + parity.rtol x max |logit|); "
                              f"the export is not faithful and was not written ({path} is unchanged)")
        with atomic_file(path) as handle, candidate.open("rb") as source:
            shutil.copyfileobj(source, handle)
    return ExportResult(path, check, bound, props)
