"""Model zoo: ResNet50 with the paper's SC stem and the registered attention modules (CA, SimAM, BAM, ECA,
ACmix, CoordAtt, SE, CBAM, the constant-gate control; `register_attention` adds one).

    build_model(attention="ca+simam", stem="sc", num_classes=7, pretrained="imagenet")
    python -m fer_ablation.models --size 48 224     # parameter / MAC table for every attention x stem
"""

from fer_ablation.models.attention import (
    BAM,
    CBAM,
    ECA,
    PLACEMENTS,
    SE,
    ACmix,
    ChannelAttention,
    CoordAtt,
    SimAM,
    attention_names,
    get_attention,
    register_attention,
    unregister_attention,
)
from fer_ablation.models.complexity import count_macs, count_parameters
from fer_ablation.models.pretrained import PRETRAINED, PretrainedWeightsUnavailable, checkpoint_path
from fer_ablation.models.resnet import STEMS, FERResNet, ModelSpec, build_model, model_options, parse_model_spec
from fer_ablation.models.stems import SC, SpaceToDepth

__all__ = [
    "BAM",
    "CBAM",
    "ECA",
    "PLACEMENTS",
    "PRETRAINED",
    "SC",
    "SE",
    "STEMS",
    "ACmix",
    "ChannelAttention",
    "CoordAtt",
    "FERResNet",
    "ModelSpec",
    "PretrainedWeightsUnavailable",
    "SimAM",
    "SpaceToDepth",
    "attention_names",
    "build_model",
    "checkpoint_path",
    "count_macs",
    "count_parameters",
    "get_attention",
    "model_options",
    "parse_model_spec",
    "register_attention",
    "unregister_attention",
]
