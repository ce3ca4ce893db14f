"""CBAM: convolutional block attention module.

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018
(code: Jongchan/attention-module).

    M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))      shared MLP C -> C/r -> C
    F'     = M_c(F) * F
    M_s(F')= sigmoid(BN(f_{7x7}([MaxPool_c(F'); AvgPool_c(F')])))   pooled over channels
    out    = M_s(F') * F'

The BN after the 7x7 convolution (and the max-then-mean channel order) follow the authors'
released code, which produced the published numbers.
"""

import torch
from torch import nn


class CBAM(nn.Module):
    def __init__(self, C: int, r: int = 16, k: int = 7):
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"CBAM spatial kernel k must be odd, got {k}")
        hidden = max(1, C // r)
        self.mlp = nn.Sequential(nn.Linear(C, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, C))
        self.spatial_conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m_c = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        x = x * m_c[:, :, None, None]
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        m_s = torch.sigmoid(self.spatial_bn(self.spatial_conv(pooled)))
        return x * m_s
