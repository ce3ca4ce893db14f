"""The paper's ablation as data: the tables of `experiments/<name>.yaml` and the models of `conf/configuration/`.

A configuration is a Hydra config group option (`configuration=sc_ca`), one file per model that sets
`model.attention`, the stem and any placement. The tables file (Hu et al. 2024, Tables 1-3) names the
configurations it uses and lays them out as rows with the paper's labels and reported numbers. This
module reads both with plain YAML -- no Hydra, no torch -- so the report runs anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fer_ablation.config import CONFIG_DIR, PROJECT_ROOT

EXPERIMENTS_DIR = PROJECT_ROOT / "experiments"
CONFIGURATIONS_DIR = CONFIG_DIR / "configuration"
ENTRY_CONFIG = CONFIG_DIR / "config.yaml"


@dataclass(frozen=True)
class Row:
    label: str
    configuration: str
    reported: dict[str, float]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Ablation:
    configurations: dict[str, dict]  # name -> {"attention", "stem", optional "placement"}, in sweep order
    baseline: str
    tables: list[Table] = field(default_factory=list)
    name: str = "paper"

    def configuration_of(self, attention: str, stem: str) -> str | None:
        """The configuration name whose model matches (attention order does not matter)."""
        key = (canonical_attention(attention), stem)
        for name, conf in self.configurations.items():
            if (canonical_attention(conf["attention"]), conf["stem"]) == key:
                return name
        return None

    def label_of(self, configuration: str) -> str:
        """How the paper prints a configuration: its first row's label, else its name."""
        for table in self.tables:
            for row in table.rows:
                if row.configuration == configuration:
                    return row.label
        return configuration


def canonical_attention(attention: str) -> str:
    """`simam+ca` and `ca+simam` name the same model; `none` stays `none`."""
    parts = sorted({p.strip() for p in str(attention).split("+") if p.strip()} - {"none"})
    return "+".join(parts) or "none"


def _default_stem(entry_config: Path = ENTRY_CONFIG) -> str:
    for item in yaml.safe_load(entry_config.read_text())["defaults"]:
        if isinstance(item, dict) and "stem" in item:
            return item["stem"]
    raise ValueError(f"{entry_config}: its defaults list selects no stem; expected an entry `- stem: NAME`")


def read_configuration(name: str, directory: Path | str | None = None) -> dict:
    """{"attention", "stem", optional "placement"} of `conf/configuration/<name>.yaml`."""
    directory = Path(directory or CONFIGURATIONS_DIR)
    path = directory / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.yaml"))
        raise FileNotFoundError(f"no configuration file {path}; available: {available}")
    raw = yaml.safe_load(path.read_text()) or {}
    # This reader sees only these keys; anything else would change the model behind its back.
    unexpected = sorted(set(raw) - {"defaults", "configuration", "model"}) + \
        sorted(f"model.{k}" for k in set(raw.get("model") or {}) - {"attention", "placement"})
    if unexpected:
        raise ValueError(f"{path}: keys {unexpected} are not understood; expected defaults (override /stem), "
                         "configuration, model.attention and model.placement")
    if raw.get("configuration") != name:
        raise ValueError(f"{path}: `configuration: {raw.get('configuration')}`; expected `configuration: {name}` "
                         "(the file's name, recorded in metrics.json)")
    model = raw.get("model") or {}
    if "attention" not in model:
        raise ValueError(f"{path}: no model.attention; expected e.g. `model: {{attention: ca}}`")
    stem = _default_stem()
    for item in raw.get("defaults") or []:
        if isinstance(item, dict) and "override /stem" in item:
            stem = item["override /stem"]
    conf = {"attention": str(model["attention"]), "stem": str(stem)}
    placement = {k: v for k, v in (model.get("placement") or {}).items() if v is not None}
    if placement:
        conf["placement"] = placement
    return conf


def load(name: str = "paper", directory: Path | str | None = None,
         configurations_dir: Path | str | None = None) -> Ablation:
    """The tables file `experiments/<name>.yaml` with the models of the configurations it names."""
    directory = Path(directory or EXPERIMENTS_DIR)
    path = directory / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.yaml"))
        raise FileNotFoundError(f"no ablation file {path}; available: {available}")
    raw = yaml.safe_load(path.read_text())
    names = raw["configurations"]
    if not isinstance(names, list) or len(set(names)) != len(names):
        raise ValueError(f"{path}: `configurations` must be a list of distinct names, got {names!r}")
    configurations = {n: read_configuration(n, configurations_dir) for n in names}
    if raw["baseline"] not in configurations:
        raise ValueError(f"{path}: baseline {raw['baseline']!r} is not one of its configurations {names}")
    tables = []
    for table_name, table in raw["tables"].items():
        rows = []
        for row in table["rows"]:
            if row["configuration"] not in configurations:
                raise ValueError(
                    f"{path}: row {row['label']!r} of {table_name} names configuration "
                    f"{row['configuration']!r}; expected one of {names}"
                )
            rows.append(Row(row["label"], row["configuration"], dict(row.get("reported", {}))))
        tables.append(Table(table_name, table.get("title", table_name), rows))
    return Ablation(configurations=configurations, baseline=raw["baseline"], tables=tables, name=name)
