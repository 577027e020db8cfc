"""Reductions against eager PyTorch: every op over sample tensors (0-d, empty, non-contiguous,
expanded, 3-d) and dtypes, run by the torch executor and decomposed to primitives."""

from __future__ import annotations

import ast
import math

import pytest
import torch

import thunder

FLOATS = (torch.float32, torch.float64, torch.bfloat16)
ALL = FLOATS + (torch.int64, torch.bool)
NUMERIC = FLOATS + (torch.int64,)


def make(shape, dtype):
    if dtype is torch.bool:
        return torch.randint(0, 2, shape).bool()
    if not dtype.is_floating_point:
        return torch.randint(0 if dtype is torch.uint8 else -5, 6, shape, dtype=dtype)
    return torch.randn(shape, dtype=dtype)


# name -> tensor of any dtype
SAMPLES = {
    "scalar": lambda dt: make((), dt),
    "vector": lambda dt: make((5,), dt),
    "empty": lambda dt: make((0, 3), dt),
    "matrix": lambda dt: make((3, 4), dt),
    "noncontiguous": lambda dt: make((4, 3), dt).t(),
    "expanded": lambda dt: make((1, 4), dt).expand(3, 4),
    "3d": lambda dt: make((2, 3, 4), dt),
}


def _tolerances(dtype, decompose):
    if not decompose:
        return {}
    if dtype is torch.bfloat16:
        return {"rtol": 2e-2, "atol": 2e-2}
    return {"rtol": 1e-4, "atol": 1e-5}


def _as_plain(x):
    # torch returns named tuples (torch.return_types.max); thunder returns plain tuples.
    return tuple(x) if isinstance(x, tuple) else x


def check(fn, args, *, decompose=False, dtype=torch.float32, **tol):
    """fn(*args) under thunder.jit equals eager (values, shapes and dtypes), or raises the same
    exception type eager raises."""
    try:
        expected = fn(*args)
    except Exception as e:  # noqa: BLE001 - any eager error must be reproduced
        with pytest.raises(type(e)):
            thunder.jit(fn, decompose_to_prims=decompose)(*args)
        return
    jfn = thunder.jit(fn, decompose_to_prims=decompose)
    actual = jfn(*args)
    kw = dict(_tolerances(dtype, decompose), **tol)
    torch.testing.assert_close(_as_plain(actual), _as_plain(expected), equal_nan=True, **kw)
    ast.parse(str(thunder.last_traces(jfn)[-1]))


