"""`python -m fer_ablation.bench`: the suite's training path against a minimal raw PyTorch loop.

For each configuration x image size x batch size x precision (32-true, bf16-mixed) x memory format
(contiguous, channels_last) [x torch.compile with --compile] it measures, in one process:

- raw: a hand-written loop on the same model (``build_model``) and the same uint8 tensors the suite
  trains on (the datamodule's in-memory train split): random permutation -> index -> float, /255,
  grayscale -> 3 channels, normalise (the suite's ``to_model_input``) -> forward -> cross-entropy -> backward -> optimizer step (the
  config's optimizer, as the suite builds it). Warm-up steps are not timed. Evaluation: ``inference_mode`` forward over the val tensors.
- suite: the real ``fer_ablation.train.training.train(cfg, run_dir)`` on a composed config (csv logger, no
  progress bar, ``limit_train_batches=steps``, 2 epochs). Training images/s come from the second
  (steady) epoch of history.csv: ``images / (data_s + step_s)``, so Lightning, the metrics, logging and
  the on-device augmentation are included; evaluation images/s from its ``eval_s``. Checkpoint saves
  (timed around ``ModelCheckpoint._save_checkpoint``: Lightning runs them after the history is written)
  and the rest of ``train()`` outside the epochs are recorded apart.
- start-up: ``python -m fer_ablation.run`` as a subprocess (through a shim that prints a timestamp when
  the first ``training_step`` begins; the subprocess is then stopped): seconds from launch to that step.
- peak memory: CUDA ``torch.cuda.max_memory_allocated``; CPU the process's peak resident set size
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each path; it includes the interpreter,
  the libraries and the data set), else ``ru_maxrss`` (never reset). ``peak_memory_kind`` says which.

Records go to ``results/bench/<host>-<YYYY-MM-DD>.json`` (records with the same configuration, device,
size, batch, precision, channels_last and thread count are replaced, others kept). Timings on a shared
machine are only as good as its load: the 1-minute load average before and after is recorded with each
record. On an oversubscribed CPU, ``--threads 1`` avoids spinning OpenMP threads and gives stable ratios.

    python -m fer_ablation.bench                                  # baseline and full, 48 px, batch 32
    python -m fer_ablation.bench --configs sc ca/stride2 --sizes 48 96 --batch-sizes 32 64 --steps 20
    python -m fer_ablation.bench --overrides data=fer2013 data.root=/data/fer2013
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import logging
import math
import os
import platform
import re
import resource
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from fer_ablation import records
from fer_ablation.atomic import write_atomic
from fer_ablation.config import PROJECT_ROOT, compose, experiments
from fer_ablation.data.augment import to_model_input
from fer_ablation.records import provenance
from fer_ablation.train import fast_path

DEFAULT_CONFIGS = ("baseline", "full")
REQUIRED_KEYS = ("config", "device", "image_size", "batch_size", "precision",
                 "suite_images_per_s", "raw_images_per_s", "peak_memory_mb")
# The suite prints this line (through the shim) when its first training step begins.
FIRST_STEP_MARK = "FER_BENCH_FIRST_STEP"
STARTUP_SHIM = f"""
import runpy, sys, time
from fer_ablation.train.lit_module import FERModule
step = FERModule.training_step
def first_step(self, *args, **kwargs):
    if not getattr(first_step, "seen", False):
        first_step.seen = True
        print("{FIRST_STEP_MARK}", time.time(), flush=True)
    return step(self, *args, **kwargs)
