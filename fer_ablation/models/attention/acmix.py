"""ACmix: a mix of local self-attention and convolution sharing one set of 1x1 projections.

Pan, Ge, Lu, Song, Chen, Huang, Huang, "On the Integration of Self-Attention and
Convolution", CVPR 2022 (code: LeapLabTHU/ACmix). Replaces a k_conv x k_conv convolution.

Stage I (shared):    q, k, v = W_q x, W_k x, W_v x       1x1 convs C_in -> C_out, N heads of
                                                          d = C_out / N channels each
Stage II, attention: per head and output position i (queries taken at the stride),
    a_ij  = softmax_j( q_i . (k_j + p_i - p_j) / sqrt(d) )   j in the k_att x k_att window around i
    o_i   = sum_j a_ij v_j
    p = W_p g, the relative position encoding of a coordinate grid g (x, y in [-1, 1]).
Stage II, convolution:
    f     = FC([q; k; v])                 a 1x1 layer over the 3N head features -> k_conv^2 groups
    o'    = shift-conv(f)                 grouped k_conv x k_conv conv, initialised to the one-hot
                                          kernels that shift group j by offset j
out = alpha * o + beta * o',  alpha = beta = 0.5 at init, both learned.

Implementation notes (same function as the released code, different memory and edges):
- The window is never unfolded (the released code copies every key and value k_att^2 times).
  We loop over the k_att^2 offsets on zero-padded k and v, stack only the logits (k_att^2
  numbers per position and head), take one softmax, and accumulate the weighted values.
- Keys outside the map are masked out of the softmax (the released code reflects them, which
  needs maps of at least 4 px and, with its reshapes, sizes that are multiples of the stride).
- p_i - p_j = W_p (g_i - g_j) is a fixed function of the offset, so we compute it per offset;
  W_p therefore has no bias (a bias cancels in p_i - p_j and would never train).
"""

import torch
import torch.nn.functional as F
from torch import nn


class ACmix(nn.Module):
    def __init__(self, C_in: int, C_out: int, k_att: int = 7, N: int = 4, k_conv: int = 3, stride: int = 1):
        super().__init__()
        if C_out % N:
            raise ValueError(f"ACmix output channels {C_out} must be divisible by the number of heads N={N}")
        if k_att % 2 == 0 or k_conv % 2 == 0:
            raise ValueError(f"ACmix kernel sizes must be odd, got k_att={k_att}, k_conv={k_conv}")
        self.k_att, self.N, self.k_conv, self.stride = k_att, N, k_conv, stride
        self.d = C_out // N
        self.q = nn.Conv2d(C_in, C_out, 1)
        self.k = nn.Conv2d(C_in, C_out, 1)
        self.v = nn.Conv2d(C_in, C_out, 1)
        self.pos = nn.Conv2d(2, self.d, 1, bias=False)
        self.fc = nn.Conv2d(3 * N, k_conv * k_conv, 1, bias=False)
        self.dep_conv = nn.Conv2d(
            k_conv * k_conv * self.d, C_out, k_conv, stride=stride, padding=k_conv // 2, groups=self.d
        )
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.beta = nn.Parameter(torch.tensor(0.5))
        self.reset_shift()

    @torch.no_grad()
    def reset_shift(self) -> None:
        """One-hot shift kernels: input j of every group moves by offset (j // k - k//2, j % k - k//2)."""
        k = self.k_conv
        shift = torch.zeros(k * k, k, k)
        for j in range(k * k):
            shift[j, j // k, j % k] = 1.0
        self.dep_conv.weight.copy_(shift.expand_as(self.dep_conv.weight))
        self.dep_conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        return self.alpha * self._attention(q, k, v) + self.beta * self._convolution(q, k, v)

    def _convolution(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, _, H, W = q.shape
        f = self.fc(torch.cat([q, k, v], dim=1).view(B, 3 * self.N, self.d, H * W))  # B, k^2, d, HW
        return self.dep_conv(f.transpose(1, 2).reshape(B, self.d * self.k_conv**2, H, W))

    def _offsets(self, H: int, W: int, device, dtype):
        """Per window offset: (dy, dx), and the coordinate-grid difference g_i - g_j as (x, y)."""
        r = self.k_att // 2
        step_y = 2.0 / (H - 1) if H > 1 else 0.0
        step_x = 2.0 / (W - 1) if W > 1 else 0.0
        offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        delta = torch.tensor([[-dx * step_x, -dy * step_y] for dy, dx in offsets], device=device, dtype=dtype)
        return offsets, delta

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, C, H, W = q.shape
        s, r, N, d = self.stride, self.k_att // 2, self.N, self.d
        q = q.view(B * N, d, H, W)[:, :, ::s, ::s] * d**-0.5
        Ho, Wo = q.shape[-2:]
        k = F.pad(k.view(B * N, d, H, W), (r, r, r, r))
        v = F.pad(v.view(B * N, d, H, W), (r, r, r, r))
        inside = F.pad(q.new_ones(1, H, W, dtype=torch.bool), (r, r, r, r))

        def window(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
            y0, x0 = r + dy, r + dx
            return t[..., y0 : y0 + s * (Ho - 1) + 1 : s, x0 : x0 + s * (Wo - 1) + 1 : s]

        offsets, delta = self._offsets(H, W, q.device, q.dtype)
        rel = delta @ self.pos.weight[:, :, 0, 0].t()                        # k_att^2, d: p_i - p_j
        logits = F.conv2d(q, rel[:, :, None, None])                          # q_i . (p_i - p_j)
        logits = logits + torch.stack([(q * window(k, dy, dx)).sum(1) for dy, dx in offsets], dim=1)
        valid = torch.stack([window(inside, dy, dx)[0] for dy, dx in offsets])  # k_att^2, Ho, Wo
        attn = logits.masked_fill(~valid, float("-inf")).softmax(dim=1)
        out = sum(attn[:, j : j + 1] * window(v, dy, dx) for j, (dy, dx) in enumerate(offsets))
        return out.view(B, C, Ho, Wo)
