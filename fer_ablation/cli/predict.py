"""`python -m fer_ablation.predict ckpt_path=PATH inputs=IMAGES [out=FOLDER]`: classify photos with a trained model.

What is written and how each photo is prepared: :mod:`fer_ablation.inference.predict`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_ablation.config import CONFIG_DIR
from fer_ablation.inference.predict import predict


@hydra.main(config_path=str(CONFIG_DIR), config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    predict(cfg, cfg.out or HydraConfig.get().runtime.output_dir)
