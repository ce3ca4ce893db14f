"""debug=smoke is a budget, not a data set: it limits epochs and batches on every data set and sets the
probe's size only with data=synthetic, so a real-data sweep can be smoke-tested before it costs GPU time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_ablation.config import compose
from test_evidence import make_fer2013
from test_label_sets import make_ckplus

ROOT = Path(__file__).resolve().parents[1]
PROBE_SIZE = ("n_images", "n_val", "n_test")


@pytest.mark.parametrize("data", ["synthetic", "fer2013", "imagefolder", "rafdb"])
def test_smoke_composes_with_every_data_set(data):
    cfg = compose(["debug=smoke", f"data={data}", "experiment=paper"])
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 2
    assert cfg.trainer.limit_val_batches and cfg.trainer.limit_test_batches
    assert cfg.model.pretrained is None and cfg.data.image_size == 48
    has_probe_keys = all(k in cfg.data for k in PROBE_SIZE)
    assert has_probe_keys == (data == "synthetic")
    if data == "synthetic":
        assert [cfg.data[k] for k in PROBE_SIZE] == [140, 70, 70]
        assert [compose([])["data"][k] for k in PROBE_SIZE] != [140, 70, 70]   # only under debug=smoke


@pytest.mark.parametrize("data", ["fer2013", "imagefolder"])
def test_paper_sweep_smoke_runs_on_real_data_layouts(tmp_path, data):
    root = make_fer2013(tmp_path / "fer") if data == "fer2013" else make_ckplus(tmp_path / "ck")
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "fer_ablation.run", "-m", "experiment=paper", "debug=smoke", f"data={data}",
           f"data.root={root}", "configuration=baseline,ca", "seed=0", "logger=csv", "threads=1",
           "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "FER_ABLATION_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted(sweep.glob("*/metrics.json"))
    assert len(records) == 2
    import json

    for path in records:
        metrics = json.loads(path.read_text())
        assert metrics["status"] == "completed" and metrics["data"] == data, path
        assert metrics["epochs_completed"] == 1 and metrics["group"].startswith("smoke-")
