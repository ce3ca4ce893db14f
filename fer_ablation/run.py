"""`python -m fer_ablation.run [overrides]`: train one configuration (or sweep with -m).

    python -m fer_ablation.run                                   # baseline on the probe set
    python -m fer_ablation.run -m model.attention=ca,simam stem=sc
    python -m fer_ablation.run -m experiment=paper data=fer2013 trainer=gpu
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fer_ablation import resolvers

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

resolvers.register()


def compose(overrides=(), config_name: str = "config") -> DictConfig:
    """The config `python -m fer_ablation.run <overrides>` runs with, composed in-process (no run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from fer_ablation.training import train

    metrics = train(cfg)
    best = metrics.get("best") or {}
    return (best.get("val") or {}).get("accuracy")


if __name__ == "__main__":
    main()
