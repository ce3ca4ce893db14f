import shutil

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fer_ablation import config
from fer_ablation.config import experiments
from fer_ablation.config import CONFIG_DIR, EXPERIMENTS_DIR


def test_paper_tables_are_complete_and_deduplicated():
    ablation = experiments.load("paper")
    assert [t.name for t in ablation.tables] == ["table1", "table2", "table3", "controls"]
    assert [len(t.rows) for t in ablation.tables] == [4, 6, 5, 7]
    used = {row.configuration for t in ablation.tables for row in t.rows}
    assert used == set(ablation.configurations) and len(used) == 13  # the paper's 11 models and 2 controls
    assert ablation.baseline == "baseline"
    table3 = {r.label: r.reported["accuracy"] for r in ablation.tables[2].rows}
    assert table3["ResNet50+CA+SimAM+SC"] == 76.91
    default_options = OmegaConf.to_container(config.compose().model.options)
    assert ablation.configurations["full"] == {"attention": "ca+simam", "stem": "sc", "placement": {},
                                               "options": default_options}
    assert ablation.configurations["simam"]["attention"] == "simam" and ablation.configurations["simam"]["stem"] == "stride2"
    assert ablation.configurations["plain_init"]["options"]["zero_init_residual"] is False
    assert ablation.configurations["baseline"]["options"]["zero_init_residual"] is None  # the rule: zero from scratch
    assert ablation.label_of("sc_ca") == "ResNet50+SC+CA"
    assert all(not row.reported for row in ablation.tables[3].rows)  # the paper ran no controls
    assert ablation.paper_accuracy("ca") == (75.13, "Table 1") and ablation.paper_accuracy("gate") is None


def test_configuration_lookup_ignores_attention_order_but_not_options():
    ablation = experiments.load("paper")
    options = ablation.configurations["baseline"]["options"]  # conf/model/resnet50.yaml's
    assert ablation.configuration_of("simam+ca", "sc", options) == "full"
    assert ablation.configuration_of("ca+simam", "stride2", options) == "simam_ca"
    assert ablation.configuration_of("none", "stride2", options) == "baseline"
    assert ablation.configuration_of("none", "stride2", {**options, "zero_init_residual": False}) == "plain_init"
    assert ablation.configuration_of("ca", "stride2", {**options, "ca": {"reduction": 8}}) is None
    assert ablation.configuration_of("gate", "stride2", options) == "gate"
    assert ablation.configuration_of("se", "stride2", options) is None


@pytest.mark.parametrize("experiment", ["paper", "demo"])
def test_sweeps_take_their_configurations_from_the_tables_file(experiment):
    """Hydra's sweeper reads `${sweep:<experiment>,${ablation}}`: the tables file's named sweep, in its order."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    swept = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)["configuration"].split(",")
    ablation = experiments.load(cfg.ablation)
    assert swept == ablation.sweeps[experiment]
    assert set(swept) <= set(ablation.configurations)


def test_a_sweep_naming_an_unlisted_configuration_fails_naming_the_file(tmp_path):
    raw = yaml.safe_load((EXPERIMENTS_DIR / "paper.yaml").read_text())
    raw["sweeps"]["demo"] = ["baseline", "nope"]
    (tmp_path / "odd.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"odd.yaml: sweeps.demo names \['nope'\]"):
        config.sweep_configurations("demo", "odd", tmp_path)
    with pytest.raises(ValueError, match=r"odd.yaml: no sweep 'smoke'.*available: \['demo', 'demo_full', 'paper'\]"):
        config.sweep_configurations("smoke", "odd", tmp_path)
    with pytest.raises(ValueError, match="nope"):
        experiments.load("odd", tmp_path)


def test_demo_sweep_runs_every_seed_0_before_seed_1():
    params = list(yaml.safe_load((CONFIG_DIR / "experiment" / "demo.yaml").read_text())["hydra"]["sweeper"]["params"])
    assert params.index("seed") < params.index("configuration")  # Hydra's basic sweeper: first key varies slowest


def test_every_configuration_file_is_named_by_the_tables_file():
    files = sorted(p.stem for p in (CONFIG_DIR / "configuration").glob("*.yaml"))
    assert files == sorted(experiments.load("paper").configurations)


def test_a_configuration_is_read_by_composing_it(tmp_path, monkeypatch):
    """What a run would build, keys the hand-written reader never saw included; a misnamed file fails."""
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    (conf / "configuration" / "odd.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /stem: sc\nconfiguration: odd\n"
        "model: {attention: simam+ca, placement: {simam: blocks}, options: {ca: {reduction: 8}}}\n")
    (conf / "configuration" / "misnamed.yaml").write_text("# @package _global_\nconfiguration: other\nmodel: {attention: ca}\n")
    monkeypatch.setattr(config, "CONFIG_DIR", conf)
    odd = experiments.configuration_model("odd")
    assert (odd["attention"], odd["stem"], odd["placement"]) == ("simam+ca", "sc", {"simam": "blocks"})
    assert odd["options"]["ca"] == {"reduction": 8}
    with pytest.raises(ValueError, match=r"misnamed.yaml.*configuration: misnamed"):
        experiments.configuration_model("misnamed")
    with pytest.raises(FileNotFoundError, match="nothere"):
        experiments.configuration_model("nothere")


def test_claims_are_parsed_with_their_rules():
    claims = {c.name: c for c in experiments.load("paper").claims}
    assert len(claims) >= 7
    assert (claims["ca_improves"].rule, claims["ca_improves"].model, claims["ca_improves"].over) == (
        "improves", "ca", ("baseline",))
    assert claims["sc_ca_beats_both"].over == ("sc", "ca")
    assert claims["simam_best_single"].rule == "best_of" and "simam" not in claims["simam_best_single"].over
    assert len(claims["full_best_overall"].over) == 10
    assert claims["ca_beats_gate"].over == ("gate",) and claims["ca_beats_gate"].effect_over == "baseline"


@pytest.mark.parametrize("claim, message", [
    ("{name: x, claim: t, improves: {model: ca, over: nope}}", "names configuration.*nope"),
    ("{name: x, claim: t, improves: {model: ca, over: [sc, baseline]}}", "one configuration"),
    ("{name: x, claim: t, best_of: {model: ca, among: [sc]}}", "must contain its model"),
    ("{name: x, claim: t}", "exactly one rule"),
    ("{name: x, claim: t, improves: {model: ca, over: sc}, beats_all: {model: ca, over: [sc]}}", "exactly one rule"),
])
def test_bad_claims_fail_naming_the_file_and_claim(tmp_path, claim, message):
    text = (EXPERIMENTS_DIR / "paper.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(text.split("\nclaims:")[0] + f"\nclaims:\n  - {claim}\n")
    with pytest.raises(ValueError, match=message) as err:
        experiments.load("bad", tmp_path)
    assert "bad.yaml" in str(err.value)
