"""train(cfg): build data, model, LightningModule and Trainer, fit, and write the run's records.

Callable from tests with a composed config and an explicit run folder. The run folder is the
unit of resumption: a completed run is skipped (unless `force`, which moves the old records and
checkpoints into `previous-<time>/` and starts afresh), an interrupted one resumes from
`checkpoints/last.ckpt` (written after every epoch), a failing one leaves `metrics.json` with status
"failed" and why, and one stopped by SIGTERM / Ctrl-C leaves status "interrupted" and exits non-zero.
A damaged metrics.json or checkpoint is named in the log, moved aside, and the run resumes or restarts
from what is intact. One process at a time may write a run folder (`records.run_lock`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from fer_ablation import records
from fer_ablation.config.experiments import model_identity
from fer_ablation.data import build_datamodule
from fer_ablation.models import count_macs, count_parameters, parse_model_spec
from fer_ablation.records import provenance
from fer_ablation.records.fingerprint import run_fingerprint
from fer_ablation.train import fast_path, quiet
from fer_ablation.train.lit_module import Evaluation, FERModule

log = logging.getLogger("fer_ablation")


def model_spec(cfg: DictConfig) -> dict:
    """build_model's arguments (weights aside) from the model and stem groups."""
    identity = model_identity(cfg)
    stem = OmegaConf.to_container(cfg.stem, resolve=True)
    stem.pop("name")
    return {
        "attention": identity["attention"],
        "stem": identity["stem"],
        "placement": identity["placement"],
        "in_chans": int(cfg.model.in_chans),
        **identity["options"],
        **stem,
    }


class RunRecorder(Callback):
    """history.csv, one row per epoch, with where the epoch's time went.

    On resume the rows of epochs that are being redone are dropped, so each epoch appears once.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self.train_images = 0
        self.train_seconds = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        start = trainer.current_epoch  # restored from the checkpoint on resume
        self.rows = [r for r in records.read_history(self.run_dir) if r["epoch"] <= start]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start = self.last_end = time.perf_counter()
        self.data_s = self.step_s = self.eval_s = 0.0
        self.epoch_images = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch_start = time.perf_counter()
        self.data_s += self.batch_start - self.last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last_end = time.perf_counter()
        self.step_s += self.last_end - self.batch_start
        self.epoch_images += int(batch[1].numel())

    def on_validation_start(self, trainer, pl_module) -> None:
        self.eval_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self.eval_s += time.perf_counter() - self.eval_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        log_start = time.perf_counter()
        train = pl_module.train_epoch_summary()
        world = trainer.world_size
        self.train_images += self.epoch_images * world
        self.train_seconds += self.data_s + self.step_s
        if trainer.is_global_zero:
            val = pl_module.evaluations.get("val")
            vm = val.metrics if val is not None else {}
            self.rows = [r for r in self.rows if r["epoch"] != trainer.current_epoch + 1]
            self.rows.append({
                "epoch": trainer.current_epoch + 1,
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "val_loss": vm.get("loss"),
                "val_accuracy": vm.get("accuracy"),
                "val_precision_macro": vm.get("precision_macro"),
                "val_recall_macro": vm.get("recall_macro"),
                "val_f1_macro": vm.get("f1_macro"),
                "lr": trainer.optimizers[0].param_groups[0]["lr"],
                "epoch_s": round(time.perf_counter() - self.epoch_start, 3),
                "data_s": round(self.data_s, 3),
                "step_s": round(self.step_s, 3),
                "eval_s": round(self.eval_s, 3),
                "log_s": round(time.perf_counter() - log_start, 4),
            })
            records.write_history(self.run_dir, self.rows)


def _loggers(cfg: DictConfig, run_dir: Path, run_name: str) -> list:
    loggers: list = [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
    if cfg.logger.name == "wandb":
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        settings = cfg.logger.wandb
        # The run is started here rather than by WandbLogger, which passes W&B a deprecated
        # `anonymous` argument (a warning per run); silent: the one log line below says where the run is.
        run = wandb.init(
            project=settings.project, entity=settings.get("entity"), group=cfg.group, name=run_name,
            dir=str(run_dir), mode=settings.mode, config=OmegaConf.to_container(cfg, resolve=True),
            settings=wandb.Settings(silent=True),
        )
        if settings.mode == "offline":
            log.info("W&B offline run in %s (browse: wandb leet %s; upload: wandb sync)", run.dir, run_dir)
        loggers.append(WandbLogger(experiment=run))
    return loggers


def _log_wandb_tables(loggers: list, classes: list[str], best: dict) -> None:
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        import wandb

        val = best["val"]
        matrix = val["confusion_matrix"]
        logger.experiment.log({
            "best/confusion_matrix": wandb.Table(
                columns=["true", *classes], data=[[c, *row] for c, row in zip(classes, matrix)]
            ),
            "best/per_class_f1": wandb.Table(
                columns=["class", "f1"], data=[[c, val["per_class_f1"][c]] for c in classes]
            ),
        })
        logger.experiment.summary.update({f"best/val_{k}": val[k] for k in (
            "accuracy", "precision_macro", "recall_macro", "f1_macro")})


def _finish_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


# ResNet50 halves the input five times (the stem's strided conv, or SC's space-to-depth; max-pool; three
# strided stages; He et al. 2016, Table 1): below 32 px the last stage would see less than one pixel.
MIN_IMAGE_SIZE = 32


def check_settings(cfg: DictConfig) -> None:
    """Fail on numeric settings no run can use, before any data is read."""
    checks = [
        ("checkpoint_every_n_epochs", cfg.get("checkpoint_every_n_epochs", 1), 1, "at least 1"),
        ("trainer.max_epochs", cfg.trainer.max_epochs, 1, "at least 1 (-1, Lightning's 'forever', never ends a run)"),
        ("data.batch_size", cfg.data.batch_size, 1, "at least 1"),
        ("data.eval_batch_size", cfg.data.get("eval_batch_size", 1), 1, "at least 1"),
        ("data.image_size", cfg.data.image_size, MIN_IMAGE_SIZE,
         f"at least {MIN_IMAGE_SIZE} px, the network's total stride"),
    ]
    for key, value, low, expected in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key}={value!r}: expected an integer {expected}")


def preprocessing(cfg: DictConfig, spec: dict) -> dict:
    """What the model's inputs are: stored in the checkpoint (FERModule hparams) for evaluation and inference."""
    normalize = OmegaConf.to_container(cfg.data.normalize, resolve=True)
    return {
        "image_size": int(cfg.data.image_size),
        "in_chans": int(spec["in_chans"]),
        "grayscale": bool(cfg.data.grayscale),
        "normalize": {"mean": [float(v) for v in normalize["mean"]], "std": [float(v) for v in normalize["std"]]},
        "face_crop": str(cfg.data.get("face_crop", "none")),
        "face_margin": float(cfg.data.get("face_margin", 0.03)),
    }


