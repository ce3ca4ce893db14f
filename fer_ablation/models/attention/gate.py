"""A constant gate: the control arm for attention gates, with no attention.

    out = x * g          g = 0.5 (fixed, not learned, no parameters)

ECA, CoordAtt, SE and CBAM multiply every Bottleneck's residual branch by a sigmoid gate before
the residual addition. At initialisation such a gate is close to sigmoid(0) = 0.5 wherever its
input is small, so besides any attention it halves the residual branch against the identity
path, which by itself changes early training the way residual rescaling does (Goyal et al.,
"Accurate, Large Minibatch SGD", 2017, zero-initialised last BN of each block; Zhang, Dauphin,
Ma, "Fixup Initialization", ICLR 2019). This module does only that rescaling, with the value a
sigmoid gate starts at, so a module that does not beat it has shown no benefit of attention
beyond the rescaling.
"""

import torch
from torch import nn


class ConstantGate(nn.Module):
    def __init__(self, value: float = 0.5):
        super().__init__()
        if not 0 < value <= 1:
            raise ValueError(f"the constant gate's value must lie in (0, 1], got {value!r}")
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"
