"""Parameter and multiply-accumulate counts.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2). It counts
convolutions and matrix products (conv, linear, mm, bmm, ...), not elementwise work: gating
multiplications, SimAM's statistics, and ACmix's window dot products (done elementwise here)
add nothing, as in fvcore-style counts.
"""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _size(image_size) -> tuple[int, int]:
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


@torch.no_grad()
def profile(model: nn.Module, image_size, in_chans: int = 3) -> tuple[int, torch.Tensor]:
    """(MACs, output) of one eval-mode forward pass of a batch of one image; training mode is restored."""
    was_training = model.training
    param = next(model.parameters())
    x = torch.randn(1, in_chans, *_size(image_size), device=param.device, dtype=param.dtype)
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2, out


def count_macs(model: nn.Module, image_size, in_chans: int = 3) -> int:
    """Multiply-accumulates of one image of ``image_size`` (int or (H, W)) through ``model``."""
    return profile(model, image_size, in_chans)[0]
