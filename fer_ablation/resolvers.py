"""OmegaConf resolvers the configs use; registered once by the Hydra entry points."""

from __future__ import annotations

from omegaconf import OmegaConf

from fer_ablation import experiments


def register() -> None:
    # The sweep over the paper's configurations reads their names from experiments/<name>.yaml.
    OmegaConf.register_new_resolver(
        "ablation_configurations",
        lambda name: ",".join(experiments.load(name).configurations),
        replace=True,
    )
    # A run's folder is named from its overrides; a run with none lands in `default`.
    OmegaConf.register_new_resolver("run_name", lambda overrides: overrides or "default", replace=True)
