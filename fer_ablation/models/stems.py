"""The paper's SC (interval sampling) stem: space-to-depth, then a 4C -> C convolution.

Hu, Tang, Zhu, Zhu, "Facial emotion recognition based on attention mechanism", Intelligent
Computer and Applications 14(8), 2024, Sec. 1.3, Fig. 4; the same operation as SPD-Conv
(Sunkara, Luo, "No More Strided Convolutions or Pooling: A New CNN Building Block for
Low-Resolution Images and Small Objects", ECML PKDD 2022) and YOLOv5's Focus layer. No code
was released for the paper.

What the paper states (Sec. 1.3): the stem's 7 x 7 convolution gets stride 1 and SC follows
it; SC samples the H x W x C map at every other position along x and y into 4 maps of
H/2 x W/2 x C, concatenates them to H/2 x W/2 x 4C, and one convolution brings the channels
back to C.

What we chose, where the paper is silent: the order of the 4 maps (SPD-Conv's / Focus's), zero
padding of an odd H or W, the reducing convolution's kernel (k = 1, SPD-Conv's ResNet stem;
3 selectable with sc_kernel) and no bias, a BN and a ReLU after it (as SPD-Conv and Focus
do), and SC's place after conv1's BN and ReLU (see fer_ablation/models/resnet.py).
"""

import torch
import torch.nn.functional as F
from torch import nn


class SpaceToDepth(nn.Module):
    """X (C x H x W) -> [X[::2, ::2]; X[1::2, ::2]; X[::2, 1::2]; X[1::2, 1::2]] (4C x H/2 x W/2).

    The channel order is SPD-Conv's / Focus's, not ``pixel_unshuffle``'s. An odd H or W is
    zero-padded at the bottom / right to even first. No parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)


class SC(nn.Module):
    """SC = ReLU(BN(Conv_{k x k}(SpaceToDepth(X)))), 4C -> C channels, half resolution (module docstring)."""

    def __init__(self, C: int, k: int = 1):
        super().__init__()
        if k % 2 == 0:
            raise ValueError(f"SC reducing conv kernel must be odd, got {k}")
        self.space_to_depth = SpaceToDepth()
        self.conv = nn.Conv2d(4 * C, C, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(C)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.space_to_depth(x))))
