"""A run's records on disk: metrics.json, predictions.csv, history.csv (and Hydra's .hydra/ files, read only).

This is the one writer and the one reader of the record files; collectors and outside tools rely
on the layout documented in the README. Every write is atomic (temporary file in the same folder,
then rename), so an interrupted write never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from fer_ablation.atomic import write_atomic

METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
PREDICTIONS_LAST = "predictions_last.csv"  # the last epoch's predictions (predictions.csv: the best epoch's)
PREDICTION_FILES = {"best": PREDICTIONS, "last": PREDICTIONS_LAST}
HISTORY = "history.csv"

class RecordError(ValueError):
    """A record file exists but does not hold what the layout promises (the message names the file)."""


HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_precision_macro",
    "val_recall_macro", "val_f1_macro", "lr", "epoch_s", "data_s", "step_s", "eval_s", "log_s",
)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_metrics(run_dir: Path | str, metrics: Mapping[str, Any]) -> Path:
    path = Path(run_dir) / METRICS
    write_atomic(path, json.dumps(_json_safe(metrics), indent=2, sort_keys=False) + "\n")
    return path


def read_metrics(run_dir: Path | str) -> dict | None:
    """The run's metrics.json, or None when it is absent; RecordError (naming the file) when it is not JSON."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path} is not readable JSON (truncated or damaged?): {e}") from e


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def write_history(run_dir: Path | str, rows: Sequence[Mapping[str, Any]]) -> Path:
    path = Path(run_dir) / HISTORY
    write_atomic(path, _csv_text(HISTORY_COLUMNS, rows))
    return path


def read_history(run_dir: Path | str) -> list[dict]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
    for row in rows:  # an integer, as written: a resumed run rewrites these rows and must keep their format
        row["epoch"] = int(row["epoch"])
    return rows


def write_predictions(
    run_dir: Path | str,
    classes: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    select: str = "best",
) -> Path:
    """rows: dicts with split, index, path, target, pred and `probs` (a sequence per class); `select`: whose
    predictions, the best epoch's (predictions.csv) or the last epoch's (predictions_last.csv)."""
    columns = ["split", "index", "path", "target", "pred", *[f"prob_{c}" for c in classes]]

    def flatten(row: Mapping[str, Any]) -> dict:
        flat = {k: row.get(k) for k in ("split", "index", "path", "target", "pred")}
        for name, p in zip(classes, row["probs"]):
            flat[f"prob_{name}"] = f"{float(p):.6g}"
        return flat

    path = Path(run_dir) / PREDICTION_FILES[select]
    write_atomic(path, _csv_text(columns, (flatten(r) for r in rows)))
    return path


def read_predictions(run_dir: Path | str) -> list[dict]:
    path = Path(run_dir) / PREDICTIONS
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["index"] = int(row["index"])
        row["target"] = int(row["target"])
        row["pred"] = int(row["pred"])
    return rows


# Readers for the report (fer_ablation.report) and gradcam: the run folder's files are parsed here only.

HYDRA_CONFIG = Path(".hydra") / "config.yaml"
HYDRA_OVERRIDES = Path(".hydra") / "overrides.yaml"
PREDICTION_COLUMNS = ("split", "index", "target", "pred")


def read_predictions_frame(run_dir: Path | str, select: str = "best") -> pd.DataFrame:
    """predictions.csv (select="best") or predictions_last.csv (select="last") as a DataFrame with integer
    index/target/pred and one row per (split, index).

    Raises FileNotFoundError when the file is absent and RecordError when it is malformed.
    """
    name = PREDICTION_FILES[select]
    path = Path(run_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"no {name}")
    try:
        frame = pd.read_csv(path)
    except Exception as e:  # pandas raises several parser error types
        raise RecordError(f"{name} unreadable: {e}") from e
    missing = sorted(set(PREDICTION_COLUMNS) - set(frame.columns))
    if missing:
        raise RecordError(f"{name} lacks columns {missing}")
    try:
        frame = frame.astype({"split": str, "index": "int64", "target": "int64", "pred": "int64"})
    except (ValueError, TypeError) as e:
        raise RecordError(f"{name} has non-integer index/target/pred: {e}") from e
    if frame.duplicated(["split", "index"]).any():
        raise RecordError(f"{name} repeats a (split, index) pair")
    return frame


def read_overrides(run_dir: Path | str) -> list[str]:
    """The Hydra command-line overrides of the run (.hydra/overrides.yaml); [] when there is no such file."""
    path = Path(run_dir) / HYDRA_OVERRIDES
    if not path.is_file():
        return []
    try:
        overrides = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecordError(f"{path} is not YAML: {e}") from e
    if not isinstance(overrides, list):
        raise RecordError(f"{path} holds {type(overrides).__name__}, expected a list of overrides")
    return [str(o) for o in overrides]


def read_config(run_dir: Path | str) -> DictConfig | None:
    """The run's composed config (.hydra/config.yaml) as an unresolved DictConfig; None when absent."""
    path = Path(run_dir) / HYDRA_CONFIG
    if not path.is_file():
        return None
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml and OmegaConf raise several error types
        raise RecordError(f"{path} unreadable: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise RecordError(f"{path} holds a list, expected a mapping")
    return cfg


# Run folder housekeeping: what a fresh start moves aside, and who may write the folder.

# What a training run writes into its folder (Hydra's .hydra/ and log file belong to the current command).
RUN_OUTPUTS = (METRICS, PREDICTIONS, PREDICTIONS_LAST, HISTORY, "checkpoints", "csv", "wandb")
LOCK = ".run.lock"
PREVIOUS = "previous-"


def is_moved_aside(path: Path | str) -> bool:
    """True for anything inside a run's `previous-<time>/` folder (superseded or damaged, not a run)."""
    return any(part.startswith(PREVIOUS) for part in Path(path).parts)


def move_aside(run_dir: Path | str, names: Iterable[str]) -> Path | None:
    """Move `names` (files or folders of the run folder) into `<run_dir>/previous-<UTC time>/`; nothing is
    deleted. Returns that folder, or None when none of the names exists."""
    run_dir = Path(run_dir)
    present = [n for n in names if (run_dir / n).exists()]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run_dir / f"{PREVIOUS}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = run_dir / f"{PREVIOUS}{stamp}-{n}"
    target.mkdir()
    for name in present:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir / name), str(target / name))
    return target


class RunFolderInUse(RuntimeError):
    """Another live process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(run_dir: Path | str) -> Iterator[Path]:
    """Hold `<run_dir>/.run.lock` for the block; RunFolderInUse when another live process holds it.

    An advisory ``flock`` on the file: the kernel releases it when its holder exits in any way (kill -9
    included), so a dead run never leaves the folder stuck; the file itself stays, naming the last owner.
    """
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise RunFolderInUse(
                f"{run_dir} is in use by another run ({owner}; lock file {path}): wait for it to end "
                "or stop it, or give this run another folder (hydra.run.dir=...)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)
