import json
import math

import pytest
import torch

from fer_ablation.cli import bench

# The smoke probe shrunk to 28 training / 14 validation images: the bench's functions, not its numbers.
TINY = ("debug=smoke", "data.n_images=28", "data.n_val=14")
SETTING = bench.Setting(config="baseline", device="cpu", image_size=32, batch_size=4, precision="32-true")


pytestmark = pytest.mark.usefixtures("one_thread")


def _positive_finite(record: dict, keys) -> None:
    for key in keys:
        assert isinstance(record[key], (int, float)) and math.isfinite(record[key]) and record[key] > 0, key


def test_raw_and_suite_measurements_make_a_complete_record(tmp_path):
    # 5 steps of 4 exceed the 14 training images: both paths time the 3 steps the suite's epoch has
    record = bench.bench_one(SETTING, steps=5, warmup=1, eval_batches=1, overrides=TINY, work_dir=tmp_path)

    assert set(bench.REQUIRED_KEYS) <= set(record)
    assert (record["config"], record["device"], record["image_size"], record["batch_size"], record["precision"]) == \
        ("baseline", "cpu", 32, 4, "32-true")
    assert (record["attention"], record["stem"]) == ("none", "stride2")
    _positive_finite(record, ("suite_images_per_s", "raw_images_per_s", "ratio", "peak_memory_mb",
                              "raw_eval_images_per_s", "suite_eval_images_per_s", "raw_peak_memory_mb",
                              "suite_step_s", "suite_epoch_s"))
    assert record["ratio"] == pytest.approx(record["suite_images_per_s"] / record["raw_images_per_s"], rel=1e-3)
    assert record["eval_images"] == 14 and (record["steps"], record["steps_requested"]) == (3, 5)
    assert record["peak_memory_kind"].startswith("cpu")
    assert record["suite_checkpoint_saves"] >= 2 and record["suite_checkpoint_mb"] > 0  # last.ckpt every epoch
    assert list(tmp_path.iterdir()) == []  # the suite's run folder is temporary

    out = bench.write_records([record], tmp_path / "bench" / "host-date.json")
    again = {**record, "config": "full"}
    bench.write_records([again, record], out)  # same setting replaced, another one kept
    written = json.loads(out.read_text())
    assert [r["config"] for r in written] == ["full", "baseline"]
    assert "suite/raw" in bench.format_table(written)


def test_startup_reaches_the_first_training_step():
    overrides = bench.suite_overrides(SETTING, steps=1, eval_batches=1, extra=TINY)
    startup = bench.measure_startup(overrides, timeout=120)
    assert 0 < startup["startup_s"] < 120
    assert "configuration=baseline" in startup["startup_command"]


def test_records_without_required_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="raw_images_per_s"):
        bench.write_records([{"config": "baseline"}], tmp_path / "x.json")


def test_unknown_configuration_names_the_choices():
    with pytest.raises(ValueError, match="baseline"):
        bench.suite_overrides(bench.Setting("nonsense", "cpu", 48, 32, "32-true"), steps=1, eval_batches=1)
