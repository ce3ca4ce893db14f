"""torch.compile stays compiled over the configurations of a one-process sweep (issue #22)."""

import pytest
import torch
from torch._dynamo.utils import counters

from fer_ablation.models import build_model
from fer_ablation.train.training import compile_model

CONFIGURATIONS = (("none", "stride2"), ("ca", "sc"), ("simam", "stride2"))

pytestmark = pytest.mark.usefixtures("one_thread")


def _compiled_frames(model: torch.nn.Module) -> tuple[int, int]:
    """(graphs dynamo converted, frames it gave up on) while `model` trains on two batch sizes (a run's last
    batch is partial), is evaluated under no_grad on two more, then under inference_mode (Lightning's)."""
    graphs, ok, total = counters["stats"]["unique_graphs"], counters["frames"]["ok"], counters["frames"]["total"]
    model.train()
    for batch in (4, 3):
        model(torch.randn(batch, 3, 32, 32)).sum().backward()
    model.eval()
    with torch.no_grad():
        for batch in (5, 2):
            model(torch.randn(batch, 3, 32, 32))
    with torch.inference_mode():
        model(torch.randn(5, 3, 32, 32))
    converted = counters["stats"]["unique_graphs"] - graphs
    gave_up = (counters["frames"]["total"] - total) - (counters["frames"]["ok"] - ok)
    return converted, gave_up


@pytest.mark.slow  # 60 s on a slowest-class CPU (dynamo traces all 13 configurations)
def test_every_configuration_of_a_sweep_is_compiled():
    counters.clear()
    for attention, stem in CONFIGURATIONS:
        torch.manual_seed(0)
        model = build_model(num_classes=7, attention=attention, stem=stem)
        compile_model(model, backend="eager")
        converted, gave_up = _compiled_frames(model)
        assert converted >= 1 and gave_up == 0, (attention, stem, converted, gave_up)
    torch._dynamo.reset()
