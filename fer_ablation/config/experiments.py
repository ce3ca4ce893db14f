"""The paper's ablation as data: the tables of `experiments/<name>.yaml` and the models of `conf/configuration/`.

A configuration is a Hydra config group option (`configuration=sc_ca`), one file per model that sets
`model.attention`, the stem, any placement and model options. The tables file (Hu et al. 2024,
Tables 1-3, plus a table of control arms) lists the configurations (`configurations`), the named
subsets the sweeps run (`sweeps`), lays them out as rows with the paper's labels and reported numbers,
and states the paper's claims. A configuration's model is read by composing it as a run would
(`config.compose`), through the same `model_identity` a run records -- no torch -- so the report runs
anywhere and cannot disagree with training about what a configuration builds.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fer_ablation import config


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
    configurations: dict[str, dict]  # name -> model_identity of the composed configuration, in sweep order
    baseline: str
    tables: list[Table] = field(default_factory=list)
    name: str = "paper"
    claims: list[Claim] = field(default_factory=list)
    sweeps: dict[str, list[str]] = field(default_factory=dict)  # sweep name -> its configurations

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
    return canonical_attention(attention), stem, _frozen(options or {})


def _frozen(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def split_attention(attention) -> list[str]:
    """The module names of a `model.attention` value: `ca+simam` -> [ca, simam] (lower case, as written);
    `none` -> []. The one reading of the name, for the models and the report alike; raises ValueError on
    an empty value, `none` inside a combination, or a module named twice."""
    if not isinstance(attention, str) or not attention.strip():
        raise ValueError(f"attention must be a string: 'none', a module name, or several joined by '+'; got {attention!r}")
    names = [part.strip().lower() for part in attention.split("+")]
    if names == ["none"]:
        return []
    if "none" in names or "" in names:
        raise ValueError(f"attention {attention!r}: 'none' stands alone, and '+' joins module names (e.g. 'ca+simam')")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"attention {attention!r} names {', '.join(duplicates)} more than once")
    return names


def canonical_attention(attention: str) -> str:
    """`simam+ca` and `ca+simam` name the same model; `none` stays `none`."""
    return "+".join(sorted(split_attention(attention))) or "none"


def model_identity(cfg: DictConfig) -> dict:
    """A composed config's model as metrics.json records it and the tables match runs by: attention, stem,
    placement overrides (null placements dropped) and model options (`model.options`)."""
    placement = OmegaConf.to_container(cfg.model.placement, resolve=True) or {}
    return {
        "attention": str(cfg.model.attention),
        "stem": str(cfg.stem.name),
        "placement": {k: v for k, v in placement.items() if v is not None},
        "options": OmegaConf.to_container(cfg.model.options, resolve=True) or {},
    }


def configuration_model(name: str) -> dict:
    """`model_identity` of `conf/configuration/<name>.yaml`, composed as `configuration=<name>` would run."""
    return copy.deepcopy(_configuration_model(name, config.CONFIG_DIR))


@functools.cache
def _configuration_model(name: str, config_dir: Path) -> dict:
    directory = config_dir / "configuration"
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no configuration file {path}; available: {sorted(p.stem for p in directory.glob('*.yaml'))}")
    cfg = config.compose([f"configuration={name}"])
    if cfg.get("configuration") != name:
        raise ValueError(f"{path}: `configuration: {cfg.get('configuration')}`; expected `configuration: {name}` "
                         "(the file's name, recorded in metrics.json)")
    return model_identity(cfg)


def load(name: str = "paper", directory: Path | str | None = None) -> Ablation:
    """The tables file `experiments/<name>.yaml` with the models of the configurations it names."""
    path, raw = config.read_tables_file(name, directory)
    names = raw.get("configurations")
    if not isinstance(names, list) or len(set(names)) != len(names):
        raise ValueError(f"{path}: `configurations` must be a list of distinct names, got {names!r}")
    sweeps = {sweep: config.sweep_configurations(sweep, name, directory) for sweep in raw.get("sweeps") or {}}
    configurations = {n: configuration_model(n) for n in names}
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
    claims = [_claim(path, c, configurations) for c in raw.get("claims") or []]
    return Ablation(configurations=configurations, baseline=raw["baseline"], tables=tables, name=name,
                    claims=claims, sweeps=sweeps)


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
