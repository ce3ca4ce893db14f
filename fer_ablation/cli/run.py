"""`python -m fer_ablation.run [overrides]`: train one configuration (or sweep with -m).

    python -m fer_ablation.run                                   # baseline on the probe set
    python -m fer_ablation.run configuration=full --cfg job      # show what a configuration builds
    python -m fer_ablation.run -m model.attention=ca,simam stem=sc
    python -m fer_ablation.run -m experiment=paper data=fer2013 trainer=gpu
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_ablation.config import CONFIG_DIR


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from fer_ablation.train.training import train

    metrics = train(cfg)
    best = metrics.get("best") or {}
    return (best.get("val") or {}).get("accuracy")


if __name__ == "__main__":
    main()
