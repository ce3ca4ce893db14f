"""Attention modules, one per file (each docstring cites its paper and states its formula), and the
registry that names them (`registry.py`): one `register_attention` call per module below.

A call gives the name (`model.attention=<name>`), how to build the module at a `Site` from its options,
its default placement, its options with their defaults (`model.options.<name>.<option>`) and, for a
module inside each Bottleneck, its slot. Built-in modules run in the order registered here where
several share a place (the paper's stem: SC -> CA -> SimAM).
"""

from fer_ablation.models.attention.acmix import ACmix
from fer_ablation.models.attention.bam import BAM
from fer_ablation.models.attention.ca import GATES as CA_GATES
from fer_ablation.models.attention.ca import ChannelAttention
from fer_ablation.models.attention.cbam import CBAM
from fer_ablation.models.attention.coordatt import CoordAtt
from fer_ablation.models.attention.eca import ECA, eca_kernel_size, stage_kernel
from fer_ablation.models.attention.gate import ConstantGate
from fer_ablation.models.attention.registry import (
    PLACEMENTS,
    AttentionEntry,
    Site,
    attention_names,
    get_attention,
    register_attention,
    unregister_attention,
)
from fer_ablation.models.attention.se import SE
from fer_ablation.models.attention.simam import SimAM


def _check_ca(options: dict) -> None:
    if options["gate"] not in CA_GATES:
        raise ValueError(f"ca gate must be one of {', '.join(CA_GATES)}, got {options['gate']!r}")


def _check_eca(options: dict) -> None:
    stage_kernel(options["kernel"], "layer1")


# gate is the parameter-free control arm (x * 0.5 where ECA / CoordAtt gate), not an attention module.
register_attention("ca", lambda site, kernel, reduction, gate: ChannelAttention(site.channels, r=reduction, k=kernel, gate=gate),
                   placement="stem", options={"kernel": 3, "reduction": 16, "gate": "sigmoid"}, check=_check_ca)
register_attention("simam", lambda site, e_lambda: SimAM(e_lambda=e_lambda),
                   placement="first_last", options={"e_lambda": 1e-4}, block_slot="conv2_attention")
register_attention("bam", lambda site, reduction, dilation: BAM(site.channels, r=reduction, d=dilation),
                   placement="stages", options={"reduction": 16, "dilation": 4})
# kernel: None / "adaptive": psi(C) per place; "released": 3, 5, 5, 7 per stage; an int; [k1, k2, k3, k4]
register_attention("eca", lambda site, kernel: ECA(site.channels, k=stage_kernel(kernel, site.location)),
                   placement="blocks", options={"kernel": None}, check=_check_eca)
register_attention("acmix", lambda site, kernel_att, heads, kernel_conv: ACmix(
                       site.channels, site.channels, k_att=kernel_att, N=heads, k_conv=kernel_conv, stride=site.stride),
                   placement="blocks", options={"kernel_att": 7, "heads": 4, "kernel_conv": 3}, block_slot="conv2")
register_attention("coordatt", lambda site, reduction: CoordAtt(site.channels, r=reduction),
                   placement="blocks", options={"reduction": 32})
register_attention("se", lambda site, reduction: SE(site.channels, r=reduction),
                   placement="blocks", options={"reduction": 16})
register_attention("cbam", lambda site, reduction, kernel: CBAM(site.channels, r=reduction, k=kernel),
                   placement="blocks", options={"reduction": 16, "kernel": 7})
register_attention("gate", lambda site, value: ConstantGate(value),
                   placement="blocks", options={"value": 0.5})

__all__ = [
    "ACmix", "BAM", "CBAM", "ChannelAttention", "ConstantGate", "CoordAtt", "ECA", "SE", "SimAM",
    "PLACEMENTS", "AttentionEntry", "Site", "attention_names", "eca_kernel_size", "get_attention",
    "register_attention", "unregister_attention",
]