def _checkpoint_callbacks(checkpoint_dir: Path, every_n_epochs: int = 1) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """best.ckpt: the best validation accuracy, weights and hyper-parameters only (what evaluation needs);
    last.ckpt: the full state (optimizer, scheduler, loops) every `every_n_epochs` epochs, for resuming."""
    best = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor="val/accuracy", mode="max",
        save_top_k=1, save_weights_only=True, enable_version_counter=False,
    )
    # No monitor: saved every `every_n_epochs` epoch ends, overwriting the one file; listed after `best` so that a
    # last.ckpt of epoch k always has its best.ckpt of epoch <= k on disk.
    last = ModelCheckpoint(dirpath=checkpoint_dir, filename="last", save_top_k=1, enable_version_counter=False,
                           every_n_epochs=every_n_epochs)
    return best, last


def _checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be loaded, or None. mmap reads the zip index only, not the weights."""
    try:
        torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _resume_checkpoint(run_dir: Path) -> Path | None:
    """checkpoints/last.ckpt when it and best.ckpt are intact; otherwise both are moved aside (named in
    the log) and the run starts from scratch, since a best.ckpt that is lost cannot be re-selected."""
    checkpoint_dir = run_dir / "checkpoints"
    last, best = checkpoint_dir / "last.ckpt", checkpoint_dir / "best.ckpt"
    if not last.is_file():
        return None
    problems = {p: _checkpoint_problem(p) if p.is_file() else "missing" for p in (last, best)}
    if not any(problems.values()):
        return last
    aside = records.move_aside(run_dir, [f"checkpoints/{p.name}" for p in (last, best) if p.is_file()])
    for path, problem in problems.items():
        if problem:
            log.warning("%s is unreadable (%s)", path, problem)
    log.warning("moved the checkpoints to %s; restarting from epoch 1", aside)
    return None


def _checkpoint_epoch(path: Path | str) -> int:
    """The 0-based epoch a checkpoint was saved at (memory-mapped: the weights are not read)."""
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=True)["epoch"])


def _previous_record(run_dir: Path) -> dict | None:
    """The folder's metrics.json; a damaged one is named, moved aside, and treated as absent."""
    try:
        return records.read_metrics(run_dir)
    except records.RecordError as exc:
        aside = records.move_aside(run_dir, [records.METRICS])
        log.warning("%s; moved it to %s", exc, aside)
        return None


