"""fer_ablation.report (python -m fer_ablation.collect) on fabricated run folders: full, partial, broken and
multi-data sweeps; and the committed tables regenerated from the committed demo runs."""

import ast
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from fer_ablation import statistics as stats
from fer_ablation.cli import collect as cli
from fer_ablation.config import experiments
from fer_ablation.records.fingerprint import fingerprint_hash
from fer_ablation.report import render, tables
from fer_ablation.report.claims import claim_frames
from fer_ablation.report.runs import config_group, load_ablation, load_run, load_runs

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
N_VAL = 40
N_TEST = 40
PAPER = experiments.load("paper")
# Accuracy level each configuration's fabricated predictions are drawn around.
LEVEL = {"baseline": 0.55, "full": 0.9}


def reference_scores(targets, preds):
    """Accuracy and macro P/R/F1 by per-class loops (independent of fer_ablation.statistics)."""
    targets, preds = list(targets), list(preds)
    p_list, r_list, f_list = [], [], []
    for k in range(len(CLASSES)):
        tp = sum(t == k and p == k for t, p in zip(targets, preds))
        fp = sum(t != k and p == k for t, p in zip(targets, preds))
        fn = sum(t == k and p != k for t, p in zip(targets, preds))
        if tp + fp + fn:
            p_list.append(tp / (tp + fp) if tp + fp else 0.0)
            r_list.append(tp / (tp + fn) if tp + fn else 0.0)
            f_list.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": sum(t == p for t, p in zip(targets, preds)) / len(targets),
        "precision_macro": sum(p_list) / len(p_list),
        "recall_macro": sum(r_list) / len(r_list),
        "f1_macro": sum(f_list) / len(f_list),
        "n": len(targets),
    }


def _predictions(rng, n, level, split, exact=False):
    """Predictions right on a random `level` share of the samples, or (exact) on the first round(level n)."""
    targets = np.arange(n) % len(CLASSES)
    correct = np.arange(n) < round(level * n) if exact else rng.random(n) < level
    preds = np.where(correct, targets, (targets + rng.integers(1, len(CLASSES), n)) % len(CLASSES))
    probs = rng.dirichlet(np.ones(len(CLASSES)), n)
    top = probs.argmax(1)
    rows = np.arange(n)
    probs[rows, top], probs[rows, preds] = probs[rows, preds], probs[rows, top].copy()  # argmax = pred
    frame = pd.DataFrame({"split": split, "index": rows, "path": [f"{split}/{i}.png" for i in rows],
                          "target": targets, "pred": preds})
    for k, name in enumerate(CLASSES):
        frame[f"prob_{name}"] = probs[:, k]
    return frame


