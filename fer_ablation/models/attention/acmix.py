"""ACmix: a mix of local self-attention and convolution sharing one set of 1x1 projections.

Pan, Ge, Lu, Song, Chen, Huang, Huang, "On the Integration of Self-Attention and
Convolution", CVPR 2022 (code: LeapLabTHU/ACmix, ResNet/test_bottleneck.py). Replaces a
k_conv x k_conv convolution.

Stage I (shared):    q, k, v = W_q x, W_k x, W_v x       1x1 convs C_in -> C_out, N heads of
                                                          d = C_out / N channels each
Stage II, attention: per head and output position i (queries taken at the stride),
    a_ij  = softmax_j( q_i . (k_j + p_i - p_j) / sqrt(d) )   j in the k_att x k_att window around i
    o_i   = sum_j a_ij v_j
    p = W_p g, the position encoding of a coordinate grid g (x, y in [-1, 1]), shared by the heads.
Stage II, convolution:
    f     = FC([q; k; v])                 a 1x1 layer over the 3N head features -> k_conv^2 groups
    o'    = shift-conv(f)                 grouped k_conv x k_conv conv without bias, initialised to
                                          the one-hot kernels that shift group j by offset j
out = rate1 * o + rate2 * o',  rate1 = rate2 = 0.5 at init, both learned, shape (1,).

Window edges, as in the authors' code: k, v and p are reflection-padded by r = k_att // 2, so a
window position j outside the map reads the mirrored position (its key, value and encoding).
Reflection needs H > r and W > r (4 x 4 for k_att = 7). On smaller maps, where the authors' code
fails, we fall back to masking: window positions outside the map are left out of the softmax.
In a ResNet50 at 48 px input that is 8 of the 16 blocks (layer3.1-5 on 3 x 3 maps, layer4 on
3 x 3 and 2 x 2), at 96 px layer4.1-2 (3 x 3); from 104 px on every map reflects.

Parameter names and shapes are the authors' (conv1 / conv2 / conv3 = W_q / W_k / W_v, conv_p,
fc, dep_conv, rate1, rate2), so their state dict loads directly, with one key map entry:
``conv_p.bias`` is dropped on loading. A bias of W_p adds the same vector to p_i and p_j and
cancels in p_i - p_j, so it never changes the output and never trains; conv_p has none here.

Implementation notes (same function as the released code):
- The windows are unfolded (``F.unfold`` of the padded k - p and v, k_att^2 copies of each, as the
  released code does), so the logits and the weighted sum are one batched product each: a few
  kernels per block instead of a loop over the k_att^2 offsets (49 slices, products and sums, and
  as many zero-filling slice backwards), which left a GPU waiting on kernel launches. The unfolded
  tensors are not kept for the backward pass (activation checkpointing of this step: it is
  recomputed from the padded maps), so autograd holds a few map-sized tensors per block, not the
  k_att^2 = 49 copies of k and v the released code keeps; one block's unfolded windows exist only
  while that block runs.
- q_i . (k_j + p_i - p_j) = q_i . (k_j - p_j) + q_i . p_i: we pad k - p once instead of k and p.
- Odd map sizes with stride 2 work (ceil(H / 2) outputs, as the stride-2 shift conv gives);
  the released code's reshapes need sizes that are multiples of the stride.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _reflect_pad(t: torch.Tensor, r: int) -> torch.Tensor:
    """ReflectionPad2d(r) from slices, flips and concatenation, whose CUDA backward is deterministic
    (reflection_pad2d's is not, and raises under torch.use_deterministic_algorithms on some versions)."""
    t = torch.cat([t[..., 1 : r + 1, :].flip(-2), t, t[..., -r - 1 : -1, :].flip(-2)], dim=-2)
    return torch.cat([t[..., 1 : r + 1].flip(-1), t, t[..., -r - 1 : -1].flip(-1)], dim=-1)


def _linspace(n: int, like: torch.Tensor) -> torch.Tensor:
    """torch.linspace(-1, 1, n), written so that ONNX gets [-1] for n = 1 (its export of linspace divides by
    n - 1 = 0 there, and a 1 x 1 map, layer4 of a 32 px input, came out NaN)."""
    return torch.arange(n, device=like.device, dtype=like.dtype) * (2.0 / max(n - 1, 1)) - 1.0


def _window_attention(q, q_dot_p, k, v, valid, k_att: int, stride: int) -> torch.Tensor:
    """softmax_j(q_i . k_j + q_i . p_i) weighted sum of v_j over the k_att x k_att window of every output position.

    q: (BN, d, L) queries at the stride, L = Ho * Wo; q_dot_p: (BN, 1, L); k, v: (BN, d, H + 2r, W + 2r) padded
    (k holds k - p); valid: None or (1, k_att^2, L), False where a window position lies outside the map.
    """
    BN, d, L = q.shape
    # window j of output position l: offsets (dy, dx) row-major from (-r, -r), as the released code unfolds
    k, v = (F.unfold(t, k_att, stride=stride).view(BN, d, k_att * k_att, L) for t in (k, v))
    logits = q_dot_p + torch.einsum("bcl,bcjl->bjl", q, k)
    if valid is not None:
        logits = logits.masked_fill(~valid, float("-inf"))
    return torch.einsum("bjl,bcjl->bcl", logits.softmax(dim=1), v)


class ACmix(nn.Module):
    def __init__(self, C_in: int, C_out: int, k_att: int = 7, N: int = 4, k_conv: int = 3, stride: int = 1):
        super().__init__()
        if C_out % N:
            raise ValueError(f"ACmix output channels {C_out} must be divisible by the number of heads N={N}")
        if k_att % 2 == 0 or k_conv % 2 == 0:
            raise ValueError(f"ACmix kernel sizes must be odd, got k_att={k_att}, k_conv={k_conv}")
        self.k_att, self.N, self.k_conv, self.stride = k_att, N, k_conv, stride
        self.d = C_out // N
        self.conv1 = nn.Conv2d(C_in, C_out, 1)  # W_q
        self.conv2 = nn.Conv2d(C_in, C_out, 1)  # W_k
        self.conv3 = nn.Conv2d(C_in, C_out, 1)  # W_v
        self.conv_p = nn.Conv2d(2, self.d, 1, bias=False)
        self.fc = nn.Conv2d(3 * N, k_conv * k_conv, 1, bias=False)
        self.dep_conv = nn.Conv2d(
            k_conv * k_conv * self.d, C_out, k_conv, stride=stride, padding=k_conv // 2, groups=self.d, bias=False
        )
        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))
        self.reset_shift()

    @torch.no_grad()
    def reset_shift(self) -> None:
        """One-hot shift kernels: input j of every group moves by offset (j // k - k//2, j % k - k//2)."""
        k = self.k_conv
        shift = torch.zeros(k * k, k, k)
        for j in range(k * k):
            shift[j, j // k, j % k] = 1.0
        self.dep_conv.weight.copy_(shift.expand_as(self.dep_conv.weight))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "conv_p.bias", None)  # the authors' W_p bias cancels in p_i - p_j (docstring)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        return self.rate1 * self._attention(q, k, v) + self.rate2 * self._convolution(q, k, v)

    def _convolution(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, _, H, W = q.shape
        f = self.fc(torch.cat([q, k, v], dim=1).reshape(B, 3 * self.N, self.d, H * W))  # B, k^2, d, HW
        return self.dep_conv(f.transpose(1, 2).reshape(B, self.d * self.k_conv**2, H, W))

    def reflects(self, H: int, W: int) -> bool:
        """Whether an H x W map gets the authors' reflection padding (else: masking, see docstring)."""
        r = self.k_att // 2
        return H > r and W > r

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, C, H, W = q.shape
        s, r, N, d = self.stride, self.k_att // 2, self.N, self.d
        grid = torch.stack(
            torch.meshgrid(_linspace(H, q), _linspace(W, q), indexing="ij")[::-1]
        )  # channel 0 = x (along W), channel 1 = y (along H)
        p = F.conv2d(grid[None], self.conv_p.weight)  # 1, d, H, W
        q = (q.reshape(B * N, d, H, W) * d**-0.5)[:, :, ::s, ::s]
        Ho, Wo = q.shape[-2:]
        q_dot_p = (q * p[:, :, ::s, ::s]).sum(1, keepdim=True)
        k = k.reshape(B * N, d, H, W) - p
        v = v.reshape(B * N, d, H, W)
        if self.reflects(H, W):
            k, v, valid = _reflect_pad(k, r), _reflect_pad(v, r), None
        else:
            k, v = (F.pad(t, (r, r, r, r)) for t in (k, v))
            inside = F.pad(q.new_ones(1, 1, H, W), (r, r, r, r))
            valid = F.unfold(inside, self.k_att, stride=s) > 0  # 1, k_att^2, Ho * Wo
        q = q.reshape(B * N, d, Ho * Wo)
        q_dot_p = q_dot_p.view(B * N, 1, Ho * Wo)
        if torch.is_grad_enabled():
            out = checkpoint(_window_attention, q, q_dot_p, k, v, valid, self.k_att, s, use_reentrant=False)
        else:
            out = _window_attention(q, q_dot_p, k, v, valid, self.k_att, s)
        return out.reshape(B, C, Ho, Wo)
