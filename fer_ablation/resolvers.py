"""OmegaConf resolvers the configs use; registered once by `fer_ablation.config`."""

from __future__ import annotations

from omegaconf import OmegaConf


def register() -> None:
    # A run's folder is named from its overrides; a run with none lands in `default`.
    OmegaConf.register_new_resolver("run_name", lambda overrides: overrides or "default", replace=True)