# (id, fn, dtypes, min_rank, decomposable)
CASES = [
    ("sum", lambda t: t.sum(), ALL, 0, True),
    ("sum_dim0", lambda t: torch.sum(t, 0), ALL, 0, True),
    ("sum_neg_keepdim", lambda t: t.sum(-1, keepdim=True), ALL, 0, True),
    ("sum_dims", lambda t: torch.sum(t, dim=(0, -1)), ALL, 2, True),
    ("sum_empty_dims", lambda t: torch.sum(t, ()), NUMERIC, 0, True),
    ("sum_dtype", lambda t: t.sum(0, dtype=torch.float64), ALL, 0, True),
    ("sum_dtype_int", lambda t: t.sum(dtype=torch.int32), (torch.int64, torch.bool), 0, True),
    ("mean", lambda t: t.mean(), ALL, 0, True),
    ("mean_dim", lambda t: torch.mean(t, -1, True), FLOATS, 0, True),
    ("mean_dims", lambda t: torch.mean(t, (0, 1)), FLOATS, 2, True),
    ("mean_dtype", lambda t: t.mean(dtype=torch.float64), ALL, 0, True),
    ("prod", lambda t: t.prod(), ALL, 0, True),
    ("prod_dim", lambda t: torch.prod(t, 0, keepdim=True), ALL, 0, True),
    ("prod_dtype", lambda t: torch.prod(t, -1, dtype=torch.float64), ALL, 0, True),
    ("amax", lambda t: torch.amax(t), ALL, 0, True),
    ("amax_dim", lambda t: t.amax(-1, keepdim=True), ALL, 0, True),
    ("amin_dims", lambda t: torch.amin(t, (0, 1)), ALL, 2, True),
    ("max", lambda t: t.max(), ALL, 0, True),
    ("max_dim", lambda t: torch.max(t, 0), FLOATS, 0, True),
    ("max_dim_keepdim", lambda t: t.max(dim=-1, keepdim=True), FLOATS, 0, True),
    ("min", lambda t: torch.min(t), ALL, 0, True),
    ("min_dim", lambda t: t.min(-1), FLOATS, 0, True),
    ("max_binary", lambda t: torch.max(t, torch.zeros(t.shape[-1:], dtype=torch.float64)), ALL, 1,
     True),
    ("min_binary", lambda t: t.min(t.flip(0)), ALL, 1, True),
    ("argmax", lambda t: torch.argmax(t), ALL, 0, True),
    ("argmax_dim", lambda t: t.argmax(0), FLOATS, 0, True),
    ("argmax_keepdim", lambda t: torch.argmax(t, keepdim=True), FLOATS, 0, True),
    ("argmin_dim", lambda t: torch.argmin(t, -1, True), FLOATS, 0, True),
    ("var", lambda t: t.var(), ALL, 0, True),
    ("var_unbiased_positional", lambda t: t.var(False), FLOATS, 0, True),
    ("var_dim_unbiased_keepdim", lambda t: torch.var(t, 0, True, True), FLOATS, 0, True),
    ("var_correction", lambda t: torch.var(t, dim=-1, correction=0, keepdim=True), FLOATS, 0, True),
    ("var_unbiased_kw", lambda t: torch.var(t, unbiased=False), FLOATS, 0, True),
    ("var_dims", lambda t: t.var((0, 1), correction=2), FLOATS, 2, True),
    ("std", lambda t: t.std(), FLOATS, 0, True),
    ("std_dim", lambda t: torch.std(t, -1, unbiased=False), FLOATS, 0, True),
    ("var_mean", lambda t: torch.var_mean(t, 0), FLOATS, 0, True),
    ("std_mean", lambda t: torch.std_mean(t, correction=0), FLOATS, 0, True),
    ("std_mean_keepdim", lambda t: torch.std_mean(t, -1, keepdim=True), FLOATS, 0, True),
    ("all", lambda t: t.all(), ALL + (torch.uint8,), 0, True),
    ("all_dim", lambda t: torch.all(t, -1), ALL, 0, True),
    ("all_empty_dims", lambda t: torch.all(t, ()), ALL, 0, True),
    ("any", lambda t: torch.any(t), ALL + (torch.uint8,), 0, True),
    ("any_dims_keepdim", lambda t: t.any((0, 1), keepdim=True), ALL, 2, True),
    ("logsumexp", lambda t: torch.logsumexp(t, 0), NUMERIC, 0, True),
    ("logsumexp_dims", lambda t: t.logsumexp((0, -1), keepdim=True), FLOATS, 2, True),
    ("vector_norm", lambda t: torch.linalg.vector_norm(t), ALL, 0, True),
    ("vector_norm_ord1", lambda t: torch.linalg.vector_norm(t, 1, -1), FLOATS, 0, True),
    ("vector_norm_inf", lambda t: torch.linalg.vector_norm(t, math.inf), FLOATS, 0, True),
    ("vector_norm_neginf", lambda t: torch.linalg.vector_norm(t, -math.inf, 0), FLOATS, 0, True),
    ("vector_norm_ord0", lambda t: torch.linalg.vector_norm(t, 0, keepdim=True), FLOATS, 0, True),
    ("vector_norm_ord3", lambda t: torch.linalg.vector_norm(t, 3.0), (torch.float64,), 0, True),
    ("vector_norm_dtype", lambda t: torch.linalg.vector_norm(t, dtype=torch.float64),
     (torch.float32,), 0, True),
    ("norm", lambda t: t.norm(), ALL, 0, True),
    ("norm_fro_dim", lambda t: torch.norm(t, "fro", -1), FLOATS, 1, True),
    ("norm_p1", lambda t: torch.norm(t, p=1, dim=0, keepdim=True), FLOATS, 1, True),
    ("count_nonzero", lambda t: torch.count_nonzero(t), ALL, 0, True),
    ("count_nonzero_dim", lambda t: t.count_nonzero(-1), ALL, 0, True),
    ("cumsum", lambda t: torch.cumsum(t, 0), ALL, 0, False),
    ("cumsum_dtype", lambda t: t.cumsum(-1, dtype=torch.float64), ALL, 0, False),
]


