"""build_model: parameter counts (SPEC), placements, every attention x stem, ImageNet loading, validation, MACs."""

import functools
import logging
import urllib.error

import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from fer_ablation.models import (
    PLACEMENTS,
    STEMS,
    PretrainedWeightsUnavailable,
    attention_names,
    build_model,
    checkpoint_path,
    count_macs,
    count_parameters,
    parse_model_spec,
)
from fer_ablation.models.__main__ import main

BASELINE = 23_522_375  # torchvision ResNet50 with a 7-class head (SPEC section 4)
MODULES = attention_names()  # the built-in modules (tests/test_registry.py registers and removes a toy one)
COMBINATIONS = ("none",) + MODULES + ("ca+simam",)


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.lru_cache(maxsize=None)
def model(attention="none", stem="stride2", **options):
    """Build once per configuration and share between tests (ResNet50 takes ~0.5 s to build here)."""
    torch.manual_seed(0)
    return build_model(attention, stem, **options)


CA_ADDED = 64 * 64 * 9 + 2 * 64 + (64 * 4 + 4) + (4 * 64 + 64)  # conv3x3 + BN + FC1 + FC2 in the stem
SE_ADDED = 28_088_024 - 25_557_032  # SE-ResNet50 (28.09 M) minus ResNet50, 1000 classes
SC_ADDED = 4 * 64 * 64 + 2 * 64  # 1x1 4C -> C conv + BN = 16,512
ADDED = {  # parameters over the 7-class baseline with the stride-2 stem (SPEC section 4)
    "none": 0,
    "ca": CA_ADDED,
    "simam": 0,
    "bam": 358_067,
    "eca": 86,  # adaptive k: 5 in stages 1-3, 7 in stage 4, summed over the 16 blocks
    # each Bottleneck's 3x3 conv (w * w * 9) becomes ACmix: q, k, v 1x1 with bias, W_p (2 -> w / 4), fc (12 -> 9),
    # the shift conv (w, 9, 3, 3) without bias, rate1 and rate2 (widths 64, 128, 256, 512 in 3, 4, 6, 3 blocks)
    "acmix": sum(n * (3 * (w * w + w) + w // 2 + 12 * 9 + w * 81 + 2 - w * w * 9) for w, n in
                 [(64, 3), (128, 4), (256, 6), (512, 3)]),
    "coordatt": 1_917_832,
    "se": SE_ADDED,
    "cbam": SE_ADDED + 16 * (7 * 7 * 2 + 2),  # SE's MLP + the 7x7 spatial conv and its BN per block
    "gate": 0,  # the constant-gate control: no parameters
    "ca+simam": CA_ADDED,
}


def assert_parameter_count(m, attention, stem):
    assert count_parameters(m) - (SC_ADDED if stem == "sc" else 0) == BASELINE + ADDED[attention]


@pytest.mark.parametrize("options", [{"eca": {"kernel": "released"}}, {"eca": {"kernel": [3, 5, 5, 7]}}])
def test_eca_released_kernels(options):
    m = build_model("eca", **options)
    assert count_parameters(m) == BASELINE + 80  # ECA-Net50's released k = 3, 5, 5, 7
    assert [block.attention.eca.conv.kernel_size[0] for _, block in m.blocks()] == [3] * 3 + [5] * 10 + [7] * 3


def test_baseline_is_torchvision_resnet50():
    reference = torchvision.models.resnet50(weights=None, num_classes=7)
    assert count_parameters(model()) == count_parameters(reference) == BASELINE
    assert list(model().state_dict()) == list(reference.state_dict())


def test_acmix_parameter_count():
    assert_parameter_count(model("acmix"), "acmix", "stride2")


@pytest.mark.parametrize("gate", ["sigmoid", "none", "softmax"])
def test_ca_gate_option_reaches_the_module(gate):
    m = build_model("ca+simam", ca={"gate": gate}) if gate != "sigmoid" else model("ca+simam")
    assert m.attention["stem"].ca.gate == gate
    assert count_parameters(m) == BASELINE + CA_ADDED  # the gate has no parameters


def test_ca_gate_from_the_command_line(compose_cfg):
    from fer_ablation.train.training import model_spec

    m = build_model(**model_spec(compose_cfg("model.attention=ca", "+model.options.ca.gate=none")))
    assert m.attention["stem"].ca.gate == "none"


def test_sc_stem_reducing_conv_3x3():
    assert count_parameters(build_model("none", "sc", sc_kernel=3)) - BASELINE == 4 * 64 * 64 * 9 + 2 * 64


# ---------------------------------------------------------------- structure and order
def test_combined_model_stem_order_and_placements():
    m = model("ca+simam", "sc")
    assert m.conv1.stride == (1, 1) and m.conv1.weight.shape == (64, 3, 7, 7)
    assert list(dict(m.attention["stem"].named_children())) == ["ca", "simam"]
    assert list(dict(m.attention["layer4"].named_children())) == ["simam"]
    calls = []
    hooks = [
        mod.register_forward_hook(lambda *_, n=name: calls.append(n))
        for name, mod in [("relu", m.relu), ("sc", m.sc), ("ca", m.attention["stem"].ca),
                          ("simam", m.attention["stem"].simam), ("maxpool", m.maxpool)]
    ]
    m.eval()(torch.randn(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert calls[:5] == ["relu", "sc", "ca", "simam", "maxpool"]


def test_default_and_overridden_placements():
    m = build_model("bam+eca+acmix")
    assert [type(m.attention[s].bam).__name__ for s in ("layer1", "layer2", "layer3")] == ["BAM"] * 3
    assert len(m.attention["stem"]) == len(m.attention["layer4"]) == 0
    assert all(type(b.attention.eca).__name__ == "ECA" and type(b.conv2).__name__ == "ACmix" for _, b in m.blocks())
    spec = parse_model_spec("simam", "stride2", OmegaConf.create({"simam": "blocks"}))
    assert spec.placement == {"simam": "blocks"}
    m = build_model("simam", placement={"simam": "blocks"})
    assert len(m.layer1[0].conv2_attention) == 1 and len(m.layer1[0].attention) == 0  # authors' place: after conv2
    assert len(m.attention["stem"]) == 0


# every placement and every gate at least once in the default run; the full grid is @slow
PLACEMENT_CASES = [
    ("ca", "stages"), ("simam", "stages"), ("bam", "blocks"), ("bam", "first_last"), ("eca", "stem"),
    ("coordatt", "stages"), ("coordatt", "last"), ("se", "first_last"), ("cbam", "stem"), ("cbam", "stages"),
]


def _forward_backward(m, size=32, batch=2, in_chans=3):
    m.train()
    m.zero_grad(set_to_none=True)
    out = m(torch.randn(batch, in_chans, size, size))
    assert out.shape == (batch, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("name, where", PLACEMENT_CASES)
def test_gate_placements(name, where):
    _forward_backward(build_model(name, placement={name: where}))


@pytest.mark.slow
@pytest.mark.parametrize("where", PLACEMENTS)
@pytest.mark.parametrize("name", [n for n in MODULES if n != "acmix"])
def test_every_gate_at_every_placement(name, where):
    _forward_backward(build_model(name, placement={name: where}), size=48)


# ---------------------------------------------------------------- the control arms
def test_constant_gate_sits_where_eca_does_and_scales_each_residual_branch_by_half():
    gate, eca = model("gate"), model("eca")
    assert all(list(dict(b.attention.named_children())) == ["gate"] for _, b in gate.blocks())
    assert [type(b.attention.gate).__name__ for _, b in gate.blocks()] == ["ConstantGate"] * 16
    assert [n for n, _ in gate.named_modules() if n.endswith(".gate")] == [
        n.replace(".eca", ".gate") for n, _ in eca.named_modules() if n.endswith(".eca")]
    assert count_parameters(gate) == BASELINE
    # x * 0.5 after bn3 is bn3 with weight and bias halved: the same function as such a baseline
    halved = build_model("none")
    state = gate.state_dict()
    halved.load_state_dict({k: v * 0.5 if k.endswith(("bn3.weight", "bn3.bias")) else v for k, v in state.items()})
    x = torch.randn(1, 3, 37, 29)
    with torch.no_grad():
        torch.testing.assert_close(gate.eval()(x), halved.eval()(x), rtol=1e-5, atol=1e-6)


def test_zero_init_residual_makes_every_block_the_identity_path_at_init():
    torch.manual_seed(0)
    m = build_model("none", zero_init_residual=True)
    assert count_parameters(m) == BASELINE
    assert all((b.bn3.weight == 0).all() and (b.bn2.weight == 1).all() for _, b in m.blocks())
    reference = torchvision.models.resnet50(weights=None, num_classes=7, zero_init_residual=True)
    assert all((b.bn3.weight == 0).all() for stage in STAGES for b in getattr(reference, stage))
    x = torch.randn(2, 256, 9, 7).relu()  # a block's input comes out of a ReLU
    for mode in ("train", "eval"):
        block = m.layer1[1].train(mode == "train")
        with torch.no_grad():
            torch.testing.assert_close(block(x), x, rtol=0, atol=0)
            first = m.layer2[0].train(mode == "train")
            torch.testing.assert_close(first(x), first.relu(first.downsample(x)), rtol=0, atol=0)
    _forward_backward(m, size=33, batch=1 + 1)
    assert all(b.bn3.weight.grad.abs().sum() > 0 for _, b in m.blocks())  # the branches can grow back
    plain = build_model("none", zero_init_residual=False)   # configuration=plain_init
    assert not any((b.bn3.weight == 0).all() for _, b in plain.blocks())
    assert all((b.bn3.weight == 0).all() for _, b in model().blocks())  # the default rule from scratch


STAGES = ("layer1", "layer2", "layer3", "layer4")


# ---------------------------------------------------------------- every attention x stem
@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("attention", COMBINATIONS)
def test_every_attention_and_stem_counts_trains_and_evaluates(attention, stem):
    torch.manual_seed(0)
    m = build_model(attention, stem)
    assert_parameter_count(m, attention, stem)
    _forward_backward(m, size=48, batch=2)
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 57, 43))
    assert out.shape == (1, 7) and torch.isfinite(out).all()


def test_one_channel_input():
    _forward_backward(build_model("ca+simam", "sc", in_chans=1), in_chans=1)


def test_same_seed_same_outputs():
    x = torch.randn(2, 3, 40, 36)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build_model("acmix+ca", "sc").eval()
        with torch.no_grad():
            outs.append(m(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attention="cbma"), "unknown attention 'cbma'.*valid: none, ca, simam, bam, eca, acmix, coordatt, se, cbam"),
        (dict(attention="ca+ca"), "more than once"),
        (dict(attention="none+ca"), "'none' stands alone"),
        (dict(attention=""), "attention must be a string: 'none', a module name"),
        (dict(stem="stride1"), "unknown stem 'stride1'; valid: stride2, sc"),
        (dict(attention="simam", placement={"simam": "middle"}), "valid: stem, last, first_last, blocks, stages"),
        (dict(attention="acmix", placement={"acmix": "stem"}), "for 'acmix'; valid: blocks"),
        (dict(attention="ca", placement={"bam": "stages"}), "placement given for 'bam'.*modules: ca"),
        (dict(attention="ca", ca={"kernal": 3}), "unknown option.*kernal for attention 'ca'; valid: kernel, reduction, gate"),
        (dict(attention="ca", ca_kernel=3), "unknown model option.*ca_kernel.*nested under its name"),
        (dict(attention="ca", simam={"e_lambda": 0.1}), "options given for simam, which is not in attention 'ca'"),
        (dict(attention="ca", ca=3), "options for 'ca' must be a mapping"),
        (dict(attention="eca", eca={"kernel": "big"}), "ECA kernel must be"),
        (dict(attention="ca", ca={"gate": "tanh"}), "ca gate must be one of sigmoid, none, softmax, got 'tanh'"),
        (dict(pretrained="imagenet21k"), "valid: none, imagenet, imagenet_v1, imagenet_v2"),
    ],
)
def test_invalid_specs_list_valid_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parse_model_spec(**kwargs)
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


