"""Run folders as the report sees them: records read through `fer_ablation.records`, checked, matched
to a configuration of the ablation file.

A run folder is any folder holding a metrics.json of a training run; the records of
`python -m fer_ablation.evaluate` (`"kind": "evaluation"`) are not runs and are skipped with a count.
Bad records never raise here: a half-written or
malformed metrics.json, a completed run without a readable predictions.csv, etc. come back as a Run
with status "unreadable" and the reason, and a completed run whose metrics.json is not recomputable
from its predictions.csv (every split; predictions_last.csv against the last epoch's metrics when present)
with status "inconsistent".

Split roles: a run's numbers are read on its report split (metrics.json `report_split`, a split whose role in
`splits` is "report"); the checkpoint was selected on `val`. Records written before split roles (no `splits`,
no `fingerprint`) are the legacy layout: `val` was both the selection and the report split; they are read, with
fingerprint "legacy", so they never share a group with newer runs.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from fer_ablation import records
from fer_ablation import statistics as stats
from fer_ablation.classes import CLASSES
from fer_ablation.config import experiments

STATUSES = ("completed", "failed", "running", "interrupted")
METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
# Re-scoring must reproduce metrics.json; float32 metric code differs from float64 by ~1e-7.
RESCORE_TOL = 1e-5
DEFAULT_SEARCH = ("outputs", "multirun")
LEGACY = "legacy"  # the fingerprint of records written before split roles and fingerprints
# the fingerprint of a run that stopped (failed, interrupted) or is running before its data was loaded: it joins
# the groups of its label (report.grouping), where it is reported as failed with its cause
UNKNOWN = "not known (stopped before loading its data)"
LEGACY_NOTE = "legacy run records: val was both the selection and the report split"


@dataclass
class Run:
    """One run folder as read from disk.

    status: completed | failed | running | interrupted (as metrics.json says), or
            unreadable (records missing, half-written or malformed) |
            inconsistent (metrics.json not recomputable from predictions.csv).
    Only `completed` runs enter the statistics; every other run is reported with its reason.
    """

    path: Path
    status: str
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = None  # predictions.csv (best epoch)
    last_predictions: pd.DataFrame | None = None  # predictions_last.csv (last epoch), absent in legacy runs
    overrides: list[str] = field(default_factory=list)
    config: DictConfig | None = None  # .hydra/config.yaml, unresolved
    group: str | None = None  # the run's group label (cfg.group), when it has one
    configuration: str | None = None  # resolved against the ablation file
    unmatched: str | None = None  # why no configuration of the ablation file matches

    @property
    def data(self):
        return self.metrics.get("data")

    @property
    def image_size(self):
        return self.metrics.get("image_size")

    @property
    def seed(self):
        return self.metrics.get("seed")

    @property
    def legacy(self) -> bool:
        """Completed records without split roles: val was both the selection and the report split."""
        return "splits" not in self.metrics and self.metrics.get("status") == "completed"

    @property
    def report_split(self) -> str:
        if self.legacy:
            return "val"
        name = self.metrics.get("report_split")
        if name:
            return str(name)
        splits = self.metrics.get("splits")  # absent in a run that stopped before loading its data
        splits = splits if isinstance(splits, dict) else {}
        return next((s for s, v in splits.items() if isinstance(v, dict) and v.get("role") == "report"), "test")

    @property
    def fingerprint(self) -> str:
        fp = self.metrics.get("fingerprint")
        if isinstance(fp, dict) and fp.get("hash"):
            return str(fp["hash"])
        return LEGACY if self.legacy or "splits" in self.metrics else UNKNOWN

    @property
    def fingerprint_fields(self) -> dict:
        fp = self.metrics.get("fingerprint")
        return fp.get("fields") or {} if isinstance(fp, dict) else {}

    @property
    def group_key(self) -> tuple | None:
        """(group label, data set, image size, fingerprint hash): runs are pooled and paired only within one."""
        if self.data is None or self.image_size is None:
            return None
        label = self.group or ""
        classes = self.metrics.get("classes")
        if classes and tuple(classes) != CLASSES:  # never pool or pair runs with different label sets
            label = f"{label} [{len(classes)} classes: {', '.join(classes)}]"
        return (label, str(self.data), int(self.image_size), self.fingerprint)

    @property
    def classes(self) -> list[str]:
        classes = self.metrics.get("classes")
        if classes:
            return list(classes)
        if self.predictions is not None:
            return [c[len("prob_"):] for c in self.predictions.columns if c.startswith("prob_")]
        return []

    def scores(self, split: str = "val", select: str = "best") -> dict | None:
        block = self.metrics.get(select)
        return block.get(split) if isinstance(block, dict) else None

    def split_predictions(self, split: str = "val", select: str = "best") -> pd.DataFrame:
        """The rows of one split of predictions.csv (select="best") or predictions_last.csv ("last"); an empty
        frame when the run has none."""
        p = self.predictions if select == "best" else self.last_predictions
        return p[p["split"] == split] if p is not None else pd.DataFrame()

    def history(self) -> pd.DataFrame | None:
        """history.csv, one row per epoch; None when absent or unreadable."""
        try:
            rows = records.read_history(self.path)
        except (OSError, ValueError):
            return None
        return pd.DataFrame(rows) if rows else None

    def describe(self) -> str:
        bits = [f"{self.path}"]
        if self.configuration or self.metrics.get("attention"):
            bits.append(f"configuration={self.configuration or '?'}")
        if self.seed is not None:
            bits.append(f"seed={self.seed}")
        if self.overrides:
            bits.append("overrides: " + " ".join(self.overrides))
        return ", ".join(bits)


def find_run_dirs(paths=None) -> list[Path]:
    """Run folders under `paths` (default ./outputs and ./multirun): every folder holding a metrics.json,
    except the old records kept in a run's `previous-<time>/`."""
    found: set[Path] = set()
    for p in [Path(p) for p in (paths or DEFAULT_SEARCH)]:
        if (p / records.METRICS).is_file():
            found.add(p)
        elif p.is_dir():
            # records that force=true or a damaged file moved into <run>/previous-<time>/ are not runs
            found.update(m.parent for m in p.rglob(records.METRICS)
                         if not records.is_moved_aside(m.parent.relative_to(p)))
        elif paths:
            print(f"report: {p} does not exist, skipped", file=sys.stderr)
    return sorted(found)