def _interruption(exc: BaseException) -> tuple[str, int]:
    """(reason, exit status) of a run stopped by a signal or an exit request."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, SIGTERMException):
        return "interrupted by SIGTERM", 128 + 15
    # Lightning turns Ctrl-C inside fit into sys.exit(1), raised while handling the KeyboardInterrupt.
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
        return "interrupted by SIGINT (Ctrl-C)", 128 + 2
    code = exc.code if isinstance(exc, SystemExit) else None
    # submitit's requeue path exits -1: keep any non-zero status.
    return f"interrupted (exit {code!r})", code if isinstance(code, int) and code != 0 else 1


def _is_rank_zero_process() -> bool:
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def train(cfg: DictConfig, run_dir: Path | str | None = None) -> dict:
    """Train one configuration into `run_dir` (default: Hydra's output folder); return metrics."""
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not _is_rank_zero_process():
        # DDP ranks > 0 start once rank 0 has set the folder up: they neither lock it nor move files.
        return _train(cfg, run_dir, owner=False)
    with records.run_lock(run_dir):
        return _train(cfg, run_dir, owner=True)


def _train(cfg: DictConfig, run_dir: Path, owner: bool) -> dict:
    previous = _previous_record(run_dir) if owner else records.read_metrics(run_dir)
    force = bool(cfg.get("force", False))
    if previous and previous.get("status") == "completed" and not force:
        log.info("%s already completed (force=true retrains): skipping", run_dir)
        return previous
    if force and owner:
        aside = records.move_aside(run_dir, records.RUN_OUTPUTS)
        if aside:
            log.info("force=true: moved the previous records and checkpoints to %s; training from scratch", aside)

    base: dict[str, Any] = {
        "status": "running",
        "error": None,
        "configuration": cfg.get("configuration"),
        "group": cfg.get("group"),
        "seed": int(cfg.seed),
        "data": cfg.data.name,
        "image_size": int(cfg.data.image_size),
        "max_epochs": int(cfg.trainer.max_epochs),
        "run_dir": str(run_dir),
    }
    started = time.perf_counter()
    try:
        check_settings(cfg)
        spec = model_spec(cfg)
        identity = model_identity(cfg)
        parse_model_spec(identity["attention"], identity["stem"], identity["placement"], **identity["options"])
        base.update(identity)
        records.write_metrics(run_dir, base)
        metrics = _fit(cfg, run_dir, spec, base, started)
    except Exception as exc:
        failed = {**(records.read_metrics(run_dir) or base), **{k: base[k] for k in base if k != "status"}}
        failed.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      wall_s=round(time.perf_counter() - started, 2))
        records.write_metrics(run_dir, failed)
        log.error("run failed: %s (%s)", failed["error"], run_dir)
        raise
    except (KeyboardInterrupt, SystemExit) as exc:
        reason, code = _interruption(exc)
        stopped = {**(records.read_metrics(run_dir) or base), "status": "interrupted", "error": reason,
                   "wall_s": round(time.perf_counter() - started, 2)}
        records.write_metrics(run_dir, stopped)
        log.error("run %s: rerun the same command to resume from checkpoints/last.ckpt (%s)", reason, run_dir)
        raise SystemExit(code) from exc
    finally:
        _finish_wandb()
    return metrics


def compile_model(model: torch.nn.Module, backend: str = "inductor") -> None:
    """torch.compile `model` in place with a fresh dynamo state. Without the reset, the runs of a one-process
    sweep share the recompile budget of the same forward code (config.recompile_limit, 8): from the third
    configuration or so on, dynamo gives up and the model runs eagerly without a word."""
    torch._dynamo.reset()
    model.compile(backend=backend)


