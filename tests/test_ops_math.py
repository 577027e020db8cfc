"""Math functions with thunder rules against eager PyTorch: logaddexp, logaddexp2, frac and
nan_to_num, run by the torch executor and decomposed to primitives, at their edges
(infinities, NaN, zeros), on integers and mixed dtypes, and with their gradients."""

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


def test_nan_to_num_returns_a_new_tensor_and_refuses_out():
    i = torch.arange(4)
    out = thunder.jit(torch.nan_to_num)(i)
    assert torch.equal(out, i) and out.data_ptr() != i.data_ptr()
    with pytest.raises(NotImplementedError, match="out="):
        thunder.jit(lambda t, o: torch.nan_to_num(t, out=o))(torch.randn(3), torch.empty(3))


@pytest.mark.parametrize("name,fn,make", [
    ("logaddexp", torch.logaddexp, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5, torch.randn(4, dtype=torch.float64) * 5)),
    ("logaddexp_ties", torch.logaddexp, lambda: (torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))),
    ("logaddexp2", torch.logaddexp2, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5, torch.randn(3, 4, dtype=torch.float64))),
    ("frac", torch.frac, lambda: (torch.randn(3, 4, dtype=torch.float64) * 5,)),
    ("nan_to_num", torch.nan_to_num, lambda: (EDGES.double(),)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_gradients_as_eager(name, fn, make):
    args = make()
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


def test_complex_inputs_run_as_torch_calls():
    # logaddexp and nan_to_num's rules cover real tensors; eager also takes complex ones, which run
    # as opaque torch calls.
    z = torch.tensor([1 + 2j, complex(nan, 1.0), complex(inf, 0.0)], dtype=torch.complex64)
    for fn in (lambda t: torch.logaddexp(t, t * 2), torch.nan_to_num, lambda t: t.nan_to_num(nan=1.0)):
        jfn = thunder.jit(fn)
        torch.testing.assert_close(jfn(z), fn(z), equal_nan=True)
        assert thunder.examine.opaque_ops(jfn)