FERModule.training_step = first_step
sys.argv = ["fer_ablation.run", *sys.argv[1:]]
runpy.run_module("fer_ablation.run", run_name="__main__")
"""


@dataclass(frozen=True)
class Setting:
    """One measured point."""

    config: str  # a configuration (conf/configuration/) the tables file names, or ATTENTION/STEM
    device: str  # cpu | cuda
    image_size: int
    batch_size: int
    precision: str  # Lightning's: 32-true | bf16-mixed | 16-mixed
    channels_last: bool = False
    compile: bool = False


# ------------------------------------------------------------------------------------ config
def suite_overrides(setting: Setting, *, steps: int, eval_batches: int, ablation: str = "paper",
                    extra: tuple[str, ...] = ()) -> list[str]:
    """Hydra overrides that make `python -m fer_ablation.run` train `setting` for the bench."""
    if "/" in setting.config:
        attention, stem = setting.config.split("/", 1)
        model = [f"model.attention={attention}", f"stem={stem}"]
    else:
        known = experiments.load(ablation).configurations
        if setting.config not in known:
            raise ValueError(f"unknown configuration {setting.config!r}: expected one of {sorted(known)} "
                             "or ATTENTION/STEM (e.g. ca+simam/sc)")
        model = [f"configuration={setting.config}", f"ablation={ablation}"]
    return [
        *model,
        "trainer=gpu" if setting.device == "cuda" else "trainer=cpu",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=2",
        f"trainer.limit_train_batches={steps}",
        f"trainer.limit_val_batches={eval_batches}",
        f"trainer.precision={setting.precision}",
        f"speed.channels_last={str(setting.channels_last).lower()}",
        f"speed.compile={str(setting.compile).lower()}",
        f"data.image_size={setting.image_size}",
        f"data.batch_size={setting.batch_size}",
        "force=true",
        *extra,
    ]


# ------------------------------------------------------------------------------------ memory
class PeakMemory:
    """Peak memory over a `with` block, in MB; `kind` says what was measured."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mb = math.nan
        self.kind = ""

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda max_memory_allocated"
        elif _reset_peak_rss():
            self.kind = "cpu process peak RSS (VmHWM, reset before each path)"
        else:
            self.kind = "cpu process peak RSS (ru_maxrss since process start, not reset)"
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = _peak_rss_kb() / 1024
        return False


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_kb() -> float:
    with contextlib.suppress(OSError):
        match = re.search(r"VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
        if match:
            return float(match.group(1))
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str):
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision {precision!r} is not one of 32-true, bf16-mixed, 16-mixed")
    return torch.autocast(device.type, dtype=dtypes[precision])


# ------------------------------------------------------------------------------------ raw loop
@dataclass
class Tensors:
    """The suite's uint8 data, as its in-memory loader holds it."""

    train_images: torch.Tensor  # uint8 [N, C, S, S]
    train_targets: torch.Tensor  # int64 [N]
    val_images: torch.Tensor
    mean: list[float]
    std: list[float]
    in_chans: int


def load_tensors(cfg: DictConfig) -> Tensors:
    """The datamodule's in-memory train and val splits (the probe set by default)."""
    from fer_ablation.data import build_datamodule
    from fer_ablation.train.training import model_spec

    in_chans = model_spec(cfg)["in_chans"]
    dm = build_datamodule(cfg.data, in_chans=in_chans, seed=int(cfg.seed))
    dm.setup("fit")
    if not dm.in_memory:
        raise ValueError("the bench compares against the in-memory path: data.in_memory must resolve to true")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    return Tensors(train.images, train.targets, val.images, list(cfg.data.normalize.mean),
                   list(cfg.data.normalize.std), in_chans)


