"""BAM: bottleneck attention module.

Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018
(code: Jongchan/attention-module).

    M_c(F) = W_1 ReLU(BN(W_0 AvgPool(F) + b_0)) + b_1      W_0: C -> C/r, W_1: C/r -> C
    M_s(F) = f_3(g(f_2(g(f_1(g(f_0(F)))))))                  g = ReLU(BN(.))
             f_0: 1x1 C -> C/r, f_1, f_2: 3x3 with dilation d, f_3: 1x1 C/r -> 1
    M(F)   = sigmoid(M_c(F) + M_s(F))     C x 1 x 1 and 1 x H x W broadcast to C x H x W
    out    = F + F * M(F) = F * (1 + M(F))

r = 16, d = 4. The paper wraps each branch's output in a BN; the released code (and the
+358,067 parameters it has on ResNet50) puts the BN inside each branch, as here.
Differences from the released code, all toward the paper or robustness: the branches are
added (the code multiplies them), the pooling is a mean over H and W (the code assumes
square maps), and in training mode a batch of one is normalised with the running statistics
in the channel branch (BatchNorm1d has no batch statistics there and would raise).
"""

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, k: int, d: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=d * (k // 2), dilation=d), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class BAM(nn.Module):
    def __init__(self, C: int, r: int = 16, d: int = 4):
        super().__init__()
        hidden = max(1, C // r)
        self.channel_fc1 = nn.Linear(C, hidden)
        self.channel_bn = nn.BatchNorm1d(hidden)
        self.channel_fc2 = nn.Linear(hidden, C)
        self.spatial = nn.Sequential(
            *_conv_bn_relu(C, hidden, 1),
            *_conv_bn_relu(hidden, hidden, 3, d),
            *_conv_bn_relu(hidden, hidden, 3, d),
            nn.Conv2d(hidden, 1, 1),
        )

    def _channel_norm(self, z: torch.Tensor) -> torch.Tensor:
        bn = self.channel_bn
        if bn.training and z.shape[0] == 1:
            return F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return bn(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.channel_fc1(x.mean(dim=(2, 3)))
        m_c = self.channel_fc2(torch.relu(self._channel_norm(z)))
        m_s = self.spatial(x)
        return x * (1 + torch.sigmoid(m_c[:, :, None, None] + m_s))