def test_parse_model_spec_resolves_defaults_and_order():
    spec = parse_model_spec("simam+CA", "sc", {"simam": "blocks"})
    attentions, stem, placement, options = spec
    assert attentions == ["ca", "simam"] and stem == "sc" and placement == {"ca": "stem", "simam": "blocks"}
    assert options == {"ca": {"kernel": 3, "reduction": 16, "gate": "sigmoid"}, "simam": {"e_lambda": 1e-4}}
    assert parse_model_spec("none", "stride2", None) == ([], "stride2", {}, {})
    assert parse_model_spec("eca", eca={"kernel": OmegaConf.create([3, 5, 5, 7])}).attentions == ["eca"]


# ---------------------------------------------------------------- ImageNet weights
@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory):
    """torchvision's own (randomly initialised) resnet50 state dict under the V1 file name in a tmp TORCH_HOME."""
    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(123)
    state = torchvision.models.resnet50(weights=None).state_dict()
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / "resnet50-0676ba61.pth")
    return home, state


def test_imagenet_weights_load_into_backbone(fake_imagenet, monkeypatch, caplog):
    home, state = fake_imagenet
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert checkpoint_path("imagenet") == home / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with caplog.at_level(logging.INFO, logger="fer_ablation.models"):
        m = build_model("ca+simam", "sc", pretrained="imagenet", download=False)
    own = m.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)
    assert own["fc.weight"].shape == (7, 2048)
    log = caplog.text
    assert "sc.conv.weight" in log and "attention.stem.ca.conv.weight" in log and "fc left freshly" in log


