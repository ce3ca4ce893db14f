"""`python -m fer_ablation.evaluate ckpt_path=PATH data=... [data.root=...]`: score a checkpoint or a run folder.

What is scored and how the images are prepared: :mod:`fer_ablation.inference.evaluate`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_ablation.config import CONFIG_DIR
from fer_ablation.inference.evaluate import evaluate


@hydra.main(config_path=str(CONFIG_DIR), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    # the data keys the command line set: those the checkpoint's preprocessing must not silently override
    explicit = [o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task]
    evaluate(cfg, hydra_cfg.runtime.output_dir, explicit=explicit)
