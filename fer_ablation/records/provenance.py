"""What a record says about where it came from: the git commit, library versions and the device."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path

from fer_ablation.config import PROJECT_ROOT


def git_commit() -> str | None:
    """HEAD of the checkout the code runs from, or None outside a git checkout."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    return None


def versions() -> dict:
    """Versions of Python and of the libraries a run's numbers depend on."""
    import hydra
    import lightning
    import torch
    import torchmetrics
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "hydra": hydra.__version__,
    }


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device) -> str:
    """`cuda: <GPU name>` or `cpu: <processor>, <n> cores` for a torch.device."""
    if device.type == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
