"""ECA: efficient channel attention.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020 (code: BangguWu/ECANet).

    y   = GAP(x)                                   C values
    w   = sigmoid(Conv1D_k(y))                     one 1-D kernel across channels, no bias,
                                                   zero padding (k - 1) / 2
    out = x * w

Adaptive kernel size psi(C) = |log2(C) / gamma + b / gamma|, truncated to an integer and
rounded up to the next odd number (gamma = 2, b = 1), at least 3:
3 for C = 64, 5 for C = 256..1024, 7 for C = 2048.
"""

import math

import torch
from torch import nn


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