def _params():
    for case_id, fn, dtypes, min_rank, decomposable in CASES:
        for dtype in dtypes:
            for sample in SAMPLES:
                dt_name = str(dtype).removeprefix("torch.")
                yield pytest.param(fn, dtype, sample, min_rank, decomposable,
                                   id=f"{case_id}-{dt_name}-{sample}")


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
@pytest.mark.parametrize("fn,dtype,sample,min_rank,decomposable", list(_params()))
def test_reduction_matches_eager(fn, dtype, sample, min_rank, decomposable, decompose):
    torch.manual_seed(0)
    t = SAMPLES[sample](dtype)
    if t.ndim < min_rank:
        pytest.skip("needs a higher rank")
    if decompose and not decomposable:
        try:
            fn(t)
        except Exception:  # noqa: BLE001
            return
        with pytest.raises(NotImplementedError):
            thunder.jit(fn, decompose_to_prims=True)(t)
        return
    check(fn, (t,), decompose=decompose, dtype=dtype)


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
def test_max_with_ties_returns_first_index(decompose):
    t = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    check(lambda t: t.max(1), (t,), decompose=decompose)
    check(lambda t: t.min(0), (t,), decompose=decompose)
    check(lambda t: torch.argmax(t, 1), (t,), decompose=decompose)


@pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
def test_reductions_propagate_nan_and_inf(decompose):
    t = torch.tensor([[1.0, float("nan"), 2.0], [float("inf"), 1.0, -float("inf")],
                      [-float("inf"), -float("inf"), 0.0]])
    for fn in (lambda t: t.sum(1), lambda t: t.amax(1), lambda t: t.max(1),
               lambda t: torch.logsumexp(t, 1), lambda t: t.argmin(1), lambda t: t.mean(0)):
        check(fn, (t,), decompose=decompose)


def test_logsumexp_of_large_values_is_stable():
    t = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.5]])
    check(lambda t: torch.logsumexp(t, 1), (t,), decompose=True)


def test_sum_of_int32_keeps_dtype_with_explicit_dtype():
    t = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    check(lambda t: t.sum(0, dtype=torch.int32), (t,), decompose=True)
    check(lambda t: t.prod(0, dtype=torch.int32), (t,), decompose=True)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 1.5, 0.5, math.inf], ids=str)
def test_vector_norm_gradient_of_zero_vectors_and_elements(p):
    # A zero vector's norm has gradient 0, as in torch (the root's derivative at 0 is infinite:
    # through primitives alone the gradient was 0 * inf = NaN); zero elements of a nonzero vector
    # too, for orders below 1. F.normalize of a zero row divides by eps.
    x = torch.randn(5, 8, dtype=torch.float64)
    x[0] = 0
    x[1, :3] = 0
    for fn in (lambda t: torch.linalg.vector_norm(t, p, dim=-1),
               lambda t: torch.nn.functional.normalize(t, p, dim=-1)):
        got_in, want_in = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = thunder.jit(fn)(got_in), fn(want_in)
        torch.testing.assert_close(got, want)
        g = torch.randn_like(want)
        (got * g).sum().backward()
        (want * g).sum().backward()
        torch.testing.assert_close(got_in.grad, want_in.grad)


def test_reduction_errors_match_eager():
    t = torch.randn(2, 3)
    for fn in (lambda t: t.sum(2), lambda t: t.prod((0, 1)), lambda t: t.long().mean(),
               lambda t: torch.logsumexp(t), lambda t: t.argmax(5),
               lambda t: t.var(1, True, correction=1)):
        check(fn, (t,))


def test_reduction_trace_records_torch_level_ops():
    jfn = thunder.jit(lambda t: torch.var_mean(t, 1, keepdim=True))
    jfn(torch.randn(3, 4))
    src = str(thunder.last_traces(jfn)[-1])
    ast.parse(src)
    assert "var" in src
