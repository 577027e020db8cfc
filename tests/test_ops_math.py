"""Math functions with thunder rules against eager PyTorch: logaddexp, logaddexp2, frac,
nan_to_num, hypot, logit, copysign, heaviside, xlogy, xlog1py and float_power, run by the torch
executor and decomposed to primitives, at their edges (infinities, NaN, zeros), on integers and
mixed dtypes, and with their gradients."""

from __future__ import annotations

import pytest
import torch

import thunder
import thunder.examine

nan, inf = float("nan"), float("inf")
EDGES = torch.tensor([-inf, -3.0, -1.0, -0.5, -0.0, 0.0, 0.25, 1.0, 2.5, inf, nan])
FLOATS = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def check(fn, *args, decompose=False, **tol):
    """fn(*args) under thunder.jit equals eager's (values, dtype, NaN where eager's are), or raises
    the exception type eager raises."""
    try:
        want = fn(*args)
    except Exception as e:  # noqa: BLE001 - any eager error must be reproduced
        with pytest.raises(type(e)):
            thunder.jit(fn, decompose_to_prims=decompose)(*args)
        return
    jfn = thunder.jit(fn, decompose_to_prims=decompose)
    got = jfn(*args)
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, equal_nan=True, **tol)
    assert not thunder.examine.opaque_ops(jfn)


def _pairs(dtype):
    a = EDGES.to(dtype)[:, None].expand(11, 11)
    return a, a.t()


DECOMPOSE = pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])


@DECOMPOSE
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("name", ["logaddexp", "logaddexp2"])
def test_binary_math_at_every_pair_of_edges(name, dtype, decompose):
    fn = getattr(torch, name)
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype in (torch.bfloat16, torch.float16) else {}
    check(fn, *_pairs(dtype), decompose=decompose, **tol)
    x, y = torch.randn(4, 5, dtype=dtype) * 30, torch.randn(5, dtype=dtype) * 30
    check(fn, x, y, decompose=decompose, **tol)  # broadcast


@DECOMPOSE
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("fn", [torch.frac, torch.nan_to_num, lambda t: torch.nan_to_num(t, 1.5, 7.0, -8.0),
                                lambda t: t.nan_to_num(posinf=1e6)],
                         ids=["frac", "nan_to_num", "nan_to_num_values", "nan_to_num_method"])
def test_unary_math_at_edges(fn, dtype, decompose):
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype in (torch.bfloat16, torch.float16) else {}
    check(fn, EDGES.to(dtype), decompose=decompose, **tol)
    check(fn, torch.randn(3, 4, dtype=dtype).t() * 10, decompose=decompose, **tol)  # non-contiguous


@DECOMPOSE
def test_integers_numbers_and_mixed_dtypes(decompose):
    i = torch.arange(-3, 4)
    f = torch.linspace(-2, 2, 7, dtype=torch.float64)
    for fn, args in [(torch.logaddexp, (i, i.flip(0))), (torch.logaddexp, (i, f)), (torch.logaddexp2, (i, 2.5)),
                     (torch.frac, (i,)), (torch.nan_to_num, (i,)),
                     (torch.nan_to_num, (i > 0,)), (torch.logaddexp2, (f.half(), f.float()))]:
        check(fn, *args, decompose=decompose)


def test_nan_to_num_returns_a_new_tensor_and_writes_out():
    i = torch.arange(4)
    out = thunder.jit(torch.nan_to_num)(i)
    assert torch.equal(out, i) and out.data_ptr() != i.data_ptr()
    t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    o, o2 = torch.empty(4), torch.empty(4)
    got = thunder.jit(lambda t, o: torch.nan_to_num(t, out=o) * 1)(t, o)
    torch.testing.assert_close(got, torch.nan_to_num(t, out=o2) * 1)
    torch.testing.assert_close(o, o2)


def _check_gradients(fn, args):
    """Values and gradients (against a cotangent that varies over the output) of jit(fn) as eager's."""
    got_in = [a.clone().requires_grad_() for a in args]
    want_in = [a.clone().requires_grad_() for a in args]
    jfn = thunder.jit(fn)
    got, want = jfn(*got_in), fn(*want_in)
    torch.testing.assert_close(got, want, equal_nan=True)
    g = torch.linspace(-1, 1, want.numel(), dtype=want.dtype).reshape(want.shape)
    (got * g).nansum().backward()
    (want * g).nansum().backward()
    for a, e in zip(got_in, want_in):
        torch.testing.assert_close(a.grad, e.grad, equal_nan=True)
    assert thunder.last_backward_traces(jfn)


