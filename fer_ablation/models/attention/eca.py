"""ECA: efficient channel attention.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020 (code: BangguWu/ECANet).

    y   = GAP(x)                                   C values
    w   = sigmoid(Conv1D_k(y))                     one 1-D kernel across channels, no bias,
                                                   zero padding (k - 1) / 2
    out = x * w

Adaptive kernel size psi(C) = |log2(C) / gamma + b / gamma|, truncated to an integer and
rounded up to the next odd number (gamma = 2, b = 1), at least 3:
3 for C = 64, 5 for C = 256..1024, 7 for C = 2048. The released ECA-Net50 fixes k = 3, 5, 5, 7 per
stage instead (`stage_kernel(kernel="released", ...)`).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn


RELEASED_KERNELS = (3, 5, 5, 7)  # the released ECA-Net50's k_size per stage
STAGES = ("layer1", "layer2", "layer3", "layer4")


def stage_kernel(kernel, location: str) -> int | None:
    """The kernel size for a location (stem, layer1..layer4; the stem counts as stage 1) from the
    `kernel` option: None / "adaptive" (psi(C), returned as None), "released", an int, or 4 ints."""
    stage = STAGES.index(location) if location in STAGES else 0
    if kernel is None or kernel == "adaptive":
        return None
    if kernel == "released":
        return RELEASED_KERNELS[stage]
    if isinstance(kernel, int) and not isinstance(kernel, bool):
        return kernel
    if isinstance(kernel, Sequence) and not isinstance(kernel, str) and len(kernel) == 4:
        return int(kernel[stage])
    raise ValueError(
        f"ECA kernel must be null or 'adaptive' (|log2(C)/2 + 1/2| rounded to odd), 'released' "
        f"(3, 5, 5, 7 per stage), an odd int, or a list of 4 odd ints (one per stage); got {kernel!r}"
    )


def eca_kernel_size(C: int, gamma: int = 2, b: int = 1) -> int:
    t = int(abs((math.log2(C) + b) / gamma))
    return max(3, t if t % 2 else t + 1)


class ECA(nn.Module):
    def __init__(self, C: int, k: int | None = None, gamma: int = 2, b: int = 1):
        super().__init__()
        k = eca_kernel_size(C, gamma, b) if k is None else k
        if k < 1 or k % 2 == 0:
            raise ValueError(f"ECA kernel size k must be a positive odd number, got {k}")
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3))[:, None, :]
        w = torch.sigmoid(self.conv(y))[:, 0, :, None, None]
        return x * w
