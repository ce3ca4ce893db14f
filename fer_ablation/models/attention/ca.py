"""CA: the source paper's channel attention.

Hu, Tang, Zhu, Zhu, "Facial emotion recognition based on attention mechanism",
Intelligent Computer and Applications 14(8), 2024, Sec. 1.1, Fig. 1.

    Y = BN(Conv_{k x k}(X))                       C -> C channels, same spatial size
    S = GAP(Y) + GMP(Y)                           C x 1 x 1
    Z = sigmoid(FC_2(ELU(FC_1(S))))               FC_1: C -> C/r, FC_2: C/r -> C
    M = Y * Z                                     channel-wise

The paper states neither the kernel k nor the reduction r; we use k = 3 and r = 16.
"""

import torch
from torch import nn


class ChannelAttention(nn.Module):
    def __init__(self, C: int, r: int = 16, k: int = 3):
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"ChannelAttention kernel k must be odd to keep the spatial size, got {k}")
        hidden = max(1, C // r)
        self.conv = nn.Conv2d(C, C, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(C)
        self.fc1 = nn.Linear(C, hidden)
        self.act = nn.ELU()
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        s = y.mean(dim=(2, 3)) + y.amax(dim=(2, 3))
        z = torch.sigmoid(self.fc2(self.act(self.fc1(s))))
        return y * z[:, :, None, None]