@pytest.mark.parametrize("name,fn,make", [
    ("logaddexp", torch.logaddexp, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5, torch.randn(4, dtype=torch.float64) * 5)),
    ("logaddexp_ties", torch.logaddexp, lambda: (torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))),
    ("logaddexp2", torch.logaddexp2, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5, torch.randn(3, 4, dtype=torch.float64))),
    ("frac", torch.frac, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5,)),
    ("nan_to_num", torch.nan_to_num, lambda: (EDGES.double(),)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_gradients_as_eager(name, fn, make):
    _check_gradients(fn, make())


def test_complex_inputs_run_as_torch_calls():
    # logaddexp and nan_to_num's rules cover real tensors; eager also takes complex ones, which run
    # as opaque torch calls.
    z = torch.tensor([1 + 2j, complex(nan, 1.0), complex(inf, 0.0)], dtype=torch.complex64)
    for fn in (lambda t: torch.logaddexp(t, t * 2), torch.nan_to_num, lambda t: t.nan_to_num(nan=1.0)):
        jfn = thunder.jit(fn)
        torch.testing.assert_close(jfn(z), fn(z), equal_nan=True)
        assert thunder.examine.opaque_ops(jfn)


NEW_BINARY = [torch.hypot, torch.copysign, torch.xlogy, torch.special.xlog1py, torch.float_power,
              lambda x, y: torch.heaviside(x, y.to(x.dtype))]
NEW_BINARY_IDS = ["hypot", "copysign", "xlogy", "xlog1py", "float_power", "heaviside"]


@DECOMPOSE
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("fn", NEW_BINARY, ids=NEW_BINARY_IDS)
def test_new_binary_math_at_every_pair_of_edges(fn, dtype, decompose):
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype in (torch.bfloat16, torch.float16) else {}
    check(fn, *_pairs(dtype), decompose=decompose, **tol)
    x, y = torch.randn(4, 5, dtype=dtype) * 30, torch.randn(5, dtype=dtype) * 3
    check(fn, x, y, decompose=decompose, **tol)  # broadcast
    check(fn, y, x, decompose=decompose, **tol)


@DECOMPOSE
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_hypot_does_not_overflow_or_underflow(dtype, decompose):
    big, tiny = (1e200, 1e-200) if dtype == torch.float64 else (1e30, 1e-30)
    x = torch.tensor([big, 3 * tiny, 0.0, -0.0, big, 3.0], dtype=dtype)
    y = torch.tensor([big, 4 * tiny, 0.0, 0.0, tiny, -4.0], dtype=dtype)
    check(torch.hypot, x, y, decompose=decompose)


@DECOMPOSE
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("eps", [None, -1.0, 0.0, 1e-6, 0.25, 0.6], ids=str)
def test_logit_at_edges(eps, dtype, decompose):
    # eps clamps to [eps, 1 - eps] (eps > 0.5: every element to one bound); None or < 0 does not.
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype in (torch.bfloat16, torch.float16) else {}
    x = torch.tensor([-inf, -1.0, -0.0, 0.0, 1e-7, 1e-3, 0.25, 0.5, 0.75, 0.999, 1.0, 2.0, inf, nan])
    check(lambda t: torch.logit(t, eps), x.to(dtype), decompose=decompose, **tol)
    check(lambda t: t.logit(eps), torch.rand(3, 4, dtype=dtype).t(), decompose=decompose, **tol)


@DECOMPOSE
def test_new_math_on_integers_numbers_and_mixed_dtypes(decompose):
    i = torch.arange(-3, 4)
    f = torch.linspace(-2, 2, 7, dtype=torch.float64)
    for fn, args in [(torch.hypot, (i, i)), (torch.hypot, (f.half(), f.float())), (torch.hypot, (i, f)),
                     (torch.logit, (i,)), (torch.logit, (i > 0,)), (torch.special.logit, (f / 4, 0.1)),
                     (torch.copysign, (i, i.flip(0))), (torch.copysign, (i, -0.0)), (torch.copysign, (f, float("-nan"))),
                     (torch.copysign, (f.half(), i)), (torch.copysign, (i > 0, i < 0)),
                     (torch.heaviside, (i, i.flip(0))), (torch.heaviside, (i > 0, i < 0)), (torch.heaviside, (f, f[:1])),
                     (torch.heaviside, (f, f.float())),
                     (torch.xlogy, (i, i)), (torch.xlogy, (0, f)), (torch.xlogy, (f, 0.0)), (torch.xlogy, (f, nan)),
                     (torch.special.xlog1py, (2, f)), (torch.special.xlog1py, (f, -1)), (torch.special.xlogy, (f.half(), f)),
                     (torch.float_power, (i, 2)), (torch.float_power, (2, i)), (torch.float_power, (f.half(), 0.5)),
                     (torch.float_power, (i, f))]:
        check(fn, *args, decompose=decompose)


def test_new_math_errors_as_eager():
    c = torch.tensor([1 + 1j])
    f = torch.tensor([0.5])
    for fn, args, match in [(torch.hypot, (torch.arange(3), torch.arange(3)), "\"hypot_cpu\" not implemented for 'Long'"),
                            (torch.hypot, (c, c), "'ComplexFloat'"), (torch.logit, (c,), "\"logit_cpu\""),
                            (torch.copysign, (f, c), "\"copysign_cpu\""), (torch.xlogy, (f, c), "\"xlogy_cpu\""),
                            (torch.special.xlog1py, (c, f), "\"xlog1py_cpu\""),
                            (torch.heaviside, (f, f.double()), "tensors with different dtypes"),
                            (torch.heaviside, (c, c), "complex tensors")]:
        with pytest.raises(Exception) as want:
            fn(*args)
        with pytest.raises(type(want.value), match=match):
            thunder.jit(fn)(*args)


def test_float_power_of_complex_and_heaviside_and_logit_eps_with_grad_run_as_torch_calls():
    # float_power's rule covers real operands; heaviside has no derivative in eager, which raises in
    # backward; logit's gradient with eps at a NaN input depends on the element's position in eager
    # (0 in its vectorised loop, NaN in its scalar one): each runs as its torch call then.
    c = torch.tensor([1 + 1j, 2 - 1j])
    jfn = thunder.jit(torch.float_power)
    torch.testing.assert_close(jfn(c, 2), torch.float_power(c, 2))
    assert thunder.examine.opaque_ops(jfn)
    x = torch.randn(4, requires_grad=True)
    jfn = thunder.jit(lambda t: torch.logit(t, 0.25))
    torch.testing.assert_close(jfn(x), torch.logit(x, 0.25))
    assert thunder.examine.opaque_ops(jfn)
    out = thunder.jit(lambda t: torch.heaviside(t, t.detach()) * t)(x)
    with pytest.raises(RuntimeError, match="derivative for aten::heaviside is not implemented"):
        out.sum().backward()


D = torch.float64
_E2 = EDGES.double()[:, None].expand(11, 11)


@pytest.mark.parametrize("name,fn,make", [
    ("hypot_edges", torch.hypot, lambda: (_E2, _E2.t())),
    ("hypot_broadcast", torch.hypot, lambda: (torch.randn(3, 4, dtype=D), torch.randn(4, dtype=D))),
    ("logit", torch.logit, lambda: (torch.tensor([-1.0, -0.0, 0.0, 0.3, 1.0, 2.0, nan], dtype=D),)),
    ("logit_eps", lambda t: torch.logit(t, 0.25), lambda: (torch.tensor([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, nan], dtype=D),)),
    ("logit_eps0", lambda t: torch.logit(t, 0.0), lambda: (torch.tensor([-1.0, -0.0, 0.0, 0.5, 1.0, 2.0], dtype=D),)),
    ("copysign_edges", torch.copysign, lambda: (_E2, _E2.t())),
    ("copysign_number", lambda t: torch.copysign(t, -0.0), lambda: (EDGES.double(),)),
    ("xlogy_edges", torch.xlogy, lambda: (_E2, _E2.t())),
    ("xlog1py_edges", torch.special.xlog1py, lambda: (_E2, _E2.t() - 1)),
    ("xlogy_number", lambda t: torch.xlogy(t, nan) + torch.xlogy(t, 0.0) + torch.xlogy(t, 2.0), lambda: (EDGES.double(),)),
    ("xlogy_zero_gradient", lambda x, y: torch.xlogy(x, y) * 0, lambda: (_E2, _E2.t())),
    ("xlog1py_broadcast", torch.special.xlog1py, lambda: (torch.randn(3, 4, dtype=D), torch.rand(4, dtype=D))),
    ("float_power_edges", torch.float_power, lambda: (_E2, _E2.t())),
    ("float_power_float32", lambda t: torch.float_power(t, 0.5), lambda: (EDGES.float(),)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_new_math_gradients_as_eager(name, fn, make):
    _check_gradients(fn, make())
