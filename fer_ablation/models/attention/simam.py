"""SimAM: a parameter-free 3-D attention module.

Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
Neural Networks", ICML 2021 (code: ZjjConan/SimAM).

Per channel, over the H x W positions of X:

    n     = H * W - 1
    d     = (x - mean(x))^2
    v     = sum(d) / n
    E_inv = d / (4 (v + lambda)) + 1/2
    out   = x * sigmoid(E_inv)

On a 1 x 1 map n would be 0; we use n = max(H * W - 1, 1), so d = v = 0 and
out = x * sigmoid(1/2) instead of NaN.

What the source paper (Hu, Tang, Zhu, Zhu, Intelligent Computer and Applications 14(8), 2024)
states (Sec. 1.2): SimAM is combined with CA and "added at the first layer and the last layer of
the network" (Fig. 3). What we chose, where it is silent: "first" = the stem, after CA and before
the max pooling (64 channels), "last" = after layer4 (2048 channels): the placement "first_last"
(fer_ablation/models/resnet.py; "blocks" puts SimAM after every Bottleneck's conv2, the SimAM
authors' place). lambda: the paper gives none; 1e-4 is the SimAM module's default (the SimAM
authors' ImageNet runs used 0.1), selectable with simam_lambda.
"""

import torch
from torch import nn


class SimAM(nn.Module):
    def __init__(self, e_lambda: float = 1e-4):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = max(x.shape[-2] * x.shape[-1] - 1, 1)
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        v = d.sum(dim=(2, 3), keepdim=True) / n
        e_inv = d / (4 * (v + self.e_lambda)) + 0.5
        return x * torch.sigmoid(e_inv)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"
