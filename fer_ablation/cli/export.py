"""`python -m fer_ablation.export ckpt_path=PATH [format=onnx]`: export a trained model, checked against PyTorch.

What is exported and the parity check: :mod:`fer_ablation.inference.export`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fer_ablation.config import CONFIG_DIR
from fer_ablation.inference.export import export


@hydra.main(config_path=str(CONFIG_DIR), config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    export(cfg, HydraConfig.get().runtime.output_dir)
