"""The data defaults, read from `conf/data/*.yaml`: the one place they are written.

Runs get them from Hydra (`data=<name>`); Python callers that build a data module from a plain
mapping, and the probe generator's CLI, read the same files through :func:`data_defaults`.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from fer_ablation.config import CONFIG_DIR

DATA_CONF_DIR = CONFIG_DIR / "data"


def _load(name: str) -> DictConfig:
    path = DATA_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no data config {path}; available: {sorted(p.stem for p in DATA_CONF_DIR.glob('*.yaml'))}")
    raw = OmegaConf.load(path)
    defaults = list(raw.pop("defaults", None) or ["_self_"])
    if "_self_" not in defaults:
        defaults.append("_self_")
    # Hydra's order: each entry of the defaults list (files of this group), `_self_` where it stands.
    return OmegaConf.merge(*(raw if entry == "_self_" else _load(str(entry)) for entry in defaults))


def data_defaults(name: str = "_common") -> dict:
    """`conf/data/<name>.yaml` with its defaults list applied, interpolations (the cache folder) resolved."""
    return OmegaConf.to_container(_load(name), resolve=True)
