"""Grad-CAM heat maps of trained runs on the same validation images (the paper's Fig. 7-8).

    python -m fer_ablation.gradcam RUN_DIR [RUN_DIR ...] [--classes happiness sadness] [--n 4]
                                   [--out results/figures/gradcam_<group>.png] [--layer layer4.2]

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017): for class c and feature maps A^k of the target layer,

    alpha_k^c = mean_{i,j} d y^c / d A^k_{ij},   L^c = ReLU(sum_k alpha_k^c A^k),

upsampled to the input size and min-max scaled to [0, 1] per image (``pytorch_grad_cam.GradCAM``).
The target layer is the last Bottleneck of layer4 (its output, after the residual sum and ReLU); an
attention module placed after layer4 (e.g. SimAM at ``last``) is on the path from it to the logits. The
class is the image's true class (``--target true``) or the run's prediction (``--target pred``).

Each run folder is read by the report's reader (``fer_ablation.report.runs.load_run``: metrics.json and
``.hydra/config.yaml``, whose data group is drawn) and its model restored from ``checkpoints/best.ckpt``
(or the checkpoint named, inside a run folder) by :func:`fer_ablation.inference.trained.restore`; every run must see the
same validation images. The images are the first ``n`` of each chosen class in the validation split, so every run and every call
draws the same ones. Rows = images; columns = the image, then one overlay per run titled attention / stem.
Only probe images belong in committed figures: data other than the synthetic probe cannot be written
under results/ (write such figures elsewhere with --out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.image import show_cam_on_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from fer_ablation.config import PROJECT_ROOT  # noqa: E402
from fer_ablation.data import build_datamodule  # noqa: E402
from fer_ablation.data.labels import canonical_class  # noqa: E402
from fer_ablation.inference import trained  # noqa: E402
from fer_ablation.report.grouping import group_tag  # noqa: E402
from fer_ablation.report.runs import Run, load_run  # noqa: E402
from fer_ablation.train.lit_module import FERModule  # noqa: E402

COMMITTED_RESULTS = PROJECT_ROOT / "results"
DEFAULT_CLASSES = ("happiness", "sadness")


# Data keys that change how images are loaded, not which images there are.
LOADER_KEYS = ("batch_size", "eval_batch_size", "num_workers", "in_memory", "cache_dir", "augment")


@dataclass
class Explained:
    """A run folder as the report reads it, with its best model restored (eval mode, CPU)."""

    run: Run
    module: FERModule

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def data_cfg(self) -> DictConfig:
        return self.run.config.data

    @property
    def label(self) -> str:
        spec = self.module.hparams.model_spec
        return f"{spec['attention']} / {spec['stem']}"


def in_chans(module: FERModule) -> int:
    return int(module.hparams.model_spec.get("in_chans", 3))


@dataclass
class GradCAMFigure:
    out: Path
    indices: list[int]  # validation sample indices, one per row
    targets: list[int]
    cams: dict[str, np.ndarray]  # run folder -> float32 [n_images, S, S] in [0, 1]
    predictions: dict[str, list[int]]


def load(path: Path | str) -> Explained:
    """A run folder (its best checkpoint) or a checkpoint inside one (<run>/checkpoints/*.ckpt): the run's records
    (through the report's reader) and that checkpoint's model (:func:`fer_ablation.inference.trained.restore`)."""
    path = Path(path)
    loaded = trained.restore(path)
    if loaded.run_dir is None:
        raise FileNotFoundError(f"{path}: Grad-CAM draws the run's own validation images, so it needs a run folder "
                                "or a checkpoint in a run folder's checkpoints/ (with its metrics.json)")
    run_dir = path if path.is_dir() else loaded.run_dir
    run = load_run(run_dir)
    if run is None or run.group_key is None:
        why = run.reason if run else "no metrics.json"
        raise FileNotFoundError(f"{run_dir}: expected a metrics.json naming data and image_size ({why})")
    if run.config is None:
        raise FileNotFoundError(f"{run_dir}: expected a readable .hydra/config.yaml (the run's data config)")
    return Explained(run, loaded.module)


def select_images(targets: torch.Tensor, classes: list[int], n: int) -> list[int]:
    """The first `n` validation indices of each class in `classes`, class by class."""
    chosen = []
    for c in classes:
        found = torch.nonzero(targets == c).flatten()[:n].tolist()
        if not found:
            raise ValueError(f"the validation split has no image of class index {c}")
        chosen.extend(found)
    return chosen


def _validation_images(dm, indices: list[int]) -> torch.Tensor:
    """uint8 [len(indices), C, S, S] of the validation split, in the order of `indices`."""
    wanted = {i: None for i in indices}
    for images, _, batch_indices in dm.val_dataloader():
        for image, i in zip(images, batch_indices.tolist()):
            if i in wanted:
                wanted[i] = image
        if all(v is not None for v in wanted.values()):
            break
    return torch.stack([wanted[i] for i in indices])


def _target_layer(model: torch.nn.Module, layer: str | None) -> torch.nn.Module:
    return model.get_submodule(layer or f"layer4.{len(model.layer4) - 1}")


def compute_cams(module: FERModule, data_cfg: DictConfig, images: torch.Tensor, targets: list[int], *,
                 layer: str | None = None, target: str = "true") -> tuple[np.ndarray, list[int]]:
    """Grad-CAM maps float32 [N, S, S] in [0, 1] of uint8 `images` for one model, and its predictions.

    `data_cfg` is the run's data config: the images go through its evaluation transform.
    """
    dm = build_datamodule(data_cfg, in_chans=in_chans(module))
    x, _, _ = dm.device_transform((images, torch.tensor(targets), torch.arange(len(images))), train=False)
    model = module.model
    with torch.no_grad():
        predictions = model(x).argmax(1).tolist()
    return cam_maps(model, x, targets if target == "true" else predictions, layer=layer), predictions


def cam_maps(model: torch.nn.Module, x: torch.Tensor, classes, layer: str | None = None) -> np.ndarray:
    """Grad-CAM maps float32 [N, S, S] in [0, 1] of `classes` for the model inputs `x`, at `layer`
    (default: the last block of layer4). Used by `gradcam` and by `predict gradcam=true`."""
    with GradCAM(model=model, target_layers=[_target_layer(model, layer)]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
    return np.asarray(maps, dtype=np.float32)


def _same_images(runs: list[Explained]) -> None:
    def data_key(run: Explained) -> str:
        cfg = OmegaConf.to_container(run.data_cfg, resolve=False)
        return json.dumps({k: v for k, v in cfg.items() if k not in LOADER_KEYS}, sort_keys=True, default=str)

    first = data_key(runs[0])
    for run in runs[1:]:
        if data_key(run) != first:
            raise ValueError(f"{run.path} was trained on other data than {runs[0].path}: "
                             "Grad-CAM compares runs on the same validation images")


def draw(run_dirs: list[Path | str], *, classes=DEFAULT_CLASSES, n: int = 4, out: Path | str | None = None,
         layer: str | None = None, target: str = "true") -> GradCAMFigure:
    """Compute the runs' Grad-CAM maps on the chosen validation images and write the figure."""
    if target not in ("true", "pred"):
        raise ValueError(f"target must be 'true' or 'pred', got {target!r}")
    runs = [load(p) for p in run_dirs]
    if not runs:
        raise ValueError("no run folder given")
    _same_images(runs)
    names = list(runs[0].module.classes)
    wanted = [names.index(canonical_class(c)) for c in classes]

    data_cfg = runs[0].data_cfg
    group = group_tag(runs[0].run.group_key)
    out = Path(out) if out else COMMITTED_RESULTS / "figures" / f"gradcam_{group}.png"
    if data_cfg.name != "synthetic" and out.resolve().is_relative_to(COMMITTED_RESULTS):
        raise ValueError(f"{data_cfg.name} images must not go into committed figures under {COMMITTED_RESULTS}: "
                         "pass --out outside the repository")
    dm = build_datamodule(data_cfg, in_chans=in_chans(runs[0].module))
    dm.setup("validate")
    indices = select_images(dm.split_targets("val"), wanted, n)
    targets = dm.split_targets("val")[indices].tolist()
    images = _validation_images(dm, indices)

    cams, predictions = {}, {}
    for run in runs:
        cams[str(run.path)], predictions[str(run.path)] = compute_cams(
            run.module, run.data_cfg, images, targets, layer=layer, target=target)

    rows, cols = len(indices), 1 + len(runs)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
    pictures = images.float().div(255.0)
    if pictures.shape[1] == 1:
        pictures = pictures.expand(-1, 3, -1, -1)
    pictures = pictures.permute(0, 2, 3, 1).numpy()
    for r, (picture, true) in enumerate(zip(pictures, targets)):
        axes[r, 0].imshow(picture)
        axes[r, 0].set_ylabel(names[true], fontsize=8)
        for c, run in enumerate(runs, start=1):
            overlay = show_cam_on_image(picture, cams[str(run.path)][r], use_rgb=True)
            axes[r, c].imshow(overlay)
            axes[r, c].set_xlabel(f"pred: {names[predictions[str(run.path)][r]]}", fontsize=7)
            if r == 0:
                axes[r, c].set_title(run.label, fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Grad-CAM ({target} class), {group}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return GradCAMFigure(out, indices, targets, cams, predictions)
