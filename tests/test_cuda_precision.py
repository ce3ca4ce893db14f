"""bf16 only on CUDA cards with native bf16 (compute capability 8.0 or higher), mocked cards (issue #22)."""

import pytest
import torch

from fer_ablation.train import fast_path


@pytest.fixture
def card(monkeypatch):
    """A mocked CUDA card; torch.cuda.is_bf16_supported says True, as it does on V100 and T4."""

    def _card(name: str, capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)

    return _card


@pytest.mark.parametrize(("name", "capability", "precision"), [
    ("NVIDIA H100 80GB HBM3", (9, 0), "bf16-mixed"),
    ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16-mixed"),
    ("NVIDIA GeForce RTX 3090", (8, 6), "bf16-mixed"),
    ("Tesla T4", (7, 5), "16-mixed"),
    ("Tesla V100-SXM2-16GB", (7, 0), "16-mixed"),
    ("Tesla P100-PCIE-16GB", (6, 0), "32-true"),
])
def test_precision_follows_compute_capability(card, name, capability, precision):
    card(name, capability)
    for accelerator in ("gpu", "cuda", "auto"):
        chosen = fast_path.choose(None, None, accelerator)
        assert chosen.precision == precision and chosen.channels_last is True
        assert name in chosen.reason and f"compute capability {capability[0]}.{capability[1]}" in chosen.reason
        assert ("has native bf16" in chosen.reason) == (precision == "bf16-mixed")


def test_an_explicit_precision_wins_on_the_gpu(card):
    card("Tesla T4", (7, 5))
    chosen = fast_path.choose("bf16-mixed", False, "gpu")
    assert (chosen.precision, chosen.channels_last, chosen.reason) == ("bf16-mixed", False, "set in the config")


def test_cpu_accelerator_never_asks_the_card(card, monkeypatch):
    card("Tesla T4", (7, 5))
    monkeypatch.setattr(fast_path, "cuda_precision", lambda *a: pytest.fail("asked the CUDA card for a CPU run"))
    assert fast_path.choose(None, None, "cpu").precision in ("32-true", "bf16-mixed")
