"""Differential check of thunder's rules against eager: each function of a table runs inside a
small chain (so its decomposition runs fused, not as the torch call a lone function becomes) under
a fusion executor that takes every region, for every dtype (and pair of dtypes for binary
functions) on inputs with edge values (0, -0, inf, NaN, integer extremes); results must match
eager's dtype, shape and values (or both raise). Prints one line per mismatch and a count.
With `gradients`, differentiable functions in float64 and float32 compare their gradients with
torch.autograd's for a random cotangent as well. With `modules`, layers of torch.nn train for two
steps (float64, float32, and float32 under bfloat16 autocast): outputs, input and parameter
gradients and buffers against eager's.
    PYTHONPATH=. python scripts/eager_differential.py [unary|binary|reductions|gradients|modules] [name-filter]"""
import itertools
import os
import sys

import torch
import torch.nn.functional as F

import thunder
from thunder.executors import fusionex

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("differential", min_cpu_numel=0))
DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.bfloat16,
          torch.float32, torch.float64]
EDGE = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, 100.0, float("inf"), -float("inf"), float("nan")]
GEN = torch.Generator().manual_seed(0)


def make(dtype, kind="edges", extremes=True):
    if dtype == torch.bool:
        return torch.rand(7, 12, generator=GEN) > 0.5
    if dtype.is_floating_point:
        t = torch.randn(7, 12, generator=GEN) * 3
        if kind == "edges":
            t[0] = torch.tensor(EDGE)
        elif kind == "ties":
            t = torch.round(t)
        return t.to(dtype)
    info = torch.iinfo(dtype)
    t = torch.randint(max(info.min, -100), min(info.max, 100), (7, 12), generator=GEN).to(dtype)
    if extremes:  # (sums of them cancel: float32 sums in another order differ past the tolerance)
        t[0, :4] = torch.tensor([0, 1, info.max, info.min], dtype=torch.int64).to(dtype)
    return t


U = {"neg": torch.neg, "abs": torch.abs, "sign": torch.sign, "sgn": torch.sgn, "square": torch.square, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
     "exp": torch.exp, "exp2": torch.exp2, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p, "log2": torch.log2, "log10": torch.log10,
     "sin": torch.sin, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "erf": torch.erf, "erfc": torch.erfc, "erfinv": torch.erfinv, "reciprocal": torch.reciprocal,
     "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "round2": lambda t: torch.round(t, decimals=2), "trunc": torch.trunc, "frac": torch.frac,
     "relu": torch.relu, "relu6": F.relu6, "hardtanh": F.hardtanh, "gelu": F.gelu, "silu": F.silu, "softplus": F.softplus, "mish": F.mish, "hardswish": F.hardswish,
     "hardsigmoid": F.hardsigmoid, "elu": F.elu, "leaky": F.leaky_relu, "logsigmoid": F.logsigmoid, "isnan": torch.isnan, "isinf": torch.isinf, "isfinite": torch.isfinite,
     "signbit": torch.signbit, "bitwise_not": torch.bitwise_not, "logical_not": torch.logical_not, "clamp": lambda t: torch.clamp(t, -1, 2), "clamp_f": lambda t: torch.clamp(t, -1.5, 2.5),
     "pow2": lambda t: t ** 2, "pow_half": lambda t: t ** 0.5, "pow_neg": lambda t: t ** -1, "rpow": lambda t: 2 ** t, "rpow_f": lambda t: 2.5 ** t,
     "div_scalar": lambda t: t / 2, "floordiv_s": lambda t: t // 3, "mod_s": lambda t: t % 3, "mod_sneg": lambda t: t % -3, "fmod_s": lambda t: torch.fmod(t, 3),
     "rsub": lambda t: 1 - t, "rdiv": lambda t: 1 / t, "add_alpha": lambda t: torch.add(t, t, alpha=2), "nan_to_num": torch.nan_to_num, "float": lambda t: t.float(), "to_int": lambda t: t.to(torch.int32) if not t.is_floating_point() else t,
     "to_bool": lambda t: t.bool(), "to_half": lambda t: t.half(), "xlogy": lambda t: torch.xlogy(t, 2.0), "sum": lambda t: t.sum(1), "sum_f": lambda t: t.sum(1, dtype=torch.float32),
     "mean": lambda t: t.mean(1), "prod": lambda t: t.prod(1), "amax": lambda t: t.amax(1), "amin": lambda t: t.amin(0), "var": lambda t: t.var(1), "std": lambda t: t.std(0),
     "softmax": lambda t: t.softmax(1), "softmax_f": lambda t: t.softmax(1, dtype=torch.float32), "log_softmax": lambda t: t.log_softmax(0), "cumsum": lambda t: t.cumsum(1),
     "argmax": lambda t: t.argmax(1), "norm": lambda t: torch.linalg.vector_norm(t, dim=1), "logsumexp": lambda t: torch.logsumexp(t, 1), "all": lambda t: t.all(1), "any": lambda t: t.any(0),
     "count_nz": lambda t: torch.count_nonzero(t, 1), "max_dim": lambda t: t.max(1).values, "aminmax": lambda t: torch.aminmax(t, dim=1)[0]}
B = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "div_trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
     "div_floor": lambda a, b: torch.div(a, b, rounding_mode="floor"), "floordiv": torch.floor_divide, "remainder": torch.remainder, "fmod": torch.fmod,
     "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum, "fmax": torch.fmax, "fmin": torch.fmin, "eq": torch.eq, "lt": torch.lt, "ge": torch.ge,
     "and": torch.bitwise_and, "or": torch.bitwise_or, "xor": torch.bitwise_xor, "land": torch.logical_and, "lxor": torch.logical_xor, "atan2": torch.atan2,
     "where": lambda a, b: torch.where(a > 0, a, b), "where_s": lambda a, b: torch.where(b > 0, a, 2.5), "clamp_t": lambda a, b: torch.clamp(a, min=b),
     "hypot": torch.hypot, "copysign": torch.copysign, "nextafter": torch.nextafter, "lshift": torch.bitwise_left_shift, "rshift": torch.bitwise_right_shift,
     "logaddexp": torch.logaddexp, "xlogy": torch.xlogy, "heaviside": torch.heaviside, "isclose": torch.isclose, "sub_alpha": lambda a, b: torch.sub(a, b, alpha=2)}
REDUCTIONS = {"sum": lambda t: t.sum(1), "sum0": lambda t: t.sum(0, keepdim=True) * 1, "sum_d": lambda t: t.sum(1, dtype=torch.float64), "mean": lambda t: t.float().mean(1) if not t.is_floating_point() else t.mean(1),
     "nansum": lambda t: torch.nansum(t.float(), 1), "amax": lambda t: t.amax(1), "amin": lambda t: t.amin(0), "max": lambda t: t.max(1).values, "argmax": lambda t: t.argmax(1),
     "argmin0": lambda t: t.argmin(0), "max_idx": lambda t: t.max(0).indices, "min_all": lambda t: t.min(), "argmax_all": lambda t: t.argmax(), "prod": lambda t: t.prod(1),
     "var": lambda t: t.float().var(1), "std_half": lambda t: t.std(1) if t.is_floating_point() else t.float().std(1), "logsumexp": lambda t: torch.logsumexp(t.float(), 1),
     "softmax": lambda t: t.softmax(1) if t.is_floating_point() else t.float().softmax(1), "softmax0": lambda t: t.float().softmax(0), "log_softmax": lambda t: t.float().log_softmax(1),
     "norm": lambda t: t.float().norm(dim=1), "norm_inf": lambda t: torch.linalg.vector_norm(t.float(), float("inf"), 1), "norm0": lambda t: torch.linalg.vector_norm(t.float(), 0, 1),
     "all": lambda t: t.all(1), "any": lambda t: t.any(0), "count": lambda t: torch.count_nonzero(t, 1), "aminmax": lambda t: torch.aminmax(t, dim=1)[1],
     "sum_keep_bcast": lambda t: t - t.sum(1, keepdim=True), "mean_all": lambda t: t.float().mean() + t.float(), "cumsum_int": lambda t: t.cumsum(1), "median": lambda t: t.median(1).values,
     "max_bcast": lambda t: torch.maximum(t, t.amax(0, keepdim=True) * 0.5) if t.is_floating_point() else t, "ce": lambda t: F.cross_entropy(t.float(), torch.arange(6) % 9, reduction="none")}


