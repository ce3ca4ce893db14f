"""Attention modules, one per file; each docstring cites its paper and states its formula."""

from fer_ablation.models.attention.acmix import ACmix
from fer_ablation.models.attention.bam import BAM
from fer_ablation.models.attention.ca import ChannelAttention
from fer_ablation.models.attention.cbam import CBAM
from fer_ablation.models.attention.coordatt import CoordAtt
from fer_ablation.models.attention.eca import ECA, eca_kernel_size
from fer_ablation.models.attention.gate import ConstantGate
from fer_ablation.models.attention.se import SE
from fer_ablation.models.attention.simam import SimAM

__all__ = ["ACmix", "BAM", "CBAM", "ChannelAttention", "ConstantGate", "CoordAtt", "ECA", "SE", "SimAM", "eca_kernel_size"]
