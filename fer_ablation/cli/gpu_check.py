"""`python -m fer_ablation.gpu_check`: the whole GPU check in one command, for a lent machine with no network.

Three steps, in this order, each written to ``<out>/check.json`` as soon as it is done (and the bench and the
sweep after every row and run), so a check cut off by the machine's time limit keeps what it finished:

1. versions and device;
2. the bench (``fer_ablation.cli.bench.bench_one``): baseline and full at 48 and 224 px, bf16-mixed + channels_last,
   without and with torch.compile, the suite against the raw loop (rows also in ``<out>/bench.json``);
3. a from-scratch 48 px sweep of Table 1's rows (baseline, sc, ca, sc_ca; experiment=paper would need ImageNet
   weights), seed 0 of every row first, then seed 1, ... while the time budget allows. Each run is
   ``python -m fer_ablation.run`` in its own process, into ``<out>/runs/<configuration>-s<seed>/``; its
   accuracy on the report split and its wall time go into check.json, its records stay (checkpoints are
   deleted: they are large and no table reads them), so ``python -m fer_ablation.collect <out>/runs`` lays them
   out as Table 1.

``--budget-s`` bounds the whole check: a bench row starts only before ``--bench-share`` of the budget is spent
(the rows left are recorded as skipped), a sweep run only when the mean time of the runs so far still fits, and
a run still going at the end of the budget is stopped and recorded as such.

    make gpu-check                          # on the lent GPU: python3 -m fer_ablation.gpu_check --device cuda
    make gpu-check DEVICE=cpu SMOKE=1       # the same steps on a CPU, tiny sizes: keeps this script working

No install step and no network: run it from the checkout with ``PYTHONPATH=$PWD`` (plus the wheels of
``../shared/device/prepare`` on the GPU machine). The default output is ``results/gpu/<card>/`` on a GPU and
``outputs/gpu-check/<card>/`` in smoke mode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fer_ablation.atomic import write_atomic
from fer_ablation.config import PROJECT_ROOT

TABLE1 = ("baseline", "sc", "ca", "sc_ca")


@dataclass(frozen=True)
class Plan:
    """What one mode of the check measures."""

    bench_configs: tuple[str, ...]
    sizes: tuple[int, ...]
    batch_size: int
    precision: str
    compiles: tuple[bool, ...]
    steps: int
    warmup: int
    bench_overrides: tuple[str, ...]
    sweep_configs: tuple[str, ...]
    seeds: int
    sweep_overrides: tuple[str, ...]
    budget_s: float
    threads: int | None = None  # torch threads for the bench rows (None: torch's default)
    bench_share: float = 0.5
    notes: tuple[str, ...] = field(default=())


def gpu_plan(data_root: str) -> Plan:
    """The check on a lent GPU: FER2013 (its 25,838 training images fit 30 steps of 256 at both sizes)."""
    data = ("data=fer2013", f"data.root={data_root}")
    return Plan(
        bench_configs=("baseline", "full"), sizes=(48, 224), batch_size=256, precision="bf16-mixed",
        compiles=(False, True), steps=30, warmup=5, bench_overrides=data,
        sweep_configs=TABLE1, seeds=3,
        sweep_overrides=(*data, "trainer=gpu", "data.image_size=48", "data.batch_size=128", "trainer.max_epochs=3"),
        budget_s=480.0,
    )


def smoke_plan() -> Plan:
    """The same steps on a CPU in a few minutes: the smoke probe, one bench row (the others run the same code),
    one thread per process (spinning OpenMP threads on a small shared CPU are many times slower), 32-true (bf16
    is emulated on most CPUs), no compiled rows (inductor's C++ build takes minutes on a small CPU), one seed,
    and a 240 s budget, so that the command with its start-up stays within 5 minutes."""
    probe = ("debug=smoke", "data.n_images=70", "data.n_val=35", "data.n_test=35")
    return Plan(
        bench_configs=("baseline",), sizes=(48,), batch_size=8, precision="32-true", compiles=(False,),
        # 4 steps (all 35 training images' batches): OneCycleLR (the default scheduler) fails on 4 steps in all
        steps=4, warmup=1, bench_overrides=probe,
        sweep_configs=TABLE1, seeds=1, sweep_overrides=(*probe, "trainer=cpu", "threads=1"),
        budget_s=240.0, threads=1,
        notes=("smoke mode: CPU, tiny probe set, one bench row, no compiled rows, one seed; timings are not "
               "measurements",),
    )


def default_data_root() -> str:
    carried = PROJECT_ROOT / ".data" / "fer2013"
    return os.environ.get("FER2013_ROOT") or (str(carried) if carried.is_dir() else "../shared/data/fer2013")


def card_name(device: str) -> str:
    """The card's name as a folder name, e.g. nvidia-h100-80gb-hbm3, or cpu."""
    if device != "cuda":
        return "cpu"
    import torch

    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")


def environment(device: str) -> dict:
    """Versions, the device and its properties (step 1)."""
    import torch

    from fer_ablation.cli import bench
    from fer_ablation.records import provenance

    info = {**bench.environment(), "versions": provenance.versions(), "device": device,
            "cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_count=torch.cuda.device_count(), gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    compute_capability=list(torch.cuda.get_device_capability(0)))
    return info


class Check:
    """check.json: rewritten atomically after every step, bench row and sweep run."""

    def __init__(self, out: Path, mode: str, budget_s: float, command: str):
        self.out = out
        self.started = time.perf_counter()
        self.budget_s = budget_s
        self.data: dict = {"mode": mode, "command": command, "budget_s": budget_s,
                           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "status": "running", "steps": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def write(self, **updates) -> None:
        self.data.update(updates)
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        write_atomic(self.out / "check.json", json.dumps(self.data, indent=2) + "\n")


def run_bench(check: Check, plan: Plan, device: str) -> list[dict]:
    """Step 2: one record per setting, or the error or 'skipped' that stopped it."""
    import torch

    from fer_ablation.cli import bench

    rows: list[dict] = []
    settings = [bench.Setting(config, device, size, plan.batch_size, plan.precision, True, compiled)
                for compiled in plan.compiles for size in plan.sizes for config in plan.bench_configs]
    deadline = plan.bench_share * plan.budget_s
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    threads = torch.get_num_threads()
    if plan.threads:
        torch.set_num_threads(plan.threads)
    try:
        for setting in settings:
            rows.append(bench_row(check, setting, plan, deadline))
            check.write(steps={**check.data["steps"], "bench": rows})
            write_atomic(check.out / "bench.json", json.dumps(rows, indent=2) + "\n")
    finally:
        torch.set_num_threads(threads)
    return rows


def bench_row(check: Check, setting, plan: Plan, deadline: float) -> dict:
    """One bench record, or the error or 'skipped' that stopped it."""
    from fer_ablation.cli import bench

    label = f"{setting.config} {setting.image_size}px {setting.precision}{' compiled' if setting.compile else ''}"
    if check.elapsed() > deadline:
        return {"setting": label, "status": "skipped",
                "reason": f"the bench's share of the budget ({deadline:.0f} s) was spent"}
    print(f"gpu-check: bench {label}", flush=True)
    started = time.perf_counter()
    try:
        record = bench.bench_one(setting, steps=plan.steps, warmup=plan.warmup, eval_batches=1,
                                 overrides=plan.bench_overrides)
        row = {"setting": label, "status": "completed", **record}
        print(f"  raw {record['raw_images_per_s']:.0f} img/s, suite {record['suite_images_per_s']:.0f} img/s",
              flush=True)
    except Exception as exc:  # one failing setting must not lose the others
        row = {"setting": label, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc()[-2000:]}
        print(f"  failed: {type(exc).__name__}: {exc}", flush=True)
    row["row_wall_s"] = round(time.perf_counter() - started, 1)
    return row


def report_accuracy(metrics: dict) -> float | None:
    """The best epoch's accuracy on the run's report split (what the tables use)."""
    best = metrics.get("best") or {}
    split = metrics.get("report_split")
    return (best.get(split) or {}).get("accuracy") if split else None


def sweep_run(check: Check, run_dir: Path, overrides: list[str], keep_checkpoints: bool) -> dict:
    """One training run as its own process, stopped when the budget ends; its record for check.json."""
    from fer_ablation import records

    command = [sys.executable, "-m", "fer_ablation.run", *overrides, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    started = time.perf_counter()
    log_path = run_dir.parent / f"{run_dir.name}.log"
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=max(check.left(), 1.0))
            returncode, stopped = done.returncode, None
        except subprocess.TimeoutExpired:
            returncode, stopped = None, "stopped at the end of the check's time budget"
    wall_s = time.perf_counter() - started
    metrics = {}
    with contextlib.suppress(records.RecordError, OSError):
        metrics = records.read_metrics(run_dir) or {}
    if not keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    status = metrics.get("status", "no metrics.json")
    if stopped:
        status = f"stopped ({status})"
    return {
        "configuration": next(o.split("=", 1)[1] for o in overrides if o.startswith("configuration=")),
        "seed": int(next(o.split("=", 1)[1] for o in overrides if o.startswith("seed="))),
        "status": status, "returncode": returncode, "error": metrics.get("error") or stopped,
        "report_split": metrics.get("report_split"), "accuracy": report_accuracy(metrics),
        "epochs": metrics.get("epochs_completed"), "train_images_per_s": metrics.get("train_images_per_s"),
        "device": metrics.get("device"), "precision": metrics.get("precision"),
        "run_wall_s": metrics.get("wall_s"), "process_wall_s": round(wall_s, 1),
        "run_dir": str(run_dir), "log": str(log_path),
    }


def run_sweep(check: Check, plan: Plan, keep_checkpoints: bool) -> list[dict]:
    """Step 3: Table 1's rows, seed by seed, while the budget allows."""
    runs_dir = check.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    for seed in range(plan.seeds):
        for configuration in plan.sweep_configs:
            times = [r["process_wall_s"] for r in results if r["status"] == "completed"]
            expected = sum(times) / len(times) if times else 0.0
            if results and check.left() < expected:
                check.write(steps={**check.data["steps"], "sweep": {
                    "runs": results, "stopped": f"the next run (about {expected:.0f} s) does not fit the "
                                                f"{max(check.left(), 0):.0f} s left"}})
                return results
            run_dir = runs_dir / f"{configuration}-s{seed}"
            overrides = [f"configuration={configuration}", "ablation=paper", f"seed={seed}", "logger=csv",
                         "trainer.enable_progress_bar=false", "force=true", *plan.sweep_overrides]
            print(f"gpu-check: sweep {configuration} seed {seed} ({check.left():.0f} s left)", flush=True)
            result = sweep_run(check, run_dir, overrides, keep_checkpoints)
            results.append(result)
            accuracy = "n/a" if result["accuracy"] is None else f"{100 * result['accuracy']:.2f} %"
            print(f"  {result['status']}: {result['report_split']} accuracy {accuracy}, "
                  f"{result['process_wall_s']:.0f} s", flush=True)
            check.write(steps={**check.data["steps"], "sweep": {"runs": results, "overrides": list(
                plan.sweep_overrides)}})
    return results


def summary(check: Check) -> str:
    """The short table printed last."""
    lines = [f"gpu-check ({check.data['mode']}, {check.data['steps']['environment'].get('gpu') or 'cpu'}): "
             f"{check.elapsed():.0f} s of a {check.budget_s:.0f} s budget"]
    for row in check.data["steps"].get("bench", []):
        if row["status"] == "completed":
            lines.append(f"  bench {row['setting']:<40} raw {row['raw_images_per_s']:9.0f} img/s  suite "
                         f"{row['suite_images_per_s']:9.0f} img/s  x{row['ratio']:.2f}")
        else:
            lines.append(f"  bench {row['setting']:<40} {row['status']}")
    for run in check.data["steps"].get("sweep", {}).get("runs", []):
        accuracy = "    n/a" if run["accuracy"] is None else f"{100 * run['accuracy']:6.2f}%"
        lines.append(f"  run   {run['configuration']:<8} seed {run['seed']}  {run['status']:<10} {accuracy}  "
                     f"{run['process_wall_s']:.0f} s")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fer_ablation.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, so that the check runs on a CPU in minutes")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: results/gpu/<card>, smoke: outputs/gpu-check/<card>)")
    p.add_argument("--budget-s", type=float, default=None, help="the whole check's time budget in seconds "
                   "(default: 480 on a GPU, 240 in smoke mode)")
    p.add_argument("--data-root", default=default_data_root(),
                   help="FER2013 folder (default: $FER2013_ROOT, else .data/fer2013 where it exists (the copy "
                        "carried to the GPU machine), else ../shared/data/fer2013)")
    p.add_argument("--bench-configs", nargs="*", default=None, help="bench configurations (default: the mode's)")
    p.add_argument("--sweep-configs", nargs="*", default=None, help="sweep configurations (default: Table 1's)")
    p.add_argument("--seeds", type=int, default=None, help="at most this many seeds per configuration")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the sweep runs' checkpoints")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.device == "cuda" and args.smoke:
        raise SystemExit("gpu_check: --smoke is the CPU mode; use --device cpu --smoke")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                         "use --device cpu --smoke on a CPU")
    plan = smoke_plan() if args.smoke else gpu_plan(args.data_root)
    replace = {k: v for k, v in {"bench_configs": args.bench_configs, "sweep_configs": args.sweep_configs,
                                 "seeds": args.seeds, "budget_s": args.budget_s}.items() if v is not None}
    plan = Plan(**{**plan.__dict__, **{k: tuple(v) if isinstance(v, list) else v for k, v in replace.items()}})
    card = card_name(args.device)
    out = args.out or PROJECT_ROOT / ("outputs/gpu-check" if args.smoke else "results/gpu") / card
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m fer_ablation.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv)
    check = Check(out, "smoke" if args.smoke else "gpu", plan.budget_s, command)
    check.data["plan"] = {k: list(v) if isinstance(v, tuple) else v for k, v in plan.__dict__.items()}
    check.data["card"] = card

    check.write(steps={"environment": environment(args.device)})
    print(f"gpu-check: {out} (budget {plan.budget_s:.0f} s)", flush=True)
    bench_rows = run_bench(check, plan, args.device)
    runs = run_sweep(check, plan, args.keep_checkpoints)
    completed = sum(r["status"] == "completed" for r in runs)
    bench_done = sum(r["status"] == "completed" for r in bench_rows)
    check.write(status="completed", bench_completed=bench_done, runs_completed=completed,
                finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print(summary(check))
    print(f"gpu-check: wrote {out / 'check.json'}; tables: python -m fer_ablation.collect {out / 'runs'} "
          f"--out {out / 'tables'}")
    if bench_done == 0 and completed == 0:
        raise SystemExit("gpu_check: no bench row and no sweep run completed (see check.json)")
    return check.data


if __name__ == "__main__":
    main()