@functools.lru_cache(maxsize=8)
def load_ablation(name: str) -> experiments.Ablation:
    return experiments.load(name)


def load_run(run_dir, ablation: experiments.Ablation | None = None) -> Run | None:
    """Read one run folder; None when it holds no metrics.json (not a run).

    `ablation` (default: experiments/paper.yaml) names the configuration the run belongs to.
    """
    path = Path(run_dir)
    if not (path / records.METRICS).is_file():
        return None
    run = Run(path=path, status="unreadable")
    try:
        run.overrides = records.read_overrides(path)
    except records.RecordError:
        run.overrides = []
    try:
        run.config = records.read_config(path)
    except records.RecordError:
        run.config = None
    try:
        metrics = records.read_metrics(path)
    except (OSError, records.RecordError) as e:
        run.reason = f"metrics.json unreadable (half-written?): {e}"
        return run
    if not isinstance(metrics, dict):
        run.reason = "metrics.json is not a JSON object"
        return run
    if is_evaluation_record(metrics):
        return None
    run.metrics = metrics
    run.group = metrics.get("group") or config_group(run.config)
    status = metrics.get("status")
    if status not in STATUSES:
        run.reason = f"metrics.json status {status!r}, expected one of {STATUSES}"
        return run
    missing = [k for k in ("data", "image_size", "seed") if metrics.get(k) is None]
    if missing:
        run.reason = f"metrics.json lacks {', '.join(missing)}"
        return run
    run.configuration, run.unmatched = resolve_configuration(metrics, ablation or load_ablation("paper"))
    run.status = status
    if status in ("failed", "interrupted"):
        run.reason = str(metrics.get("error") or "no error recorded")
    if status != "completed":
        return run
    run.status = "unreadable"
    if not run.legacy and not isinstance(metrics["splits"], dict):
        run.reason = "metrics.json splits is not an object"
        return run
    report = run.report_split
    best = metrics.get("best")
    if not isinstance(best, dict) or not isinstance(best.get(report), dict):
        run.reason = f"metrics.json has no best.{report} metrics (the report split)"
        return run
    absent = [k for k in METRICS if not isinstance(best[report].get(k), (int, float))]
    if absent:
        run.reason = f"metrics.json best.{report} lacks {', '.join(absent)}"
        return run
    try:
        pred = records.read_predictions_frame(path)
        last = records.read_predictions_frame(path, "last") if (path / records.PREDICTIONS_LAST).is_file() else None
    except (FileNotFoundError, records.RecordError) as e:
        run.reason = str(e)
        return run
    if not (pred["split"] == report).any():
        run.reason = f"predictions.csv has no {report} rows (the report split)"
        return run
    run.predictions, run.last_predictions = pred, last
    run.reason = rescoring_mismatch(run)
    run.status = "inconsistent" if run.reason else "completed"
    return run


def is_evaluation_record(metrics: dict) -> bool:
    """A metrics.json written by fer_ablation.evaluate (older ones lack `kind` but name the checkpoint)."""
    return metrics.get("kind") == "evaluation" or "evaluated_checkpoint" in metrics


