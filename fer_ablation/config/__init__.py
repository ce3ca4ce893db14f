"""Where the Hydra configs and the tables files live and how configs are composed; the one module every
entry point imports.

`python -m fer_ablation.run`, `fer_ablation.evaluate`, the bench and the tests all compose from
`CONFIG_DIR` with the same resolvers, so a config composed in a test is the config a run gets. The
sweeps of `conf/experiment/` take their configurations from the tables file through the `sweep`
resolver: `${sweep:demo,${ablation}}` is the `sweeps.demo` list of `experiments/<ablation>.yaml`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from fer_ablation.config import resolvers

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"
EXPERIMENTS_DIR = PROJECT_ROOT / "experiments"


def read_tables_file(name: str = "paper", directory: Path | str | None = None) -> tuple[Path, dict]:
    """(path, content) of the tables file `experiments/<name>.yaml`, plain YAML."""
    directory = Path(directory or EXPERIMENTS_DIR)
    path = directory / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.yaml"))
        raise FileNotFoundError(f"no ablation file {path}; available: {available}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with configurations, sweeps, baseline, tables; got {raw!r}")
    return path, raw


def sweep_configurations(sweep: str, tables: str = "paper", directory: Path | str | None = None) -> list[str]:
    """The configurations a sweep runs: `sweeps.<sweep>` of the tables file, each one of its `configurations`."""
    path, raw = read_tables_file(tables, directory)
    configurations, sweeps = raw.get("configurations"), raw.get("sweeps") or {}
    if not isinstance(configurations, list) or len(set(configurations)) != len(configurations):
        raise ValueError(f"{path}: `configurations` must be a list of distinct names, got {configurations!r}")
    if sweep not in sweeps:
        raise ValueError(f"{path}: no sweep {sweep!r} under `sweeps`; available: {sorted(sweeps)}")
    names = sweeps[sweep]
    if not isinstance(names, list) or not names or len(set(names)) != len(names):
        raise ValueError(f"{path}: sweeps.{sweep} must be a non-empty list of distinct names, got {names!r}")
    unknown = [n for n in names if n not in configurations]
    if unknown:
        raise ValueError(f"{path}: sweeps.{sweep} names {unknown}, which `configurations` does not list")
    return list(names)


resolvers.register()
# A sweep's values as Hydra's sweeper reads them: "a,b,c".
OmegaConf.register_new_resolver(
    "sweep", lambda sweep, tables="paper": ",".join(sweep_configurations(sweep, tables)), replace=True)


def compose(overrides=(), config_name: str = "config") -> DictConfig:
    """The config `python -m fer_ablation.run <overrides>` runs with, composed in-process (no run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))