idx = torch.randint(0, 12, (7, 5), generator=GEN)
GRADIENTS = {"sin": torch.sin, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "gelu_t": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu,
     "softplus": F.softplus, "mish": F.mish, "elu": F.elu, "selu": F.selu, "celu": F.celu, "leaky": F.leaky_relu, "relu": torch.relu, "relu6": F.relu6,
     "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "hardtanh": F.hardtanh, "logsigmoid": F.logsigmoid, "softsign": F.softsign, "tanhshrink": F.tanhshrink,
     "abs": torch.abs, "sqrt_abs": lambda t: t.abs().sqrt(), "rsqrt_abs": lambda t: (t.abs() + 1).rsqrt(), "exp": torch.exp, "log_abs": lambda t: (t.abs() + 1e-3).log(),
     "log1p": lambda t: torch.log1p(t.abs()), "expm1": torch.expm1, "erf": torch.erf, "erfc": torch.erfc, "atan": torch.atan, "asinh": torch.asinh, "sinh": torch.sinh,
     "cosh": torch.cosh, "reciprocal": lambda t: torch.reciprocal(t + 0.3), "pow3": lambda t: t ** 3, "pow_half": lambda t: t.abs() ** 0.5, "pow_neg": lambda t: (t.abs() + 1) ** -1.5,
     "rpow": lambda t: 2 ** t.clamp(-10, 10), "square": torch.square, "clamp": lambda t: t.clamp(-1, 2), "clamp_min": lambda t: t.clamp_min(0.5), "where": lambda t: torch.where(t > 0, t * 2, t.sin()),
     "maximum": lambda t: torch.maximum(t, t.flip(1)), "minimum": lambda t: torch.minimum(t, 0.5 * t.flip(0)), "amax": lambda t: t.amax(1), "max": lambda t: t.max(1).values,
     "amin": lambda t: t.amin(0), "sum": lambda t: t.sum(1), "mean": lambda t: t.mean(0), "prod": lambda t: (t / 3).prod(1), "var": lambda t: t.var(1), "std": lambda t: t.std(0),
     "std0": lambda t: t.std(1, correction=0), "norm": lambda t: t.norm(dim=1), "norm1": lambda t: t.norm(p=1, dim=1), "norm_inf": lambda t: torch.linalg.vector_norm(t, float("inf"), dim=1),
     "logsumexp": lambda t: t.logsumexp(1), "softmax": lambda t: t.softmax(1), "log_softmax": lambda t: t.log_softmax(0), "cumsum": lambda t: t.cumsum(1),
     "layer_norm": lambda t: F.layer_norm(t, (12,)), "rms_norm": lambda t: F.rms_norm(t, (12,), eps=1e-6), "group_norm": lambda t: F.group_norm(t.reshape(7, 4, 3), 2),
     "normalize": lambda t: F.normalize(t, dim=1), "cosine": lambda t: F.cosine_similarity(t, t.flip(0)), "gather": lambda t: t.gather(1, idx),
     "cross_entropy": lambda t: F.cross_entropy(t, idx[:, 0], reduction="none"), "ce_smooth": lambda t: F.cross_entropy(t, idx[:, 0], label_smoothing=0.1),
     "mse": lambda t: F.mse_loss(t, t.flip(1).detach()), "l1": lambda t: F.l1_loss(t, t.flip(0).detach()), "smooth_l1": lambda t: F.smooth_l1_loss(t, t.flip(1).detach(), beta=0.5),
     "huber": lambda t: F.huber_loss(t, t.flip(1).detach()), "bce_logits": lambda t: F.binary_cross_entropy_with_logits(t, (t.flip(1) > 0).float()),
     "kl": lambda t: F.kl_div(F.log_softmax(t, 1), F.softmax(t.flip(1).detach(), 1), reduction="batchmean"), "glu": lambda t: F.glu(t, 1),
     "hypot": lambda t: torch.hypot(t, t.flip(1)), "atan2": lambda t: torch.atan2(t, t.flip(1) + 0.1), "logaddexp": lambda t: torch.logaddexp(t, t.flip(0)),
     "lerp": lambda t: torch.lerp(t, t.flip(1), 0.7), "lerp_t": lambda t: torch.lerp(t, t.flip(1), t.flip(0).sigmoid()), "addcmul": lambda t: torch.addcmul(t, t.flip(0), t.flip(1), value=0.3),
     "addcdiv": lambda t: torch.addcdiv(t, t.flip(0), t.flip(1).abs() + 1, value=0.3), "sub_alpha": lambda t: torch.sub(t, t.flip(1), alpha=2.5),
     "fmod": lambda t: torch.fmod(t, 1.7), "remainder": lambda t: torch.remainder(t, t.flip(1).abs() + 0.5), "copysign": lambda t: torch.copysign(t, t.flip(1)),
     "xlogy": lambda t: torch.xlogy(t, t.flip(1).abs() + 0.1), "logit": lambda t: torch.logit(t.sigmoid()), "frac": torch.frac, "trunc_mix": lambda t: t.trunc() * t,
     "masked_fill": lambda t: t.masked_fill(t > 1, 7.0), "pad": lambda t: F.pad(t, (1, 2), value=3.0), "roll_flip": lambda t: t.roll(2, 1).flip(0) * t,
     "expand_sum": lambda t: (t[:1].expand(7, 12) * t).sum(0), "matmul": lambda t: (t @ t.t()).tanh(), "dropout_eval": lambda t: F.dropout(t, 0.3, training=False) * t,
     "embedding_w": lambda t: F.embedding(idx % 7, t).sum(1), "index_select": lambda t: t.index_select(1, idx[0]) * 2, "scatter_add": lambda t: torch.zeros(7, 12, dtype=t.dtype).scatter_add(1, idx, t[:, :5]),
     "sort_vals": lambda t: torch.sort(t, 1).values, "topk": lambda t: torch.topk(t, 3, 1).values, "cummax": lambda t: torch.cummax(t, 1).values, "diff": lambda t: torch.diff(t, dim=1),
     "outer": lambda t: torch.outer(t[0], t[1]), "polar_abs": lambda t: t.abs().sqrt() * t.sign(), "nan_to_num": lambda t: torch.nan_to_num(t / 0.0 * t.sign()),
     "prelu": lambda t: F.prelu(t, torch.tensor([0.2], dtype=t.dtype)), "threshold": lambda t: F.threshold(t, 0.5, -1.0), "softshrink": lambda t: F.softshrink(t, 0.5),
     "margin": lambda t: F.margin_ranking_loss(t, t.flip(1), torch.sign(t.flip(0)).detach()), "poisson": lambda t: F.poisson_nll_loss(t, t.flip(1).abs().detach()),
     "soft_margin": lambda t: F.soft_margin_loss(t, torch.sign(t.flip(0)).detach()), "hinge": lambda t: F.hinge_embedding_loss(t, torch.sign(t.flip(0)).detach())}


