"""Model zoo: ResNet50 with the paper's SC stem and attention modules (CA, SimAM, BAM, ECA, ACmix, CoordAtt, SE, CBAM).

    build_model(attention="ca+simam", stem="sc", num_classes=7, pretrained="imagenet")
    python -m fer_ablation.models --size 48 224     # parameter / MAC table for every attention x stem
"""

from fer_ablation.models.attention import BAM, CBAM, ECA, SE, ACmix, ChannelAttention, CoordAtt, SimAM
from fer_ablation.models.complexity import count_macs, count_parameters
from fer_ablation.models.pretrained import PRETRAINED, PretrainedWeightsUnavailable, checkpoint_path
from fer_ablation.models.resnet import (
    ATTENTIONS,
    DEFAULT_PLACEMENT,
    MODULES,
    OPTIONS,
    PLACEMENTS,
    STEMS,
    FERResNet,
    ModelSpec,
    build_model,
    parse_model_spec,
)
from fer_ablation.models.stems import SC, SpaceToDepth

__all__ = [
    "ATTENTIONS",
    "BAM",
    "CBAM",
    "DEFAULT_PLACEMENT",
    "ECA",
    "MODULES",
    "OPTIONS",
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
    "build_model",
    "checkpoint_path",
    "count_macs",
    "count_parameters",
    "parse_model_spec",
]