def load_runs(paths=None, ablation: experiments.Ablation | None = None) -> list[Run]:
    """The training runs under `paths`; evaluation records are counted on stderr and left out."""
    folders = find_run_dirs(paths)
    runs = [r for r in (load_run(p, ablation) for p in folders) if r is not None]
    if len(runs) < len(folders):
        print(f"report: skipped {len(folders) - len(runs)} evaluation record(s) (fer_ablation.evaluate "
              "output, not training runs)", file=sys.stderr)
    return runs


def config_group(cfg: DictConfig | None) -> str | None:
    """cfg.group with its interpolations resolved by OmegaConf; None when absent or not resolvable
    outside the run (an interpolation to a missing key, or a resolver that is not registered here)."""
    if cfg is None:
        return None
    try:
        group = cfg.get("group")
    except InterpolationResolutionError:
        return None
    return None if group is None else str(group)


# What a run built before `conf/model/resnet50.yaml` held these options was built with.
LEGACY_OPTIONS = {"zero_init_residual": False}


def resolve_configuration(metrics: dict, ablation: experiments.Ablation) -> tuple[str | None, str | None]:
    """(configuration name, None) or (None, why the run matches no configuration).

    A run's model options (metrics.json "options") are part of its model: a run with zero_init_residual
    never counts as a configuration without it. A run that recorded no zero_init_residual was built
    without it (the option was absent from the config and off in build_model then; LEGACY_OPTIONS).
    """
    attention, stem = metrics.get("attention"), metrics.get("stem")
    options = metrics.get("options") or {}
    if not isinstance(options, dict):
        return None, f"metrics.json options is {options!r}, expected a mapping"
    options = {**LEGACY_OPTIONS, **options}
    name = metrics.get("configuration")
    if name in ablation.configurations:
        conf = ablation.configurations[name]
        if attention is not None and stem is not None and experiments.model_key(
            attention, stem, options
        ) != experiments.model_key(conf["attention"], conf["stem"], conf.get("options")):
            return None, (
                f"metrics.json names configuration {name!r} but its model is attention={attention}, "
                f"stem={stem}, options={options}; the experiment file says attention={conf['attention']}, "
                f"stem={conf['stem']}, options={conf.get('options', {})}"
            )
        return name, None
    if metrics.get("placement"):
        return None, f"placement overrides {metrics['placement']} (the tables use default placements)"
    if attention is None or stem is None:
        return None, "metrics.json names neither a configuration nor attention and stem"
    found = ablation.configuration_of(attention, stem, options)
    return (found, None) if found else (
        None, f"attention={attention}, stem={stem}, options={options} is not in the experiment file")


def _scored_splits(block) -> set:
    return {s for s, v in block.items() if isinstance(v, dict) and "accuracy" in v} if isinstance(block, dict) else set()


def rescoring_mismatch(run: Run) -> str | None:
    """None when predictions.csv reproduces metrics.json["best"] on every split either of them has (and
    predictions_last.csv reproduces metrics.json["last"], when the run wrote it)."""
    problems = []
    for select in ("best", "last"):
        frame = run.predictions if select == "best" else run.last_predictions
        if frame is not None:
            problems += _rescoring_problems(run, select, frame)
    return "; ".join(problems) if problems else None


def _rescoring_problems(run: Run, select: str, frame: pd.DataFrame) -> list[str]:
    num_classes = int(run.metrics.get("num_classes") or len(run.classes) or 7)
    problems = []
    where = records.PREDICTION_FILES[select]
    for split in sorted(_scored_splits(run.metrics.get(select)) | set(frame["split"])):
        saved = run.scores(split, select)
        rows = frame[frame["split"] == split]
        if saved is None or rows.empty:
            problems.append(f"{split} split in {f'metrics.json {select}' if saved else where} only")
            continue
        if select == "last":
            split = f"last {split}"
        labels = rows[["target", "pred"]]
        if labels.max().max() >= num_classes or labels.min().min() < 0:
            problems.append(f"{split} target/pred outside 0..{num_classes - 1}")
            continue
        recomputed = stats.macro_scores(rows["target"], rows["pred"], num_classes)
        if saved.get("n") is not None and int(saved["n"]) != recomputed["n"]:
            problems.append(f"{split} n={saved['n']} in metrics.json, {recomputed['n']} rows in {where}")
        for key in METRICS:
            if key in saved and abs(float(saved[key]) - recomputed[key]) > RESCORE_TOL:
                problems.append(
                    f"{split} {key} {float(saved[key]):.6f} in metrics.json, {recomputed[key]:.6f} from {where}"
                )
    return problems