def test_zero_init_residual_applies_after_imagenet_weights(fake_imagenet, monkeypatch):
    home, state = fake_imagenet
    monkeypatch.setenv("TORCH_HOME", str(home))
    own = build_model("none", pretrained="imagenet", download=False, zero_init_residual=True).state_dict()
    for key, value in state.items():
        if key.endswith("bn3.weight"):
            assert (own[key] == 0).all() and (value != 0).any(), key
        elif not key.startswith("fc."):
            torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)
    # the default (None), the suite's rule: ImageNet weights stay as loaded; from scratch, every bn3 starts at 0
    loaded = build_model("none", pretrained="imagenet", download=False, zero_init_residual=None).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k.endswith("bn3.weight"))
    scratch = build_model("none", zero_init_residual=None)
    assert all((block.bn3.weight == 0).all() for _, block in scratch.blocks())


def test_imagenet_weights_one_channel_and_acmix(fake_imagenet, monkeypatch, caplog):
    home, state = fake_imagenet
    monkeypatch.setenv("TORCH_HOME", str(home))
    with caplog.at_level(logging.INFO, logger="fer_ablation.models"):
        m = build_model("acmix", in_chans=1, pretrained="imagenet_v1", download=False)
    torch.testing.assert_close(m.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer3[1].conv1.weight, state["layer3.1.conv1.weight"])
    # conv2 is replaced by ACmix: its checkpoint tensor is reported, the new ACmix tensors too
    assert "layer1.0.conv2.weight" in caplog.text and "layer1.0.conv2.conv1.weight" in caplog.text


