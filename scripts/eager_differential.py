"""Differential check of thunder's rules against eager: each function of a table runs inside a
small chain (so its decomposition runs fused, not as the torch call a lone function becomes) under
a fusion executor that takes every region, for every dtype (and pair of dtypes for binary
functions) on inputs with edge values (0, -0, inf, NaN, integer extremes); results must match
eager's dtype, shape and values (or both raise). Prints one line per mismatch and a count.
    PYTHONPATH=. python scripts/eager_differential.py [unary|binary|reductions] [name-filter]"""
import itertools
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
    print(f"cases {n}, mismatches {bad}")


if __name__ == "__main__":
    main()
