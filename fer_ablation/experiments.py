"""The paper's ablation as data: reads `experiments/<name>.yaml`.

Both the sweep (Hydra resolver `paper_configurations`) and the collector read the tables through
this module, so the rows, configurations and reported numbers live in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


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
    configurations: dict[str, dict]
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


def load(name: str = "paper", directory: Path | str | None = None) -> Ablation:
    path = Path(directory or EXPERIMENTS_DIR) / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in Path(directory or EXPERIMENTS_DIR).glob("*.yaml"))
        raise FileNotFoundError(f"no ablation file {path}; available: {available}")
    raw = yaml.safe_load(path.read_text())
    configurations = raw["configurations"]
    tables = []
    for table_name, table in raw["tables"].items():
        rows = []
        for row in table["rows"]:
            if row["configuration"] not in configurations:
                raise ValueError(
                    f"{path}: row {row['label']!r} of {table_name} names configuration "
                    f"{row['configuration']!r}; expected one of {sorted(configurations)}"
                )
            rows.append(Row(row["label"], row["configuration"], dict(row.get("reported", {}))))
        tables.append(Table(table_name, table.get("title", table_name), rows))
    return Ablation(configurations=configurations, baseline=raw["baseline"], tables=tables, name=name)
