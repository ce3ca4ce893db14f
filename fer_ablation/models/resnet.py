"""ResNet50 (torchvision layout and parameter names) with a selectable stem and attention modules.

Where each module goes (Hu et al. 2024, Sec. 1.1-1.3 and Figs. 2-4, for CA, SimAM and SC; for the
others, each module's own paper, cited in its file under fer_ablation/models/attention/):

    conv1 -> bn1 -> relu -> [sc] -> attention.stem -> maxpool
    layer1 -> attention.layer1 -> ... -> layer4 -> attention.layer4 -> avgpool -> fc
    Bottleneck: conv1 -> bn1 -> relu -> conv2 -> conv2_attention -> bn2 -> relu -> conv3 -> bn3
                -> attention -> (+ identity) -> relu

Placements: stem = attention.stem (64 ch); last = attention.layer4 (2048 ch); first_last =
both; stages = attention.layer1..3 (256 / 512 / 1024 ch); blocks = every Bottleneck's slot that
the module's registry entry names: ``attention`` after bn3, ``conv2_attention`` (SimAM, the authors'
place), or ``conv2`` itself (ACmix replaces every Bottleneck's 3x3 conv). The modules, their default
placements and options are the registry's (fer_ablation/models/attention/). Several modules at one
place run in registration order (so the paper's stem is conv1 -> bn1 -> relu -> SC -> CA -> SimAM ->
maxpool).
"""

import functools
import logging
from collections.abc import Mapping
from typing import NamedTuple

import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.models import resnet as tv_resnet

from fer_ablation.config import CONFIG_DIR
from fer_ablation.config.experiments import split_attention
from fer_ablation.models.attention import Site, attention_names, get_attention
from fer_ablation.models.pretrained import load_imagenet, pretrained_choice
from fer_ablation.models.stems import SC

logger = logging.getLogger("fer_ablation.models")

STEMS = ("stride2", "sc")
STAGES = ("layer1", "layer2", "layer3", "layer4")
STAGE_CHANNELS = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
LOCATIONS = {"stem": ("stem",), "last": ("layer4",), "first_last": ("stem", "layer4"), "stages": STAGES[:3]}


@functools.cache
def model_options() -> dict:
    """The model options that belong to no attention module, with their defaults, from
    `conf/model/resnet50.yaml` (`options`; the one place they are written), e.g. zero_init_residual:
    torchvision's semantics, every Bottleneck's bn3 weight starts at 0 so each block starts as the identity."""
    path = CONFIG_DIR / "model" / "resnet50.yaml"
    options = OmegaConf.to_container(OmegaConf.load(path).get("options") or {})
    modules = sorted(set(options) & set(attention_names()))
    if modules:
        raise ValueError(f"{path}: options names module(s) {modules}; module options default in their registry entry")
    return options


class ModelSpec(NamedTuple):
    attentions: list[str]  # module names in application order (registration order); [] for "none"
    stem: str
    placement: dict[str, str]  # every module in attentions -> its placement (defaults filled in)
    options: dict[str, dict]  # every module in attentions -> its options (defaults filled in)


def _choices(values) -> str:
    return ", ".join(values)


def parse_model_spec(attention="none", stem="stride2", placement=None, *, pretrained=None, **options) -> ModelSpec:
    """Validate a model description without building it; raise ValueError listing the valid choices.

    options: `<module>: {option: value}` for the modules in `attention` (see their registry entries),
    and the model options of `model_options()` (e.g. zero_init_residual).
    """
    registered = attention_names()
    modules = [get_attention(name).name for name in split_attention(attention)]
    modules.sort(key=registered.index)

    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid: {_choices(STEMS)}")

    if placement is None:
        placement = {}
    if not isinstance(placement, Mapping):
        raise ValueError(f"placement must be a mapping {{module: placement}}, got {placement!r}")
    resolved = {name: get_attention(name).placement for name in modules}
    for name, where in placement.items():
        if name not in resolved:
            raise ValueError(
                f"placement given for {name!r}, which is not in attention {attention!r} "
                f"(modules: {_choices(modules) or 'none'})"
            )
        allowed = get_attention(name).placements
        if where not in allowed:
            raise ValueError(f"unknown placement {where!r} for {name!r}; valid: {_choices(allowed)}")
        resolved[name] = where

    pretrained_choice(pretrained)
    flat = model_options()
    unknown = sorted(set(options) - set(flat) - set(registered))
    if unknown:
        raise ValueError(f"unknown model option(s) {_choices(unknown)}; valid: {_choices(flat)}, or the options "
                         f"of a module in attention nested under its name (e.g. ca: {{reduction: 8}})")
    stray = sorted(set(options) & set(registered) - set(modules))
    if stray:
        raise ValueError(f"options given for {_choices(stray)}, which is not in attention {attention!r} "
                         f"(modules: {_choices(modules) or 'none'})")
    module_options = {}
    for name in modules:
        given = options.get(name)
        if given is not None and not isinstance(given, Mapping):
            raise ValueError(f"options for {name!r} must be a mapping {{option: value}}, got {given!r}")
        module_options[name] = get_attention(name).resolved_options(given)
    return ModelSpec(modules, stem, resolved, module_options)


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


def build_model(
    attention="none", stem="stride2", num_classes=7, in_chans=3, pretrained=None, placement=None, *,
    sc_kernel=1, download=True, **options
) -> FERResNet:
    """ResNet50 with the given stem and attention; see ``parse_model_spec`` for the accepted values.

    pretrained: None / "none" | "imagenet" (= "imagenet_v1") | "imagenet_v1" | "imagenet_v2" (torchvision
    weights from torch.hub's cache; fc is left freshly initialised, new modules are logged). download:
    allow torchvision to download the file when it is not in the cache. sc_kernel: the SC stem's conv.
    """
    spec = parse_model_spec(attention, stem, placement, pretrained=pretrained, **options)
    opts = {**model_options(), **{k: v for k, v in options.items() if k in model_options()}}
    model = FERResNet(num_classes=num_classes, in_chans=in_chans)
    if spec.stem == "sc":
        model.conv1.stride = (1, 1)
        model.sc = SC(64, k=sc_kernel)
        nn.init.kaiming_normal_(model.sc.conv.weight, mode="fan_out", nonlinearity="relu")
    for name in spec.attentions:
        entry, where, module_opts = get_attention(name), spec.placement[name], spec.options[name]
        if where == "blocks":
            for stage, block in model.blocks():
                if entry.block_slot == "conv2":
                    width = block.conv2.in_channels
                    block.conv2 = entry.build(Site(width, stage, block.stride), **module_opts)
                else:
                    site = Site(block.bn3.num_features, stage)
                    getattr(block, entry.block_slot).add_module(name, entry.build(site, **module_opts))
        else:
            for loc in LOCATIONS[where]:
                model.attention[loc].add_module(name, entry.build(Site(STAGE_CHANNELS[loc], loc), **module_opts))
    choice = pretrained_choice(pretrained)
    if choice is not None:
        load_imagenet(model, choice, in_chans=in_chans, download=download)
    zero_init = opts["zero_init_residual"]
    if zero_init is None:
        # the suite's rule: a from-scratch model starts every block as the identity; ImageNet weights stay as loaded
        zero_init = choice is None
    if zero_init:
        # After any ImageNet weights: torchvision zeroes bn3 at construction, which loading would undo.
        for _, block in model.blocks():
            nn.init.zeros_(block.bn3.weight)
    model.spec = spec
    return model


__all__ = [
    "STEMS",
    "FERResNet",
    "ModelSpec",
    "build_model",
    "model_options",
    "parse_model_spec",
]
