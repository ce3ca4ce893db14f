"""One sweep-wide progress line per job: position, elapsed time and an estimate of the time left.

A Hydra callback (registered in conf/config.yaml under ``hydra.callbacks``). The sweep's size is
counted once from the sweeper's parameters and the command line's sweep overrides (their Cartesian
product, as Hydra's basic sweeper expands them); each job appends its outcome to
``<sweep dir>/.progress.jsonl``, so the count stays right when a parallel launcher runs jobs in
other processes. The estimate is elapsed / jobs done x jobs left, which already accounts for jobs
running side by side.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("fer_ablation.sweep")
STATE_FILE = ".progress.jsonl"


def count_jobs(sweeper_params: dict, command_line: list[str]) -> int:
    """Jobs in a basic-sweeper multirun: the product of every swept key's number of values.

    A command-line override replaces a sweeper parameter of the same key.
    """
    parser = OverridesParser.create()
    by_key = {}
    overrides = [f"{k}={v}" for k, v in sweeper_params.items()] + list(command_line)
    for override in parser.parse_overrides(overrides):
        by_key[override.key_or_group] = override
    return math.prod(
        len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1 for o in by_key.values()
    )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _append(path: Path, event: dict) -> None:
    # One short line per write in append mode: concurrent jobs never interleave within a line.
    with path.open("a") as handle:
        handle.write(json.dumps(event) + "\n")


def _current_sweep(path: Path) -> tuple[dict | None, list[dict]]:
    """The last `start` event of the state file and the job ends after it."""
    start, ends = None, []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None, []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "start":
            start, ends = event, []
        elif event.get("event") == "end":
            ends.append(event)
    return start, ends


def progress_line(start: dict, ends: list[dict], now: float) -> str:
    done, total = len(ends), start.get("total")
    failed = sum(1 for e in ends if e.get("status") != "completed")
    elapsed = now - start["time"]
    position = f"{done}/{total}" if total and done <= total else f"{done}/?"
    line = f"{position} jobs done"
    if failed:
        line += f" ({failed} failed)"
    line += f" | elapsed {_duration(elapsed)}"
    if done and total and done < total:
        line += f" | ~{_duration(elapsed / done * (total - done))} left"
    return line


class SweepProgress(Callback):
    """Logs `sweep: k/N jobs done | elapsed | ~left` as each job starts and ends."""

    def _state(self, config: DictConfig) -> Path:
        return Path(config.hydra.sweep.dir) / STATE_FILE

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        if not isinstance(params, dict):
            params = OmegaConf.to_container(params, resolve=True)
        total = count_jobs({k: str(v) for k, v in params.items()}, list(config.hydra.overrides.task))
        state = self._state(config)
        state.parent.mkdir(parents=True, exist_ok=True)
        _append(state, {"event": "start", "time": time.time(), "total": total, "pid": os.getpid()})
        log.info("sweep: %d jobs", total)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        start, ends = _current_sweep(self._state(config))
        if start is None:
            return
        name = config.hydra.job.override_dirname or "default"
        log.info("sweep: job %d starting (%s) | %s", config.hydra.job.num + 1, name,
                 progress_line(start, ends, time.time()))
        self._job_started = time.time()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        state = self._state(config)
        start, _ = _current_sweep(state)
        if start is None:
            return
        status = "completed" if getattr(job_return.status, "name", "") == "COMPLETED" else "failed"
        seconds = time.time() - getattr(self, "_job_started", time.time())
        _append(state, {"event": "end", "time": time.time(), "job": int(config.hydra.job.num),
                        "status": status, "seconds": round(seconds, 1)})
        start, ends = _current_sweep(state)
        log.info("sweep: job %d %s in %s | %s", config.hydra.job.num + 1, status, _duration(seconds),
                 progress_line(start, ends, time.time()))
