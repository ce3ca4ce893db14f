import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fer_ablation.cli import gradcam as gradcam_cli
from fer_ablation.config import compose
from fer_ablation.data.labels import CLASSES
from fer_ablation.inference import gradcam
from fer_ablation.train.lit_module import FERModule
from fer_ablation.train.training import train
from tests.conftest import SMOKE

CONFIGURATIONS = ("baseline", "full")
# A probe set with 2 validation images per class keeps the two smoke runs to seconds.
TINY = ["data.n_images=28", "data.n_val=14", "data.batch_size=4", "trainer.limit_train_batches=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, one_thread):
    """Two one-batch smoke runs (the baseline and CA + SimAM + SC), with the .hydra/config.yaml Hydra would write."""
    root = tmp_path_factory.mktemp("gradcam_runs")
    dirs = []
    for name in CONFIGURATIONS:
        cfg = compose([*SMOKE, f"configuration={name}", *TINY])
        run_dir = root / name
        train(cfg, run_dir)
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        dirs.append(run_dir)
    return dirs


def test_figure_and_maps_for_baseline_and_full(run_dirs, tmp_path):
    out = tmp_path / "gradcam.png"
    figure = gradcam.draw(run_dirs, classes=["happy", "sadness"], n=2, out=out)

    assert out.is_file() and out.stat().st_size > 0
    assert figure.out == out
    # the first two validation images of each class, class by class
    assert figure.targets == [3, 3, 4, 4]
    assert len(set(figure.indices)) == 4
    assert set(figure.cams) == {str(d) for d in run_dirs}
    for cams in figure.cams.values():
        assert cams.shape == (4, 48, 48)  # the input's spatial size (smoke probe: 48 px)
        assert np.isfinite(cams).all()
        assert cams.min() >= 0.0 and cams.max() <= 1.0


def test_images_are_the_first_n_of_each_class_in_split_order():
    targets = torch.tensor([4, 3, 0, 4, 3, 4, 3])
    assert gradcam.select_images(targets, [3, 4], 2) == [1, 4, 0, 3]
    assert gradcam.select_images(targets, [4], 5) == [0, 3, 5]  # fewer than n: all there are
    with pytest.raises(ValueError, match="no image of class index 6"):
        gradcam.select_images(targets, [6], 1)


def test_cli_reports_a_missing_run(tmp_path, capsys):
    assert gradcam_cli.main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "best.ckpt" in capsys.readouterr().err


def test_run_read_by_the_report_and_restored_from_its_checkpoint(run_dirs, tmp_path, capsys):
    explained = gradcam.load(run_dirs[1])
    assert explained.run.status == "completed" and explained.run.configuration == "full"
    assert explained.run.group == "smoke-synthetic-48px"
    assert explained.label == "ca+simam / sc" and not explained.module.training
    # the restored weights are the checkpoint's
    state = torch.load(run_dirs[1] / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for name, value in explained.module.state_dict().items():
        assert torch.equal(value, state[name]), name
    copy = tmp_path / "no-config"
    copy.mkdir()
    (copy / "checkpoints").mkdir()
    (copy / "checkpoints" / "best.ckpt").write_bytes((run_dirs[1] / "checkpoints" / "best.ckpt").read_bytes())
    (copy / "metrics.json").write_bytes((run_dirs[1] / "metrics.json").read_bytes())
    assert gradcam_cli.main([str(copy), "--out", str(tmp_path / "x.png")]) == 2
    assert ".hydra/config.yaml" in capsys.readouterr().err


EVERY_ATTENTION = [
    *[pytest.param(a, stem, {}, id=f"{a}-{stem}") for a, stem in zip(
        ("ca", "simam", "bam", "eca", "acmix", "coordatt", "se", "cbam"), ("sc", "stride2") * 4)],
    # after layer4: on the path from the target layer to the logits
    pytest.param("simam", "stride2", {"simam": "last"}, id="simam_last-stride2"),
]


@pytest.mark.parametrize("attention, stem, placement", EVERY_ATTENTION)
def test_every_attention_gives_finite_maps(attention, stem, placement):
    module = FERModule(model_spec={"attention": attention, "stem": stem, "placement": placement}, classes=CLASSES)
    images = torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cams, predictions = gradcam.compute_cams(module.eval(), OmegaConf.create({"name": "synthetic"}), images, [3, 4])
    assert cams.shape == (2, 48, 48) and np.isfinite(cams).all()
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    assert len(predictions) == 2
