"""export: ONNX with a dynamic batch axis and self-describing metadata, onnxruntime parity with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fer_ablation.inference import export, predict, trained
from fer_ablation.inference.trained import Preprocessing
from fer_ablation.models import STEMS, attention_names, build_model
from tests.checkpoint_helpers import save_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SIZE = 32


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, one_thread):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.ckpt", image_size=SIZE)


def _cfg(compose_cfg, *overrides):
    return compose_cfg(*overrides, config_name="export", smoke=False)


def test_export_baseline_checkpoint(compose_cfg, checkpoint, tmp_path, one_thread):
    result = export.export(_cfg(compose_cfg, f"ckpt_path={checkpoint}", f"image_size={SIZE}", "grayscale=true"),
                           tmp_path)
    assert result.path == tmp_path / "best.onnx"
    assert result.bound == pytest.approx(1e-4 + 1e-4 * result.parity.max_abs_logit)
    assert 0 < result.parity.max_abs_diff <= result.bound

    model = onnx.load(str(result.path))
    meta = {p.key: p.value for p in model.metadata_props}
    module = trained.load_module(checkpoint)
    assert json.loads(meta["classes"]) == list(module.hparams["classes"])
    assert (meta["image_size"], meta["grayscale"], meta["in_chans"]) == (str(SIZE), "true", "3")
    assert json.loads(meta["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["model_spec"])["attention"] == "none"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    # a consumer that knows only the file: its metadata rebuilds the input, its logits give predict's probabilities
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(photo)
    size, chans = int(meta["image_size"]), int(meta["in_chans"])
    with Image.open(photo) as img:
        pixels = np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
    mean, std = (np.array(json.loads(meta[k]), np.float32)[:, None, None] for k in ("mean", "std"))
    x = ((np.repeat(pixels[None], chans, axis=0) - mean) / std)[None].repeat(5, axis=0)  # batch of 5
    (logits,) = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    probs = torch.from_numpy(logits).softmax(1).numpy()
    assert probs.shape == (5, 7)
    expected = _predict_probs(compose_cfg, checkpoint, photo, tmp_path)
    np.testing.assert_allclose(probs[0], expected, atol=1e-4)


def _predict_probs(compose_cfg, checkpoint, photo, tmp_path) -> np.ndarray:
    cfg = compose_cfg(f"ckpt_path={checkpoint}", f"inputs={photo}", f"image_size={SIZE}", "grayscale=true",
                      config_name="predict", smoke=False)
    result = predict.predict(cfg, tmp_path / "pred")
    return np.array([result.rows[0][f"prob_{c}"] for c in result.classes], np.float32)


def test_full_model_passes_parity(tmp_path, one_thread):
    """The paper's full model: CA + SimAM with the SC stem."""
    torch.manual_seed(0)
    model = build_model("ca+simam", "sc", num_classes=7).eval()
    pre = Preprocessing(SIZE, True, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    path = export.export_onnx(model, pre, tmp_path / "full.onnx", {"classes": "[]"})
    check = export.parity(model, pre, path)
    assert check.max_abs_diff <= check.bound(1e-4, 1e-4)


def test_parity_failure_and_bad_arguments(compose_cfg, checkpoint, tmp_path, monkeypatch, one_thread):
    with pytest.raises(ValueError, match="format='tflite'"):
        export.export(_cfg(compose_cfg, f"ckpt_path={checkpoint}", "format=tflite"), tmp_path)
    with pytest.raises(ValueError, match="holds no preprocessing"):
        export.export(_cfg(compose_cfg, f"ckpt_path={checkpoint}"), tmp_path)
    monkeypatch.setattr(export, "parity", lambda *args, **kwargs: export.Parity(0.5, 100.0))
    with pytest.raises(export.ParityError, match="differ from PyTorch's by up to 0.5"):
        export.export(_cfg(compose_cfg, f"ckpt_path={checkpoint}", f"image_size={SIZE}", "grayscale=true"), tmp_path)
    assert not (tmp_path / "best.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("attention", ["none", *attention_names()])
def test_every_module_exports(attention, stem, tmp_path, one_thread):
    """Every attention module and stem: 3.7 min in all on one CPU thread, 2.5 of them ACmix's."""
    torch.manual_seed(0)
    model = build_model(attention, stem, num_classes=7).eval()
    pre = Preprocessing(SIZE, True, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    path = export.export_onnx(model, pre, tmp_path / "m.onnx", {})
    check = export.parity(model, pre, path)
    assert check.max_abs_diff <= check.bound(1e-4, 1e-4)