def compare(name, op, args):
    """1 when jit(op) differs from eager on args (printing how), else 0."""
    def chained(*a):
        r = op(*a)
        return r * 1 if r.dtype != torch.bool else r & True

    try:
        want = chained(*args)
    except Exception as e:  # noqa: BLE001 - any error of eager's is compared with thunder's
        want = e
    try:
        got = thunder.jit(chained, executors=[FUSE_ALL])(*args)
    except Exception as e:  # noqa: BLE001
        got = e
    dts = [a.dtype for a in args]
    if isinstance(want, Exception) or isinstance(got, Exception):
        if isinstance(want, Exception) and isinstance(got, Exception):
            return 0
        print("ERROR", name, dts, repr(want)[:80], "|", repr(got)[:160])
        return 1
    if got.dtype != want.dtype or got.shape != want.shape:
        print("META", name, dts, got.dtype, want.dtype, tuple(got.shape), tuple(want.shape))
        return 1
    low = want.dtype in (torch.float16, torch.bfloat16)
    tol = {"rtol": 1.6e-2, "atol": 1e-2} if low else {"rtol": 1.3e-5, "atol": 1e-5}
    try:
        torch.testing.assert_close(got, want, equal_nan=True, **tol)
        return 0
    except AssertionError:
        bad = ~torch.isclose(got.double(), want.double(), equal_nan=True, **tol)
        print("VALUE", name, dts, "inputs", [a[bad][:3].tolist() if a.shape == bad.shape else "-" for a in args],
              "got", got[bad][:3].tolist(), "want", want[bad][:3].tolist())
        return 1


