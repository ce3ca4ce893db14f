"""The paper's ablation as data: the tables of `experiments/<name>.yaml` and the models of `conf/configuration/`.

A configuration is a Hydra config group option (`configuration=sc_ca`), one file per model that sets
`model.attention`, the stem, any placement and model options. The tables file (Hu et al. 2024,
Tables 1-3, plus a table of control arms) names the configurations it uses, lays them out as rows
with the paper's labels and reported numbers, and states the paper's claims. This module reads both
with plain YAML -- no Hydra, no torch -- so the report runs anywhere.
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


RULES = ("improves", "beats_all", "best_of")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: `model` against each configuration of `over` (see RULES).

    improves: model > over[0]; beats_all: model > each of over; best_of: model > each other
    configuration of the `among` list (stored in `over`). `effect_over`: the paper made no such
    comparison (a control it did not run), so its gain of `model` over this configuration stands in.
    """

    name: str
    text: str
    rule: str
    model: str
    over: tuple[str, ...]
    effect_over: str | None = None


@dataclass(frozen=True)
class Ablation:
    configurations: dict[str, dict]  # name -> {"attention", "stem", optional "placement"}, in sweep order
    baseline: str
    tables: list[Table] = field(default_factory=list)
    name: str = "paper"
    claims: list[Claim] = field(default_factory=list)

    def configuration_of(self, attention: str, stem: str, options: dict | None = None) -> str | None:
        """The configuration name whose model matches (attention order does not matter; model options must be equal)."""
        key = model_key(attention, stem, options)
        for name, conf in self.configurations.items():
            if model_key(conf["attention"], conf["stem"], conf.get("options")) == key:
                return name
        return None

    def paper_accuracy(self, configuration: str, prefer: tuple[str, ...] = ()) -> tuple[float, str] | None:
        """The accuracy the paper reports for a configuration and where ("Table 1": the part of the
        table's title before the colon), from the first table named in `prefer` that has it, else
        from the first table that has it."""
        found = {}
        for table in self.tables:
            for row in table.rows:
                if row.configuration == configuration and "accuracy" in row.reported:
                    found.setdefault(table.name, (float(row.reported["accuracy"]), table.title.split(":")[0]))
        for name in [*prefer, *found]:
            if name in found:
                return found[name]
        return None

    def tables_with(self, configuration: str) -> tuple[str, ...]:
        """The names of the tables that report an accuracy for the configuration."""
        return tuple(t.name for t in self.tables
                     if any(r.configuration == configuration and "accuracy" in r.reported for r in t.rows))

    def label_of(self, configuration: str) -> str:
        """How the paper prints a configuration: its first row's label, else its name."""
        for table in self.tables:
            for row in table.rows:
                if row.configuration == configuration:
                    return row.label
        return configuration


def model_key(attention: str, stem: str, options: dict | None = None) -> tuple:
    """What makes two runs the same model here: attention (in any order), stem and model options."""
    return canonical_attention(attention), stem, tuple(sorted((options or {}).items()))


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
    """{"attention", "stem", optional "placement" and "options"} of `conf/configuration/<name>.yaml`."""
    directory = Path(directory or CONFIGURATIONS_DIR)
    path = directory / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in directory.glob("*.yaml"))
        raise FileNotFoundError(f"no configuration file {path}; available: {available}")
    raw = yaml.safe_load(path.read_text()) or {}
    # This reader sees only these keys; anything else would change the model behind its back.
    unexpected = sorted(set(raw) - {"defaults", "configuration", "model"}) + \
        sorted(f"model.{k}" for k in set(raw.get("model") or {}) - {"attention", "placement", "options"})
    if unexpected:
        raise ValueError(f"{path}: keys {unexpected} are not understood; expected defaults (override /stem), "
                         "configuration, model.attention, model.placement and model.options")
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
    options = model.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{path}: model.options is {options!r}; expected a mapping of model options")
    if options:
        conf["options"] = dict(options)
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
    for conf_name, conf in configurations.items():
        if not isinstance(conf.get("options", {}), dict):
            raise ValueError(f"{path}: configuration {conf_name!r} has options {conf['options']!r}; expected a mapping")
    claims = [_claim(path, c, configurations) for c in raw.get("claims") or []]
    return Ablation(configurations=configurations, baseline=raw["baseline"], tables=tables, name=name, claims=claims)


def _claim(path: Path, raw: dict, configurations: dict) -> Claim:
    rules = [r for r in RULES if r in raw]
    where = f"{path}: claim {raw.get('name', raw)!r}"
    if len(rules) != 1 or "name" not in raw or "claim" not in raw:
        raise ValueError(f"{where}: needs name, claim and exactly one rule of {RULES}; got keys {sorted(raw)}")
    rule = rules[0]
    body = raw[rule]
    model = body.get("model")
    if rule == "best_of":
        over = [c for c in body.get("among", []) if c != model]
        if model not in body.get("among", []):
            raise ValueError(f"{where}: best_of.among must contain its model {model!r}, got {body.get('among')!r}")
    else:
        over = body.get("over")
        over = [over] if isinstance(over, str) else list(over or [])
    if rule == "improves" and len(over) != 1:
        raise ValueError(f"{where}: improves compares with one configuration, got over={over!r}")
    named = [model, *over] + ([raw["effect_over"]] if raw.get("effect_over") else [])
    if not over:
        raise ValueError(f"{where}: compares {model!r} with no configuration")
    unknown = [c for c in named if c not in configurations]
    if unknown:
        raise ValueError(f"{where}: names configuration(s) {unknown!r}; expected some of {sorted(configurations)}")
    return Claim(raw["name"], raw["claim"], rule, model, tuple(over), raw.get("effect_over"))
