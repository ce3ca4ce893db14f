"""Each module loads a state dict laid out as its authors' code lays it out (names and shapes built
here, values random) and computes the published formula, evaluated independently in float64 numpy
from the authors' tensors, on non-square maps, edges included. BN layers run in eval mode so the
loaded running statistics count too.

Authors' layouts: ACmix LeapLabTHU/ACmix ResNet/test_bottleneck.py; BAM and CBAM
Jongchan/attention-module MODELS/bam.py, cbam.py; ECA BangguWu/ECANet models/eca_module.py;
CoordAtt houqb/CoordAttention coordatt.py; SE the authors' Caffe model as converted in
Cadene/pretrained-models.pytorch (SEModule: fc1, fc2 as 1x1 convolutions with bias); SimAM
ZjjConan/SimAM (no parameters). CA and SC have no released code: their state dicts use our names.
"""

import numpy as np
import pytest
import torch

from fer_ablation.models import BAM, CBAM, ECA, SC, SE, ACmix, ChannelAttention, CoordAtt, SimAM

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- float64 numpy helpers (NCHW)
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def npy(t):
    return t.detach().double().numpy()


def conv2d(x, w, b=None, padding=0, dilation=1, stride=1):
    """Cross-correlation as a sum over kernel taps of shifted, zero-padded inputs."""
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (xp.shape[2] - dilation * (kh - 1) - 1) // stride + 1
    wo = (xp.shape[3] - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], o, ho, wo))
    for u in range(kh):
        for v in range(kw):
            y0, x0 = u * dilation, v * dilation
            patch = xp[:, :, y0 : y0 + stride * (ho - 1) + 1 : stride, x0 : x0 + stride * (wo - 1) + 1 : stride]
            out += np.einsum("oc,nchw->nohw", w[:, :, u, v], patch)
    return out if b is None else out + b[None, :, None, None]


