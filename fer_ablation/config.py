"""Where the Hydra configs live and how they are composed; the one module every entry point imports.

`python -m fer_ablation.run`, `fer_ablation.evaluate`, the bench and the tests all compose from
`CONFIG_DIR` with the same resolvers, so a config composed in a test is the config a run gets.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from fer_ablation import resolvers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "conf"

resolvers.register()


def compose(overrides=(), config_name: str = "config") -> DictConfig:
    """The config `python -m fer_ablation.run <overrides>` runs with, composed in-process (no run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))
