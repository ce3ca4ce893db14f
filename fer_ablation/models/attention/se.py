"""SE: squeeze-and-excitation.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

    z   = GAP(x)                                   C values
    s   = sigmoid(W_2 ReLU(W_1 z + b_1) + b_2)     W_1: C -> C/r, W_2: C/r -> C
    out = x * s
"""

import torch
from torch import nn


class SE(nn.Module):
    def __init__(self, C: int, r: int = 16):
        super().__init__()
        hidden = max(1, C // r)
        self.fc1 = nn.Linear(C, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]
