import pytest
import yaml

from fer_ablation import experiments
from fer_ablation.config import CONFIG_DIR


def test_paper_tables_are_complete_and_deduplicated():
    ablation = experiments.load("paper")
    assert [t.name for t in ablation.tables] == ["table1", "table2", "table3", "controls"]
    assert [len(t.rows) for t in ablation.tables] == [4, 6, 5, 7]
    used = {row.configuration for t in ablation.tables for row in t.rows}
    assert used == set(ablation.configurations) and len(used) == 13  # the paper's 11 models and 2 controls
    assert ablation.baseline == "baseline"
    table3 = {r.label: r.reported["accuracy"] for r in ablation.tables[2].rows}
    assert table3["ResNet50+CA+SimAM+SC"] == 76.91
    assert ablation.configurations["full"] == {"attention": "ca+simam", "stem": "sc"}
    assert ablation.configurations["simam"] == {"attention": "simam", "stem": "stride2"}
    assert ablation.label_of("sc_ca") == "ResNet50+SC+CA"
    assert all(not row.reported for row in ablation.tables[3].rows)  # the paper ran no controls
    assert ablation.paper_accuracy("ca") == (75.13, "Table 1") and ablation.paper_accuracy("gate") is None


def test_configuration_lookup_ignores_attention_order_but_not_options():
    ablation = experiments.load("paper")
    assert ablation.configuration_of("simam+ca", "sc") == "full"
    assert ablation.configuration_of("ca+simam", "stride2") == "simam_ca"
    assert ablation.configuration_of("none", "stride2") == "baseline"
    assert ablation.configuration_of("none", "stride2", {"zero_init_residual": True}) == "zero_init"
    assert ablation.configuration_of("none", "stride2", {"zero_init_residual": False}) is None
    assert ablation.configuration_of("gate", "stride2") == "gate"
    assert ablation.configuration_of("se", "stride2") is None


@pytest.mark.parametrize("experiment", ["paper", "demo"])
def test_sweeps_run_the_configurations_the_tables_file_names(experiment):
    sweep = yaml.safe_load((CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text())["hydra"]["sweeper"]["params"]
    assert sweep["configuration"].split(",") == list(experiments.load("paper").configurations)


def test_demo_sweep_runs_every_seed_0_before_seed_1():
    params = list(yaml.safe_load((CONFIG_DIR / "experiment" / "demo.yaml").read_text())["hydra"]["sweeper"]["params"])
    assert params.index("seed") < params.index("configuration")  # Hydra's basic sweeper: first key varies slowest


def test_every_configuration_file_is_named_by_the_tables_file():
    files = sorted(p.stem for p in (CONFIG_DIR / "configuration").glob("*.yaml"))
    assert files == sorted(experiments.load("paper").configurations)


def test_bad_configuration_files_name_file_and_value(tmp_path):
    (tmp_path / "odd.yaml").write_text("configuration: odd\nmodel: {attention: ca, pretrained: imagenet}\n")
    with pytest.raises(ValueError, match=r"odd.yaml.*model.pretrained"):
        experiments.read_configuration("odd", tmp_path)
    (tmp_path / "misnamed.yaml").write_text("configuration: other\nmodel: {attention: ca}\n")
    with pytest.raises(ValueError, match=r"misnamed.yaml.*configuration: misnamed"):
        experiments.read_configuration("misnamed", tmp_path)
    with pytest.raises(FileNotFoundError, match="nothere"):
        experiments.read_configuration("nothere", tmp_path)


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
    text = (experiments.EXPERIMENTS_DIR / "paper.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(text.split("\nclaims:")[0] + f"\nclaims:\n  - {claim}\n")
    with pytest.raises(ValueError, match=message) as err:
        experiments.load("bad", tmp_path)
    assert "bad.yaml" in str(err.value)
