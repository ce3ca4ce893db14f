"""CA: the source paper's channel attention.

Hu, Tang, Zhu, Zhu, "Facial emotion recognition based on attention mechanism",
Intelligent Computer and Applications 14(8), 2024, Sec. 1.1, Fig. 1. No code was released.

What the paper states (Sec. 1.1): an ordinary convolution maps X to Y of the same size
(C x H x W); Y is pooled by global average pooling and global max pooling and the two vectors
are added; two fully connected layers and an ELU give the channel attention vector Z (1 x 1 x C,
"the importance weight of each channel"); M = Y * Z channel-wise. The module sits before the
stem's max pooling (Sec. 1.1, Fig. 2).

What we chose, where the paper is silent:

    Y = BN(Conv_{k x k}(X))           k = 3, no conv bias; the BN after the convolution is ours
    S = GAP(Y) + GMP(Y)               (stated)
    Z = gate(FC_2(ELU(FC_1(S))))      FC_1: C -> C/r, FC_2: C/r -> C, r = 16; ELU between the two
                                      FCs (the paper names both but not their order)
    M = Y * Z                         (stated)

gate: "sigmoid" (default; as in SE and CBAM), "none" (Z is the FC output itself), or
"softmax" over the C channels (the weights of one sample sum to 1). The paper names no gate.
"""

import torch
from torch import nn

GATES = ("sigmoid", "none", "softmax")


class ChannelAttention(nn.Module):
    def __init__(self, C: int, r: int = 16, k: int = 3, gate: str = "sigmoid"):
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"ChannelAttention kernel k must be odd to keep the spatial size, got {k}")
        if gate not in GATES:
            raise ValueError(f"unknown ChannelAttention gate {gate!r}; valid: {', '.join(GATES)}")
        hidden = max(1, C // r)
        self.gate = gate
        self.conv = nn.Conv2d(C, C, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(C)
        self.fc1 = nn.Linear(C, hidden)
        self.act = nn.ELU()
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        s = y.mean(dim=(2, 3)) + y.amax(dim=(2, 3))
        z = self.fc2(self.act(self.fc1(s)))
        if self.gate == "sigmoid":
            z = torch.sigmoid(z)
        elif self.gate == "softmax":
            z = z.softmax(dim=1)
        return y * z[:, :, None, None]

    def extra_repr(self) -> str:
        return f"gate={self.gate}"
