"""A run's fingerprint: what must be equal for two runs to be compared, as readable fields and a short hash.

Two runs of different configurations (the arm) or seeds are comparable when they share the data (set, files or
probe knobs, split seed and fractions, report split, duplicate policy, classes, decoding, face crop), the model's
input (image size, channels, grayscale, normalisation), the stem options, the training recipe (epochs, batch size
per process and in all, world size, optimizer, schedule, augmentation, loss, Trainer limits, precision) and the
weights actually loaded at start. The arm itself (attention, stem, placement, model options) is the
configuration, matched against the tables file (``report.runs.resolve_configuration``). Every model, stem and data
key of the composed config is either fingerprinted or listed in :data:`NOT_FINGERPRINTED` with the reason (a test
walks the config). Fields added later are left out at their default (in_chans 3, default stem options, one
process), so runs recorded before them keep their hash. The report groups runs by the hash and never pools or pairs runs whose
fingerprints differ (Dror et al., "The Hitchhiker's Guide to Testing Statistical Significance in NLP", ACL 2018:
paired tests assume the compared systems differ only in the factor under test).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# the probe's knobs: together with the generator's version they identify the generated images
PROBE_KNOBS = ("n_images", "n_val", "n_test", "clutter", "face_scale", "seed")
TRAINER_LIMITS = ("limit_train_batches", "limit_val_batches", "accumulate_grad_batches", "gradient_clip_val")

# Config keys (model., stem., data.) that do not enter the fingerprint, and why; every other key does.
NOT_FINGERPRINTED = {
    "model.name": "always resnet50, the only backbone",
    "model.attention": "the arm: the configuration a run is compared as",
    "model.placement": "part of the arm: runs with placement overrides match no configuration of the tables",
    "model.options": "part of the arm: matched with the configuration (experiments.model_key)",
    "model.pretrained": "fingerprinted as the weights actually loaded (pretrained)",
    "model.pretrained_fallback": "its effect is fingerprinted: the weights actually loaded (pretrained)",
    "stem.name": "the arm: the configuration's stem",
    "data.eval_batch_size": "how evaluation is batched; the scores do not depend on it",
    "data.num_workers": "loader processes; same images, same order",
    "data.in_memory": "loader path (uint8 cache or DataLoader); same pixels",
    "data.cache_dir": "where the decoded cache lives",
    "data.max_skipped_fraction": "a threshold for failing the run; the images kept are the data's own",
    "data.ignore_unknown_classes": "whether unknown class folders fail the run; the classes kept are data.classes",
    "data.holdout": "training refuses holdout=false; only evaluation scores whole folders",
}


def _plain(node) -> Any:
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != "_partial_"}
    return node


def data_identity(data: dict, root: str | None, classes: list[str]) -> dict:
    """The data fields: set name, resolved root (or the probe's knobs and generator version), splits, classes."""
    identity: dict[str, Any] = {"name": data["name"]}
    if data["name"] == "synthetic" and not data.get("root"):
        from fer_ablation.data.synthetic import GENERATOR_VERSION

        identity["probe"] = {**{k: data[k] for k in PROBE_KNOBS}, "generator_version": GENERATOR_VERSION}
    else:
        identity["root"] = str(Path(root or data["root"]).expanduser().resolve())
    identity.update(
        split_seed=data["split_seed"], val_fraction=data["val_fraction"], report_split=data["report_split"],
        dedup=data["dedup"], grayscale=data["grayscale"], normalize=data["normalize"], classes=list(classes),
    )
    if data["name"] in ("imagefolder", "synthetic"):
        identity["test_fraction"] = data["test_fraction"]
    if data.get("face_crop", "none") != "none":  # absent when off, so earlier fingerprints stay valid
        identity["face_crop"] = {k: data[k] for k in ("face_crop", "face_margin", "no_face")}
    return identity


def stem_options(stem: dict) -> dict:
    """The stem's options that differ from its config file's (conf/stem/<name>.yaml)."""
    from fer_ablation.config import CONFIG_DIR

    path = Path(CONFIG_DIR) / "stem" / f"{stem['name']}.yaml"
    defaults = _plain(OmegaConf.load(path)) if path.is_file() else {}
    return {k: v for k, v in stem.items() if k != "name" and defaults.get(k) != v}


def run_fingerprint(cfg: DictConfig, data: dict, root: str | None, classes: list[str], precision: str,
                    pretrained: str | None, world_size: int = 1) -> dict:
    """{"hash": 12 hex digits, "fields": {...}} of a run (see the module docstring).

    ``data``: the resolved data config (``FERDataModule.cfg``); ``root``: the folder the data was read from;
    ``precision``: the Trainer's precision as resolved; ``pretrained``: the weights loaded (as metrics.json says);
    ``world_size``: the processes training together (the Trainer's world size).
    """
    trainer = _plain(cfg.trainer)
    optional = {
        "in_chans": int(cfg.model.in_chans) if int(cfg.model.in_chans) != 3 else None,
        "stem_options": stem_options(_plain(cfg.stem)) or None,
        # images per optimizer step: per-process batch x processes x accumulation
        "world_size": int(world_size) if int(world_size) != 1 else None,
        "global_batch_size": int(data["batch_size"]) * int(world_size) * int(trainer.get("accumulate_grad_batches") or 1)
        if int(world_size) != 1 else None,
    }
    fields = {
        "data": data_identity(data, root, classes),
        "image_size": int(data["image_size"]),
        "max_epochs": int(trainer["max_epochs"]),
        "batch_size": int(data["batch_size"]),
        "optimizer": _plain(cfg.optimizer),
        "scheduler": _plain(cfg.get("scheduler")),
        "augment": data["augment"],
        "loss": _plain(cfg.loss),
        "trainer_limits": {k: trainer.get(k) for k in TRAINER_LIMITS},
        "precision": str(precision),
        "pretrained": pretrained,
        **{k: v for k, v in optional.items() if v is not None},
    }
    return {"hash": fingerprint_hash(fields), "fields": fields}


def fingerprint_hash(fields: dict) -> str:
    """Short SHA-256 of the fields as canonical JSON (sorted keys), stable across processes and machines."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def flatten(fields: dict, prefix: str = "") -> dict[str, Any]:
    """{"optimizer.lr": 0.001, ...}: the leaves of nested fields, for saying what differs between two runs."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