def check_accelerator(accelerator: str | None) -> None:
    """A run asked for a GPU fails, naming why it finds none, instead of training on the CPU."""
    if str(accelerator) not in ("gpu", "cuda") or torch.cuda.is_available():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        cause = (f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from this process (a launcher that gave the job "
                 "no GPU: hydra/launcher=local and slurm give it trainer.devices)")
    elif torch.version.cuda is None:
        cause = f"this torch {torch.__version__} is built without CUDA"
    else:
        cause = f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device or driver"
    raise RuntimeError(f"trainer.accelerator={accelerator} but no GPU is available: {cause}; "
                       "trainer=cpu or trainer=auto train on the CPU")


def _fit(cfg: DictConfig, run_dir: Path, spec: dict, base: dict, started: float) -> dict:
    """Fit one checked config into `run_dir` and write its records; each step is one function below."""
    cpu_started = time.process_time()
    _prepare_process(cfg)
    trainer_kwargs, fast = _trainer_arguments(cfg)
    dm = _datamodule(cfg, spec)
    classes = list(dm.classes)
    module, pretrained = _module(cfg, spec, classes, _class_weights(cfg, dm, classes), fast)
    checkpoint, last_checkpoint = _checkpoint_callbacks(run_dir / "checkpoints",
                                                        int(cfg.get("checkpoint_every_n_epochs", 1)))
    recorder = RunRecorder(run_dir)
    run_name = f"{spec['attention']}-{spec['stem']}-s{cfg.seed}"
    loggers = _loggers(cfg, run_dir, run_name)
    trainer = _trainer(trainer_kwargs, run_dir, loggers, [checkpoint, last_checkpoint, recorder])
    _fit_or_resume(trainer, module, dm, run_dir, checkpoint)
    scores = _score(trainer, module, dm, checkpoint)
    if not trainer.is_global_zero:
        return {}

    write_predictions(run_dir, dm, classes, scores.best, last=scores.last)
    metrics = {**base, **_completed_record(cfg, spec, dm, classes, trainer, module, scores, pretrained),
               **_conditions_record(trainer, trainer_kwargs, fast, dm, recorder, started, cpu_started)}
    records.write_metrics(run_dir, metrics)
    if not cfg.get("keep_last_checkpoint", True):
        (run_dir / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
    _log_wandb_tables(loggers, classes, metrics["best"])
    report = metrics["best"][dm.report_split]
    log.info(
        "%s | best epoch %d/%d (selected on val) | %s acc %.2f%% | macro F1 %.2f%% | %.0f img/s | %.0f s | %s",
        run_name, scores.best_epoch, scores.last_epoch, dm.report_split, 100 * report["accuracy"],
        100 * report["f1_macro"], metrics["train_images_per_s"], metrics["wall_s"], run_dir,
    )
    return metrics


def _prepare_process(cfg: DictConfig) -> None:
    """Log filters, torch's thread count, the allocator's setting and every seed of this process, before anything
    is built."""
    quiet.quiet_third_party()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.speed.get("keep_freed_memory"):
        fast_path.keep_freed_memory()
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)


def _trainer_arguments(cfg: DictConfig) -> tuple[dict, fast_path.FastPath]:
    """The Trainer's arguments from `cfg.trainer`, with the precision the device gets (fast_path, also choosing the
    memory format) and cudnn autotuning on CUDA unless deterministic; fails at once on a GPU run without a GPU."""
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_accelerator(trainer_kwargs.get("accelerator"))
    if trainer_kwargs.get("benchmark") is None and fast_path.uses_cuda(trainer_kwargs.get("accelerator")):
        trainer_kwargs["benchmark"] = not trainer_kwargs.get("deterministic")  # cudnn autotuning
    fast = fast_path.choose(trainer_kwargs.get("precision"), cfg.speed.get("channels_last"),
                            trainer_kwargs.get("accelerator"))
    trainer_kwargs["precision"] = fast.precision
    log.info("precision %s, %s memory format (%s)", fast.precision,
             "channels_last" if fast.channels_last else "contiguous", fast.reason)
    return trainer_kwargs, fast


def _datamodule(cfg: DictConfig, spec: dict):
    """The data module with its splits read (decoded, deduplicated, cached) for fitting."""
    dm = build_datamodule(cfg.data, in_chans=spec["in_chans"], seed=int(cfg.seed))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _class_weights(cfg: DictConfig, dm, classes: list[str]) -> list[float] | None:
    """`loss.class_weights` as given, or for `balanced` each class's inverse frequency in the train split."""
    class_weights = cfg.loss.get("class_weights")
    if class_weights == "balanced":
        counts = torch.bincount(dm.split_targets("train"), minlength=len(classes)).double()
        class_weights = (counts.sum() / (len(classes) * counts.clamp(min=1))).tolist()
    return class_weights


def _module(cfg: DictConfig, spec: dict, classes: list[str], class_weights, fast: fast_path.FastPath
            ) -> tuple[FERModule, str | None]:
    """(the FERModule to fit, compiled when `speed.compile`; the weights it started from, as metrics.json says).

    With `model.pretrained_fallback`, ImageNet weights that cannot be found start the model from scratch."""
    scheduler = OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None
    scheduler_interval = scheduler.pop("interval", "epoch") if scheduler else "epoch"
    pretrained = cfg.model.get("pretrained")
    pretrained_note = pretrained
    module_kwargs = dict(
        model_spec=spec,
        classes=classes,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(scheduler) if scheduler else None,
        scheduler_interval=scheduler_interval,
        label_smoothing=float(cfg.loss.label_smoothing),
        class_weights=class_weights,
        channels_last=fast.channels_last,
        preprocessing=preprocessing(cfg, spec),
    )
    try:
        module = FERModule(pretrained=pretrained, **module_kwargs)
    except FileNotFoundError as exc:
        if not (pretrained and cfg.model.get("pretrained_fallback")):
            raise
        log.warning("ImageNet weights unavailable, training from scratch instead: %s", exc)
        pretrained_note = f"none ({pretrained} requested, weights not found)"
        module = FERModule(pretrained=None, **module_kwargs)
    if cfg.speed.compile:
        os.environ.setdefault(
            "TORCHINDUCTOR_CACHE_DIR", str(Path(os.path.expanduser(cfg.data.cache_dir)) / "inductor")
        )
        compile_model(module.model)
    return module, pretrained_note


def _trainer(trainer_kwargs: dict, run_dir: Path, loggers: list, callbacks: list) -> L.Trainer:
    """The Trainer for `run_dir`; under SLURM without Lightning's requeueing (the launcher's job)."""
    plugins = []
    if "SLURM_JOB_ID" in os.environ:
        from lightning.pytorch.plugins.environments import SLURMEnvironment

        # Requeueing is the launcher's job (submitit); the requeued job resumes from last.ckpt.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer = L.Trainer(
        **trainer_kwargs,
        plugins=plugins,
        default_root_dir=str(run_dir),
        logger=loggers,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    log.info("training on %s (trainer.accelerator=%s)", provenance.device_name(trainer.strategy.root_device),
             trainer_kwargs.get("accelerator"))
    return trainer


def _fit_or_resume(trainer: L.Trainer, module: FERModule, dm, run_dir: Path, checkpoint: ModelCheckpoint) -> None:
    """trainer.fit, from checkpoints/last.ckpt when an earlier attempt left one; fails when no epoch was validated
    (nothing to select the best checkpoint from)."""
    resume_from = _resume_checkpoint(run_dir)
    if resume_from:
        done = _checkpoint_epoch(resume_from) + 1
        log.info("resuming from %s: epochs 1-%d done, continuing at epoch %d", resume_from, done, done + 1)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from, weights_only=True)
    if not checkpoint.best_model_path:
        raise RuntimeError(f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch + 1}) "
                           "before its first validation, so no checkpoint was selected: let the run reach the end "
                           "of an epoch (trainer.max_steps or trainer.limit_train_batches end it earlier)")


