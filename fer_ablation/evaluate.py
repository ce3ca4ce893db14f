"""`python -m fer_ablation.evaluate ckpt_path=PATH data=... [data.root=...]`: score a checkpoint.

Cross-data-set evaluation: the checkpoint's classes and the data set's are both mapped by name to
the canonical order, so nothing is mis-indexed; classes the data set lacks are listed in the
record (`absent_classes`), classes the checkpoint does not know are skipped and listed by the data
module. Writes the same metrics.json / predictions.csv contract as a training run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from fer_ablation import provenance, records
from fer_ablation.config import CONFIG_DIR

log = logging.getLogger("fer_ablation")


def evaluate(cfg: DictConfig, out_dir: Path | str) -> dict:
    from fer_ablation.data import build_datamodule
    from fer_ablation.lit_module import FERModule
    from fer_ablation.training import evaluate_splits, write_predictions

    out_dir = Path(out_dir)
    started = time.perf_counter()
    ckpt_path = Path(cfg.ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file (expected a .ckpt written by a run)")
    module = FERModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    spec, ckpt_classes = dict(module.hparams.model_spec), list(module.hparams.classes)

    data_cfg = cfg.data.copy()
    data_cfg.ignore_unknown_classes = bool(cfg.ignore_unknown_classes)
    dm = build_datamodule(data_cfg, in_chans=spec["in_chans"], seed=0)
    dm.setup("validate")
    if list(dm.classes) != ckpt_classes:
        raise ValueError(
            f"{ckpt_path}: checkpoint classes {ckpt_classes} differ from the data module's {list(dm.classes)}"
        )

    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.pop("max_epochs", None)
    trainer = L.Trainer(**trainer_kwargs, logger=False, enable_checkpointing=False,
                        default_root_dir=str(out_dir), enable_model_summary=False)
    splits = [s for s in cfg.splits if s != "test" or dm.has_test]
    evaluations = evaluate_splits(trainer, module, dm, splits)
    if not trainer.is_global_zero:
        return {}
    absent = {
        split: [c for i, c in enumerate(ckpt_classes) if int((ev.targets == i).sum()) == 0]
        for split, ev in evaluations.items()
    }
    metrics = {
        "status": "completed",
        "error": None,
        "evaluated_checkpoint": str(ckpt_path),
        "attention": spec["attention"],
        "stem": spec["stem"],
        "placement": spec.get("placement", {}),
        "seed": None,
        "data": cfg.data.name,
        "image_size": int(cfg.data.image_size),
        "classes": ckpt_classes,
        "num_classes": len(ckpt_classes),
        "best": {"epoch": (module.loaded_epoch if module.loaded_epoch is not None else -1) + 1,
                 **{s: e.metrics for s, e in evaluations.items()}},
        "absent_classes": absent,
        "skipped_files": len(dm.skipped_files),
        "data_summary": dm.describe(),
        "device": provenance.device_name(trainer.strategy.root_device),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_predictions(out_dir, dm, ckpt_classes, evaluations)
    records.write_metrics(out_dir, metrics)
    for split, ev in evaluations.items():
        log.info("%s on %s/%s: accuracy %.2f%%, macro F1 %.2f%% (n=%d)", ckpt_path.name,
                 cfg.data.name, split, 100 * ev.metrics["accuracy"], 100 * ev.metrics["f1_macro"],
                 ev.metrics["n"])
    return metrics


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    evaluate(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