def _raw_batch(images: torch.Tensor, data: Tensors, channels_last: bool) -> torch.Tensor:
    """uint8 images -> the model's input as the suite makes it (``to_model_input``), in the setting's memory format."""
    x = to_model_input(images, data.in_chans, data.mean, data.std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def measure_raw(cfg: DictConfig, setting: Setting, data: Tensors, *, steps: int, warmup: int,
                eval_images: int) -> dict:
    """Raw PyTorch training and evaluation images/s and peak memory for `setting`."""
    from fer_ablation.data import CLASSES
    from fer_ablation.models import build_model
    from fer_ablation.train.training import model_spec

    device = torch.device(setting.device)
    torch.manual_seed(int(cfg.seed))
    memory = PeakMemory(device)
    with memory:
        model = build_model(num_classes=len(CLASSES), **model_spec(cfg)).to(device)
        if setting.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if setting.compile:
            torch._dynamo.reset()  # a fresh recompile budget for every setting of one process
            model.compile()
        optimizer = hydra.utils.instantiate(cfg.optimizer)(params=model.parameters())
        scaler = torch.amp.GradScaler(device.type, enabled=setting.precision == "16-mixed")
        images, targets = data.train_images.to(device), data.train_targets.to(device)
        generator = torch.Generator().manual_seed(int(cfg.seed))
        order, position = torch.randperm(len(images), generator=generator).to(device), 0
        batch, n = setting.batch_size, len(images)

        def next_batch():
            nonlocal order, position
            if position + batch > n:
                order, position = torch.randperm(n, generator=generator).to(device), 0
            idx = order[position:position + batch]
            position += batch
            return _raw_batch(images[idx], data, setting.channels_last), targets[idx]

        def train_step(x, y):
            with _autocast(device, setting.precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        model.train()
        for _ in range(warmup):
            train_step(*next_batch())
        _sync(device)
        data_s = step_s = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            x, y = next_batch()
            t1 = time.perf_counter()
            train_step(x, y)
            step_s += time.perf_counter() - t1
            data_s += t1 - t0
        _sync(device)
        train_s = time.perf_counter() - start

        model.eval()
        val = data.val_images[:eval_images].to(device)
        eval_batch = int(cfg.data.eval_batch_size)
        with torch.inference_mode(), _autocast(device, setting.precision):
            model(_raw_batch(val[:eval_batch], data, setting.channels_last))  # warm-up
            _sync(device)
            start = time.perf_counter()
            for i in range(0, len(val), eval_batch):
                model(_raw_batch(val[i:i + eval_batch], data, setting.channels_last))
            _sync(device)
            eval_s = time.perf_counter() - start
    result = {
        "raw_images_per_s": steps * batch / train_s,
        "raw_eval_images_per_s": len(val) / eval_s,
        "raw_peak_memory_mb": memory.mb,
        "raw_train_s": train_s,
        "raw_eval_s": eval_s,
        "peak_memory_kind": memory.kind,
    }
    if device.type == "cpu":  # without a device sync per step the split is only meaningful on the CPU
        result.update(raw_data_s=data_s, raw_step_s=step_s)
    del model, optimizer
    gc.collect()
    return result


# ------------------------------------------------------------------------------------ suite
@contextlib.contextmanager
def checkpoint_timer():
    """Time ModelCheckpoint's saves (Lightning runs them after the RunRecorder, so history.csv misses them)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    totals = {"seconds": 0.0, "saves": 0}
    save = ModelCheckpoint._save_checkpoint

    def timed(self, trainer, filepath):
        start = time.perf_counter()
        save(self, trainer, filepath)
        totals["seconds"] += time.perf_counter() - start
        totals["saves"] += 1

    ModelCheckpoint._save_checkpoint = timed
    try:
        yield totals
    finally:
        ModelCheckpoint._save_checkpoint = save


def measure_suite(cfg: DictConfig, setting: Setting, run_dir: Path, *, steps: int, eval_images: int) -> dict:
    """The suite's training images/s (steady second epoch), eval images/s and where the run's time went."""
    from fer_ablation.train.training import train

    device = torch.device(setting.device)
    memory = PeakMemory(device)
    start = time.perf_counter()
    with memory, checkpoint_timer() as saving:
        train(cfg, run_dir)
    wall_s = time.perf_counter() - start
    last = run_dir / "checkpoints" / "last.ckpt"
    history = records.read_history(run_dir)
    if len(history) < 2:
        raise RuntimeError(f"expected 2 epochs in {run_dir / records.HISTORY}, found {len(history)}")
    row = history[-1]
    images = steps * setting.batch_size
    train_s = float(row["data_s"]) + float(row["step_s"])
    eval_s = float(row["eval_s"])
    epochs_s = sum(float(r["epoch_s"]) for r in history)
    gc.collect()
    return {
        "suite_images_per_s": images / train_s,
        "suite_eval_images_per_s": eval_images / eval_s if eval_s > 0 else math.nan,
        "suite_peak_memory_mb": memory.mb,
        "suite_epoch_images_per_s": images / (float(row["epoch_s"]) - eval_s),
        "suite_data_s": float(row["data_s"]),
        "suite_step_s": float(row["step_s"]),
        "suite_eval_s": eval_s,
        "suite_epoch_s": float(row["epoch_s"]),
        "suite_epoch_other_s": float(row["epoch_s"]) - train_s - eval_s,
        "suite_warmup_epoch_s": float(history[0]["epoch_s"]),
        "suite_checkpoint_saves": saving["saves"],
        "suite_checkpoint_s": saving["seconds"],
        "suite_checkpoint_mb": last.stat().st_size / 2**20 if last.is_file() else None,
        "suite_train_call_s": wall_s,
        # train() minus its epochs and checkpoint saves: set-up, the final val passes (last and best
        # model), predictions.csv, MACs count, records
        "suite_outside_epochs_s": wall_s - epochs_s - saving["seconds"],
        "peak_memory_kind": memory.kind,
    }


def measure_startup(overrides: list[str], *, timeout: float = 300.0) -> dict:
    """Seconds from launching `python -m fer_ablation.run <overrides>` to its first training step."""
    budget = ("trainer.max_epochs=", "trainer.limit_train_batches=", "hydra.run.dir=")
    overrides = [o for o in overrides if not o.startswith(budget)] + ["trainer.max_epochs=1",
                                                                       "trainer.limit_train_batches=1"]
    with tempfile.TemporaryDirectory(prefix="fer-bench-startup-") as tmp:
        command = [sys.executable, "-c", STARTUP_SHIM, *overrides, f"hydra.run.dir={tmp}"]
        env = {**os.environ, "WANDB_MODE": "disabled"}
        launched = time.time()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        first_step, tail = None, []
        try:
            deadline = time.monotonic() + timeout
            for line in process.stdout:
                if line.startswith(FIRST_STEP_MARK):
                    first_step = float(line.split()[1])
                    break
                tail = (tail + [line.rstrip()])[-20:]
                if time.monotonic() > deadline:
                    break
        finally:
            process.kill()  # the bench only wants the time to the first step
            process.wait()
            process.stdout.close()
    if first_step is None:
        raise RuntimeError("the run subprocess never reached its first training step:\n" + "\n".join(tail))
    return {"startup_s": round(first_step - launched, 3),
            "startup_command": "python -m fer_ablation.run " + shlex.join(overrides)}


# ------------------------------------------------------------------------------------ driver
def environment() -> dict:
    import lightning

    info = {
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "cpu": provenance.cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": provenance.git_commit(),
    }
    return info


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def bench_one(setting: Setting, *, steps: int, warmup: int, eval_batches: int, ablation: str = "paper",
              overrides: tuple[str, ...] = (), work_dir: Path | None = None) -> dict:
    """Raw and suite measurements of one setting, as one JSON record (startup not included)."""
    load_before = _load()
    cfg = compose(suite_overrides(setting, steps=steps, eval_batches=eval_batches, ablation=ablation,
                                  extra=overrides))
    data = load_tensors(cfg)
    available = len(data.train_targets) // setting.batch_size
    if available < 1:
        raise ValueError(f"batch {setting.batch_size} exceeds the {len(data.train_targets)} training images")
    requested = steps
    if steps > available:  # the suite's epoch has no more batches: time both paths on the same number
        print(f"bench: {steps} steps x batch {setting.batch_size} exceed the {len(data.train_targets)} training "
              f"images; timing {available} steps", flush=True)
        steps = available
        cfg.trainer.limit_train_batches = steps
    eval_images = min(eval_batches * int(cfg.data.eval_batch_size), len(data.val_images))
    if cfg.speed.get("keep_freed_memory"):
        # train() sets it for the whole process: set it before the raw loop too, or only the first setting's
        # raw loop would run under glibc's default allocator
        fast_path.keep_freed_memory()
    raw = measure_raw(cfg, setting, data, steps=steps, warmup=warmup, eval_images=eval_images)
    del data
    with tempfile.TemporaryDirectory(prefix="fer-bench-", dir=work_dir) as tmp:
        suite = measure_suite(cfg, setting, Path(tmp), steps=steps, eval_images=eval_images)
    from fer_ablation.train.training import model_spec

    spec = model_spec(cfg)
    record = {
        **asdict(setting),
        "attention": spec["attention"],
        "stem": spec["stem"],
        "suite_images_per_s": suite.pop("suite_images_per_s"),
        "raw_images_per_s": raw.pop("raw_images_per_s"),
        "peak_memory_mb": suite["suite_peak_memory_mb"],
        "ratio": None,
        "suite_eval_images_per_s": suite.pop("suite_eval_images_per_s"),
        "raw_eval_images_per_s": raw.pop("raw_eval_images_per_s"),
        **raw,
        **suite,
        "steps": steps,
        "steps_requested": requested,
        "warmup_steps": warmup,
        "eval_images": eval_images,
        "data": str(cfg.data.name),
        "load_average_1m": [load_before, _load()],
    }
    record["ratio"] = record["suite_images_per_s"] / record["raw_images_per_s"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items()}


def format_table(rows: list[dict]) -> str:
    header = ("config", "device", "size", "batch", "precision", "raw img/s", "suite img/s", "suite/raw",
              "eval img/s raw/suite", "peak MB raw/suite")
    lines = [header]
    for r in rows:
        lines.append((
            r["config"], r["device"], str(r["image_size"]), str(r["batch_size"]),
            r["precision"] + ("+cl" if r.get("channels_last") else "") + ("+compile" if r.get("compile") else ""),
            f"{r['raw_images_per_s']:.1f}", f"{r['suite_images_per_s']:.1f}", f"{r['ratio']:.2f}",
            f"{r['raw_eval_images_per_s']:.0f}/{r['suite_eval_images_per_s']:.0f}",
            f"{r['raw_peak_memory_mb']:.0f}/{r['suite_peak_memory_mb']:.0f}",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)


def _record_key(r: dict) -> tuple:
    return (r["config"], r["device"], r["image_size"], r["batch_size"], r["precision"], r.get("channels_last"),
            r.get("compile", False), r.get("torch_threads"))


def write_records(rows: list[dict], out: Path) -> Path:
    """Write `rows` to `out` (a JSON list), keeping earlier records of other settings."""
    missing = [k for r in rows for k in REQUIRED_KEYS if k not in r]
    if missing:
        raise ValueError(f"bench records lack {sorted(set(missing))}")
    kept = []
    if out.is_file():
        new_keys = {_record_key(r) for r in rows}
        kept = [r for r in json.loads(out.read_text()) if _record_key(r) not in new_keys]
    write_atomic(out, json.dumps(kept + rows, indent=2) + "\n")
    return out


def default_out() -> Path:
    return PROJECT_ROOT / "results" / "bench" / f"{socket.gethostname()}-{date.today().isoformat()}.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fer_ablation.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                   help="configuration names (conf/configuration/) or ATTENTION/STEM (default: %(default)s)")
    p.add_argument("--sizes", nargs="+", type=int, default=[48], help="image sizes in px (default: 48)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[32], help="training batch sizes (default: 32)")
    p.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"],
                   help="Lightning precisions (default: %(default)s)")
    p.add_argument("--channels-last", choices=("both", "true", "false"), default="both",
                   help="memory formats (speed.channels_last): both (default: contiguous and channels_last), true, false")
    p.add_argument("--compile", choices=("both", "true", "false"), default="false",
                   help="torch.compile the model (speed.compile) as well: both = with and without; compile time "
                        "falls in the untimed first epoch and warm-up steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--steps", type=int, default=15, help="timed training steps per path (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed raw warm-up steps (the suite's is epoch 1)")
    p.add_argument("--eval-batches", type=int, default=1, help="validation batches timed (trainer.limit_val_batches)")
    p.add_argument("--ablation", default="paper", help="the tables file experiments/<name>.yaml that names the configurations (config key ablation)")
    p.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides, e.g. data=fer2013 data.root=DIR")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads for both paths (default: torch's, one per core)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement (a subprocess)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: results/bench/<host>-<date>.json)")
    return p.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    import lightning  # noqa: F401  (sets its loggers to INFO on import; quieten them afterwards)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    precisions = args.precisions
    formats = {"both": [False, True], "true": [True], "false": [False]}[args.channels_last]
    compiles = {"both": [False, True], "true": [True], "false": [False]}[args.compile]
    env = environment()
    command = "python -m fer_ablation.bench " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # trainer=gpu sets it for the suite
    if _load() > 0.5 * (os.cpu_count() or 1):
        print(f"bench: warning: load average {_load()} on {os.cpu_count()} cores; other processes distort the "
              "timings (recorded with each record)", file=sys.stderr)
    rows, startup = [], None
    for config in args.configs:
        for size in args.sizes:
            for batch in args.batch_sizes:
                for precision, channels_last, compiled in itertools.product(precisions, formats, compiles):
                    setting = Setting(config, device, size, batch, precision, channels_last, compiled)
                    print(f"bench: {setting} (load {_load()})", flush=True)
                    record = bench_one(setting, steps=args.steps, warmup=args.warmup,
                                       eval_batches=args.eval_batches, ablation=args.ablation,
                                       overrides=tuple(args.overrides))
                    if startup is None and not args.no_startup:
                        overrides = suite_overrides(setting, steps=args.steps, eval_batches=args.eval_batches,
                                                    ablation=args.ablation, extra=tuple(args.overrides))
                        startup = {**measure_startup(overrides), "startup_config": config}
                    rows.append({**record, **(startup or {}), **env, "date": date.today().isoformat(),
                                 "command": command})
                    print(f"  raw {record['raw_images_per_s']:.1f} img/s, suite {record['suite_images_per_s']:.1f} "
                          f"img/s (x{record['ratio']:.2f}); checkpoints {record['suite_checkpoint_saves']} saves "
                          f"in {record['suite_checkpoint_s']:.1f} s", flush=True)
    print(format_table(rows))
    if startup:
        print(f"start-up (launch -> first training step, {startup['startup_config']}): {startup['startup_s']:.1f} s")
    print(f"load average (1 min) before/after each setting: {[r['load_average_1m'] for r in rows]}")
    out = write_records(rows, args.out or default_out())
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
