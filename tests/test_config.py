"""Every config group composes, and the experiment/debug files hold only what they change."""

import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from fer_ablation.config import experiments
from fer_ablation.config import CONFIG_DIR, PROJECT_ROOT
from fer_ablation.train.training import model_spec


def test_defaults_are_the_cpu_budget_on_the_probe_set(compose_cfg):
    cfg = compose_cfg(smoke=False)
    assert (cfg.data.name, cfg.data.image_size, cfg.model.attention, cfg.stem.name) == ("synthetic", 32, "none", "stride2")
    assert cfg.model.pretrained is None and cfg.trainer.max_epochs == 2 and cfg.data.batch_size == 32
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 0.002 and cfg.optimizer.fused
    assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.OneCycleLR" and cfg.scheduler.interval == "step"
    assert cfg.data.augment.enabled is False and list(cfg.data.face_scale) == [0.85, 1.0] and cfg.data.clutter == 0
    assert cfg.logger.name == "wandb" and cfg.logger.wandb.mode == "offline"
    assert cfg.trainer.accelerator == "auto" and cfg.seed == 0


def test_paper_experiment_carries_the_papers_recipe(compose_cfg):
    cfg = compose_cfg("experiment=paper", smoke=False)
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.001, 0.9, 0.0001)
    assert list(cfg.scheduler.milestones) == [30, 60, 90] and cfg.scheduler.gamma == 0.1
    assert (cfg.data.image_size, cfg.trainer.max_epochs, cfg.model.pretrained) == (224, 100, "imagenet")


def test_demo_experiment_is_the_paper_sweep_on_the_default_budget(compose_cfg):
    default, demo = compose_cfg(smoke=False), compose_cfg("experiment=demo", smoke=False)
    for key in ("optimizer", "scheduler", "trainer", "data", "model"):
        assert demo[key] == default[key], key
    assert demo.group == "demo-synthetic-32px"


@pytest.mark.parametrize("group,option,key,expected", [
    ("data", "fer2013", "data.name", "fer2013"),
    ("data", "imagefolder", "data.val_fraction", 0.2),
    ("data", "rafdb", "data.name", "rafdb"),
    ("trainer", "cpu", "trainer.accelerator", "cpu"),
    ("trainer", "gpu", "trainer.precision", None),
    ("trainer", "gpu", "speed.channels_last", True),
    ("speed", "gpu", "speed.channels_last", True),
    ("configuration", "sc_ca", "model.attention", "ca"),
    ("trainer", "ddp", "trainer.strategy", "ddp"),
    ("logger", "csv", "logger.name", "csv"),
    ("logger", "none", "logger.name", "none"),
    ("optimizer", "adamw", "optimizer._target_", "torch.optim.AdamW"),
    ("scheduler", "cosine", "scheduler._target_", "torch.optim.lr_scheduler.CosineAnnealingLR"),
    ("stem", "sc", "stem.sc_kernel", 1),
    ("experiment", "paper", "data.image_size", 224),
    ("experiment", "demo", "optimizer._target_", "torch.optim.AdamW"),
    ("debug", "smoke", "trainer.limit_train_batches", 2),
])
def test_every_group_option_composes(compose_cfg, group, option, key, expected):
    extra = ["data.root=/x"] if option in ("imagefolder", "rafdb") else []
    cfg = compose_cfg(f"{group}={option}", *extra, smoke=False)
    assert OmegaConf.select(cfg, key) == expected


def test_paper_experiment_carries_the_papers_training_settings(compose_cfg):
    cfg = compose_cfg("experiment=paper", smoke=False)
    assert (cfg.trainer.max_epochs, cfg.data.image_size, cfg.model.pretrained) == (100, 224, "imagenet")
    assert cfg.group == "paper-synthetic-224px"
    smoke = compose_cfg("experiment=paper", "debug=smoke", smoke=False)
    assert (smoke.trainer.max_epochs, smoke.data.image_size, smoke.model.pretrained) == (1, 48, None)