def write_run(root, configuration, seed, *, data="synthetic", image_size=48, status="completed", error=None,
              n_val=N_VAL, n_test=None, n_private=0, epochs=4, level=None, name_configuration=True, placement=None,
              legacy=False, recipe=None, folder=None, exact=False):
    """A run folder as training writes it (contract: metrics.json, predictions.csv, predictions_last.csv,
    history.csv, .hydra/). `legacy`: records as written before split roles (val selected and reported, no
    fingerprint, no last-epoch predictions; no test split unless n_test). `recipe`: fingerprint fields that
    differ from the default recipe. `exact`: each split right on exactly round(level n) samples."""
    conf = PAPER.configurations[configuration]
    n_test = (0 if legacy else N_TEST) if n_test is None else n_test
    path = root / (folder or f"{data}-{image_size}px") / f"{configuration}_seed{seed}"
    (path / ".hydra").mkdir(parents=True)
    overrides = [f"configuration={configuration}", f"seed={seed}", f"data={data}", f"data.image_size={image_size}"]
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
        "seed": seed, "configuration": configuration, "group": "${data.name}-${data.image_size}px",
        "data": {"name": data, "image_size": image_size}, "model": {"attention": conf["attention"]},
    }))
    metrics = {
        "status": status, "error": error, "configuration": configuration if name_configuration else None,
        "attention": conf["attention"], "stem": conf["stem"], "placement": placement or {},
        "options": dict(conf.get("options", {})), "seed": seed,
        "data": data, "image_size": image_size, "num_classes": 7, "classes": list(CLASSES),
        "params": 23_520_000 + 1000 * len(configuration), "macs": 190_000_000, "train_images_per_s": 900.0 + seed,
        "wall_s": 12.0, "epochs_completed": epochs, "max_epochs": epochs, "device": "cpu",
        "versions": {}, "git_commit": None, "skipped_files": 0,
    }
    sizes = {"val": n_val, "test": n_test, "private": n_private}
    if not legacy:
        fields = {"data": {"name": data, "split_seed": 0}, "image_size": image_size, "max_epochs": epochs,
                  "optimizer": {"lr": 0.001}, "pretrained": None, **(recipe or {})}
        metrics.update(
            splits={"train": {"role": "train", "source": "train/ folder", "n": 200},
                    **{s: {"role": "select" if s == "val" else "report", "source": f"{s}/ folder", "n": n}
                       for s, n in sizes.items() if n}},
            report_split="test", fingerprint={"hash": fingerprint_hash(fields), "fields": fields},
            duplicates={"policy": "drop", "train": {"within": 0},
                        **{s: {"of_train": 0, "different_label": 0, "dropped": 0, "examples": []} for s in sizes}})
    if status == "completed":
        rng = np.random.default_rng(zlib.crc32(f"{data}-{image_size}-{configuration}-{seed}".encode()))
        level = level if level is not None else LEVEL.get(configuration, 0.7)
        for select, shift in (("best", 0.0), ("last", -0.05)):
            if legacy and select == "last":
                metrics["last"] = {"epoch": epochs, **{s: {**v, "accuracy": v["accuracy"] - 0.025}
                                                       for s, v in metrics["best"].items() if s != "epoch"}}
                continue
            pred = pd.concat([_predictions(rng, n, level + shift, s, exact) for s, n in sizes.items() if n],
                             ignore_index=True)
            pred.to_csv(path / ("predictions.csv" if select == "best" else "predictions_last.csv"), index=False)
            scores = {split: {**reference_scores(rows["target"], rows["pred"]), "loss": 0.9, "per_class_f1": {}}
                      for split, rows in pred.groupby("split")}
            metrics[select] = {"epoch": epochs - 1 if select == "best" else epochs, **scores}
        acc = metrics["best"]["val"]["accuracy"]
        pd.DataFrame({
            "epoch": np.arange(epochs), "train_loss": np.linspace(2.0, 0.8, epochs),
            "train_accuracy": np.linspace(0.2, acc, epochs), "val_loss": np.linspace(1.9, 0.9, epochs),
            "val_accuracy": np.linspace(0.2, acc, epochs), "val_precision_macro": 0.5, "val_recall_macro": 0.5,
            "val_f1_macro": 0.5, "lr": 1e-3, "epoch_s": 1.0,
        }).to_csv(path / "history.csv", index=False)
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def write_sweep(root, seeds=(0, 1, 2), **kwargs):
    return {(c, s): write_run(root, c, s, **kwargs) for c in PAPER.configurations for s in seeds}


