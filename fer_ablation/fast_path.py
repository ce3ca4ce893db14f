"""Which precision and memory format a run trains with when the config leaves them to the suite.

`trainer.precision: null` and `speed.channels_last: null` mean "the fastest the device supports":

- CUDA with bf16 support: bf16-mixed + channels_last (what `trainer=gpu` sets explicitly).
- A CPU with native bf16 instructions (x86 `avx512_bf16` or `amx_bf16`, Arm `bf16`, read from
  /proc/cpuinfo): bf16-mixed + channels_last. On the 2-core development VM (AVX-512 BF16) this
  was the fastest of the four combinations `make bench` measures (results/bench/).
- Any other CPU: 32-true, contiguous. bf16 autocast there is emulated and slower than fp32.

An explicit value always wins. The choice and its reason are recorded in metrics.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class FastPath:
    precision: str
    channels_last: bool
    reason: str


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    return bool(set(NATIVE_BF16_FLAGS) & (cpu_flags() if flags is None else flags))


def uses_cuda(accelerator: str | None) -> bool:
    return str(accelerator or "auto") in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def choose(precision: str | None, channels_last: bool | None, accelerator: str | None,
           flags: set[str] | None = None) -> FastPath:
    """Resolve null precision / channels_last for the device the run will train on."""
    if uses_cuda(accelerator):
        native = torch.cuda.is_bf16_supported()
        device = f"CUDA device {torch.cuda.get_device_name()}"
    else:
        native = cpu_has_native_bf16(flags)
        device = "this CPU"
    fastest = "bf16-mixed" if native else "32-true"
    chosen = str(precision) if precision is not None else fastest
    memory = bool(channels_last) if channels_last is not None else chosen == "bf16-mixed"
    if precision is not None:
        reason = "set in the config"
    elif native:
        reason = f"{device} has native bf16"
    else:
        reason = f"{device} has no native bf16: fp32 is faster than emulated bf16"
    return FastPath(chosen, memory, reason)
