"""Which precision and memory format a run trains with when the config leaves them to the suite.

`trainer.precision: null` and `speed.channels_last: null` mean "the fastest the device supports":

- CUDA (`cuda_precision`): bf16-mixed on cards of compute capability 8.0 or higher (Ampere on), which have
  bf16 tensor cores; 16-mixed (fp16 autocast, Lightning's gradient scaler) on 7.x cards (V100, T4), which
  have fp16 tensor cores but emulate bf16 although `torch.cuda.is_bf16_supported()` is true there; 32-true
  on older cards.
- A CPU on which torch will really run bf16 natively: bf16-mixed. Torch is asked, not /proc/cpuinfo:
  the CPU must have bf16 arithmetic (AVX512_BF16 or AMX-BF16, from torch's cpuinfo:
  `torch.cpu.get_capabilities()`), oneDNN must report bf16 kernels (`ONEDNN_MAX_CPU_ISA` caps them)
  and ATen's own kernels must be AVX-512 or better (`torch.backends.cpu.get_cpu_capability()`;
  `ATEN_CPU_CAPABILITY` caps them). oneDNN's report alone is not enough: it says yes on any AVX-512
  CPU, bf16 instructions or not (an Ice Lake Xeon, which then emulates bf16: two demo runs side by
  side there took 92 s each in bf16 against 75 s in fp32, docs/speed.md). On an AVX-512 BF16 machine
  a raw ResNet50 loop at 48 px ran 1.5x faster with bf16 autocast and channels_last than in fp32
  (issue #13's measurement).
- Any other CPU, and any CPU capped to AVX2 (`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`,
  how the slowest machine class is emulated): 32-true. bf16 autocast there is emulated and many
  times slower than fp32 (results/bench/vm-2026-11-27-cpu-fastpath.json, an AVX2 CPU).

channels_last in every case: it was as fast or faster than the contiguous format in every
combination measured, in fp32 too (+5 % on the AVX2 VM, +2 % on the AVX-512 machine).

An explicit value always wins. The choice and its reason are recorded in metrics.json.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)
# ATen CPU capabilities (torch.backends.cpu.get_cpu_capability()) whose vector kernels handle bf16 natively
NATIVE_BF16_CAPABILITIES = ("AVX512", "SVE")
NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores
FP16_TENSOR_CORE_CAPABILITY = (7, 0)  # Volta


@dataclass(frozen=True)
class FastPath:
    precision: str
    channels_last: bool
    reason: str


@dataclass(frozen=True)
class CpuKernels:
    """What torch will run on this CPU, after any ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA cap."""

    capability: str      # ATen's vector kernels: DEFAULT, AVX2, AVX512, SVE256, ...
    onednn_bf16: bool    # oneDNN (convolutions, matmuls) has bf16 kernels for this CPU, native or emulated
    bf16_instructions: bool = False  # the CPU computes in bf16 (AVX512_BF16, AMX-BF16, Arm BF16)

    @property
    def native_bf16(self) -> bool:
        return (self.bf16_instructions and self.onednn_bf16
                and self.capability.startswith(NATIVE_BF16_CAPABILITIES))

    def describe(self) -> str:
        return (f"ATen kernels {self.capability}, oneDNN bf16 {'yes' if self.onednn_bf16 else 'no'}, "
                f"bf16 instructions {'yes' if self.bf16_instructions else 'no'}")


# torch.cpu.get_capabilities() keys (cpuinfo) that mean the CPU has bf16 arithmetic
BF16_INSTRUCTION_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_kernels() -> CpuKernels:
    """Ask torch which CPU kernels it will run (these follow the environment's caps)."""
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    try:
        flags = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # torch without the cpuinfo query: assume no bf16, i.e. fp32
        flags = {}
    return CpuKernels(torch.backends.cpu.get_cpu_capability(), onednn_bf16,
                      any(flags.get(flag) is True for flag in BF16_INSTRUCTION_FLAGS))


def uses_cuda(accelerator: str | None) -> bool:
    return str(accelerator or "auto") in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def cuda_precision(device=None) -> tuple[str, str]:
    """The fastest precision on CUDA `device` (default: the current one) and why, from its compute capability."""
    name = torch.cuda.get_device_name(device)
    capability = tuple(torch.cuda.get_device_capability(device))
    card = f"CUDA device {name} (compute capability {capability[0]}.{capability[1]})"
    if capability >= NATIVE_BF16_CAPABILITY:
        return "bf16-mixed", f"{card} has native bf16"
    if capability >= FP16_TENSOR_CORE_CAPABILITY:
        return "16-mixed", f"{card} has no native bf16 (below 8.0): fp16 autocast with a gradient scaler"
    return "32-true", f"{card} has neither native bf16 nor fp16 tensor cores (below 7.0): fp32"


def choose(precision: str | None, channels_last: bool | None, accelerator: str | None,
           kernels: CpuKernels | None = None) -> FastPath:
    """Resolve null precision / channels_last for the device the run will train on."""
    if uses_cuda(accelerator):
        fastest, reason = cuda_precision()
        return FastPath(str(precision) if precision is not None else fastest,
                        bool(channels_last) if channels_last is not None else True,
                        "set in the config" if precision is not None else reason)
    kernels = kernels or cpu_kernels()
    native = kernels.native_bf16
    device = f"this CPU ({kernels.describe()})"
    fastest = "bf16-mixed" if native else "32-true"
    chosen = str(precision) if precision is not None else fastest
    memory = bool(channels_last) if channels_last is not None else True
    if precision is not None:
        reason = "set in the config"
    elif native:
        reason = f"{device} has native bf16"
    else:
        reason = f"{device} has no native bf16: fp32 is faster than emulated bf16"
    return FastPath(chosen, memory, reason)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEEP_FREED_MEMORY = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for the next training step instead of handing it back to the system.

    By default glibc serves blocks above 128 kB by mmap and trims the heap's free top, so a CPU training
    step's activations arrive as fresh zeroed pages: about a million page faults in a 2-epoch demo run.
    Serving blocks up to 32 MB from the heap and keeping up to 1 GB free there cut the faults by two
    thirds and a demo run's wall time by 7 % (docs/speed.md); numbers are unchanged. The setting holds
    for this process. False where the C library has no mallopt (not glibc)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(param, value) == 1 for param, value in KEEP_FREED_MEMORY)