def test_missing_imagenet_file_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        build_model(pretrained="imagenet_v2", download=False)
    message = str(err.value)
    assert "resnet50-11ad3fa6.pth" in message and str(tmp_path / "hub" / "checkpoints") in message

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError, match=r"resnet50-0676ba61\.pth.*download failed: .*no network|download failed.*resnet50-0676ba61\.pth"):
        build_model(pretrained="imagenet")


# ---------------------------------------------------------------- MACs and the report
def test_macs_baseline_and_sc_stem_exact():
    base = count_macs(model(), 48)
    # SC: conv1 (7x7x3 -> 64) now at 48x48 instead of 24x24, plus the 1x1 256 -> 64 conv at 24x24
    added = (48 * 48 - 24 * 24) * 64 * 147 + 24 * 24 * 256 * 64
    assert count_macs(model("none", "sc"), 48) - base == added
    assert count_macs(model("simam"), 48) == base  # parameter-free, elementwise only
    m = model()
    m.train()
    count_macs(m, (40, 36))
    assert m.training


def test_report(capsys):
    assert main(["--size", "32", "--attention", "none", "simam", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| attention | stem | params | added vs baseline | GMACs@32px | forward |"
    assert lines[2:6] == [
        "| none | stride2 | 23,522,375 | +0 | 0.083 | ok |",
        "| none | sc | 23,538,887 | +16,512 | 0.095 | ok |",
        "| simam | stride2 | 23,522,375 | +0 | 0.083 | ok |",
        "| simam | sc | 23,538,887 | +16,512 | 0.095 | ok |",
    ]


@pytest.mark.parametrize("attention, stem", [(a, "stride2") for a in
                                             ("none", "ca", "simam", "bam", "eca", "acmix", "coordatt", "se", "cbam",
                                              "gate")] + [("ca+simam", "sc"), ("acmix", "sc")])
def test_channels_last_gives_the_contiguous_result(attention, stem, one_thread):
    # speed.channels_last is on by default: every module must accept that memory format (no .view on it)
    torch.manual_seed(0)
    model = build_model(attention, stem, num_classes=7).eval()
    x = torch.randn(2, 3, 37, 45)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    got.sum().backward()
