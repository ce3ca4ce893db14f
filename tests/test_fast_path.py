"""The CPU/GPU fast path: null precision and memory format resolve to what the device supports."""

import logging
import os
import subprocess
import sys

import pytest

from fer_ablation.train import fast_path, quiet


def test_native_bf16_needs_bf16_instructions_onednn_bf16_and_avx512_aten_kernels():
    assert fast_path.CpuKernels("AVX512", True, True).native_bf16
    assert not fast_path.CpuKernels("AVX2", True, True).native_bf16      # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU
    assert not fast_path.CpuKernels("AVX512", False, True).native_bf16   # ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU
    assert not fast_path.CpuKernels("DEFAULT", False, False).native_bf16
    # oneDNN says bf16 on any AVX-512 CPU; without bf16 instructions (an Ice Lake Xeon) it emulates them
    assert not fast_path.CpuKernels("AVX512", True, False).native_bf16


def test_this_cpu_is_read_from_torch():
    import torch

    kernels = fast_path.cpu_kernels()
    flags = torch.cpu.get_capabilities()
    assert kernels.capability == torch.backends.cpu.get_cpu_capability()
    assert kernels.bf16_instructions == any(flags.get(f) is True for f in fast_path.BF16_INSTRUCTION_FLAGS)
    if flags.get("avx512_f") and not flags.get("avx512_bf16") and not flags.get("amx_bf16"):
        assert fast_path.choose(None, None, "cpu").precision == "32-true"


def test_capping_the_isa_caps_the_precision_choice():
    # On every machine class (AVX2-only, AVX-512 BF16, AMX) the emulation of the slowest one must train in fp32.
    script = ("from fer_ablation.train import fast_path; k = fast_path.cpu_kernels(); c = fast_path.choose(None, None, 'cpu');"
              "print(k.capability, k.onednn_bf16, c.precision, '|', c.reason)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    capability, onednn_bf16, precision, _, reason = out.split(maxsplit=4)
    assert (capability, onednn_bf16, precision) == ("AVX2", "False", "32-true")
    assert "ATen kernels AVX2" in reason and "no native bf16" in reason


@pytest.mark.parametrize("kernels, precision, channels_last", [
    (fast_path.CpuKernels("AVX512", True, True), "bf16-mixed", True),
    (fast_path.CpuKernels("AVX512", True, False), "32-true", True),
    (fast_path.CpuKernels("AVX2", True, True), "32-true", True),
    (fast_path.CpuKernels("AVX2", False, True), "32-true", True),
])
def test_null_settings_pick_the_fastest_the_cpu_supports(kernels, precision, channels_last):
    chosen = fast_path.choose(None, None, "cpu", kernels=kernels)
    assert (chosen.precision, chosen.channels_last) == (precision, channels_last)
    assert ("native bf16" in chosen.reason) and (("no native" in chosen.reason) == (precision == "32-true"))
    assert kernels.describe() in chosen.reason


def test_explicit_settings_win():
    bf16_cpu = fast_path.CpuKernels("AVX512", True, True)
    chosen = fast_path.choose("32-true", True, "cpu", kernels=bf16_cpu)
    assert (chosen.precision, chosen.channels_last, chosen.reason) == ("32-true", True, "set in the config")
    assert fast_path.choose("bf16-mixed", None, "cpu", kernels=fast_path.CpuKernels("AVX2", False, False)).channels_last
    assert fast_path.choose(None, False, "cpu", kernels=bf16_cpu).channels_last is False


def test_metrics_record_the_choice(compose_cfg, tmp_path, one_thread):
    from fer_ablation.train.training import train

    metrics = train(compose_cfg(), tmp_path / "run")
    expected = fast_path.choose(None, None, "cpu")
    assert (metrics["precision"], metrics["channels_last"], metrics["precision_choice"]) == \
        (expected.precision, expected.channels_last, expected.reason)


def test_lightning_lines_print_once_and_without_the_advertisement(caplog):
    import lightning  # noqa: F401  (adds Lightning's own console handlers on import)

    root = logging.getLogger()
    added = logging.StreamHandler()
    root.addHandler(added)  # what Hydra's job logging does before the run starts
    try:
        quiet.quiet_third_party()
        for name in quiet.LIGHTNING_LOGGERS:
            assert not [h for h in logging.getLogger(name).handlers if type(h) is logging.StreamHandler]
        with caplog.at_level(logging.INFO):
            rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
            rank_zero.info("💡 Tip: try installing litlogger to enable LitLogger")
            rank_zero.info("GPU available: False, used: False")
        messages = [r.getMessage() for r in caplog.records]
        assert messages == ["GPU available: False, used: False"]
    finally:
        root.removeHandler(added)


FREED_16MB_STAYS = """
import ctypes, sys, torch
from fer_ablation.train import fast_path
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert fast_path.keep_freed_memory()
buffer = torch.empty(16 << 20, dtype=torch.uint8)
buffer.fill_(1)
del buffer
print(libc.mallinfo2().fordblks >= 16 << 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_keeps_a_freed_block_in_the_heap():
    def freed_block_kept(mode: str) -> bool:
        out = subprocess.run([sys.executable, "-c", FREED_16MB_STAYS, mode], capture_output=True, text=True, check=True)
        return out.stdout.split()[-1] == "True"

    assert not freed_block_kept("default")   # glibc's default: a 16 MB block is mmapped and unmapped on free
    assert freed_block_kept("keep")
