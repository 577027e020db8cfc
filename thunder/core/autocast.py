"""torch.autocast while tracing and at call time.

Under `torch.autocast(device_type, dtype)` (around a jitted call or inside the traced function),
torch casts the floating-point inputs of some operations: matmul-like ones and convolutions to the
lower-precision dtype, precision-sensitive ones (reductions, losses, norms, exp/log, ...) to float32.
thunder records those casts as explicit conversions in the trace, so the trace computes what eager
computes under autocast and shows where precision changes. The autocast state is part of the cache
key, and while a program runs autocast is off (its casts are already in it).

The per-device operation lists follow torch's autocast op reference (CUDA and CPU). An operation not
on them runs as it would with autocast off, as in eager.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch

__all__ = ["any_enabled", "state", "state_key", "disabled", "cast_policy"]

_DEVICE_TYPES = ("cpu", "cuda")

# Operations autocast runs in the lower-precision dtype (their float inputs are cast to it).
_LOWER = {
    "cuda": {
        "__matmul__", "__rmatmul__", "addbmm", "addmm", "addmv", "addr", "baddbmm", "bmm",
        "chain_matmul", "multi_dot", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
        "conv_transpose2d", "conv_transpose3d", "linear", "matmul", "mm", "mv", "prelu",
        "scaled_dot_product_attention",
    },
    "cpu": {
        "__matmul__", "__rmatmul__", "conv1d", "conv2d", "conv3d", "bmm", "mm", "vecdot",
        "baddbmm", "addmm", "addbmm", "linear", "matmul", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "prelu", "scaled_dot_product_attention",
    },
}

# Operations autocast runs in float32 (lower-precision float inputs are cast up).
_FP32 = {
    "cuda": {
        "__pow__", "__rpow__", "__rdiv__", "__rtruediv__", "acos", "asin", "cosh", "erfinv", "exp",
        "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt", "sinh", "tan", "pow",
        "softplus", "layer_norm", "group_norm", "cosine_similarity", "poisson_nll_loss",
        "cosine_embedding_loss", "nll_loss", "hinge_embedding_loss", "kl_div", "l1_loss",
        "smooth_l1_loss", "huber_loss", "mse_loss", "margin_ranking_loss", "multilabel_margin_loss",
        "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss",
        "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
        "cross_entropy", "norm", "normalize", "softmin",
        # float32 unless a dtype is given
        "prod", "softmax", "log_softmax", "cumprod", "cumsum", "sum", "vector_norm", "matrix_norm",
    },
    "cpu": {
        "avg_pool3d", "binary_cross_entropy", "grid_sample", "polar", "prod", "quantile",
        "nanquantile", "stft", "cdist", "trace", "view_as_complex", "cholesky", "cholesky_inverse",
        "cholesky_solve", "inverse", "lu_solve", "orgqr", "ormqr", "pinverse", "max_pool3d",
        "max_unpool2d", "max_unpool3d", "adaptive_avg_pool3d", "mse_loss", "cosine_embedding_loss",
        "nll_loss", "hinge_embedding_loss", "poisson_nll_loss", "smooth_l1_loss", "cross_entropy",
        "l1_loss", "huber_loss", "margin_ranking_loss", "soft_margin_loss", "triplet_margin_loss",
        "multi_margin_loss", "ctc_loss", "kl_div", "multilabel_margin_loss",
        "binary_cross_entropy_with_logits", "geqrf", "qr", "svd", "triangular_solve",
        "fractional_max_pool2d", "fractional_max_pool3d", "adaptive_max_pool3d",
    },
}
# ... where a `dtype` argument, when given, wins.
_OPT_DTYPE = {"prod", "softmax", "log_softmax", "cumprod", "cumsum", "sum", "vector_norm", "matrix_norm"}
# Whole namespaces autocast runs in float32 on the CPU (torch.fft.*, torch.linalg.*).
_FP32_MODULES = {"cpu": ("torch._C._fft", "torch._C._linalg", "torch.fft", "torch.linalg")}


def _enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _dtype(device_type: str) -> torch.dtype:
    try:
        return torch.get_autocast_dtype(device_type)
    except (AttributeError, TypeError):  # torch < 2.4
        return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()


def _set_enabled(device_type: str, enabled: bool) -> None:
    try:
        torch.set_autocast_enabled(device_type, enabled)
    except TypeError:  # torch < 2.4
        if device_type == "cpu":
            torch.set_autocast_cpu_enabled(enabled)
        else:
            torch.set_autocast_enabled(enabled)


_any = getattr(torch._C, "_is_any_autocast_enabled", None)


def any_enabled() -> bool:
    """True when autocast is on for some device type (cheap: called on every jitted call)."""
    if _any is not None:
        return _any()
    return any(_enabled(d) for d in _DEVICE_TYPES)


def state() -> tuple:
    """The autocast state: (device type, dtype) for each device type autocast is on for."""
    return tuple((d, _dtype(d)) for d in _DEVICE_TYPES if _enabled(d))


_KEYS: dict = {}


def state_key() -> int:
    """A nonzero int naming the autocast state (device types on, and their dtypes)."""
    return _KEYS.setdefault(state(), len(_KEYS) + 1)


class disabled:
    """Context manager: autocast off on every device type, restored on exit."""

    __slots__ = ("_was",)

    def __enter__(self):
        self._was = [(d, _enabled(d)) for d in _DEVICE_TYPES]
        for d, on in self._was:
            if on:
                _set_enabled(d, False)
        return self

    def __exit__(self, *exc):
        for d, on in self._was:
            if on:
                _set_enabled(d, True)
        return False


def _first_device_type(x):
    if isinstance(x, torch.Tensor):
        return x.device.type
    if isinstance(x, (tuple, list)):
        for i in x:
            d = _first_device_type(i)
            if d is not None:
                return d
    return None


def cast_policy(func, args, kwargs):
    """(device_type, dtype) to cast `func`'s floating-point inputs to under the current autocast
    state, or None when autocast leaves the call alone."""
    device_type = _first_device_type(args) or _first_device_type(tuple(kwargs.values()))
    if device_type not in _DEVICE_TYPES or not _enabled(device_type):
        return None
    name = getattr(func, "__name__", "")
    if name in _LOWER[device_type]:
        return device_type, _dtype(device_type)
    module = getattr(func, "__module__", None) or ""
    if name in _FP32[device_type] or module in _FP32_MODULES.get(device_type, ()):
        if name in _OPT_DTYPE and kwargs.get("dtype") is not None:
            return None
        return device_type, torch.float32
    return None


def cast_eligible(x, device_type, dtype, cast):
    """x with every floating-point tensor on `device_type` (float64 excepted, as torch does) replaced
    by cast(tensor, dtype) where its dtype differs."""
    if isinstance(x, torch.Tensor):
        if (x.device.type == device_type and x.is_floating_point() and x.dtype != torch.float64
                and x.dtype != dtype):
            return cast(x, dtype)
        return x
    if isinstance(x, (tuple, list)) and not hasattr(x, "_fields"):
        return type(x)(cast_eligible(i, device_type, dtype, cast) for i in x)
    return x


class Under:
    """A torch callable run under an autocast state (the state a traced function called it in).

    Programs run with autocast off, their casts written out; a torch call thunder has no rule for
    (recorded as it is) still casts inside itself as eager would, so it runs under the state it was
    traced in. One object per callable and state, so a program's symbols stay few."""

    _made: ClassVar[dict] = {}

    def __init__(self, func, autocast_state):
        self.func = func
        self.state = autocast_state
        self.__name__ = getattr(func, "__name__", type(func).__name__)
        self.__qualname__ = self.__name__
        self.__module__ = "autocast_" + "_".join(f"{d}_{str(t).removeprefix('torch.')}" for d, t in autocast_state)

    @classmethod
    def of(cls, func, autocast_state):
        try:
            key = (func, autocast_state)
            made = cls._made.get(key)
        except TypeError:  # an unhashable callable: one object per call
            return cls(func, autocast_state)
        if made is None:
            made = cls._made[key] = cls(func, autocast_state)
        return made

    def __call__(self, *args, **kwargs):
        with contextlib.ExitStack() as stack:
            for device_type, dtype in self.state:
                stack.enter_context(torch.autocast(device_type, dtype=dtype))
            return self.func(*args, **kwargs)
