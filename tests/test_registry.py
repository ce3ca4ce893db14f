"""The attention registry: a module registered in a test trains by name, with no file of the package changed."""

import pytest
import torch
from torch import nn

from fer_ablation import records
from fer_ablation.train.lit_module import FERModule
from fer_ablation.models import (
    attention_names,
    build_model,
    count_parameters,
    get_attention,
    register_attention,
    unregister_attention,
)
from fer_ablation.train.training import train

BASELINE = 23_522_375  # torchvision ResNet50 with a 7-class head (SPEC section 4)


class ToyScale(nn.Module):
    """out = x * s with one learned scale per channel, starting at `init`: C parameters."""

    def __init__(self, channels: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None]


@pytest.fixture
def toy():
    entry = register_attention("toy", lambda site, init: ToyScale(site.channels, init), placement="last",
                               options={"init": 1.0})
    yield entry
    unregister_attention("toy")
    assert "toy" not in attention_names()


def test_a_registered_module_is_built_where_its_entry_says(toy, one_thread):
    m = build_model("toy+ca", toy={"init": 0.5}, placement={"toy": "stages"})
    assert [loc for loc in m.attention if hasattr(m.attention[loc], "toy")] == ["layer1", "layer2", "layer3"]
    assert m.attention["layer2"].toy.scale[0].item() == 0.5
    ca = build_model("ca")
    assert count_parameters(m) == count_parameters(ca) + 256 + 512 + 1024  # one scale per channel
    assert [name for name, _ in m.attention["stem"].named_children()] == ["ca"]
    default = build_model("toy")  # its default placement: after layer4, 2048 channels
    assert count_parameters(default) == BASELINE + 2048 and default.attention["layer4"].toy.scale[0].item() == 1.0


def test_a_registered_module_trains_by_name(toy, compose_cfg, tmp_path, one_thread):
    cfg = compose_cfg("model.attention=toy", "+model.options.toy.init=0.5")
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "completed" and metrics["attention"] == "toy"
    assert metrics["options"]["toy"] == {"init": 0.5}
    assert metrics["params"] == BASELINE + 2048
    module = FERModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu")
    trained = module.model.attention["layer4"].toy.scale
    assert trained.shape == (2048,) and not torch.equal(trained.detach(), torch.full((2048,), 0.5))  # it learned
    assert records.read_metrics(tmp_path)["status"] == "completed"


def test_registration_errors_name_the_problem(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_attention("toy", lambda site: nn.Identity(), placement="last")
    with pytest.raises(ValueError, match="'none'"):
        register_attention("none", lambda site: nn.Identity(), placement="last")
    with pytest.raises(ValueError, match="default placement 'stem' for 'mix'; valid: blocks"):
        register_attention("mix", lambda site: nn.Identity(), placement="stem", block_slot="conv2")
    with pytest.raises(ValueError, match="unknown option.*size for attention 'toy'; valid: init"):
        get_attention("toy").resolved_options({"size": 3})
    with pytest.raises(ValueError, match="unknown attention 'toyy'; valid: none, ca.*toy"):
        build_model("toyy")