def test_configuration_name_decides_the_model(compose_cfg):
    cfg = compose_cfg("configuration=full")
    spec = model_spec(cfg)
    assert (cfg.configuration, spec["attention"], spec["stem"], spec["sc_kernel"]) == ("full", "ca+simam", "sc", 1)
    with pytest.raises(Exception, match="nope"):
        compose_cfg("configuration=nope")


def test_later_overrides_win_over_a_configuration(compose_cfg):
    cfg = compose_cfg("configuration=baseline", "model.attention=ca")
    assert (cfg.configuration, model_spec(cfg)["attention"]) == ("baseline", "ca")
    assert compose_cfg("configuration=full", "stem=stride2").stem.name == "stride2"


@pytest.mark.parametrize("name", list(experiments.load("paper").configurations))
def test_configuration_files_build_what_the_tables_file_reads(compose_cfg, name):
    conf = experiments.load("paper").configurations[name]
    spec = model_spec(compose_cfg(f"configuration={name}", smoke=False))
    assert (spec["attention"], spec["stem"], spec["placement"]) == \
        (conf["attention"], conf["stem"], conf.get("placement", {}))
    assert all(spec[k] == v for k, v in conf.get("options", {}).items())


def test_trainer_group_holds_only_trainer_arguments(compose_cfg):
    import inspect

    import lightning as L

    accepted = set(inspect.signature(L.Trainer).parameters)
    for path in sorted((CONFIG_DIR / "trainer").glob("*.yaml")):
        cfg = compose_cfg(f"trainer={path.stem}", smoke=False)
        assert set(cfg.trainer) <= accepted, (path.name, sorted(set(cfg.trainer) - accepted))


def test_cfg_job_shows_what_a_configuration_builds():
    done = subprocess.run([sys.executable, "-m", "fer_ablation.run", "configuration=full", "--cfg", "job"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    job = yaml.safe_load(done.stdout)
    assert (job["configuration"], job["model"]["attention"], job["stem"]["name"]) == ("full", "ca+simam", "sc")


def test_data_defaults_are_the_data_files(compose_cfg):
    from fer_ablation.data import DataError, synthetic
    from fer_ablation.data.datamodule import resolve_data_config

    composed = resolve_data_config(compose_cfg("data=imagefolder", "data.root=/x", smoke=False).data)
    assert resolve_data_config({"name": "imagefolder", "root": "/x", "grayscale": False}) == composed
    probe = compose_cfg(smoke=False).data
    assert synthetic.DEFAULT_KNOBS == {k: tuple(probe[k]) if k == "face_scale" else probe[k]
                                       for k in synthetic.DEFAULT_KNOBS}
    with pytest.raises(DataError, match="'colour'.*conf/data/synthetic.yaml"):
        resolve_data_config({"name": "synthetic", "colour": True})


def test_control_configurations_set_their_model(compose_cfg):
    from fer_ablation.models import build_model

    plain = model_spec(compose_cfg("configuration=plain_init"))
    assert (plain["attention"], plain["stem"], plain["zero_init_residual"]) == ("none", "stride2", False)
    gate = model_spec(compose_cfg("configuration=gate"))
    default = compose_cfg().model.options.zero_init_residual  # conf/model/resnet50.yaml, the one place it is set
    assert (gate["attention"], gate["stem"], gate["zero_init_residual"]) == ("gate", "stride2", default)
    assert model_spec(compose_cfg("configuration=baseline"))["zero_init_residual"] == default
    assert default is None   # the suite's rule for every arm: zero-initialised residual branches from scratch
    baseline = build_model(**{k: v for k, v in model_spec(compose_cfg("configuration=baseline")).items() if k != "in_chans"})
    assert all((block.bn3.weight == 0).all() for _, block in baseline.blocks())
    plain = build_model(**{k: v for k, v in plain.items() if k != "in_chans"})
    assert all((block.bn3.weight == 1).all() for _, block in plain.blocks())
