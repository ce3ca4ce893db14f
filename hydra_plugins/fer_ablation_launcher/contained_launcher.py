"""Hydra's basic (sequential) launcher, except that a job whose folder cannot be made or written fails
alone: Hydra's `run_job` creates the job folder, its log file and `.hydra/` outside the guard it puts
around the task, so an OSError there (a locked folder, a name the file system refuses) would abort the
whole sweep. Here it becomes that job's failure; the sweep goes on and Hydra reports the failed jobs
and exits non-zero at the end, as for a job that fails in training.
"""

from __future__ import annotations

import logging
from typing import Sequence

from hydra.core import utils as hydra_utils
from hydra.core.utils import JobReturn, JobStatus
from hydra._internal.core_plugins import basic_launcher
from hydra._internal.core_plugins.basic_launcher import BasicLauncher

log = logging.getLogger(__name__)


def _contained_run_job(*args, **kwargs) -> JobReturn:
    try:
        return hydra_utils.run_job(*args, **kwargs)
    except OSError as exc:
        config = kwargs["config"]
        overrides = list(config.hydra.overrides.task)
        log.error("job %s could not use its folder %s: %s", " ".join(overrides),
                  config.hydra.runtime.get("output_dir"), exc)
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=exc)


class ContainedLauncher(BasicLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        saved = basic_launcher.run_job
        basic_launcher.run_job = _contained_run_job
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            basic_launcher.run_job = saved
