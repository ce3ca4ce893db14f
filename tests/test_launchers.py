"""The launchers give each job the GPUs its trainer asks for, and a run asked for a GPU never trains on the CPU
(issue #22)."""

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fer_ablation.config import CONFIG_DIR
from fer_ablation.train.training import check_accelerator, train


def launcher(*overrides: str) -> dict:
    """hydra.launcher as `python -m fer_ablation.run -m <overrides>` hands it to submitit, resolved."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.parametrize(("trainer", "gpus"), [("trainer=gpu", 1), ("trainer=cpu", 0)])
def test_local_launcher_passes_the_trainers_gpus(trainer, gpus):
    assert launcher("hydra/launcher=local", trainer)["gpus_per_node"] == gpus


@pytest.mark.parametrize(("visible", "gpus"), [(0, 0), (1, 1), (4, 2)])
def test_local_launcher_with_trainer_auto_passes_the_gpus_this_machine_has(monkeypatch, visible, gpus):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    assert launcher("hydra/launcher=local", "trainer=auto", "trainer.devices=2")["gpus_per_node"] == gpus


def test_slurm_launcher_composes_with_ddp_one_task_per_device():
    params = launcher("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2")
    assert (params["gpus_per_node"], params["tasks_per_node"], params["nodes"]) == (4, 4, 2)
    params = launcher("hydra/launcher=slurm", "trainer=gpu")
    assert (params["gpus_per_node"], params["tasks_per_node"], params["nodes"]) == (1, 1, 1)
    assert launcher("hydra/launcher=slurm", "trainer=cpu")["gpus_per_node"] == 0


def test_launcher_refuses_devices_it_cannot_count():
    with pytest.raises(Exception, match="trainer.devices='auto'"):
        launcher("hydra/launcher=slurm", "trainer=gpu", "trainer.devices=auto")


def test_a_gpu_run_without_a_gpu_fails_and_names_the_cause(monkeypatch, compose_cfg, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES='' hides every GPU"):
        train(compose_cfg("trainer=gpu"), tmp_path)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and "no GPU is available" in record["error"]

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match="built without CUDA"):
        check_accelerator("cuda")
    check_accelerator("auto")  # auto may train on the CPU: it logs the device it chose
    check_accelerator("cpu")
