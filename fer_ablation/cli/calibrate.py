"""`python -m fer_ablation.calibrate`: choose the CPU budget by measurement.

Each candidate of `experiments/calibration.yaml` (a list of Hydra overrides that pins every knob it
depends on, so it stays reproducible when the defaults change) is trained as one sweep over the
study's seeds, through the real command line (`python -m fer_ablation.run -m ...`), so per-run costs
(start-up, logger, checkpoints, evaluation) are paid as a user pays them. For every run the study
records the report-split accuracy (never the split that selected the checkpoint), the run's wall and
CPU seconds, and the sweep's wall time; a raw PyTorch loop measured first (ResNet50, 48 px, batch 32,
fp32, channels_last) converts seconds here into seconds on the slowest machine class, whose raw loop
does `SLOWEST_RAW_IMAGES_PER_S`.

    python -m fer_ablation.calibrate                       # every candidate, results/calibration/
    python -m fer_ablation.calibrate --only onecycle_b32   # re-measure some (other rows are kept)
    python -m fer_ablation.calibrate --figure-only         # redraw the figure from the CSV
    python -m fer_ablation.calibrate --figure-only --reference   # and re-measure the raw loop (idle machine)

Writes `calibration.csv` (one row per run), `calibration.json` (the reference speed, the machine)
and `calibration.png` (report accuracy against CPU-seconds per run).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from fer_ablation import records
from fer_ablation.atomic import write_atomic
from fer_ablation.config import PROJECT_ROOT
from fer_ablation.records import provenance

log = logging.getLogger("fer_ablation.calibrate")
CANDIDATES = PROJECT_ROOT / "experiments" / "calibration.yaml"
# fp32 raw ResNet50 loop at 48 px, batch 32, 2 threads on the slowest machine class seen (an AVX2-only EPYC)
SLOWEST_RAW_IMAGES_PER_S = 55.0
COLUMNS = ["candidate", "seed", "configuration", "report_split", "accuracy", "val_accuracy", "best_epoch",
           "epochs", "run_wall_s", "run_cpu_s", "threads", "jobs", "sweep_wall_s", "sweep_runs",
           "slowest_run_wall_s", "precision", "train_images_per_s", "status", "overrides"]


def load_candidates(path: Path = CANDIDATES) -> dict:
    study = yaml.safe_load(path.read_text())
    for name, candidate in study["candidates"].items():
        if not isinstance(candidate.get("overrides"), list):
            raise ValueError(f"{path}: candidate {name!r} needs a list of overrides, got {candidate!r}")
    return study


def reference_speed(threads: int, repeats: int = 3) -> float:
    """Raw-loop training images/s here, the median of `repeats` measurements (single ones varied by 10 %):
    ResNet50, 48 px, batch 32, fp32, channels_last."""
    import torch

    from fer_ablation.cli import bench
    from fer_ablation.config import compose

    torch.set_num_threads(threads)
    cfg = compose(["configuration=baseline", "data.image_size=48", "data.batch_size=32"])
    setting = bench.Setting("baseline", "cpu", 48, 32, "32-true", channels_last=True)
    tensors = bench.load_tensors(cfg)
    speeds = [bench.measure_raw(cfg, setting, tensors, steps=20, warmup=3, eval_images=32)["raw_images_per_s"]
              for _ in range(repeats)]
    return float(sorted(speeds)[len(speeds) // 2])


def sweep_command(candidate: dict, seeds: list[int], sweep_dir: Path, common: list[str]) -> tuple[list[str], int]:
    """The `python -m fer_ablation.run -m` command of one candidate, and its jobs run side by side."""
    jobs = int(candidate.get("jobs", 1))
    launcher = (["hydra/launcher=parallel", f"hydra.launcher.n_jobs={jobs}", "threads=1"] if jobs > 1 else [])
    cmd = [sys.executable, "-m", "fer_ablation.run", "-m", *common, *candidate["overrides"], *launcher,
           f"seed={','.join(map(str, seeds))}", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep_dir}"]
    return cmd, jobs


def run_candidate(name: str, candidate: dict, seeds: list[int], out: Path, common: list[str]) -> list[dict]:
    sweep_dir = out / "runs" / name
    if sweep_dir.exists():
        records.move_aside(sweep_dir, [p.name for p in sweep_dir.iterdir() if not records.is_moved_aside(p)])
    cmd, jobs = sweep_command(candidate, seeds, sweep_dir, common)
    log.info("%s: %s", name, " ".join(cmd[3:]))
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)
    sweep_wall = time.perf_counter() - started
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"{name}.log").write_text(done.stdout + done.stderr)
    runs = [m for p in sorted(sweep_dir.glob("*/metrics.json")) if (m := records.read_metrics(p.parent))]
    if done.returncode != 0 or len(runs) != len(seeds):
        log.error("%s: exit %d, %d of %d runs recorded (log: %s)", name, done.returncode, len(runs), len(seeds),
                  out / "logs" / f"{name}.log")
    rows = []
    for m in runs:
        split = m.get("report_split", "test")
        best = m.get("best") or {}
        rows.append({
            "candidate": name, "seed": m["seed"], "configuration": m.get("configuration"), "report_split": split,
            "accuracy": _pct((best.get(split) or {}).get("accuracy")),
            "val_accuracy": _pct((best.get("val") or {}).get("accuracy")),
            "best_epoch": best.get("epoch"), "epochs": m.get("max_epochs"),
            "run_wall_s": m.get("wall_s"), "run_cpu_s": m.get("cpu_s"), "threads": m.get("threads"), "jobs": jobs,
            "sweep_wall_s": round(sweep_wall, 1), "sweep_runs": len(seeds),
            "slowest_run_wall_s": None, "precision": m.get("precision"),
            "train_images_per_s": m.get("train_images_per_s"), "status": m.get("status"),
            "overrides": " ".join(candidate["overrides"]),
        })
    for row in rows:
        row["slowest_run_wall_s"] = max(r["run_wall_s"] or 0 for r in rows)
    return rows


def _pct(value) -> float | None:
    return None if value is None else round(100 * float(value), 2)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.getvalue())


def summarise(rows: list[dict], reference: float | None) -> list[dict]:
    """One line per candidate: mean and range of accuracy, mean CPU-s and wall per run, scaled wall."""
    import numpy as np

    out = []
    for name in dict.fromkeys(r["candidate"] for r in rows):
        own = [r for r in rows if r["candidate"] == name and r["accuracy"] not in (None, "")]
        if not own:
            continue
        acc = np.array([float(r["accuracy"]) for r in own])
        sweep_wall = float(own[0]["sweep_wall_s"])
        per_run = sweep_wall / int(own[0]["sweep_runs"])
        out.append({
            "candidate": name, "seeds": len(own), "accuracy_mean": round(float(acc.mean()), 1),
            "accuracy_min": round(float(acc.min()), 1), "accuracy_max": round(float(acc.max()), 1),
            "cpu_s_per_run": round(float(np.mean([float(r["run_cpu_s"]) for r in own])), 1),
            "sweep_wall_s_per_run": round(per_run, 1),
            "scaled_wall_s_per_run": (round(per_run * reference / SLOWEST_RAW_IMAGES_PER_S, 1)
                                      if reference else None),
        })
    return out


def draw(rows: list[dict], summary: list[dict], path: Path, reference: float | None, chosen: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    ax.axhspan(50, 90, color="#e8f4e8", zorder=0, label="baseline target: 50-90 %")
    ax.axhline(100 / 7, color="grey", ls=":", lw=1, label="chance (7 classes)")
    scale = reference / SLOWEST_RAW_IMAGES_PER_S if reference else 1.0
    for s in summary:
        own = [r for r in rows if r["candidate"] == s["candidate"] and r["accuracy"] not in (None, "")]
        x = [float(r["run_cpu_s"]) * scale for r in own]
        y = [float(r["accuracy"]) for r in own]
        mark = dict(marker="*", s=160, color="crimson", zorder=4) if s["candidate"] == chosen else \
            dict(marker="o", s=28, color="#1f77b4", zorder=3)
        ax.scatter(x, y, **mark)
        ax.plot([min(x), max(x)], [s["accuracy_mean"]] * 2, color=mark["color"], lw=1)
        ax.annotate(s["candidate"], (sum(x) / len(x), s["accuracy_mean"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7.5)
    unit = "slowest-CPU seconds" if reference else "CPU-seconds"
    ax.set_xlabel(f"{unit} per run (CPU time of the run's process" +
                  (f" x {scale:.2f}: raw loop {reference:.0f} img/s here, {SLOWEST_RAW_IMAGES_PER_S:.0f} on the slowest)"
                   if reference else ")"))
    ax.set_ylabel("baseline report-split accuracy (%)")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_title("CPU budget calibration: each dot a seed, line = mean" + (f"; star = chosen ({chosen})" if chosen else ""),
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_ablation.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=Path, default=CANDIDATES, help="the study file (default: %(default)s)")
    parser.add_argument("--only", nargs="*", default=None, help="candidates to (re)measure; the CSV keeps the rest")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "calibration")
    parser.add_argument("--threads", type=int, default=2, help="threads of the reference raw loop (default: 2)")
    parser.add_argument("--figure-only", action="store_true", help="redraw figure and summary from the CSV")
    parser.add_argument("--reference", action="store_true",
                        help="measure the reference raw loop again (do it on an otherwise idle machine)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    study = load_candidates(args.candidates)
    unknown = set(args.only or []) - set(study["candidates"])
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}: {args.candidates} has {sorted(study['candidates'])}")
    csv_path, meta_path = args.out / "calibration.csv", args.out / "calibration.json"
    rows = read_rows(csv_path)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if not args.figure_only or args.reference:
        import torch

        if "reference_raw_images_per_s" not in meta or args.only is None or args.reference:
            meta["reference_raw_images_per_s"] = round(reference_speed(args.threads), 1)
            meta.update(environment=provenance.versions(), device=provenance.device_name(torch.device("cpu")),
                        cpu_capability_env={k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")},
                        slowest_raw_images_per_s=SLOWEST_RAW_IMAGES_PER_S)
            log.info("reference raw loop: %.1f img/s (the slowest machine class: %.0f)",
                     meta["reference_raw_images_per_s"], SLOWEST_RAW_IMAGES_PER_S)
        names = [] if args.figure_only else args.only if args.only is not None else list(study["candidates"])
        for i, name in enumerate(names, 1):
            new = run_candidate(name, study["candidates"][name], list(study["seeds"]), args.out,
                                list(study.get("common", [])))
            rows = [r for r in rows if r["candidate"] != name] + new
            write_rows(csv_path, rows)
            for s in summarise(new, meta["reference_raw_images_per_s"]):
                log.info("[%d/%d] %s", i, len(names), s)
    meta["chosen"] = study.get("chosen")
    meta["summary"] = summarise(rows, meta.get("reference_raw_images_per_s"))
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    draw(rows, meta["summary"], args.out / "calibration.png", meta.get("reference_raw_images_per_s"), study.get("chosen"))
    for s in meta["summary"]:
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
