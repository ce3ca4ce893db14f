"""ResNet50 (torchvision layout and parameter names) with a selectable stem and attention modules.

Where each module goes (Hu et al. 2024, Sec. 1.1-1.3 and Figs. 2-4, for CA, SimAM and SC; for the
others, each module's own paper, cited in its file under fer_ablation/models/attention/):

    conv1 -> bn1 -> relu -> [sc] -> attention.stem -> maxpool
    layer1 -> attention.layer1 -> ... -> layer4 -> attention.layer4 -> avgpool -> fc
    Bottleneck: conv1 -> bn1 -> relu -> conv2 -> conv2_attention -> bn2 -> relu -> conv3 -> bn3
                -> attention -> (+ identity) -> relu

Placements: stem = attention.stem (64 ch); last = attention.layer4 (2048 ch); first_last =
both; stages = attention.layer1..3 (256 / 512 / 1024 ch); blocks = every Bottleneck's
``attention`` after bn3 (SimAM: ``conv2_attention``, the authors' place). ACmix replaces
every Bottleneck's conv2. Several modules at one place run in the order of ``MODULES``
(so the paper's stem is conv1 -> bn1 -> relu -> SC -> CA -> SimAM -> maxpool).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from fer_ablation.models.attention import BAM, CBAM, ECA, SE, ACmix, ChannelAttention, ConstantGate, CoordAtt, SimAM
from fer_ablation.models.attention.ca import GATES as CA_GATES
from fer_ablation.models.pretrained import load_imagenet, pretrained_choice
from fer_ablation.models.stems import SC

logger = logging.getLogger("fer_ablation.models")

# gate: the parameter-free control arm (x * 0.5 where ECA / CoordAtt gate), not an attention module
MODULES = ("ca", "simam", "bam", "eca", "acmix", "coordatt", "se", "cbam", "gate")
ATTENTIONS = ("none",) + MODULES
STEMS = ("stride2", "sc")
PLACEMENTS = ("stem", "last", "first_last", "blocks", "stages")
DEFAULT_PLACEMENT = {
    "ca": "stem",
    "simam": "first_last",
    "bam": "stages",
    "eca": "blocks",
    "acmix": "blocks",
    "coordatt": "blocks",
    "se": "blocks",
    "cbam": "blocks",
    "gate": "blocks",
}
# ACmix is not a gate: it replaces each Bottleneck's 3x3 conv, so "blocks" is its only placement.
ALLOWED_PLACEMENTS = {name: ("blocks",) if name == "acmix" else PLACEMENTS for name in MODULES}
OPTIONS = {
    "ca_kernel": 3,
    "ca_reduction": 16,
    "ca_gate": "sigmoid",  # sigmoid | none | softmax (over channels); the paper names no gate
    "simam_lambda": 1e-4,
    "sc_kernel": 1,
    "bam_reduction": 16,
    "bam_dilation": 4,
    "eca_kernel": None,  # None / "adaptive": per-channel rule; "released": 3,5,5,7 per stage; int; [k1, k2, k3, k4]
    "coordatt_reduction": 32,
    "acmix_kernel_att": 7,
    "acmix_heads": 4,
    "acmix_kernel_conv": 3,
    "se_reduction": 16,
    "cbam_reduction": 16,
    "cbam_kernel": 7,
    "gate_value": 0.5,
    # torchvision semantics: every Bottleneck's bn3 weight starts at 0, so each block starts as the identity
    "zero_init_residual": False,
    "download": True,  # pretrained: allow torchvision to download the file when it is not in the cache
}
ECA_RELEASED_KERNELS = (3, 5, 5, 7)  # the released ECA-Net50's k_size per stage
STAGES = ("layer1", "layer2", "layer3", "layer4")
STAGE_CHANNELS = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
LOCATIONS = {"stem": ("stem",), "last": ("layer4",), "first_last": ("stem", "layer4"), "stages": STAGES[:3]}


class ModelSpec(NamedTuple):
    attentions: list[str]  # module names in application order (MODULES order); [] for "none"
    stem: str
    placement: dict[str, str]  # every module in attentions -> its placement (defaults filled in)


def _choices(values) -> str:
    return ", ".join(values)


def parse_model_spec(attention="none", stem="stride2", placement=None, *, pretrained=None, **options) -> ModelSpec:
    """Validate a model description without building it; raise ValueError listing the valid choices."""
    if not isinstance(attention, str) or not attention.strip():
        raise ValueError(f"attention must be a string: one of {_choices(ATTENTIONS)} or several joined by '+', got {attention!r}")
    names = [part.strip().lower() for part in attention.split("+")]
    if names != ["none"]:
        for name in names:
            if name not in MODULES:
                raise ValueError(
                    f"unknown attention {name!r} in {attention!r}; valid: {_choices(ATTENTIONS)} "
                    f"or several modules joined by '+' (e.g. 'ca+simam')"
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"attention {attention!r} names {_choices(duplicates)} more than once")
    modules = sorted((n for n in names if n != "none"), key=MODULES.index)

    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid: {_choices(STEMS)}")

    if placement is None:
        placement = {}
    if not isinstance(placement, Mapping):
        raise ValueError(f"placement must be a mapping {{module: placement}}, got {placement!r}")
    resolved = {name: DEFAULT_PLACEMENT[name] for name in modules}
    for name, where in placement.items():
        if name not in resolved:
            raise ValueError(
                f"placement given for {name!r}, which is not in attention {attention!r} "
                f"(modules: {_choices(modules) or 'none'})"
            )
        if where not in ALLOWED_PLACEMENTS[name]:
            raise ValueError(f"unknown placement {where!r} for {name!r}; valid: {_choices(ALLOWED_PLACEMENTS[name])}")
        resolved[name] = where

    pretrained_choice(pretrained)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown model option(s) {_choices(unknown)}; valid: {_choices(OPTIONS)}")
    if "eca_kernel" in options:
        _eca_kernel(options["eca_kernel"], "layer1")
    if options.get("ca_gate", OPTIONS["ca_gate"]) not in CA_GATES:
        raise ValueError(f"ca_gate must be one of {_choices(CA_GATES)}, got {options['ca_gate']!r}")
    return ModelSpec(modules, stem, resolved)


def _eca_kernel(value, location: str) -> int | None:
    stage = STAGES.index(location) if location in STAGES else 0  # the stem counts as stage 1
    if value is None or value == "adaptive":
        return None
    if value == "released":
        return ECA_RELEASED_KERNELS[stage]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 4:
        return int(value[stage])
    raise ValueError(
        f"eca_kernel must be null or 'adaptive' (|log2(C)/2 + 1/2| rounded to odd), 'released' "
        f"(3, 5, 5, 7 per stage), an odd int, or a list of 4 odd ints (one per stage); got {value!r}"
    )


class Bottleneck(tv_resnet.Bottleneck):
    """torchvision's Bottleneck (v1.5) with two places for attention on the residual branch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv2_attention = nn.Sequential()
        self.attention = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2_attention(self.conv2(out))))
        out = self.attention(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class FERResNet(tv_resnet.ResNet):
    """torchvision ResNet50 (same parameter names) with ``sc`` and ``attention`` slots; see the module docstring."""

    def __init__(self, num_classes: int = 7, in_chans: int = 3):
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
        if in_chans != 3:
            self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.in_chans = in_chans
        self.sc = nn.Identity()
        self.attention = nn.ModuleDict({loc: nn.Sequential() for loc in STAGE_CHANNELS})

    def blocks(self):
        """(stage name, Bottleneck) for the 16 blocks."""
        for stage in STAGES:
            for block in getattr(self, stage):
                yield stage, block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sc(self.relu(self.bn1(self.conv1(x))))
        x = self.maxpool(self.attention["stem"](x))
        for stage in STAGES:
            x = self.attention[stage](getattr(self, stage)(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _gate(name: str, C: int, location: str, opts: dict) -> nn.Module:
    if name == "ca":
        return ChannelAttention(C, r=opts["ca_reduction"], k=opts["ca_kernel"], gate=opts["ca_gate"])
    if name == "simam":
        return SimAM(e_lambda=opts["simam_lambda"])
    if name == "bam":
        return BAM(C, r=opts["bam_reduction"], d=opts["bam_dilation"])
    if name == "eca":
        return ECA(C, k=_eca_kernel(opts["eca_kernel"], location))
    if name == "coordatt":
        return CoordAtt(C, r=opts["coordatt_reduction"])
    if name == "se":
        return SE(C, r=opts["se_reduction"])
    if name == "cbam":
        return CBAM(C, r=opts["cbam_reduction"], k=opts["cbam_kernel"])
    if name == "gate":
        return ConstantGate(opts["gate_value"])
    raise AssertionError(name)


def build_model(
    attention="none", stem="stride2", num_classes=7, in_chans=3, pretrained=None, placement=None, **options
) -> FERResNet:
    """ResNet50 with the given stem and attention; see ``parse_model_spec`` for the accepted values.

    pretrained: None / "none" | "imagenet" (= "imagenet_v1") | "imagenet_v1" | "imagenet_v2" (torchvision
    weights from torch.hub's cache; fc is left freshly initialised, new modules are logged).
    """
    spec = parse_model_spec(attention, stem, placement, pretrained=pretrained, **options)
    opts = {**OPTIONS, **options}
    model = FERResNet(num_classes=num_classes, in_chans=in_chans)
    if spec.stem == "sc":
        model.conv1.stride = (1, 1)
        model.sc = SC(64, k=opts["sc_kernel"])
        nn.init.kaiming_normal_(model.sc.conv.weight, mode="fan_out", nonlinearity="relu")
    for name in spec.attentions:
        where = spec.placement[name]
        if name == "acmix":
            for _, block in model.blocks():
                width = block.conv2.in_channels
                block.conv2 = ACmix(
                    width,
                    width,
                    k_att=opts["acmix_kernel_att"],
                    N=opts["acmix_heads"],
                    k_conv=opts["acmix_kernel_conv"],
                    stride=block.stride,
                )
        elif where == "blocks":
            for stage, block in model.blocks():
                slot = block.conv2_attention if name == "simam" else block.attention
                slot.add_module(name, _gate(name, block.bn3.num_features, stage, opts))
        else:
            for loc in LOCATIONS[where]:
                model.attention[loc].add_module(name, _gate(name, STAGE_CHANNELS[loc], loc, opts))
    choice = pretrained_choice(pretrained)
    if choice is not None:
        load_imagenet(model, choice, in_chans=in_chans, download=opts["download"])
    if opts["zero_init_residual"]:
        # After any ImageNet weights: torchvision zeroes bn3 at construction, which loading would undo.
        for _, block in model.blocks():
            nn.init.zeros_(block.bn3.weight)
    model.spec = spec
    return model


__all__ = [
    "ATTENTIONS",
    "DEFAULT_PLACEMENT",
    "MODULES",
    "OPTIONS",
    "PLACEMENTS",
    "STEMS",
    "FERResNet",
    "ModelSpec",
    "build_model",
    "parse_model_spec",
]