def compare_gradients(name, op, dtype):
    """1 when jit(op)'s value or gradient differs from eager's (printing how), else 0."""
    x = torch.randn(7, 12, generator=GEN) * 3
    x[0] = torch.tensor([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-3, 100.0, -100.0, 2.0, -0.5])
    x = x.to(dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    try:
        got = thunder.jit(lambda t: op(t) * 1, executors=[FUSE_ALL])(a)
        want = op(b) * 1
        # By the result's dtype: a float64 input may give float32 (a float32 target, say).
        tol = {"rtol": 1e-7, "atol": 1e-7} if want.dtype == torch.float64 else {"rtol": 1.3e-5, "atol": 1e-5}
        cot = torch.randn(want.shape, generator=GEN, dtype=want.dtype)
        (ga,), (gb,) = torch.autograd.grad(got, a, cot), torch.autograd.grad(want, b, cot)
        torch.testing.assert_close(got, want, equal_nan=True, **tol)
        torch.testing.assert_close(ga, gb, equal_nan=True, **tol)
        return 0
    except Exception as e:  # noqa: BLE001 - reported, whatever it is
        print("GRADIENT", name, dtype, type(e).__name__, str(e)[:200].replace("\n", " "))
        return 1


def _modules():
    """(name, module factory, input shape): layers of torch.nn in training mode."""
    nn = torch.nn
    return {
        "linear_gelu": (lambda: nn.Sequential(nn.Linear(12, 16), nn.GELU()), (6, 12)),
        "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), (2, 3, 10)),
        "conv2d_stride": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), (2, 3, 9, 9)),
        "conv2d_groups": (lambda: nn.Conv2d(4, 8, 3, groups=2, dilation=2), (2, 4, 9, 9)),
        "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2), (2, 3, 5, 5)),
        "batchnorm1d": (lambda: nn.BatchNorm1d(5), (8, 5)),
        "batchnorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
        "batchnorm2d_noaffine": (lambda: nn.BatchNorm2d(3, affine=False, momentum=0.3), (4, 3, 5, 5)),
        "layernorm": (lambda: nn.LayerNorm(12), (3, 4, 12)),
        "layernorm_nobias": (lambda: nn.LayerNorm((4, 12), bias=False), (3, 4, 12)),
        "rmsnorm": (lambda: nn.RMSNorm(12), (3, 4, 12)),
        "groupnorm": (lambda: nn.GroupNorm(2, 4), (3, 4, 5)),
        "instancenorm": (lambda: nn.InstanceNorm1d(4, affine=True), (3, 4, 6)),
        "instancenorm_stats": (lambda: nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 4, 4)),
        "localresponse": (lambda: nn.LocalResponseNorm(2), (2, 5, 4, 4)),
        "embedding_bag": (lambda: nn.EmbeddingBag(10, 6, mode="mean"), None),
        "maxpool2d": (lambda: nn.MaxPool2d(2, ceil_mode=True), (2, 3, 5, 5)),
        "avgpool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 6, 6)),
        "adaptive_avg": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 5)),
        "adaptive_max": (lambda: nn.AdaptiveMaxPool1d(3), (2, 3, 8)),
        "lppool": (lambda: nn.LPPool2d(2, 2), (2, 3, 6, 6)),
        "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4, 4)),
        "upsample_nearest": (lambda: nn.Upsample(size=(5, 7), mode="nearest"), (2, 3, 4, 4)),
        "pixel_shuffle": (lambda: nn.Sequential(nn.PixelShuffle(2), nn.PixelUnshuffle(2)), (2, 8, 3, 3)),
        "pads": (lambda: nn.Sequential(nn.ReflectionPad2d(1), nn.ReplicationPad2d((1, 0, 2, 1)), nn.CircularPad2d(1)), (2, 3, 4, 4)),
        "unfold_fold": (lambda: nn.Sequential(nn.Unfold(2), nn.Fold((4, 4), 2)), (2, 3, 4, 4)),
        "bilinear": (lambda: _Bilinear(), (5, 4)),
        "prelu": (lambda: nn.PReLU(3), (2, 3, 4)),
        "activations": (lambda: nn.Sequential(nn.SiLU(), nn.Hardswish(), nn.Mish(), nn.Softplus(beta=2), nn.ELU(0.5), nn.LeakyReLU(0.2)), (4, 9)),
        "softmax2d": (lambda: nn.Sequential(nn.Softmax2d(), nn.LogSoftmax(1)), (2, 3, 4, 4)),
        "mha": (lambda: _Attention(), (2, 5, 8)),
        "encoder_layer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), (2, 5, 8)),
        "encoder_norm_first": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"), (2, 5, 8)),
        "gru": (lambda: _First(nn.GRU(4, 6, batch_first=True)), (2, 5, 4)),
        "lstm": (lambda: _First(nn.LSTM(4, 6, num_layers=2)), (5, 2, 4)),
        "flatten": (lambda: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 16)), nn.ChannelShuffle(3)), (2, 3, 4, 4)),
        "conv3d": (lambda: nn.Conv3d(2, 3, 2, padding="same"), (1, 2, 4, 4, 4)),
        "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 2, 4, stride=3, output_padding=1), (2, 3, 5)),
        "maxpool_unpool": (lambda: _Unpool(), (2, 3, 6, 6)),
        "interp_bicubic": (lambda: _Call(lambda x: F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True)), (2, 3, 4, 4)),
        "interp_area": (lambda: _Call(lambda x: F.interpolate(x, size=(3, 2), mode="area")), (2, 3, 7, 5)),
        "interp_trilinear": (lambda: _Call(lambda x: F.interpolate(x, scale_factor=2, mode="trilinear")), (1, 2, 3, 3, 3)),
        "interp_nearest_exact": (lambda: _Call(lambda x: F.interpolate(x, size=7, mode="nearest-exact")), (2, 3, 4)),
        "interp_antialias": (lambda: _Call(lambda x: F.interpolate(x, size=(3, 3), mode="bilinear", antialias=True)), (2, 3, 8, 8)),
        "grid_sample": (lambda: _Call(lambda x: F.grid_sample(x, F.affine_grid(torch.eye(2, 3, dtype=x.dtype).expand(2, 2, 3) * 0.9, (2, 3, 4, 4), align_corners=False), align_corners=False)), (2, 3, 5, 5)),
        "transformer": (lambda: _Transformer(), (2, 5, 8)),
        "embedding_pad": (lambda: _Embed(), None),
        "losses": (lambda: _Losses(), (6, 5)),
        "weight_norm": (lambda: torch.nn.utils.parametrizations.weight_norm(nn.Linear(5, 4)), (3, 5)),
        "spectral_norm": (lambda: torch.nn.utils.parametrizations.spectral_norm(nn.Linear(5, 4)), (3, 5)),
        "conv_padding_modes": (lambda: nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), nn.Conv2d(3, 2, 3, padding=2, padding_mode="circular")), (2, 3, 5, 5)),
    }


