"""Every config group composes, and the experiment/debug files hold only what they change."""

import pytest
from omegaconf import OmegaConf

from fer_ablation.training import apply_configuration, model_spec


def test_defaults_are_the_cpu_budget_on_the_probe_set(compose_cfg):
    cfg = compose_cfg(smoke=False)
    assert (cfg.data.name, cfg.data.image_size, cfg.model.attention, cfg.stem.name) == ("synthetic", 48, "none", "stride2")
    assert cfg.model.pretrained is None and cfg.trainer.max_epochs == 4
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 0.001
    assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR" and cfg.scheduler.T_max == 4
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
    assert demo.group == "demo-synthetic-48px"


@pytest.mark.parametrize("group,option,key,expected", [
    ("data", "fer2013", "data.name", "fer2013"),
    ("data", "imagefolder", "data.val_fraction", 0.2),
    ("data", "rafdb", "data.name", "rafdb"),
    ("trainer", "cpu", "trainer.accelerator", "cpu"),
    ("trainer", "gpu", "trainer.precision", "bf16-mixed"),
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
    cfg = apply_configuration(compose_cfg("configuration=full"))
    spec = model_spec(cfg)
    assert (spec["attention"], spec["stem"], spec["sc_kernel"]) == ("ca+simam", "sc", 1)
    with pytest.raises(ValueError, match="expected one of"):
        apply_configuration(compose_cfg("configuration=nope"))


def test_control_configurations_set_their_model(compose_cfg):
    from fer_ablation.models import build_model

    zero = model_spec(apply_configuration(compose_cfg("configuration=zero_init")))
    assert (zero["attention"], zero["stem"], zero["zero_init_residual"]) == ("none", "stride2", True)
    gate = model_spec(apply_configuration(compose_cfg("configuration=gate")))
    assert (gate["attention"], gate["stem"]) == ("gate", "stride2") and "zero_init_residual" not in gate
    assert "zero_init_residual" not in model_spec(apply_configuration(compose_cfg("configuration=baseline")))
    spec = {k: v for k, v in zero.items() if k != "in_chans"}
    model = build_model(**spec)
    assert all((block.bn3.weight == 0).all() for _, block in model.blocks())
