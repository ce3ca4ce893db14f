"""The sweep-wide progress line: job count, position, elapsed time and the estimate."""

import json
import logging
import subprocess
import sys

from omegaconf import OmegaConf

from fer_ablation.train import progress


def test_job_count_is_the_product_of_swept_values_and_the_command_line_wins():
    params = {"seed": "0,1", "configuration": "a,b,c"}
    assert progress.count_jobs(params, []) == 6
    assert progress.count_jobs(params, ["seed=0,1,2", "trainer.max_epochs=2"]) == 9
    assert progress.count_jobs({}, ["model.attention=ca,simam", "stem=sc"]) == 2
    assert progress.count_jobs({}, ["seed=range(4)"]) == 4


def test_progress_line_gives_position_elapsed_and_estimate():
    start = {"time": 100.0, "total": 10}
    ends = [{"status": "completed"}, {"status": "failed"}]
    line = progress.progress_line(start, ends, now=160.0)
    assert line == "2/10 jobs done (1 failed) | elapsed 1m00s | ~4m00s left"
    assert progress.progress_line(start, [], now=100.0) == "0/10 jobs done | elapsed 0m00s"
    # more ends than the count expected: the position says it does not know the total
    assert progress.progress_line({"time": 0.0, "total": 1}, ends, now=1.0).startswith("2/? jobs done")


def test_callback_counts_jobs_across_processes(tmp_path, caplog):
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode

    config = OmegaConf.create({"hydra": {
        "sweep": {"dir": str(tmp_path)}, "sweeper": {"params": {"seed": "0,1"}},
        "overrides": {"task": ["model.attention=ca,simam"]}, "mode": RunMode.MULTIRUN,
        "job": {"num": 0, "override_dirname": "model.attention=ca,seed=0"},
    }})
    callback = progress.SweepProgress()
    with caplog.at_level(logging.INFO, logger="fer_ablation.sweep"):
        callback.on_multirun_start(config)
        callback.on_job_start(config, task_function=None)
        done = JobReturn()
        done.status = JobStatus.COMPLETED
        callback.on_job_end(config, done)
        # a second process (a parallel launcher's worker) ends another job
        progress.SweepProgress().on_job_end(config, done)
    events = [json.loads(line) for line in (tmp_path / progress.STATE_FILE).read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "end", "end"] and events[0]["total"] == 4
    assert "sweep: job 1 starting (model.attention=ca,seed=0) | 0/4 jobs done" in caplog.text
    assert "2/4 jobs done" in caplog.text and "left" in caplog.text