class _Call(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Unpool(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.MaxPool2d(2, return_indices=True)
        self.unpool = torch.nn.MaxUnpool2d(2)

    def forward(self, x):
        y, i = self.pool(x)
        return self.unpool(y * 2, i)


class _Transformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = torch.nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True)

    def forward(self, x):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=x.dtype)
        pad = torch.tensor([[False] * 4 + [True], [False] * 5])
        return self.m(x, x[:, :4].flip(1), tgt_mask=mask, src_key_padding_mask=pad)


class _Embed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.e = torch.nn.Embedding(10, 4, padding_idx=0)
        self.n = torch.nn.Embedding(10, 4, max_norm=1.0)

    def forward(self, i, _offsets):
        return self.e(i) * 2 + self.n(i)


class _Losses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0]))

    def forward(self, x):
        t = torch.tensor([0, 4, 2, 2, 1, 3])
        p = x.sigmoid()
        return (F.cross_entropy(x, t, weight=self.w, ignore_index=2) + F.nll_loss(x.log_softmax(1), t, reduction="sum")
                + F.binary_cross_entropy(p, (x.detach() > 0).to(x.dtype)) + F.multi_margin_loss(x, t)
                + F.multilabel_soft_margin_loss(x, (x.detach() > 0).to(x.dtype)) + F.triplet_margin_loss(x, x.flip(0), x.roll(1, 0))
                + F.cross_entropy(x, p.detach(), label_smoothing=0.2))


