"""`python -m fer_ablation.evaluate ckpt_path=PATH data=... [data.root=...]`: score a checkpoint.

Cross-data-set evaluation: the checkpoint's classes and the data set's are both mapped by name to
the canonical order, so nothing is mis-indexed; classes the data set lacks are listed in the
record (`absent_classes`), classes the checkpoint does not know are skipped and listed by the data
module (`unscored_classes`: images per split and class). Writes the same metrics.json / predictions.csv contract as a training run, marked
`"kind": "evaluation"` (the collector leaves such records out of the training tables).

`ckpt_path` is a .ckpt file or a run folder (:func:`fer_ablation.inference.trained.restore`). The images are prepared as
the model was trained (image size, grayscale, normalisation: the checkpoint's `preprocessing` hyper-parameter);
an explicit `data.*` override that contradicts it is an error, whether it names the key or its whole group
(`data.normalize={...}`). On the data the run trained on, the splits are made as the run made them (its split
seed, fractions, duplicate policy and probe knobs, from its metrics.json fingerprint): an override that would move
images between splits is refused unless `new_data=true`, and so is `splits=[all]`. metrics.json's
`split_definition` says which definition was used and why. `splits=[]` is an error. `splits` lists the splits to score, each scored whole and named as asked; by default every
evaluation split of a split data set, and the whole of an unsplit folder (split `all`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

import lightning as L
from omegaconf import DictConfig, OmegaConf

from fer_ablation import records
from fer_ablation.inference import trained
from fer_ablation.inference.trained import to_plain
from fer_ablation.records import provenance

log = logging.getLogger("fer_ablation")

PREPROCESSING_KEYS = ("image_size", "grayscale", "normalize.mean", "normalize.std", "face_crop", "face_margin")
# Taken from the checkpoint unless given on the command line: a model trained on tight crops (face_crop=none)
# is rightly evaluated on photos with data.face_crop=haar. Absent from checkpoints older than face crops.
OPTIONAL_KEYS = ("face_crop", "face_margin")
# What decides which images land in which split: taken from the run on its own data (split_definition)
SPLIT_KEYS = ("split_seed", "val_fraction", "test_fraction", "dedup")
WHOLE = "all"


def given(key: str, explicit: Sequence[str]) -> bool:
    """Whether the command line set data.`key`, itself or through a whole group above it (data.normalize={...})."""
    name = f"data.{key}"
    return any(e == name or (e.startswith("data.") and name.startswith(e + ".")) for e in explicit)


def split_definition(data_cfg: DictConfig, record: dict | None, run_dir: Path | None, explicit: Sequence[str],
                     new_data: bool) -> tuple[DictConfig, dict]:
    """(`data_cfg` with the split definition of the run that made the checkpoint, the definition as recorded).

    On the run's own data (same set and root, or the probe) the run's split seed, fractions, duplicate policy and
    probe knobs are used, so no training image is scored as a held-out one; an explicit override that differs is
    refused unless `new_data` (the user says the images are not the run's). Other data keeps its own."""
    data_cfg = data_cfg.copy()
    keys = [k for k in SPLIT_KEYS if k in data_cfg]
    identity = (((record or {}).get("fingerprint") or {}).get("fields") or {}).get("data")
    if new_data or identity is None:
        why = "new_data=true" if new_data else f"{run_dir or 'the checkpoint'} records no split definition"
        if identity is None and not new_data:
            log.warning("%s: the splits are made as data.* says (split_seed=%s); images the run trained on may be "
                        "scored", why, data_cfg.split_seed)
        return data_cfg, {"source": "command line", "reason": why, **{k: to_plain(data_cfg[k]) for k in keys}}
    probe = data_cfg.name == "synthetic" and not data_cfg.get("root")
    if identity["name"] != data_cfg.name or (probe != ("probe" in identity)) or (
            not probe and str(Path(str(data_cfg.root)).expanduser().resolve()) != identity.get("root")):
        where = identity.get("root", "the probe set")
        return data_cfg, {"source": "command line", "reason": f"other data than the run's {identity['name']} at {where}",
                          **{k: to_plain(data_cfg[k]) for k in keys}}
    run_values = {k: identity[k] for k in keys if k in identity}
    if probe:
        run_values.update({k: v for k, v in identity["probe"].items() if k in data_cfg})
    conflicts = [f"data.{k}={to_plain(data_cfg[k])} (the run used {v})" for k, v in run_values.items()
                 if given(k, explicit) and to_plain(data_cfg[k]) != v]
    if conflicts:
        raise ValueError(f"{run_dir}: " + "; ".join(conflicts) + ": on the run's own data this would move images "
                         "between its splits (training images scored as held-out ones); drop the override, or "
                         "pass new_data=true if these images are not the run's")
    for key, value in run_values.items():
        OmegaConf.update(data_cfg, key, value, merge=False)
    return data_cfg, {"source": "run", "reason": f"the run's own data ({run_dir})", **run_values}


def evaluation_precision(precision: str | None, ckpt: Path, accelerator: str | None) -> tuple[str, str]:
    """The precision to score in, and why: an explicit one; else the precision the run that wrote `ckpt`
    recorded (its metrics.json), so evaluating on the machine that trained reproduces the run's numbers;
    else the fast path's choice for this device."""
    if precision is not None:
        return str(precision), "set in the config"
    run = records.read_metrics(ckpt.parent.parent) if ckpt.parent.name == "checkpoints" else None
    if run and run.get("precision"):
        return str(run["precision"]), f"the precision {ckpt.parent.parent / 'metrics.json'} records"
    from fer_ablation.train import fast_path

    chosen = fast_path.choose(None, None, accelerator)
    return chosen.precision, chosen.reason


def apply_preprocessing(data_cfg: DictConfig, trained: dict | None, explicit: Sequence[str], ckpt: Path) -> DictConfig:
    """`data_cfg` with the checkpoint's preprocessing; ValueError when an explicit override contradicts it."""
    data_cfg = data_cfg.copy()
    if not trained:
        log.warning("%s records no preprocessing (an older checkpoint): using data.* as given", ckpt)
        return data_cfg
    conflicts = []
    for key in PREPROCESSING_KEYS:
        value = OmegaConf.select(OmegaConf.create(trained), key)
        if key in OPTIONAL_KEYS and (value is None or given(key, explicit)):
            continue
        current = to_plain(OmegaConf.select(data_cfg, key))
        if given(key, explicit) and current != value:
            conflicts.append(f"data.{key}={current} (the model was trained with {value})")
        OmegaConf.update(data_cfg, key, value, merge=False)
    if conflicts:
        raise ValueError(f"{ckpt}: " + "; ".join(conflicts) + ": drop the override, the checkpoint's "
                         "preprocessing is used")
    return data_cfg



class _OneSplit(L.LightningDataModule):
    """Serves one split of `dm` through Lightning's validation loop (which scores any loader)."""

    def __init__(self, dm, split: str):
        super().__init__()
        self.dm, self.split = dm, split

    def val_dataloader(self):
        return self.dm.eval_dataloader(self.split)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.dm.device_transform(batch, train=False)


def score_splits(trainer: L.Trainer, module, dm, splits: Sequence[str]) -> dict:
    """{split: Evaluation} for each split of `dm` named in `splits`, each scored whole."""
    evaluations = {}
    for split in splits:
        module.evaluations.clear()
        trainer.validate(module, datamodule=_OneSplit(dm, split), weights_only=True, verbose=False)
        evaluations[split] = dataclasses.replace(module.evaluations.pop("val"), split=split)
    return evaluations


def evaluate(cfg: DictConfig, out_dir: Path | str, explicit: Sequence[str] = ()) -> dict:
    """Score cfg.ckpt_path on cfg.data; `explicit`: the keys given on the command line (data.image_size...)."""
    from fer_ablation.data import build_datamodule
    from fer_ablation.data.label_set import resolve_classes
    from fer_ablation.train.training import write_predictions

    out_dir = Path(out_dir)
    started = time.perf_counter()
    if cfg.get("splits") is not None and len(cfg.splits) == 0:
        raise ValueError("splits=[]: nothing to score; name some of train, val, test or all, or leave splits unset "
                         "(the evaluation splits the data has)")
    loaded = trained.restore(cfg.ckpt_path)
    module, ckpt_path = loaded.module, loaded.checkpoint
    spec, ckpt_classes = dict(module.hparams.model_spec), loaded.classes

    data_cfg = apply_preprocessing(cfg.data, module.hparams.get("preprocessing"), explicit, ckpt_path)
    new_data = bool(cfg.get("new_data", False))
    data_cfg, splits_used = split_definition(data_cfg, loaded.record, loaded.run_dir, explicit, new_data)
    data_cfg.ignore_unknown_classes = bool(cfg.ignore_unknown_classes)
    # classes map by name: images of classes the model lacks are left out and reported (unscored_classes)
    if given("classes", explicit) and list(resolve_classes(data_cfg.classes)) != ckpt_classes:
        raise ValueError(f"{ckpt_path}: data.classes={list(data_cfg.classes)} differs from the checkpoint's "
                         f"classes {ckpt_classes}: evaluation scores the model's classes (images of others are "
                         "left out and counted); drop data.classes")
    data_cfg.classes = ckpt_classes
    dm = build_datamodule(data_cfg, in_chans=spec["in_chans"], seed=0)
    described = dm.describe()
    layout = described["layout"]
    available = [s for s in ("train", "val", "test") if s in described["splits"]]
    if layout == "unsplit":
        available.append(WHOLE)
    splits = list(cfg.splits) if cfg.get("splits") is not None else (
        [WHOLE] if layout == "unsplit" else [s for s in available if s != "train"])
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise ValueError(f"splits={splits}: {cfg.data.name} data at {described['root']} ({layout} layout) "
                         f"has no split {unknown}; expected some of {available}")
    if WHOLE in splits and splits_used["source"] == "run":
        raise ValueError(f"splits={splits}: `all` of the folder {loaded.run_dir} trained on scores its training "
                         "images; pass new_data=true if these images are not the run's")
    if WHOLE in splits:
        # The whole folder: no hold-out, every image lands in `train`, scored as `all`.
        whole_cfg = data_cfg.copy()
        whole_cfg.holdout = False
        whole = build_datamodule(whole_cfg, in_chans=spec["in_chans"], seed=0)
    if list(dm.classes) != ckpt_classes:
        raise ValueError(
            f"{ckpt_path}: checkpoint classes {ckpt_classes} differ from the data module's {list(dm.classes)}"
        )

    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.pop("max_epochs", None)
    trainer_kwargs["precision"], precision_choice = evaluation_precision(trainer_kwargs.get("precision"), ckpt_path,
                                                                         trainer_kwargs.get("accelerator"))
    log.info("scoring in %s (%s)", trainer_kwargs["precision"], precision_choice)
    trainer = L.Trainer(**trainer_kwargs, logger=False, enable_checkpointing=False,
                        default_root_dir=str(out_dir), enable_model_summary=False)
    evaluations = score_splits(trainer, module, dm, [s for s in splits if s != WHOLE])
    if WHOLE in splits:
        evaluations[WHOLE] = dataclasses.replace(score_splits(trainer, module, whole, ["train"])["train"], split=WHOLE)
    if not trainer.is_global_zero:
        return {}
    absent = {
        split: [c for i, c in enumerate(ckpt_classes) if int((ev.targets == i).sum()) == 0]
        for split, ev in evaluations.items()
    }
    # images of classes the checkpoint lacks, per scored split (left out by the data module, never mis-indexed)
    unscored = {s: c for s, c in dm.excluded_classes.items() if s in splits}
    if WHOLE in splits and whole.excluded_classes.get("train"):
        unscored[WHOLE] = whole.excluded_classes["train"]
    metrics = {
        "kind": "evaluation",
        "status": "completed",
        "error": None,
        "evaluated_checkpoint": str(ckpt_path),
        "attention": spec["attention"],
        "stem": spec["stem"],
        "placement": spec.get("placement", {}),
        "seed": None,
        "data": cfg.data.name,
        "image_size": int(data_cfg.image_size),
        "preprocessing": {"image_size": int(data_cfg.image_size), "grayscale": bool(data_cfg.grayscale),
                          "normalize": OmegaConf.to_container(data_cfg.normalize, resolve=True)},
        "split_definition": splits_used,
        "classes": ckpt_classes,
        "num_classes": len(ckpt_classes),
        "best": {"epoch": (module.loaded_epoch if module.loaded_epoch is not None else -1) + 1,
                 **{s: e.metrics for s, e in evaluations.items()}},
        "absent_classes": absent,
        "unscored_classes": unscored,
        "skipped_files": len(dm.skipped_files),
        "data_summary": dm.describe(),
        "device": provenance.device_name(trainer.strategy.root_device),
        "precision": trainer_kwargs["precision"],
        "precision_choice": precision_choice,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    rows_dm = _PathsOf(dm, whole if WHOLE in splits else None)
    write_predictions(out_dir, rows_dm, ckpt_classes, evaluations)
    records.write_metrics(out_dir, metrics)
    for split, ev in evaluations.items():
        log.info("%s on %s/%s: accuracy %.2f%%, macro F1 %.2f%% (n=%d)", ckpt_path.name,
                 cfg.data.name, split, 100 * ev.metrics["accuracy"], 100 * ev.metrics["f1_macro"],
                 ev.metrics["n"])
    return metrics


class _PathsOf:
    """split_paths for write_predictions: `all` is the whole-folder module's train split."""

    def __init__(self, dm, whole):
        self.dm, self.whole = dm, whole

    def split_paths(self, split: str):
        return self.whole.split_paths("train") if split == WHOLE else self.dm.split_paths(split)
