"""Attention modules and SpaceToDepth against independent float64 evaluations of the published formulas."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fer_ablation.models import BAM, CBAM, ECA, SE, ACmix, ChannelAttention, CoordAtt, SimAM, SpaceToDepth
from fer_ablation.models.attention import ConstantGate
from fer_ablation.models.attention import eca_kernel_size


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- numpy helpers (float64, NCHW)
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def npy(t):
    return t.detach().double().numpy()


def conv2d(x, w, b=None, padding=0, dilation=1):
    """Plain cross-correlation, stride 1: sum over kernel taps of shifted, zero-padded inputs."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = xp.shape[2] - dilation * (kh - 1), xp.shape[3] - dilation * (kw - 1)
    out = np.zeros((n, o, ho, wo))
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u * dilation : u * dilation + ho, v * dilation : v * dilation + wo]
            out += np.einsum("oc,nchw->nohw", w[:, :, u, v], patch)
    return out if b is None else out + b[None, :, None, None]


def batchnorm_train(x, bn):
    """BatchNorm with batch statistics (biased variance) over every axis but the channel one."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    shape = [1, -1] + [1] * (x.ndim - 2)
    return (x - mean) / np.sqrt(var + bn.eps) * npy(bn.weight).reshape(shape) + npy(bn.bias).reshape(shape)


def linear(x, fc):
    return x @ npy(fc.weight).T + npy(fc.bias)


def make(module):
    """float64, train mode, BN affine parameters randomised so they matter."""
    torch.manual_seed(1)
    module = module.double().train()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return module


def rand(*shape):
    torch.manual_seed(0)
    return torch.randn(*shape, dtype=torch.float64)


# ---------------------------------------------------------------- formula checks
def test_channel_attention_formula():
    ca = make(ChannelAttention(16, r=4, k=3))
    x = rand(2, 16, 5, 7)
    y = batchnorm_train(conv2d(npy(x), npy(ca.conv.weight), padding=1), ca.bn)
    s = y.mean(axis=(2, 3)) + y.max(axis=(2, 3))
    h = linear(s, ca.fc1)
    z = sigmoid(linear(np.where(h > 0, h, np.expm1(h)), ca.fc2))  # ELU(alpha=1)
    np.testing.assert_allclose(npy(ca(x)), y * z[:, :, None, None], rtol=1e-10, atol=1e-12)
    assert ca.fc1.out_features == 4 and ChannelAttention(64).fc1.out_features == 4  # r = 16 by default


@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 3, 4, 4)])
def test_simam_formula(shape):
    x = rand(*shape)
    a = npy(x)
    n = shape[2] * shape[3] - 1
    d = (a - a.mean(axis=(2, 3), keepdims=True)) ** 2
    v = d.sum(axis=(2, 3), keepdims=True) / n
    expected = a * sigmoid(d / (4 * (v + 1e-4)) + 0.5)
    np.testing.assert_allclose(npy(SimAM()(x)), expected, rtol=1e-12)
    assert SimAM().e_lambda == 1e-4 and sum(p.numel() for p in SimAM().parameters()) == 0


def test_simam_on_1x1_maps_is_finite():
    x = rand(3, 4, 1, 1).requires_grad_()
    out = SimAM()(x)
    np.testing.assert_allclose(npy(out), npy(x) * sigmoid(0.5), rtol=1e-12)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("C, k", [(8, 3), (64, 3), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_adaptive_kernel(C, k):
    assert eca_kernel_size(C) == k
    assert ECA(C).conv.kernel_size == (k,) and ECA(C).conv.bias is None


def test_eca_formula():
    eca = make(ECA(16, k=5))
    x = rand(2, 16, 5, 7)
    y = np.pad(npy(x).mean(axis=(2, 3)), ((0, 0), (2, 2)))
    w = npy(eca.conv.weight)[0, 0]
    z = sigmoid(np.stack([y[:, i : i + 5] @ w for i in range(16)], axis=1))
    np.testing.assert_allclose(npy(eca(x)), npy(x) * z[:, :, None, None], rtol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        ECA(16, k=4)


def _bam_reference(bam, a, channel_bn):
    z = linear(a.mean(axis=(2, 3)), bam.channel_fc1)
    m_c = linear(np.maximum(channel_bn(z), 0), bam.channel_fc2)
    s = a
    convs = [m for m in bam.spatial if isinstance(m, nn.Conv2d)]
    bns = [m for m in bam.spatial if isinstance(m, nn.BatchNorm2d)]
    for conv, bn in zip(convs[:3], bns):
        s = np.maximum(batchnorm_train(conv2d(s, npy(conv.weight), npy(conv.bias), conv.padding[0], conv.dilation[0]), bn), 0)
    m_s = conv2d(s, npy(convs[3].weight), npy(convs[3].bias))
    return a * (1 + sigmoid(m_c[:, :, None, None] + m_s))  # the paper adds the branches


def test_bam_formula_non_square():
    bam = make(BAM(32, r=4, d=2))
    assert [c.dilation for c in bam.spatial if isinstance(c, nn.Conv2d)] == [(1, 1), (2, 2), (2, 2), (1, 1)]
    x = rand(2, 32, 5, 7)
    expected = _bam_reference(bam, npy(x), lambda z: batchnorm_train(z, bam.channel_bn))
    np.testing.assert_allclose(npy(bam(x)), expected, rtol=1e-9, atol=1e-12)


def test_bam_batch_of_one_in_train_mode_uses_running_stats():
    bam = make(BAM(32, r=4))
    bn = bam.channel_bn
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = rand(1, 32, 6, 5)
    running = lambda z: (z - npy(bn.running_mean)) / np.sqrt(npy(bn.running_var) + bn.eps) * npy(bn.weight) + npy(bn.bias)
    np.testing.assert_allclose(npy(bam(x)), _bam_reference(bam, npy(x), running), rtol=1e-9, atol=1e-12)


def test_coordatt_formula_non_square():
    ca = make(CoordAtt(16, r=32))
    assert ca.conv1.out_channels == 8 and CoordAtt(2048).conv1.out_channels == 64  # mip = max(8, C // 32)
    x = rand(2, 16, 5, 7)
    a = npy(x)
    z = np.concatenate([a.mean(axis=3), a.mean(axis=2)], axis=2)[..., None]  # B, C, H + W, 1
    f = batchnorm_train(conv2d(z, npy(ca.conv1.weight), npy(ca.conv1.bias)), ca.bn1)
    f = f * np.clip(f + 3, 0, 6) / 6  # h_swish
    g_h = sigmoid(conv2d(f[:, :, :5], npy(ca.conv_h.weight), npy(ca.conv_h.bias)))[..., 0]  # B, C, H
    g_w = sigmoid(conv2d(f[:, :, 5:], npy(ca.conv_w.weight), npy(ca.conv_w.bias)))[..., 0]  # B, C, W
    np.testing.assert_allclose(npy(ca(x)), a * g_h[:, :, :, None] * g_w[:, :, None, :], rtol=1e-10)


def test_se_formula():
    se = make(SE(32, r=16))
    x = rand(2, 32, 5, 7)
    s = sigmoid(linear(np.maximum(linear(npy(x).mean(axis=(2, 3)), se.fc1), 0), se.fc2))
    np.testing.assert_allclose(npy(se(x)), npy(x) * s[:, :, None, None], rtol=1e-12)
    assert se.fc1.out_features == 2


def test_cbam_formula():
    cbam = make(CBAM(32, r=8, k=7))
    x = rand(2, 32, 5, 7)
    a = npy(x)
    fc1, fc2 = cbam.mlp[0], cbam.mlp[2]
    mlp = lambda p: linear(np.maximum(linear(p, fc1), 0), fc2)
    f = a * sigmoid(mlp(a.mean(axis=(2, 3))) + mlp(a.max(axis=(2, 3))))[:, :, None, None]
    pooled = np.stack([f.max(axis=1), f.mean(axis=1)], axis=1)
    m_s = sigmoid(batchnorm_train(conv2d(pooled, npy(cbam.spatial_conv.weight), padding=3), cbam.spatial_bn))
    np.testing.assert_allclose(npy(cbam(x)), f * m_s, rtol=1e-10)


# ---------------------------------------------------------------- ACmix
def _acmix_qkv(m, x):
    a = npy(x)
    return [conv2d(a, npy(c.weight), npy(c.bias)) for c in (m.conv1, m.conv2, m.conv3)]


def test_acmix_convolution_path_at_init_is_a_sum_of_shifts():
    m = make(ACmix(8, 8, N=4))
    assert m.rate1.shape == m.rate2.shape == (1,) and m.rate1.item() == 0.5 and m.rate2.item() == 0.5
    assert m.dep_conv.bias is None
    with torch.no_grad():
        m.rate1.zero_()
        m.rate2.fill_(1.0)
    x = rand(2, 8, 5, 6)
    q, k, v = _acmix_qkv(m, x)
    B, C, H, W = q.shape
    N, d = 4, 2
    heads = np.concatenate([t.reshape(B, N, d, H, W) for t in (q, k, v)], axis=1)  # B, 3N, d, H, W
    f = np.einsum("jc,bcdhw->bjdhw", npy(m.fc.weight)[:, :, 0, 0], heads)        # B, 9, d, H, W
    fp = np.pad(f, ((0, 0), (0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((B, C, H, W))
    for o in range(C):  # output channel o reads group o // N (N outputs per group); group j is shifted by j
        for j in range(9):
            dy, dx = j // 3 - 1, j % 3 - 1
            expected[:, o] += fp[:, j, o // N, 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
    np.testing.assert_allclose(npy(m(x)), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride, size", [(1, (5, 6)), (2, (5, 7)), (1, (2, 3)), (2, (1, 1)), (1, (3, 9))])
def test_acmix_attention_path_equals_naive_window_attention(stride, size):
    """Reflection where both sides exceed r = 3 (the authors' padding), masking on smaller maps."""
    m = make(ACmix(8, 8, k_att=7, N=4, stride=stride))
    with torch.no_grad():
        m.rate1.fill_(1.0)
        m.rate2.zero_()
    H, W = size
    x = rand(2, 8, H, W)
    q, k, v = _acmix_qkv(m, x)
    B, N, d, r = 2, 4, 2, 3
    reflect = H > r and W > r
    assert m.reflects(H, W) == reflect

    def mirror(i, n):  # reflection without repeating the edge: -1 -> 1, n -> n - 2
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    # position encoding of the coordinate grid: channel 0 = x (width), channel 1 = y, both in [-1, 1]
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, W), np.linspace(-1, 1, H), indexing="xy"))
    pe = np.einsum("dc,chw->dhw", npy(m.conv_p.weight)[:, :, 0, 0], grid)
    Ho, Wo = -(-H // stride), -(-W // stride)
    expected = np.zeros((B, N * d, Ho, Wo))
    for b in range(B):
        for n in range(N):
            ch = slice(n * d, (n + 1) * d)
            for i in range(Ho):
                for j in range(Wo):
                    y, xx = i * stride, j * stride
                    qi = q[b, ch, y, xx] / math.sqrt(d)
                    window = [(yy, xk) for yy in range(y - r, y + r + 1) for xk in range(xx - r, xx + r + 1)]
                    if reflect:
                        keys = [(mirror(yy, H), mirror(xk, W)) for yy, xk in window]
                    else:
                        keys = [(yy, xk) for yy, xk in window if 0 <= yy < H and 0 <= xk < W]
                    logits = np.array([qi @ (k[b, ch, yy, xk] + pe[:, y, xx] - pe[:, yy, xk]) for yy, xk in keys])
                    p = np.exp(logits - logits.max())
                    p /= p.sum()
                    expected[b, ch, i, j] = sum(pk * v[b, ch, yy, xk] for pk, (yy, xk) in zip(p, keys))
    np.testing.assert_allclose(npy(m(x)), expected, rtol=1e-9, atol=1e-12)


def test_acmix_keeps_backward_memory_far_below_unfolded_windows():
    """The released code unfolds k and v into k_att^2 = 49 copies each; ours saves a few map-sized tensors
    plus the attention weights (k_att^2 / d maps)."""
    m = ACmix(64, 64)
    x = torch.randn(2, 64, 12, 10)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x).sum().backward()
    one_map = x.numel() * x.element_size()
    assert sum(storages.values()) < 25 * one_map  # unfolded k and v alone would be 98 maps