@dataclasses.dataclass(frozen=True)
class Scores:
    """A fitted run's evaluations of val and every report split, at the best (selected on val) and the last epoch."""

    best: dict[str, Evaluation]
    best_epoch: int
    last: dict[str, Evaluation]
    last_epoch: int


def _score(trainer: L.Trainer, module: FERModule, dm, checkpoint: ModelCheckpoint) -> Scores:
    """Score the last epoch's weights, then the best checkpoint's, without repeating an evaluation already made."""
    splits = dm.eval_splits
    # the last epoch's own validation already scored val with the weights fit ended on
    ended_validated = module.fit_val_epoch is not None and module.fit_val_epoch == trainer.current_epoch - 1
    last = evaluate_splits(trainer, module, dm, splits, val=module.evaluations["val"] if ended_validated else None)
    last_epoch = trainer.current_epoch
    best_path = checkpoint.best_model_path
    if _checkpoint_epoch(best_path) + 1 == last_epoch:
        # the best checkpoint holds the last epoch's weights: scoring it again would repeat `last` exactly
        return Scores(last, last_epoch, last, last_epoch)
    best = evaluate_splits(trainer, module, dm, splits, ckpt_path=best_path)
    # loaded_epoch is set by FERModule.on_load_checkpoint when the best weights loaded
    return Scores(best, module.loaded_epoch + 1, last, last_epoch)


