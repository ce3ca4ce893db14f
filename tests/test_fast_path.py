"""The CPU/GPU fast path: null precision and memory format resolve to what the device supports."""

import logging

import pytest

from fer_ablation import fast_path, quiet


def test_native_bf16_read_from_cpu_flags(tmp_path):
    with_bf16 = tmp_path / "cpuinfo_bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    without = tmp_path / "cpuinfo_avx2"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert fast_path.cpu_has_native_bf16(fast_path.cpu_flags(with_bf16))
    assert not fast_path.cpu_has_native_bf16(fast_path.cpu_flags(without))
    assert fast_path.cpu_flags(tmp_path / "absent") == set()


@pytest.mark.parametrize("flags, precision, channels_last", [
    ({"avx2", "avx512_bf16"}, "bf16-mixed", True),
    ({"avx2", "amx_bf16"}, "bf16-mixed", True),
    ({"avx2"}, "32-true", True),
])
def test_null_settings_pick_the_fastest_the_cpu_supports(flags, precision, channels_last):
    chosen = fast_path.choose(None, None, "cpu", flags=flags)
    assert (chosen.precision, chosen.channels_last) == (precision, channels_last)
    assert ("native bf16" in chosen.reason) and (("no native" in chosen.reason) == (precision == "32-true"))


def test_explicit_settings_win():
    chosen = fast_path.choose("32-true", True, "cpu", flags={"avx512_bf16"})
    assert (chosen.precision, chosen.channels_last, chosen.reason) == ("32-true", True, "set in the config")
    assert fast_path.choose("bf16-mixed", None, "cpu", flags=set()).channels_last is True
    assert fast_path.choose(None, False, "cpu", flags={"avx512_bf16"}).channels_last is False


def test_metrics_record_the_choice(compose_cfg, tmp_path, one_thread):
    from fer_ablation.training import train

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