def test_acmix_parameters_match_the_released_layout():
    C, N = 64, 4
    m = ACmix(C, C, N=N)
    d = C // N
    # q, k, v 1x1 with bias; W_p 2 -> d (no bias, see docstring); fc 3N -> 9; shift conv (C, 9, 3, 3), no bias;
    # rate1, rate2
    assert sum(p.numel() for p in m.parameters()) == 3 * (C * C + C) + 2 * d + 3 * N * 9 + C * 81 + 2


# ---------------------------------------------------------------- SpaceToDepth
@pytest.mark.parametrize("H, W", [(4, 6), (5, 7), (1, 1)])
def test_space_to_depth_order_and_odd_padding(H, W):
    x = rand(2, 3, H, W)
    a = np.pad(npy(x), ((0, 0), (0, 0), (0, H % 2), (0, W % 2)))
    expected = np.concatenate([a[..., 0::2, 0::2], a[..., 1::2, 0::2], a[..., 0::2, 1::2], a[..., 1::2, 1::2]], axis=1)
    out = SpaceToDepth()(x)
    assert out.shape == (2, 12, (H + 1) // 2, (W + 1) // 2)
    np.testing.assert_array_equal(npy(out), expected)
    # not pixel_unshuffle's channel order (c-major, then row offset, then column offset)
    if H % 2 == 0 and W % 2 == 0:
        assert not torch.equal(out, torch.nn.functional.pixel_unshuffle(x, 2))
    assert list(SpaceToDepth().parameters()) == []


# ---------------------------------------------------------------- shapes, batch 1, gradient flow
GATES = {
    "ca": lambda: ChannelAttention(16),
    "simam": lambda: SimAM(),
    "bam": lambda: BAM(16),
    "eca": lambda: ECA(16),
    "coordatt": lambda: CoordAtt(16),
    "se": lambda: SE(16),
    "cbam": lambda: CBAM(16),
    "acmix": lambda: ACmix(16, 16),
    "gate": lambda: ConstantGate(),
}


@pytest.mark.parametrize("name", GATES)
@pytest.mark.parametrize("shape", [(1, 16, 5, 7), (2, 16, 7, 4), (2, 16, 1, 1)])
def test_shapes_batch_one_and_gradient_flow(name, shape):
    torch.manual_seed(0)
    module = GATES[name]().train()
    if shape == (2, 16, 1, 1) and name == "bam":
        shape = (2, 16, 1, 2)  # BAM's spatial BatchNorm2d needs more than one value per channel in training
    x = torch.randn(*shape, requires_grad=True)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("H, W", [(5, 7), (8, 8), (3, 3), (2, 1)])
def test_acmix_stride_two_matches_the_downsample_shape(H, W):
    m = ACmix(16, 16, stride=2)
    out = m(torch.randn(2, 16, H, W))
    assert out.shape == (2, 16, (H + 1) // 2, (W + 1) // 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("H, W", [(4, 4), (5, 9)])
def test_acmix_reflection_is_reflectionpad2d(H, W):
    from fer_ablation.models.attention.acmix import _reflect_pad

    x = rand(2, 3, H, W)
    torch.testing.assert_close(_reflect_pad(x, 3), nn.ReflectionPad2d(3)(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 4, 1, 1), (3, 2, 9, 2)])
def test_constant_gate_halves_its_input_in_float64(shape):
    gate = ConstantGate()
    assert list(gate.parameters()) == [] and list(gate.buffers()) == []
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = gate(x)
    np.testing.assert_array_equal(npy(out), 0.5 * npy(x))  # exact: halving a float is exact
    out.sum().backward()
    np.testing.assert_array_equal(npy(x.grad), np.full(shape, 0.5))
    assert ConstantGate(0.25)(torch.ones(1, 1, 1, 1, dtype=torch.float64)).item() == 0.25
    for bad in (0.0, 1.5, -0.5):
        with pytest.raises(ValueError, match="constant gate's value"):
            ConstantGate(bad)