def bn_eval(x, sd, prefix, eps=1e-5):
    shape = [1, -1] + [1] * (x.ndim - 2)
    g = lambda name: sd[prefix + name].reshape(shape)
    return (x - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight") + g("bias")


def linear(x, sd, prefix):
    return x @ sd[prefix + "weight"].T + sd[prefix + "bias"]


def authors_state_dict(shapes, seed=0):
    """Random float64 tensors under the authors' names; BN layers get plausible running statistics."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
        else:
            sd[name] = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
    return sd


def bn_shapes(prefix, C):
    return {prefix + k: (C,) for k in ("weight", "bias", "running_mean", "running_var")} | {
        prefix + "num_batches_tracked": ()
    }


def load(module, authors, key_map=None, reshape=None):
    """Rename the authors' keys by prefix (key_map: authors' prefix -> ours), load strictly, eval mode."""
    ours = {}
    for key, value in authors.items():
        new = key
        for theirs, mine in (key_map or {}).items():
            if key.startswith(theirs):
                new = mine + key[len(theirs) :]
                break
        ours[new] = reshape(new, value) if reshape else value
    module = module.double()
    module.load_state_dict(ours, strict=True)
    return module.eval()


def rand(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- ACmix
def acmix_state_dict(C_in, C, N, k_conv=3, seed=0):
    d = C // N
    shapes = {f"conv{i}.{p}": (C, C_in, 1, 1) if p == "weight" else (C,) for i in (1, 2, 3) for p in ("weight", "bias")}
    shapes |= {
        "conv_p.weight": (d, 2, 1, 1),
        "conv_p.bias": (d,),
        "fc.weight": (k_conv**2, 3 * N, 1, 1),
        "dep_conv.weight": (C, k_conv**2, k_conv, k_conv),  # no bias: the authors set it to None
        "rate1": (1,),
        "rate2": (1,),
    }
    return {k: v.numpy() for k, v in authors_state_dict(shapes, seed).items()}


def authors_acmix(sd, x, N, k_att, stride):
    """The authors' ACmix forward, re-derived in float64 numpy: reflection padding, unfolded windows,
    the position encoding with conv_p's bias, the grouped shift convolution with padding 1."""
    pw = lambda a, name: conv2d(a, sd[name + ".weight"], sd[name + ".bias"])
    q, k, v = pw(x, "conv1"), pw(x, "conv2"), pw(x, "conv3")
    B, C, H, W = q.shape
    d, s, r, K = C // N, stride, k_att // 2, k_att * k_att
    assert H % s == 0 and W % s == 0, "the authors' reshapes need sizes divisible by the stride"
    loc = np.stack([np.tile(np.linspace(-1, 1, W)[None], (H, 1)), np.tile(np.linspace(-1, 1, H)[:, None], (1, W))])
    pe = conv2d(loc[None], sd["conv_p.weight"], sd["conv_p.bias"])[0]  # d, H, W
    Ho, Wo = H // s, W // s

    def unfold(t):  # ..., H, W -> ..., K, Ho, Wo: reflection pad r, window taps in row-major order
        tp = np.pad(t, [(0, 0)] * (t.ndim - 2) + [(r, r), (r, r)], mode="reflect")
        taps = [tp[..., u : u + s * (Ho - 1) + 1 : s, w : w + s * (Wo - 1) + 1 : s]
                for u in range(k_att) for w in range(k_att)]
        return np.stack(taps, axis=-3)

    q_att = (q.reshape(B * N, d, H, W) * d**-0.5)[:, :, ::s, ::s]
    unfold_k = unfold(k.reshape(B * N, d, H, W))
    unfold_rpe = unfold(pe)[None]
    att = (q_att[:, :, None] * (unfold_k + pe[None, :, None, ::s, ::s] - unfold_rpe)).sum(1)  # BN, K, Ho, Wo
    att = softmax(att, axis=1)
    out_att = (att[:, None] * unfold(v.reshape(B * N, d, H, W))).sum(2).reshape(B, C, Ho, Wo)
    assert att.shape[1] == K

    w = sd["dep_conv.weight"]
    kc = w.shape[-1]
    f_all = np.einsum("jc,bcdn->bjdn", sd["fc.weight"][:, :, 0, 0], np.concatenate(
        [t.reshape(B, N, d, H * W) for t in (q, k, v)], axis=1))
    f = np.pad(f_all.transpose(0, 2, 1, 3).reshape(B, d, kc * kc, H, W), [(0, 0)] * 3 + [(1, 1), (1, 1)])
    wg = w.reshape(d, C // d, kc * kc, kc, kc)  # output channel o is in group o // (C / d)
    out_conv = np.zeros((B, d, C // d, Ho, Wo))
    for u in range(kc):
        for t in range(kc):
            patch = f[..., u : u + s * (Ho - 1) + 1 : s, t : t + s * (Wo - 1) + 1 : s]
            out_conv += np.einsum("gnj,bgjhw->bgnhw", wg[..., u, t], patch)
    return sd["rate1"] * out_att + sd["rate2"] * out_conv.reshape(B, C, Ho, Wo)


@pytest.mark.parametrize("H, W", [(8, 8), (16, 16), (8, 12)])
@pytest.mark.parametrize("stride", [1, 2])
def test_acmix_equals_the_authors_forward_on_whole_maps(H, W, stride):
    C, N = 8, 4
    sd = acmix_state_dict(C, C, N)
    m = ACmix(C, C, k_att=7, N=N, stride=stride).double()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)  # loads directly
    assert m.reflects(H, W)
    x = rand(2, C, H, W)
    expected = authors_acmix(sd, npy(x), N, 7, stride)
    np.testing.assert_allclose(npy(m(x)), expected, rtol=1e-11, atol=1e-13)


def test_acmix_parameter_names_and_shapes_are_the_authors_less_conv_p_bias():
    sd = acmix_state_dict(16, 32, 4)
    ours = ACmix(16, 32, N=4).state_dict()
    assert set(ours) == set(sd) - {"conv_p.bias"}
    assert all(tuple(ours[k].shape) == sd[k].shape for k in ours)


def test_acmix_drops_conv_p_bias_because_it_cancels():
    """The authors' output does not depend on conv_p.bias: dropping it on loading loses nothing."""
    sd = acmix_state_dict(8, 8, 4)
    x = npy(rand(1, 8, 8, 10))
    shifted = dict(sd, **{"conv_p.bias": sd["conv_p.bias"] + 3.0})
    np.testing.assert_allclose(authors_acmix(shifted, x, 4, 7, 1), authors_acmix(sd, x, 4, 7, 1), rtol=1e-10)


# ---------------------------------------------------------------- the other modules
def test_simam_authors_module_has_no_parameters():
    x = rand(2, 6, 5, 7)
    m = load(SimAM(), {})
    a = npy(x)
    d = (a - a.mean(axis=(2, 3), keepdims=True)) ** 2
    e_inv = d / (4 * (d.sum(axis=(2, 3), keepdims=True) / (5 * 7 - 1) + 1e-4)) + 0.5
    np.testing.assert_allclose(npy(m(x)), a * sigmoid(e_inv), rtol=1e-12)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_eca_authors_layout(k):
    C = 12
    sd = authors_state_dict({"conv.weight": (1, 1, k)})
    m = load(ECA(C, k=k), sd)
    x = rand(2, C, 5, 7)
    y = np.pad(npy(x).mean(axis=(2, 3)), ((0, 0), (k // 2, k // 2)))  # zero padding (k - 1) / 2 across channels
    w = sd["conv.weight"].numpy()[0, 0]
    z = sigmoid(np.stack([y[:, c : c + k] @ w for c in range(C)], axis=1))
    np.testing.assert_allclose(npy(m(x)), npy(x) * z[:, :, None, None], rtol=1e-12)


def test_coordatt_authors_layout():
    C, mip, H, W = 16, 8, 5, 7
    shapes = {"conv1.weight": (mip, C, 1, 1), "conv1.bias": (mip,)} | bn_shapes("bn1.", mip)
    shapes |= {f"conv_{a}.{p}": (C, mip, 1, 1) if p == "weight" else (C,) for a in "hw" for p in ("weight", "bias")}
    sd = authors_state_dict(shapes)
    m = load(CoordAtt(C, r=32), sd)
    n = {k: v.numpy() for k, v in sd.items()}
    x = rand(2, C, H, W)
    a = npy(x)
    z = np.concatenate([a.mean(axis=3), a.mean(axis=2)], axis=2)[..., None]  # B, C, H + W, 1
    f = bn_eval(conv2d(z, n["conv1.weight"], n["conv1.bias"]), n, "bn1.")
    f = f * np.clip(f + 3, 0, 6) / 6  # h_swish
    g_h = sigmoid(conv2d(f[:, :, :H], n["conv_h.weight"], n["conv_h.bias"]))[..., 0]
    g_w = sigmoid(conv2d(f[:, :, H:], n["conv_w.weight"], n["conv_w.bias"]))[..., 0]
    np.testing.assert_allclose(npy(m(x)), a * g_h[:, :, :, None] * g_w[:, :, None, :], rtol=1e-10)


BAM_KEYS = {  # authors' prefix -> ours
    "channel_att.gate_c.gate_c_fc_0.": "channel_fc1.",
    "channel_att.gate_c.gate_c_bn_1.": "channel_bn.",
    "channel_att.gate_c.gate_c_fc_final.": "channel_fc2.",
    "spatial_att.gate_s.gate_s_conv_reduce0.": "spatial.0.",
    "spatial_att.gate_s.gate_s_bn_reduce0.": "spatial.1.",
    "spatial_att.gate_s.gate_s_conv_di_0.": "spatial.3.",
    "spatial_att.gate_s.gate_s_bn_di_0.": "spatial.4.",
    "spatial_att.gate_s.gate_s_conv_di_1.": "spatial.6.",
    "spatial_att.gate_s.gate_s_bn_di_1.": "spatial.7.",
    "spatial_att.gate_s.gate_s_conv_final.": "spatial.9.",
}


def test_bam_authors_layout():
    C, h, dil, H, W = 32, 2, 2, 9, 6
    c, s = "channel_att.gate_c.", "spatial_att.gate_s."
    shapes = {c + "gate_c_fc_0.weight": (h, C), c + "gate_c_fc_0.bias": (h,)} | bn_shapes(c + "gate_c_bn_1.", h)
    shapes |= {c + "gate_c_fc_final.weight": (C, h), c + "gate_c_fc_final.bias": (C,)}
    shapes |= {s + "gate_s_conv_reduce0.weight": (h, C, 1, 1), s + "gate_s_conv_reduce0.bias": (h,)}
    shapes |= bn_shapes(s + "gate_s_bn_reduce0.", h)
    for i in (0, 1):
        shapes |= {s + f"gate_s_conv_di_{i}.weight": (h, h, 3, 3), s + f"gate_s_conv_di_{i}.bias": (h,)}
        shapes |= bn_shapes(s + f"gate_s_bn_di_{i}.", h)
    shapes |= {s + "gate_s_conv_final.weight": (1, h, 1, 1), s + "gate_s_conv_final.bias": (1,)}
    sd = authors_state_dict(shapes)
    m = load(BAM(C, r=16, d=dil), sd, BAM_KEYS)
    n = {k: v.numpy() for k, v in sd.items()}
    x = rand(2, C, H, W)
    a = npy(x)
    z = bn_eval(linear(a.mean(axis=(2, 3)), n, c + "gate_c_fc_0."), n, c + "gate_c_bn_1.")
    m_c = linear(np.maximum(z, 0), n, c + "gate_c_fc_final.")
    f = a
    for layer, pad in (("reduce0", 0), ("di_0", dil), ("di_1", dil)):
        f = conv2d(f, n[s + f"gate_s_conv_{layer}.weight"], n[s + f"gate_s_conv_{layer}.bias"], pad, max(pad, 1))
        f = np.maximum(bn_eval(f, n, s + f"gate_s_bn_{layer}."), 0)
    m_s = conv2d(f, n[s + "gate_s_conv_final.weight"], n[s + "gate_s_conv_final.bias"])
    # the paper adds the two branches (Park et al. 2018, Eq. 2); the released code multiplies them
    np.testing.assert_allclose(npy(m(x)), a * (1 + sigmoid(m_c[:, :, None, None] + m_s)), rtol=1e-10)


def test_cbam_authors_layout():
    C, h, H, W = 32, 2, 5, 8
    shapes = {"ChannelGate.mlp.1.weight": (h, C), "ChannelGate.mlp.1.bias": (h,)}
    shapes |= {"ChannelGate.mlp.3.weight": (C, h), "ChannelGate.mlp.3.bias": (C,)}
    shapes |= {"SpatialGate.spatial.conv.weight": (1, 2, 7, 7)} | bn_shapes("SpatialGate.spatial.bn.", 1)
    sd = authors_state_dict(shapes)
    keys = {"ChannelGate.mlp.1.": "mlp.0.", "ChannelGate.mlp.3.": "mlp.2.",
            "SpatialGate.spatial.conv.": "spatial_conv.", "SpatialGate.spatial.bn.": "spatial_bn."}
    m = load(CBAM(C, r=16, k=7), sd, keys)
    n = {k: v.numpy() for k, v in sd.items()}
    x = rand(2, C, H, W)
    a = npy(x)
    mlp = lambda p: linear(np.maximum(linear(p, n, "ChannelGate.mlp.1."), 0), n, "ChannelGate.mlp.3.")
    f = a * sigmoid(mlp(a.mean(axis=(2, 3))) + mlp(a.max(axis=(2, 3))))[:, :, None, None]
    pooled = np.stack([f.max(axis=1), f.mean(axis=1)], axis=1)  # the authors' ChannelPool: max, then mean
    conv = conv2d(pooled, n["SpatialGate.spatial.conv.weight"], padding=3)
    m_s = sigmoid(bn_eval(conv, n, "SpatialGate.spatial.bn."))
    np.testing.assert_allclose(npy(m(x)), f * m_s, rtol=1e-10)


def test_se_authors_layout():
    C, h = 32, 2
    shapes = {"fc1.weight": (h, C, 1, 1), "fc1.bias": (h,), "fc2.weight": (C, h, 1, 1), "fc2.bias": (C,)}
    sd = authors_state_dict(shapes)
    m = load(SE(C, r=16), sd, reshape=lambda key, v: v[:, :, 0, 0] if v.ndim == 4 else v)  # 1x1 conv -> Linear
    n = {k: v.numpy() for k, v in sd.items()}
    x = rand(2, C, 5, 7)
    z = npy(x).mean(axis=(2, 3))
    h1 = np.maximum(z @ n["fc1.weight"][:, :, 0, 0].T + n["fc1.bias"], 0)
    s = sigmoid(h1 @ n["fc2.weight"][:, :, 0, 0].T + n["fc2.bias"])
    np.testing.assert_allclose(npy(m(x)), npy(x) * s[:, :, None, None], rtol=1e-12)


@pytest.mark.parametrize("gate", ["sigmoid", "none", "softmax"])
def test_ca_paper_formula_with_each_gate(gate):
    C, h, H, W = 16, 4, 5, 7
    shapes = {"conv.weight": (C, C, 3, 3)} | bn_shapes("bn.", C)
    shapes |= {"fc1.weight": (h, C), "fc1.bias": (h,), "fc2.weight": (C, h), "fc2.bias": (C,)}
    sd = authors_state_dict(shapes)
    m = load(ChannelAttention(C, r=4, k=3, gate=gate), sd)
    n = {k: v.numpy() for k, v in sd.items()}
    x = rand(2, C, H, W)
    y = bn_eval(conv2d(npy(x), n["conv.weight"], padding=1), n, "bn.")
    h1 = linear(y.mean(axis=(2, 3)) + y.max(axis=(2, 3)), n, "fc1.")
    z = linear(np.where(h1 > 0, h1, np.expm1(h1)), n, "fc2.")  # ELU(alpha=1) between the two FCs
    z = {"sigmoid": sigmoid, "none": lambda t: t, "softmax": lambda t: softmax(t, axis=1)}[gate](z)
    np.testing.assert_allclose(npy(m(x)), y * z[:, :, None, None], rtol=1e-10, atol=1e-12)


def test_ca_rejects_an_unknown_gate():
    with pytest.raises(ValueError, match="gate 'tanh'; valid: sigmoid, none, softmax"):
        ChannelAttention(16, gate="tanh")


@pytest.mark.parametrize("k", [1, 3])
def test_sc_stem_formula(k):
    C, H, W = 4, 6, 10
    sd = authors_state_dict({"conv.weight": (C, 4 * C, k, k)} | bn_shapes("bn.", C))
    m = load(SC(C, k=k), sd)
    n = {key: v.numpy() for key, v in sd.items()}
    a = npy(rand(2, C, H, W))
    s2d = np.concatenate([a[..., 0::2, 0::2], a[..., 1::2, 0::2], a[..., 0::2, 1::2], a[..., 1::2, 1::2]], axis=1)
    expected = np.maximum(bn_eval(conv2d(s2d, n["conv.weight"], padding=k // 2), n, "bn."), 0)
    np.testing.assert_allclose(npy(m(torch.from_numpy(a))), expected, rtol=1e-10, atol=1e-12)
