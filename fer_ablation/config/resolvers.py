"""OmegaConf resolvers the configs use; registered once by `fer_ablation.config`."""

from __future__ import annotations

import hashlib
import re

from omegaconf import OmegaConf

# Well under the 255-byte limit of common file systems for one path component.
MAX_NAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def run_name(overrides: str) -> str:
    """One flat folder name for a run's overrides (Hydra's ``key=value,key=value``).

    `=` becomes `-` and `,` becomes `_`, so a path into the folder can be pasted back into a Hydra
    override (its parser rejects unquoted `=` and `,`); any other character outside ``[A-Za-z0-9._+-]``
    (`/`, spaces, brackets) becomes `_` and runs of dots collapse, so no name nests folders or climbs out
    with `..`. When characters were replaced, or the name would pass MAX_NAME, a readable prefix keeps
    its place and a hash of the full overrides makes it unique and stable (a requeued job finds its
    folder again); the full overrides stay in ``.hydra/overrides.yaml``.
    """
    if not overrides:
        return "default"
    readable = overrides.replace("=", "-").replace(",", "_")
    name = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", readable)).strip("._-") or "run"
    if name == readable and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(overrides.encode("utf-8")).hexdigest()[:10]
    return f"{name[:MAX_NAME - 11]}-{digest}"


def gpus_per_node(accelerator: str, devices, scheduler: str) -> int:
    """GPUs a submitit job is given for the trainer it runs (the launchers' gpus_per_node).

    submitit's local executor sets CUDA_VISIBLE_DEVICES to the GPUs it was given, "" for none, so a job
    launched without them cannot see a GPU. accelerator cpu: none; gpu/cuda: trainer.devices; auto: trainer.devices
    on SLURM (the job lands where the partition has GPUs) and, locally, the GPUs this machine has, at most
    trainer.devices (none on a machine without: the run then trains on the CPU and logs it).
    """
    accelerator = str(accelerator)
    if accelerator == "cpu":
        return 0
    count = len(devices) if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices) else devices
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"trainer.devices={devices!r}: the submitit launchers need the GPUs per node as a "
                         "number (e.g. trainer.devices=2) or a list of device indices")
    if accelerator == "auto" and scheduler == "local":
        import torch

        return min(count, torch.cuda.device_count())
    return count


def register() -> None:
    # A run's folder is named from its overrides; a run with none lands in `default`.
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("gpus_per_node", gpus_per_node, replace=True)
