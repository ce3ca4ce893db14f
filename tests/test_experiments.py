from fer_ablation import experiments


def test_paper_tables_are_complete_and_deduplicated():
    ablation = experiments.load("paper")
    assert [t.name for t in ablation.tables] == ["table1", "table2", "table3"]
    assert [len(t.rows) for t in ablation.tables] == [4, 6, 5]  # 15 rows ...
    used = {row.configuration for t in ablation.tables for row in t.rows}
    assert used == set(ablation.configurations) and len(used) == 11  # ... 11 distinct models
    assert ablation.baseline == "baseline"
    table3 = {r.label: r.reported["accuracy"] for r in ablation.tables[2].rows}
    assert table3["ResNet50+CA+SimAM+SC"] == 76.91


def test_configuration_lookup_ignores_attention_order():
    ablation = experiments.load("paper")
    assert ablation.configuration_of("simam+ca", "sc") == "full"
    assert ablation.configuration_of("ca+simam", "stride2") == "simam_ca"
    assert ablation.configuration_of("none", "stride2") == "baseline"
    assert ablation.configuration_of("se", "stride2") is None