class _First(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[0]


class _Bilinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = torch.nn.Bilinear(4, 4, 3)

    def forward(self, x):
        return self.m(x, x.flip(0))


class _Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        out, weights = self.m(x, x, x, need_weights=True)
        return out + weights.sum(-1, keepdim=True)


def compare_module(name, factory, shape, dtype, autocast=False):
    """1 when a jitted module's output, input and parameter gradients or buffers after two training
    steps differ from eager's (printing how), else 0; `autocast`: under CPU bfloat16 autocast."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from nn_training import train_two_steps

    tol = {"rtol": 1e-7, "atol": 1e-7} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-5}
    try:
        train_two_steps(factory, shape, dtype, autocast, executors=[FUSE_ALL], tol=tol, generator=GEN)
        return 0
    except Exception as e:  # noqa: BLE001 - reported, whatever it is
        print("MODULE", name, dtype, type(e).__name__, str(e)[:300].replace("\n", " "))
        return 1


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    bad = n = 0
    if which in ("all", "unary"):
        for name, op in U.items():
            for dt in DTYPES if only in name else ():
                n += 1
                bad += compare(name, op, (make(dt),))
    if which in ("all", "binary"):
        for name, op in B.items():
            for da, db in itertools.product(DTYPES, DTYPES) if only in name else ():
                n += 1
                bad += compare(name, op, (make(da), make(db)))
    if which in ("all", "reductions"):
        for name, op in REDUCTIONS.items():
            for dt, kind in itertools.product(DTYPES, ("edges", "ties")) if only in name else ():
                n += 1
                bad += compare(f"{name}[{kind}]", op, (make(dt, kind, extremes=False),))
    if which in ("all", "gradients"):
        for name, op in GRADIENTS.items():
            for dt in (torch.float64, torch.float32) if only in name else ():
                n += 1
                bad += compare_gradients(name, op, dt)
    if which in ("all", "modules"):
        for name, (factory, shape) in _modules().items():
            for dt in (torch.float64, torch.float32) if only in name else ():
                n += 1
                bad += compare_module(name, factory, shape, dt)
            if only in name and shape is not None:
                n += 1
                bad += compare_module(name, factory, shape, torch.float32, autocast=True)
    print(f"cases {n}, mismatches {bad}")


if __name__ == "__main__":
    main()
