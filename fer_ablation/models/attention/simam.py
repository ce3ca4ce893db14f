"""SimAM: a parameter-free 3-D attention module.

Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
Neural Networks", ICML 2021 (code: ZjjConan/SimAM).

Per channel, over the H x W positions of X:

    n     = H * W - 1
    d     = (x - mean(x))^2
    v     = sum(d) / n
    E_inv = d / (4 (v + lambda)) + 1/2
    out   = x * sigmoid(E_inv)

lambda defaults to 1e-4 (the module's default; the authors' ImageNet runs used 0.1).
On a 1 x 1 map n would be 0; we use n = max(H * W - 1, 1), so d = v = 0 and
out = x * sigmoid(1/2) instead of NaN.
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
