"""CoordAtt: coordinate attention.

Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021
(code: houqb/CoordAttention).

    z^h = mean_w x            C x H x 1        (strip pooling along the width)
    z^w = mean_h x            C x 1 x W        (strip pooling along the height)
    f   = h_swish(BN(F_1([z^h; z^w])))         F_1: 1x1 conv C -> mip, mip = max(8, C / r)
    f^h, f^w = split(f)
    g^h = sigmoid(F_h(f^h)),  g^w = sigmoid(F_w(f^w))     1x1 convs mip -> C
    out = x * g^h * g^w

The strip pooling is a plain mean over one axis (deterministic on CUDA, any H != W).
"""

import torch
from torch import nn


class CoordAtt(nn.Module):
    def __init__(self, C: int, r: int = 32, min_mip: int = 8):
        super().__init__()
        mip = max(min_mip, C // r)
        self.conv1 = nn.Conv2d(C, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mip, C, 1)
        self.conv_w = nn.Conv2d(mip, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        z_h = x.mean(dim=3, keepdim=True)                       # B, C, H, 1
        z_w = x.mean(dim=2, keepdim=True).transpose(2, 3)       # B, C, W, 1
        f = self.act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [H, W], dim=2)
        g_h = torch.sigmoid(self.conv_h(f_h))                   # B, C, H, 1
        g_w = torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))   # B, C, 1, W
        return x * g_h * g_w