def _md_rows(md, n_cells):
    """The first n_cells cells of every Markdown table row, stripped of padding (an escaped \\| stays in its cell)."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:n_cells + 1]]
            for line in md.splitlines() if line.startswith("|")]


def _row(df, configuration, data="synthetic"):
    rows = df[(df["configuration"] == configuration) & (df["data"] == data)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_full_sweep_every_paper_row_with_its_numbers(tmp_path):
    runs = write_sweep(tmp_path / "outputs")
    frames = tables.collect([tmp_path / "outputs"], tmp_path / "tables")
    for table in PAPER.tables:
        df = frames[table.name]
        assert df["label"].tolist() == [r.label for r in table.rows]
        for row, (_, got) in zip(table.rows, df.iterrows()):
            assert got["seeds"] == "3/3" and got["notes"] == ""
            for key, value in row.reported.items():
                assert got[f"paper_{key}_pct"] == value
            # mean and std over seeds recomputed from the predictions, independently
            accs = [reference_scores(*pd.read_csv(runs[(row.configuration, s)] / "predictions.csv")
                                     .query("split == 'test'")[["target", "pred"]].T.values)["accuracy"] for s in range(3)]
            assert got["accuracy_pct"] == pytest.approx(100 * np.mean(accs))
            assert got["accuracy_std_pct"] == pytest.approx(100 * np.std(accs, ddof=1))
            assert got["accuracy_ci_method"] == "t"
            if row.configuration == "baseline":
                assert got["is_baseline"] and np.isnan(got["delta_accuracy_pp"])
            else:
                base = _row(df, "baseline")
                assert got["delta_accuracy_pp"] == pytest.approx(got["accuracy_pct"] - base["accuracy_pct"])
                assert got["paired_seeds"] == 3 and got["paired_samples"] == N_TEST
                assert got["mcnemar"].count("seed") == 3
    full = _row(frames["table3"], "full")
    assert full["bootstrap_ci_low_pp"] > 0 and full["p_bootstrap"] < 0.05  # 0.9 vs 0.55 on 3 x 40 samples ...
    assert full["delta_ci_low_pp"] > 0 and full["p_seeds"] < 0.05  # ... and over the 3 seeds, before Holm
    assert full["p_holm"] >= full["p_seeds"] and full["holm_m"] == len(PAPER.configurations) - 1  # every configuration but the baseline
    assert full["significant"] == (full["p_holm"] < 0.05)
    assert full["params_m"] == pytest.approx(23.524) and full["macs_g"] == pytest.approx(0.19)
    assert full["train_images_per_s"] == pytest.approx(901.0)
    for name in ("table1", "table2", "table3"):
        for suffix in ("md", "csv", "tex"):
            assert (tmp_path / "tables" / f"{name}.{suffix}").stat().st_size > 0
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert ["ResNet50+SC+CA", "3/3"] in _md_rows(md, 2) and "75.40" in md and "73.81" in md
    assert "Report split: test (test/ folder; n = 40); checkpoint selected on val (val/ folder)." in md
    tex = (tmp_path / "tables" / "table2.tex").read_text()
    assert r"\begin{tabular}" in tex and "BAM\\_ResNet50" in tex
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "## synthetic-48px" in summary and "McNemar" in summary and "Runs not in the statistics" in summary
    assert (frames["runs"]["status"] == "completed").all() and len(frames["runs"]) == len(PAPER.configurations) * 3


def test_partial_sweep_keeps_every_row_and_says_why(tmp_path):
    out = tmp_path / "multirun"
    for c in ("baseline", "sc"):
        for s in (0, 1, 2):
            if (c, s) != ("sc", 2):
                write_run(out, c, s)
    write_run(out, "ca", 0)
    write_run(out, "ca", 1, status="failed", error="CUDA out of memory")
    write_run(out, "sc_ca", 0, status="running")
    corrupt = write_run(out, "bam", 0)
    text = (corrupt / "metrics.json").read_text()
    (corrupt / "metrics.json").write_text(text[: len(text) // 2])  # half-written
    no_predictions = write_run(out, "eca", 0)
    (no_predictions / "predictions.csv").unlink()

    frames = tables.collect([out], tmp_path / "tables")
    t1, t2 = frames["table1"], frames["table2"]
    assert len(t1) == 4 and len(t2) == 6 and len(frames["table3"]) == 5
    assert _row(t1, "baseline")["seeds"] == "3/3"
    sc = _row(t1, "sc")
    assert sc["seeds"] == "2/3" and "missing seed 2" in sc["notes"] and sc["paired_seeds"] == 2
    ca = _row(t1, "ca")
    assert ca["seeds"] == "1/3" and "failed: seed 1: CUDA out of memory" in ca["notes"]
    assert ca["accuracy_ci_method"] == "Wilson"
    sc_ca = _row(t1, "sc_ca")
    assert sc_ca["seeds"] == "0/3" and "running: seed 0" in sc_ca["notes"] and np.isnan(sc_ca["accuracy_pct"])
    assert "unreadable: seed 0: no predictions.csv" in _row(t2, "eca")["notes"]
    assert _row(t2, "bam")["notes"] == "no runs"  # its only run is unreadable: listed in the summary
    assert _row(t2, "acmix")["notes"] == "no runs"
    statuses = frames["runs"].set_index("path")["status"]
    assert statuses[str(corrupt)] == "unreadable" and statuses[str(no_predictions)] == "unreadable"
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert f"unreadable: {corrupt}" in summary and "half-written" in summary
    assert "failed:" in summary and "running:" in summary
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert ["ResNet50+SC", "2/3"] in _md_rows(md, 2) and ["ResNet50+SC+CA", "0/3"] in _md_rows(md, 2)


def test_load_run_rescores_and_flags_inconsistent_metrics(tmp_path):
    good = write_run(tmp_path, "simam", 0, n_test=20)
    run = load_run(good)
    assert run.status == "completed" and run.reason is None and run.configuration == "simam"
    val = run.split_predictions("val")
    assert stats.macro_scores(val["target"], val["pred"], 7)["accuracy"] == run.scores()["accuracy"]
    assert run.overrides[0] == "configuration=simam" and run.group == "synthetic-48px"

    bad = write_run(tmp_path, "eca", 0)
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["best"]["val"]["accuracy"] += 0.0125  # a per-batch average, say
    (bad / "metrics.json").write_text(json.dumps(metrics))
    run = load_run(bad)
    assert run.status == "inconsistent" and "val accuracy" in run.reason
    frames = tables.collect([tmp_path], tmp_path / "tables")
    assert "inconsistent: seed 0" in _row(frames["table2"], "eca")["notes"]
    assert _row(frames["table2"], "eca")["seeds"] == "0/1"
    assert "inconsistent:" in (tmp_path / "tables" / "summary.md").read_text()
    assert load_run(tmp_path / "nothing-here") is None


def test_configuration_from_model_and_placement_overrides(tmp_path):
    assert load_run(write_run(tmp_path, "simam_ca", 0, name_configuration=False)).configuration == "simam_ca"
    odd = load_run(write_run(tmp_path, "simam", 1, name_configuration=False, placement={"simam": "blocks"}))
    assert odd.configuration is None and "placement" in odd.unmatched
    tables.collect([tmp_path], tmp_path / "tables")
    assert "not in the experiment file" in (tmp_path / "tables" / "summary.md").read_text()


def test_two_data_sets_kept_apart_with_a_second_report_split(tmp_path):
    paths = {}
    for c in ("baseline", "full"):
        for s in (0, 1):
            paths[c, s] = write_run(tmp_path, c, s, data="synthetic")
            write_run(tmp_path, c, s, data="fer2013", image_size=64, n_test=30, n_private=20,
                      level=0.3 if c == "full" else None)
    frames = tables.collect([tmp_path], tmp_path / "tables", select="best")
    t3 = frames["table3"]
    assert len(t3) == 10 and set(t3["data"]) == {"synthetic", "fer2013"}
    synth, fer = _row(t3, "full", "synthetic"), _row(t3, "full", "fer2013")
    assert synth["seeds"] == fer["seeds"] == "2/2"
    assert fer["accuracy_pct"] < 50 < synth["accuracy_pct"]  # never averaged together
    assert fer["second_n_seeds"] == 2 and synth["second_n_seeds"] == 0 and fer["second_split"] == "private"
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert md.count("## ") == 2 and "## fer2013-64px (fer2013, 64x64 px)" in md
    fer_section = md.split("## fer2013-64px")[1].split("## ")[0]
    assert "private Acc %" in fer_section and "private Acc %" not in md.split("## synthetic-48px")[1]
    # --select last: the last epoch's metrics and its own predictions (predictions_last.csv) for the paired test
    last = tables.collect([tmp_path], tmp_path / "last", select="last")
    last_accs = [reference_scores(*pd.read_csv(paths["full", s] / "predictions_last.csv")
                                  .query("split == 'test'")[["target", "pred"]].T.values)["accuracy"] for s in (0, 1)]
    got = _row(last["table3"], "full")
    assert got["accuracy_pct"] == pytest.approx(100 * np.mean(last_accs))
    base_accs = [reference_scores(*pd.read_csv(paths["baseline", s] / "predictions_last.csv")
                                  .query("split == 'test'")[["target", "pred"]].T.values)["accuracy"] for s in (0, 1)]
    assert got["delta_accuracy_pp"] == pytest.approx(100 * (np.mean(last_accs) - np.mean(base_accs)))
    assert "predictions_last.csv" in (tmp_path / "last" / "summary.md").read_text()


def test_mismatched_targets_are_not_paired(tmp_path):
    write_run(tmp_path, "baseline", 0)
    other = write_run(tmp_path, "sc", 0)
    pred = pd.read_csv(other / "predictions.csv")
    first_test = pred.index[pred["split"] == "test"][0]
    pred.loc[first_test, "target"], pred.loc[first_test, "pred"] = 3, 3
    pred.to_csv(other / "predictions.csv", index=False)
    metrics = json.loads((other / "metrics.json").read_text())
    test = pred[pred["split"] == "test"]
    metrics["best"]["test"].update(reference_scores(test["target"], test["pred"]))
    (other / "metrics.json").write_text(json.dumps(metrics))
    row = _row(tables.collect([tmp_path], tmp_path / "tables")["table1"], "sc")
    assert row["seeds"] == "1/1" and "targets differ" in row["notes"] and np.isnan(row["p_bootstrap"])


def test_cli_defaults_and_empty_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--out", "tables"]) == 2  # nothing under ./outputs or ./multirun yet
    assert "no run folder" in capsys.readouterr().err and not (tmp_path / "tables").exists()
    write_run(tmp_path / "outputs", "baseline", 0)
    write_run(tmp_path / "multirun", "sc", 0)
    assert cli.main(["--out", "tables", "--n-boot", "500"]) == 0
    assert "2 runs (2 completed)" in capsys.readouterr().out
    t1 = pd.read_csv(tmp_path / "tables" / "table1.csv")
    assert t1.loc[t1["configuration"] == "sc", "paired_seeds"].item() == 1


def test_collector_imports_no_training_stack():
    code = (
        "import sys, fer_ablation.collect, fer_ablation.report.tables, fer_ablation.statistics; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'wandb', 'torchvision'}); "
        "heavy += sorted(m for m in sys.modules if m.startswith(('fer_ablation.models', 'fer_ablation.train', 'fer_ablation.inference'))); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_takes_the_ablation_file_by_name(tmp_path, capsys):
    write_run(tmp_path / "runs", "baseline", 0)
    assert cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "t"), "--ablation", "paper", "--n-boot", "50"]) == 0
    assert "`experiments/paper.yaml`" in (tmp_path / "t" / "summary.md").read_text()
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "t"), "--ablation", "nonexistent"])
    with pytest.raises(SystemExit):  # the old name is gone: one name for the tables file in every CLI
        cli.main([str(tmp_path / "runs"), "--experiment", "paper"])
    assert "--experiment" in capsys.readouterr().err


def test_config_group_resolved_by_omegaconf():
    cfg = OmegaConf.create({"data": {"name": "fer2013", "image_size": 64}, "group": "x-${data.name}-${data.image_size}px"})
    assert config_group(cfg) == "x-fer2013-64px"
    assert config_group(OmegaConf.create({"group": "${data.name}"})) is None  # no such key
    assert config_group(OmegaConf.create({"group": "${not_registered_here:1}"})) is None
    assert config_group(OmegaConf.create({"seed": 0})) is None and config_group(None) is None


def test_committed_tables_regenerate_from_committed_runs(tmp_path):
    """results/tables is what `make tables` writes from results/runs/demo_full (figures aside): a change to
    the statistics or the writers that alters them fails here until the tables are regenerated.
    The committed runs are `make demo-full`'s: 3 seeds of every configuration, so every row gets a verdict
    column and every claim a verdict; a configuration without runs would make its rows and claims "not run"."""
    committed = ROOT / "results" / "tables"
    tables.collect([ROOT / "results" / "runs" / "demo_full"], tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir() if p.is_file() and p.name != "summary.md")
    assert written == sorted(p.name for p in committed.iterdir() if p.name != "summary.md")
    assert {"claims.md", "claims.csv", "controls.md"} <= set(written)
    for name in written:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name
    summary, figures = (committed / "summary.md").read_text().split("\n\n## Figures\n")
    assert (tmp_path / "summary.md").read_text() == summary + "\n"
    listed = re.findall(r"^- (\S+\.png)$", figures, flags=re.M)
    assert listed and all((ROOT / p).is_file() for p in listed)
    for name in ("table1", "table2", "table3", "controls"):
        rows = pd.read_csv(committed / f"{name}.csv")
        tested = rows["paired_seeds"] >= 3
        assert rows.loc[tested, "significant"].notna().all() and rows.loc[~tested, "significant"].isna().all(), name
    claims = pd.read_csv(committed / "claims.csv")
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive"}
    assert (claims["verdict"] == "not run").eq(claims["why"].str.startswith("no runs of")).all()


@pytest.mark.slow  # starting the wandb service takes ~7 s
def test_wandb_tables_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # conftest disables W&B for the session
    write_run(tmp_path / "runs", "baseline", 0)
    tables.collect([tmp_path / "runs"], tmp_path / "tables", use_wandb=True)
    assert list((tmp_path / "tables" / "wandb").glob("offline-run-*"))


READERS = {"read_csv", "read_json", "safe_load", "load", "loads", "read_text", "DictReader"}


@pytest.mark.parametrize("module", sorted(
    [*(ROOT / "fer_ablation" / "report").glob("*.py"), ROOT / "fer_ablation" / "gradcam.py"], key=str),
    ids=lambda p: p.name)
def test_run_files_are_parsed_by_records_only(module):
    """The report and gradcam read metrics.json, predictions.csv, history.csv and .hydra/ through records."""
    calls = [node.func for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.Call)]
    parsing = sorted({f"{ast.unparse(f.value)}.{f.attr}" for f in calls
                      if isinstance(f, ast.Attribute) and f.attr in READERS and ast.unparse(f.value) != "experiments"})
    assert parsing == [], f"{module.name} parses files itself: {parsing}"


def test_writers_escape_and_keep_cells_as_written():
    shown = pd.DataFrame({"Model": ["A_B", "x|y"], "Δ Acc (pp)": ["+0.50", "—"], "Acc %": ["60.10 ± 2.00", "75.40"],
                          "Notes": ["", "50% & more"]})
    md = render.markdown(shown)
    assert _md_rows(md, 3)[2:] == [["A_B", "+0.50", "60.10 ± 2.00"], ["x\\|y", "—", "75.40"]]  # no number parsing
    tex = render.latex(shown, "T_1")
    assert r"\caption{T\_1}" in tex and r"\begin{tabular}{lrr}" in tex
    assert r"A\_B & +0.50 & 60.10 $\pm$ 2.00 \\" in tex and r"x|y & -- & 75.40 \\" in tex
    assert r"Model & $\Delta$ Acc (pp) & Acc \% \\" in tex
    assert r"\footnotesize x|y: 50\% \& more" in tex and tex.endswith(r"\end{table}")


BASE = (0.40, 0.45, 0.50)  # the baseline's exact accuracy per seed in the verdict tests
SHIFT = {  # configuration -> its accuracy minus the baseline's, per seed (200 samples: steps of 0.005)
    "ca": (0.20, 0.205, 0.20), "sc": (-0.20, -0.20, -0.195), "simam": (0.305, 0.30, 0.30),
    "simam_ca": (0.25, 0.25, 0.255), "full": (0.35, 0.25, 0.40), "eca": (0.10, 0.0, -0.05),
}


def write_verdict_sweep(root, seeds=(0, 1, 2)):
    """Runs with exact per-seed accuracies: the baseline and the configurations of SHIFT."""
    for s in seeds:
        write_run(root, "baseline", s, n_val=200, n_test=200, level=BASE[s], exact=True)
        for c, shift in SHIFT.items():
            write_run(root, c, s, n_val=200, n_test=200, level=BASE[s] + shift[s], exact=True)


def test_seed_level_verdict_with_holm_over_the_group(tmp_path):
    from scipy import stats as scipy_stats

    write_verdict_sweep(tmp_path / "runs")
    frames = tables.collect([tmp_path / "runs"], tmp_path / "tables", n_boot=200)
    rows = {r["configuration"]: r for df in (frames["table1"], frames["table2"], frames["table3"])
            for _, r in df.iterrows()}
    accuracy = {c: [BASE[s] + shift[s] for s in range(3)] for c, shift in SHIFT.items()}
    p = {c: scipy_stats.ttest_rel(accuracy[c], BASE).pvalue for c in SHIFT}
    # Holm by hand over the 6 configurations compared with the baseline (the controls have no runs)
    ordered = sorted(p, key=p.get)
    holm, running = {}, 0.0
    for i, c in enumerate(ordered):
        running = max(running, min(1.0, (6 - i) * p[c]))
        holm[c] = running
    for c in SHIFT:
        r = rows[c]
        diffs = np.array(accuracy[c]) - np.array(BASE)
        assert r["delta_accuracy_pp"] == pytest.approx(100 * diffs.mean())
        assert r["delta_accuracy_seeds_pp"] == "; ".join(f"seed {s}: {100 * d:+.2f}" for s, d in enumerate(diffs))
        low, high = scipy_stats.t.interval(0.95, 2, loc=diffs.mean(), scale=diffs.std(ddof=1) / np.sqrt(3))
        assert (r["delta_ci_low_pp"], r["delta_ci_high_pp"]) == pytest.approx((100 * low, 100 * high))
        assert r["p_seeds"] == pytest.approx(p[c]) and r["p_holm"] == pytest.approx(holm[c]) and r["holm_m"] == 6
        assert r["significant"] == (holm[c] < 0.05) and r["paired_seeds"] == 3
        assert 0 < r["p_seeds_permutation"] <= 1 and not np.isnan(r["p_f1_seeds"]) and r["holm_f1_m"] == 6
    assert rows["ca"]["significant"] and rows["sc"]["significant"] and not rows["eca"]["significant"]
    assert rows["sc"]["delta_accuracy_pp"] < 0  # significant in the wrong direction: still "yes" in Sig.
    # the same configuration in two tables is one test with one Holm p
    assert _row(frames["table1"], "ca")["p_holm"] == _row(frames["table3"], "ca")["p_holm"]
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert ["ResNet50+CA", "3/3"] in _md_rows(md, 2) and "| yes " in md
    assert "Holm-Bonferroni over the 6 configuration(s)" in md and "shown only with ≥ 3 seed pairs" in md
    assert "only 2 seed pair" not in md
    csv = pd.read_csv(tmp_path / "tables" / "table1.csv")
    for column in ("delta_accuracy_seeds_pp", "p_seeds", "p_holm", "significant", "delta_f1_pp", "p_f1_seeds",
                   "p_f1_holm", "significant_f1", "p_bootstrap", "mcnemar"):
        assert column in csv.columns, column


def test_two_seeds_never_significant(tmp_path):
    write_verdict_sweep(tmp_path / "runs", seeds=(0, 1))
    frames = tables.collect([tmp_path / "runs"], tmp_path / "tables", n_boot=200)
    for name in ("table1", "table2", "table3", "controls"):
        compared = frames[name][~frames[name]["is_baseline"]]
        assert compared["significant"].isna().all() and compared["significant_f1"].isna().all()
    assert _row(frames["table1"], "ca")["p_seeds"] < 0.05  # small p, yet no verdict on 2 pairs
    md = (tmp_path / "tables" / "table1.md").read_text()
    sig = [row[-1] for row in _md_rows(md, 15)[2:]]
    assert sig == ["—"] * 4
    assert 'Here 2 row(s) have only 2 seed pair(s), so Sig. is "—"' in md
    assert "1 row(s) have no seed pair with the baseline" in md  # SC+CA: no runs
    assert set(frames["claims"]["verdict"]) <= {"inconclusive", "not run"}
    assert (frames["claims"]["why"].str.contains("2 seed pairs; a verdict needs ≥ 3")
            | frames["claims"]["why"].str.contains("no seed") | frames["claims"]["why"].str.startswith("no runs of")).all()


def test_a_plain_init_run_never_counts_as_the_baseline(tmp_path):
    run = write_run(tmp_path, "plain_init", 0)
    assert load_run(run).configuration == "plain_init"
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["configuration"] = "baseline"  # named baseline, but its model has another initialisation rule
    (run / "metrics.json").write_text(json.dumps(metrics))
    got = load_run(run)
    assert got.configuration is None and "zero_init_residual" in got.unmatched
    metrics["configuration"] = None  # unnamed: matched by its model, options included
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert load_run(run).configuration == "plain_init"
    metrics["options"] = {"zero_init_residual": None}  # the baseline's model: the suite's rule
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert load_run(run).configuration == "baseline"
    metrics["options"] = {}  # written before zero_init_residual was recorded: built without it, plain init
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert load_run(run).configuration == "plain_init"


def test_identical_seed_differences_get_no_p_value_and_no_verdict(tmp_path):
    """Three seed pairs exactly +10.00 pp apart (forged or duplicated runs): no p, no Sig., no claim verdict."""
    for s in (0, 1, 2):
        write_run(tmp_path, "baseline", s, n_val=200, n_test=200, level=BASE[s], exact=True)
        write_run(tmp_path, "ca", s, n_val=200, n_test=200, level=BASE[s] + 0.1, exact=True)
        write_run(tmp_path, "sc", s, n_val=200, n_test=200, level=BASE[s], exact=True)
    frames = tables.collect([tmp_path], tmp_path / "tables", n_boot=100)
    for configuration, effect in (("ca", "+10.00 pp"), ("sc", "+0.00 pp")):
        row = _row(frames["table1"], configuration)
        assert np.isnan(row["p_seeds"]) and np.isnan(row["p_seeds_permutation"]) and row["significant"] is None
        assert f"same difference ({effect}): with no seed-to-seed spread there is no p-value" in row["notes"]
        assert row["paired_seeds"] == 3 and row["holm_m"] == 0
    assert _row(frames["table1"], "ca")["delta_accuracy_pp"] == pytest.approx(10)
    claims, comparisons = claim_frames(load_runs([tmp_path]), load_ablation("paper"))
    ca = comparisons[(comparisons["model"] == "ca") & (comparisons["over"] == "baseline")].iloc[0]
    assert ca["comparison_verdict"] == "inconclusive" and np.isnan(ca["p"]) and "no verdict" in ca["why"]
    assert "supported" not in set(claims["verdict"])


def test_missing_or_empty_run_path_exits_nonzero_and_keeps_tables(tmp_path, capsys):
    write_run(tmp_path / "runs", "baseline", 0)
    assert cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "t"), "--n-boot", "50"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()}
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "no" / "such" / "path", tmp_path / "empty"):
        assert cli.main([str(path), "--out", str(tmp_path / "t")]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "nothing written" in err
        assert {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()} == before
    result = subprocess.run([sys.executable, "-m", "fer_ablation.collect", "/no/such/path", "--out",
                             str(tmp_path / "fresh")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "/no/such/path" in result.stderr and not (tmp_path / "fresh").exists()


def test_runs_with_different_fingerprints_are_never_pooled_or_paired(tmp_path):
    """The baseline at 1 epoch and the full model at 3 epochs with another lr under one group label: two
    groups named by what differs, no paired test across them."""
    for s in (0, 1):
        write_run(tmp_path, "baseline", s, epochs=1, recipe={"max_epochs": 1})
        write_run(tmp_path, "full", s, epochs=3, recipe={"max_epochs": 3, "optimizer": {"lr": 0.01}})
    frames = tables.collect([tmp_path], tmp_path / "tables", n_boot=200)
    t3 = frames["table3"]
    assert t3["fingerprint"].nunique() == 2
    full = t3[(t3["configuration"] == "full") & (t3["n_completed"] == 2)]
    assert len(full) == 1 and np.isnan(full["delta_accuracy_pp"].item()) and full["paired_seeds"].item() == 0
    assert "no completed baseline run" in full["notes"].item()
    md = (tmp_path / "tables" / "table3.md").read_text()
    assert "[max_epochs=3, optimizer.lr=0.01]" in md and "[max_epochs=1, optimizer.lr=0.001]" in md
    same = write_run(tmp_path / "same", "baseline", 0, recipe={"max_epochs": 1}, epochs=1)
    assert load_run(same).fingerprint == load_run(tmp_path / "synthetic-48px" / "baseline_seed0").fingerprint


def test_legacy_records_are_read_but_never_mixed_with_new_runs(tmp_path):
    for c in ("baseline", "sc"):
        write_run(tmp_path, c, 0, legacy=True, folder="old")
        write_run(tmp_path, c, 0)
    old = load_run(tmp_path / "old" / "sc_seed0")
    assert old.status == "completed" and old.legacy and old.report_split == "val" and old.fingerprint == "legacy"
    frames = tables.collect([tmp_path], tmp_path / "tables", n_boot=200)
    t1 = frames["table1"]
    legacy_rows, new_rows = t1[t1["fingerprint"] == "legacy"], t1[t1["fingerprint"] != "legacy"]
    assert len(legacy_rows) == len(new_rows) == 4
    sc_old, sc_new = legacy_rows[legacy_rows["configuration"] == "sc"].iloc[0], new_rows[new_rows["configuration"] == "sc"].iloc[0]
    assert "val was both the selection and the report split" in sc_old["notes"]
    assert "val was both" not in sc_new["notes"] and sc_new["paired_samples"] == N_TEST
    assert sc_old["paired_samples"] == N_VAL and sc_old["report_split"] == "val" and sc_new["report_split"] == "test"
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert md.count("## synthetic-48px") == 2 and "[legacy run records: val was both" in md


def test_tables_name_the_report_split_and_the_duplicates_dropped(tmp_path):
    for c in ("baseline", "ca"):
        path = write_run(tmp_path, c, 0)
        metrics = json.loads((path / "metrics.json").read_text())
        metrics["duplicates"]["test"] = {"of_train": 2, "of_val": 1, "different_label": 1, "dropped": 3, "examples": []}
        metrics["duplicates"]["train"] = {"within": 5}
        (path / "metrics.json").write_text(json.dumps(metrics))
    tables.collect([tmp_path], tmp_path / "tables", n_boot=100)
    for name in ("table1.md", "summary.md", "table1.tex"):
        text = (tmp_path / "tables" / name).read_text()
        assert "Report split: test" in text and "checkpoint selected on val" in text, name
        assert "3 (1 with a different label), 3 dropped of the test images are identical to training or val" in text
        assert "Duplicates inside train: 5 repeated images" in text


def test_summary_counts_runs_and_evaluation_records_apart(tmp_path):
    write_run(tmp_path / "runs", "baseline", 0)
    evaluation = tmp_path / "runs" / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps({"kind": "evaluation", "status": "completed"}))
    tables.collect([tmp_path / "runs"], tmp_path / "t", n_boot=50)
    first = (tmp_path / "t" / "summary.md").read_text().splitlines()[2]
    assert first.startswith("1 run folders read (1 completed), 1 evaluation record(s) left out; best-epoch metrics")