def _completed_record(cfg: DictConfig, spec: dict, dm, classes: list[str], trainer: L.Trainer, module: FERModule,
                      scores: Scores, pretrained: str | None) -> dict:
    """metrics.json's account of what was trained and how it scored."""
    return {
        "status": "completed",
        "classes": classes,
        "num_classes": len(classes),
        "pretrained": pretrained,
        **evidence_record(cfg, dm, classes, str(trainer.precision), pretrained, trainer.world_size),
        "best": {"epoch": scores.best_epoch, **{s: e.metrics for s, e in scores.best.items()}},
        "last": {"epoch": scores.last_epoch, **{s: e.metrics for s, e in scores.last.items()}},
        "epochs_completed": scores.last_epoch,
        "params": count_parameters(module.model),
        "macs": count_macs(module.model.cpu(), int(cfg.data.image_size), in_chans=spec["in_chans"]),
    }


def _conditions_record(trainer: L.Trainer, trainer_kwargs: dict, fast: fast_path.FastPath, dm,
                       recorder: RunRecorder, started: float, cpu_started: float) -> dict:
    """metrics.json's account of how the run ran: its speed and cost, device and precision, data, and provenance."""
    return {
        "train_images_per_s": round(recorder.train_images / max(recorder.train_seconds, 1e-9), 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(time.process_time() - cpu_started, 2),   # every thread of this process
        "threads": torch.get_num_threads(),
        "device": provenance.device_name(trainer.strategy.root_device),
        "accelerator": trainer_kwargs.get("accelerator"),
        "precision": fast.precision,
        "channels_last": fast.channels_last,
        "precision_choice": fast.reason,
        "data_summary": dm.describe(),
        "skipped_files": len(dm.skipped_files),
        "versions": provenance.versions(),
        "git_commit": provenance.git_commit(),
    }


def evidence_record(cfg: DictConfig, dm, classes: list[str], precision: str, pretrained, world_size: int = 1) -> dict:
    """metrics.json's split roles, report split, duplicate counts and the run's fingerprint."""
    return {
        "splits": dm.split_roles(),
        "report_split": dm.report_split,
        "duplicates": dm.duplicates,
        "fingerprint": run_fingerprint(cfg, dm.cfg, dm.describe()["root"], classes, precision, pretrained,
                                       world_size),
    }


def evaluate_splits(trainer: L.Trainer, module: FERModule, dm, splits, ckpt_path=None,
                    val: Evaluation | None = None) -> dict[str, Evaluation]:
    """Score `module` (or the weights at `ckpt_path`) on `splits` of `dm`: val through `validate` (or `val`, an
    evaluation of these same weights already made), each report split (test, private) through `test`, served by
    the data module's `test_split`."""
    evaluations = {}
    if val is None:
        module.evaluations.clear()
        trainer.validate(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True, verbose=False)
        val = module.evaluations["val"]
    evaluations["val"] = val
    # validate() left the checkpoint's weights in `module`: the report splits score them without reloading
    for split in [s for s in splits if s != "val"]:
        dm.test_split = split
        module.evaluations.clear()
        trainer.test(module, datamodule=dm, verbose=False)
        evaluations[split] = dataclasses.replace(module.evaluations["test"], split=split)
    dm.test_split = "test"
    return evaluations


def write_predictions(run_dir: Path, dm, classes: list[str], evaluations: dict[str, Evaluation],
                      last: dict[str, Evaluation] | None = None) -> None:
    """predictions.csv of `evaluations` (the best epoch's), and predictions_last.csv of `last` when given,
    with each sample's file path from the data module."""
    for select, evals in (("best", evaluations), ("last", last)):
        if evals is None:
            continue
        rows = []
        for split, ev in evals.items():
            paths = dm.split_paths(split)
            for i, target, probs in zip(ev.indices.tolist(), ev.targets.tolist(), ev.probs):
                rows.append({
                    "split": split, "index": i, "path": paths[i] if paths else None,
                    "target": target, "pred": int(probs.argmax()), "probs": probs.tolist(),
                })
        records.write_predictions(run_dir, classes, rows, select=select)

