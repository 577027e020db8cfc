"""Neural-network ops against eager PyTorch: matrix products, embedding, activations, softmax,
normalization, dropout, attention, losses, convolution, pooling and padding, run by the torch
executor and decomposed to primitives."""

from __future__ import annotations

import ast
import copy
import re

import pytest
import torch
import torch.nn.functional as F

import thunder
import thunder.examine

FLOATS = (torch.float32, torch.float64, torch.bfloat16)


def _tolerances(dtype, decompose):
    if dtype is torch.bfloat16:
        return {"rtol": 2e-2, "atol": 2e-2} if decompose else {}
    if not decompose:
        return {}
    if dtype is torch.float64:
        return {"rtol": 1e-7, "atol": 1e-7}
    return {"rtol": 1e-4, "atol": 1e-5}


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
    # The looser of the tolerances of the inputs' dtype and of the result's dtype.
    out_dtype = expected.dtype if isinstance(expected, torch.Tensor) else dtype
    looseness = {torch.float64: 0, torch.float32: 1, torch.bfloat16: 2}
    if looseness.get(out_dtype, 0) > looseness.get(dtype, 0):
        dtype = out_dtype
    kw = dict(_tolerances(dtype, decompose), **tol)
    torch.testing.assert_close(actual, expected, equal_nan=True, **kw)
    ast.parse(str(thunder.last_traces(jfn)[-1]))


def randn(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


def jit_of_matching_step(f, x, **value_tol):
    """Runs f(x).backward(cot) under thunder.jit and eagerly, each on its own copy of x: values
    (within value_tol; NaN equal to NaN) and x's gradients must match. Returns the jitted f."""
    xe, xj = x.clone().requires_grad_(), x.clone().requires_grad_()
    jf = thunder.jit(f)
    want, got = f(xe), jf(xj)
    torch.testing.assert_close(got, want, equal_nan=True, **value_tol)
    cot = torch.randn_like(want)
    want.backward(cot)
    got.backward(cot)
    torch.testing.assert_close(xj.grad, xe.grad, equal_nan=True)
    return jf


def noncontig(*shape, dtype=torch.float32):
    """A transposed (non-contiguous) tensor of the given shape."""
    return torch.randn(tuple(reversed(shape)), dtype=dtype).permute(
        *reversed(range(len(shape))))


DECOMPOSE = pytest.mark.parametrize("decompose", [False, True], ids=["torch", "prims"])
DTYPES = pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: str(d).split(".")[1])


# ---- matrix products ---------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((3,), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3)),
]


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes, dtype, decompose):
    a, b = (randn(*s, dtype=dtype) for s in shapes)
    check(torch.matmul, (a, b), decompose=decompose, dtype=dtype)
    check(lambda x, y: x @ y, (a, b), decompose=decompose, dtype=dtype)


@pytest.mark.parametrize("decompose", [False, True])
def test_matmul_errors(decompose):
    check(torch.matmul, (randn(2, 3), randn(4, 2)), decompose=decompose)
    check(torch.matmul, (randn(2, 3), randn(3, 2, dtype=torch.float64)), decompose=decompose)
    check(torch.matmul, (torch.tensor(1.0), randn(3)), decompose=decompose)


@DECOMPOSE
def test_matmul_int_and_noncontiguous(decompose):
    a = torch.randint(-5, 5, (2, 3))
    b = torch.randint(-5, 5, (3, 4))
    check(torch.matmul, (a, b), decompose=decompose)
    check(torch.matmul, (noncontig(4, 3), noncontig(3, 5)), decompose=decompose)


@DECOMPOSE
@DTYPES
def test_mm_bmm_addmm_baddbmm(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    check(torch.mm, (randn(2, 3, dtype=dtype), randn(3, 4, dtype=dtype)), **kw)
    check(lambda a, b: a.mm(b), (noncontig(2, 3, dtype=dtype), randn(3, 4, dtype=dtype)), **kw)
    check(torch.bmm, (randn(5, 2, 3, dtype=dtype), randn(5, 3, 4, dtype=dtype)), **kw)
    check(torch.mm, (randn(2, 3, 1, dtype=dtype), randn(3, 4, dtype=dtype)), **kw)
    check(torch.bmm, (randn(5, 2, 3, dtype=dtype), randn(4, 3, 4, dtype=dtype)), **kw)
    i, m1, m2 = randn(4, dtype=dtype), randn(2, 3, dtype=dtype), randn(3, 4, dtype=dtype)
    check(torch.addmm, (i, m1, m2), **kw)
    check(lambda i, a, b: torch.addmm(i, a, b, beta=0.5, alpha=2.0), (i, m1, m2), **kw)
    check(lambda i, a, b: torch.addmm(i, a, b, beta=0), (i, m1, m2), **kw)
    check(torch.baddbmm, (randn(5, 2, 4, dtype=dtype), randn(5, 2, 3, dtype=dtype),
                          randn(5, 3, 4, dtype=dtype)), **kw)


@DECOMPOSE
@DTYPES
def test_linear(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    w, bias = randn(5, 4, dtype=dtype), randn(5, dtype=dtype)
    check(F.linear, (randn(2, 3, 4, dtype=dtype), w, bias), **kw)
    check(F.linear, (randn(4, dtype=dtype), w), **kw)
    check(F.linear, (noncontig(3, 4, dtype=dtype), w, bias), **kw)
    check(F.linear, (randn(0, 4, dtype=dtype), w, bias), **kw)
    check(lambda x, w: F.linear(x, w, bias=None), (randn(3, 4, dtype=dtype), w), **kw)
    check(F.linear, (randn(3, 3, dtype=dtype), w), **kw)  # shape mismatch
    lin = torch.nn.Linear(4, 5).to(dtype)
    check(lin, (randn(3, 4, dtype=dtype),), **kw)


# ---- embedding, one_hot ------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_embedding(dtype, decompose):
    w = randn(10, 4, dtype=dtype)
    kw = {"decompose": decompose, "dtype": dtype}
    check(F.embedding, (torch.tensor([[1, 2], [9, 0]]), w), **kw)
    check(F.embedding, (torch.tensor(3), w), **kw)
    check(F.embedding, (torch.tensor([1, 2], dtype=torch.int32), w), **kw)
    check(F.embedding, (torch.zeros(0, 3, dtype=torch.long), w), **kw)
    check(lambda i, w: F.embedding(i, w, padding_idx=0), (torch.tensor([0, 5]), w), **kw)
    check(F.embedding, (torch.tensor([1.0]), w), **kw)
    emb = torch.nn.Embedding(10, 3)
    check(emb, (torch.tensor([[1, 2, 3]]),), decompose=decompose)


@DECOMPOSE
def test_one_hot(decompose):
    check(lambda t: F.one_hot(t, 5), (torch.tensor([[0, 4], [2, 1]]),), decompose=decompose)
    check(lambda t: F.one_hot(t, num_classes=3), (torch.tensor(2),), decompose=decompose)
    check(lambda t: F.one_hot(t, 3), (torch.tensor([1], dtype=torch.int32),),
          decompose=decompose)


def test_one_hot_needs_num_classes():
    with pytest.raises(NotImplementedError):
        thunder.jit(lambda t: F.one_hot(t))(torch.tensor([1, 2]))


# ---- activations -------------------------------------------------------------------------------

ACTIVATIONS = [
    ("gelu", F.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("silu", F.silu),
    ("mish", F.mish),
    ("softplus", F.softplus),
    ("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=1.0)),
    ("leaky_relu", F.leaky_relu),
    ("leaky_relu_slope", lambda x: F.leaky_relu(x, 0.2)),
    ("elu", F.elu),
    ("elu_alpha", lambda x: F.elu(x, alpha=0.5)),
    ("hardtanh", F.hardtanh),
    ("hardtanh_range", lambda x: F.hardtanh(x, -0.5, 2.0)),
    ("relu6", F.relu6),
    ("hardswish", F.hardswish),
    ("hardsigmoid", F.hardsigmoid),
    ("silu_module", torch.nn.SiLU()),
    ("gelu_module", torch.nn.GELU()),
    ("selu", F.selu),
    ("celu", F.celu),
    ("celu_alpha", lambda x: F.celu(x, alpha=0.5)),
    ("logsigmoid", F.logsigmoid),
    ("softsign", F.softsign),
    ("tanhshrink", F.tanhshrink),
    ("softshrink", F.softshrink),
    ("softshrink_lambd", lambda x: F.softshrink(x, 2.0)),
    ("hardshrink", lambda x: F.hardshrink(x, 1.5)),
    ("threshold", lambda x: F.threshold(x, 0.5, -2.0)),
    ("rrelu_eval", F.rrelu),
    ("rrelu_eval_bounds", lambda x: F.rrelu(x, 0.05, 0.4, training=False)),
    ("selu_module", torch.nn.SELU()),
    ("logsigmoid_module", torch.nn.LogSigmoid()),
]


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("sample", ["scalar", "3d", "empty", "noncontig"])
def test_activation(name, fn, sample, dtype, decompose):
    x = {
        "scalar": lambda: randn(dtype=dtype) * 4,
        "3d": lambda: randn(2, 3, 4, dtype=dtype) * 4,
        "empty": lambda: randn(0, 3, dtype=dtype),
        "noncontig": lambda: noncontig(4, 5, dtype=dtype) * 4,
    }[sample]()
    check(fn, (x,), decompose=decompose, dtype=dtype)


@pytest.mark.parametrize("name,fn", ACTIVATIONS[:11], ids=[a[0] for a in ACTIVATIONS[:11]])
def test_activation_rejects_integers(name, fn):
    check(fn, (torch.arange(4),))


@pytest.mark.parametrize("fn", [F.selu, F.celu, F.logsigmoid, F.softshrink, F.hardshrink, F.softsign, F.tanhshrink,
                                lambda x: F.threshold(x, -0.5, 5.7), lambda x: F.threshold(x, 1, 7)],
                         ids=["selu", "celu", "logsigmoid", "softshrink", "hardshrink", "softsign", "tanhshrink",
                              "threshold_float_numbers", "threshold"])
def test_activation_on_integers_as_eager(fn):
    # selu, celu, logsigmoid and the shrinks refuse integers as eager does; softsign and tanhshrink
    # give floats; threshold keeps the integer dtype, its numbers truncated to it.
    check(fn, (torch.arange(-3, 4),))


def test_hardtanh_on_unsigned_integers():
    # eager refuses negative limits for uint8 (they cannot be represented), keeps others
    u = torch.tensor([0, 3, 200], dtype=torch.uint8)
    check(lambda t: F.hardtanh(t) * 1, (u,))
    check(lambda t: F.hardtanh(t, 0, 5) * 1, (u,))


def test_activation_edges_and_errors():
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0, nan, inf, -inf, -100.0, 100.0])
    for fn in (F.selu, F.celu, F.logsigmoid, F.softsign, F.tanhshrink, F.softshrink, F.hardshrink,
               lambda t: F.threshold(t, 0.5, -1.0), lambda t: F.softshrink(t, 0.0)):
        for decompose in (False, True):
            check(fn, (x,), decompose=decompose)
    # x * 0 between the lambdas: -0.0 for negative x, as eager.
    assert torch.signbit(thunder.jit(F.softshrink, decompose_to_prims=True)(torch.tensor([-0.25]))).item()
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        thunder.jit(lambda t: F.celu(t, 0.0))(x)
    with pytest.raises(RuntimeError, match=re.escape("lambda must be in range [0, 3.40282e+38] for input dtype Float, "
                                                     "but found -1")):
        thunder.jit(lambda t: F.softshrink(t, -1.0))(x)
    with pytest.raises(RuntimeError, match=re.escape("[0, 65504] for input dtype Half, but found -0.5")):
        thunder.jit(lambda t: F.softshrink(t, -0.5))(x.half())


@DECOMPOSE
@DTYPES
def test_prelu(dtype, decompose):
    # One weight, or one per channel (dim 1) for inputs of 1 to 4 dims; eager's errors for weights
    # of another count, dims or dtype, and for a 0-d input with several weights.
    kw = {"decompose": decompose, "dtype": dtype}
    one, three = torch.tensor([0.25], dtype=dtype), torch.tensor([0.1, -0.2, 0.3], dtype=dtype)
    for x in (randn(2, 3, 4, dtype=dtype), randn(2, 3, dtype=dtype), randn(2, 3, 4, 5, dtype=dtype),
              noncontig(4, 3, dtype=dtype), randn(0, 3, dtype=dtype)):
        check(F.prelu, (x, one), **kw)
        check(F.prelu, (x, three), **kw)
    check(F.prelu, (randn(5, dtype=dtype), one), **kw)
    check(F.prelu, (randn(dtype=dtype), one), **kw)
    check(F.prelu, (randn(dtype=dtype), three), **kw)
    check(F.prelu, (randn(5, dtype=dtype), randn(5, dtype=dtype)), **kw)
    check(F.prelu, (randn(2, 3, dtype=dtype), randn(1, 1, dtype=dtype)), **kw)
    check(F.prelu, (randn(2, 4, dtype=dtype), three), **kw)
    check(F.prelu, (randn(2, 3, dtype=torch.float64 if dtype != torch.float64 else torch.float32), three), **kw)
    check(F.prelu, (torch.arange(6).reshape(2, 3), torch.tensor([1, 2, 3])), **kw)
    check(torch.nn.PReLU(3).to(dtype), (randn(2, 3, 4, dtype=dtype),), **kw)


def test_rrelu_in_training_runs_as_torch_call_with_eager_draws():
    # rrelu's rule is its eval form (errors as eager's: bounds out of order, integers); in training
    # its random slopes come from the torch call, the same draws as eager's from the same seed.
    check(lambda x: F.rrelu(x, 0.5, 0.1), (randn(4),))
    check(F.rrelu, (torch.arange(4),))
    x = -torch.rand(6)
    def fn(t):
        return F.rrelu(t * 2, training=True) + 1

    jfn = thunder.jit(fn)
    got_in, want_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(3)
    got = jfn(got_in)
    torch.manual_seed(3)
    want = fn(want_in)
    torch.testing.assert_close(got, want)
    assert thunder.examine.opaque_ops(jfn) == ["torch.nn.functional.rrelu"]
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(got_in.grad, want_in.grad)


def test_activation_inplace_flag_writes_into_the_input_as_eager():
    def f(x):
        y = F.silu(x, inplace=True)
        return y, x

    a, b = randn(3), randn(3)
    b.copy_(a)
    got, want = thunder.jit(f)(a), f(b)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(a, b)


# ---- softmax -----------------------------------------------------------------------------------

SOFTMAX = [
    ("softmax", lambda x: torch.softmax(x, -1)),
    ("softmax_dim0", lambda x: F.softmax(x, dim=0)),
    ("softmax_method", lambda x: x.softmax(-1)),
    ("softmax_dtype", lambda x: torch.softmax(x, -1, dtype=torch.float64)),
    ("log_softmax", lambda x: F.log_softmax(x, -1)),
    ("log_softmax_dim0", lambda x: torch.log_softmax(x, 0)),
    ("log_softmax_method", lambda x: x.log_softmax(dim=-1)),
    ("log_softmax_dtype", lambda x: F.log_softmax(x, 0, dtype=torch.float32)),
    ("softmin", lambda x: F.softmin(x, -1)),
    ("softmin_dim0_dtype", lambda x: F.softmin(x, 0, dtype=torch.float64)),
]


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("name,fn", SOFTMAX, ids=[s[0] for s in SOFTMAX])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4), (0, 3), (3, 0)], ids=str)
def test_softmax(name, fn, shape, dtype, decompose):
    x = randn(*shape, dtype=dtype) * 5
    check(fn, (x,), decompose=decompose, dtype=dtype)


@DECOMPOSE
def test_softmax_noncontiguous_large_and_int(decompose):
    check(lambda x: torch.softmax(x, -1), (noncontig(4, 6) * 100,), decompose=decompose)
    check(lambda x: torch.softmax(x, 0, dtype=torch.float32), (torch.arange(4),),
          decompose=decompose)
    check(lambda x: torch.softmax(x, 0), (torch.arange(4),), decompose=decompose)
    check(lambda x: torch.softmax(x, 2), (randn(2, 3),), decompose=decompose)


# ---- normalization -----------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_layer_norm(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 4, dtype=dtype)
    w, b = randn(4, dtype=dtype), randn(4, dtype=dtype)
    check(lambda x: F.layer_norm(x, (4,)), (x,), **kw)
    check(lambda x, w, b: F.layer_norm(x, [4], w, b, eps=1e-3), (x, w, b), **kw)
    check(lambda x: F.layer_norm(x, (3, 4)), (x,), **kw)
    check(lambda x: F.layer_norm(x, (4,)), (noncontig(3, 4, dtype=dtype),), **kw)
    check(lambda x: F.layer_norm(x, (4,)), (randn(0, 4, dtype=dtype),), **kw)
    check(lambda x: F.layer_norm(x, (5,)), (x,), **kw)
    ln = torch.nn.LayerNorm(4).to(dtype)
    check(ln, (x,), **kw)


@DECOMPOSE
@DTYPES
def test_rms_norm(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 4, dtype=dtype)
    check(lambda x: F.rms_norm(x, (4,)), (x,), **kw)
    check(lambda x, w: F.rms_norm(x, [4], w, eps=1e-5), (x, randn(4, dtype=dtype)), **kw)
    check(lambda x, w: F.rms_norm(x, [3, 4], w), (x, randn(3, 4)), **kw)
    check(lambda x: F.rms_norm(x, (4,)), (noncontig(3, 4, dtype=dtype),), **kw)
    check(lambda x: F.rms_norm(x, (2,)), (x,), **kw)


@DECOMPOSE
@DTYPES
def test_group_norm(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 6, 3, 4, dtype=dtype)
    check(lambda x: F.group_norm(x, 3), (x,), **kw)
    check(lambda x, w, b: F.group_norm(x, 2, w, b, eps=1e-3),
          (x, randn(6, dtype=dtype), randn(6, dtype=dtype)), **kw)
    check(lambda x: F.group_norm(x, 2), (randn(3, 4, dtype=dtype),), **kw)
    check(lambda x: F.group_norm(x, 4), (x,), **kw)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (2, 3, 4, 5)], ids=str)
def test_batch_norm_eval(shape, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(*shape, dtype=dtype)
    rm, rv = randn(3), torch.rand(3) + 0.5
    w, b = randn(3), randn(3)
    if dtype is not torch.bfloat16:
        rm, rv, w, b = (t.to(dtype) for t in (rm, rv, w, b))
    check(lambda x, m, v: F.batch_norm(x, m, v), (x, rm, rv), **kw)
    check(lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, False, 0.1, 1e-3),
          (x, rm, rv, w, b), **kw)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5)], ids=str)
def test_batch_norm_training_updates_running_stats(shape, dtype, decompose):
    x = randn(*shape, dtype=dtype)
    stats_dtype = torch.float32 if dtype is torch.bfloat16 else dtype

    def fn(x, m, v, w, b):
        return F.batch_norm(x, m, v, w, b, training=True, momentum=0.2)

    args = (randn(3, dtype=stats_dtype), torch.rand(3, dtype=stats_dtype) + 0.5,
            randn(3, dtype=stats_dtype), randn(3, dtype=stats_dtype))
    eager_args = [a.clone() for a in args]
    expected = fn(x, *eager_args)
    jit_args = [a.clone() for a in args]
    actual = thunder.jit(fn, decompose_to_prims=decompose)(x, *jit_args)
    tol = _tolerances(dtype, decompose)
    torch.testing.assert_close(actual, expected, **tol)
    torch.testing.assert_close(jit_args[0], eager_args[0], **tol)  # running_mean
    torch.testing.assert_close(jit_args[1], eager_args[1], **tol)  # running_var


@DECOMPOSE
def test_batch_norm_training_without_stats_and_errors(decompose):
    check(lambda x: F.batch_norm(x, None, None, training=True), (randn(4, 3, 2),),
          decompose=decompose)
    check(lambda x: F.batch_norm(x, None, None, training=True), (randn(1, 3),),
          decompose=decompose)
    check(lambda x: F.batch_norm(x, None, None), (randn(4, 3),), decompose=decompose)
    bn = torch.nn.BatchNorm2d(3).eval()
    check(bn, (randn(2, 3, 4, 4),), decompose=decompose)


@DECOMPOSE
@DTYPES
def test_instance_norm(dtype, decompose):
    # Each (sample, channel) over its spatial elements; InstanceNorm1d/2d/3d modules; eval with
    # running statistics.
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 4, 5, dtype=dtype)
    check(lambda x: F.instance_norm(x), (x,), **kw)
    check(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-3),
          (x, randn(3, dtype=dtype), randn(3, dtype=dtype)), **kw)
    check(lambda x: F.instance_norm(x), (randn(2, 3, 7, dtype=dtype),), **kw)
    check(lambda x: F.instance_norm(x), (randn(1, 2, 3, 2, 4, dtype=dtype),), **kw)
    rm, rv = randn(3), torch.rand(3) + 0.5
    if dtype is not torch.bfloat16:
        rm, rv = rm.to(dtype), rv.to(dtype)
    check(lambda x, m, v: F.instance_norm(x, m, v, use_input_stats=False), (x, rm, rv), **kw)


@DECOMPOSE
@DTYPES
def test_instance_norm_with_running_stats_updates_them(dtype, decompose):
    # InstanceNorm2d(track_running_stats=True) in training: the batch's mean of the instances'
    # means and unbiased variances go into the running statistics (in place), as in eager.
    x = randn(3, 4, 5, 6, dtype=dtype)
    eager = torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True, momentum=0.3)
    with torch.no_grad():
        eager.weight.copy_(randn(4))
        eager.bias.copy_(randn(4))
    mine = copy.deepcopy(eager)
    eager, mine = eager.to(dtype), mine.to(dtype)
    jm = thunder.jit(mine, decompose_to_prims=decompose)
    tol = _tolerances(dtype, decompose)
    for _ in range(2):
        torch.testing.assert_close(jm(x), eager(x), **tol)
        torch.testing.assert_close(mine.running_mean, eager.running_mean, **tol)
        torch.testing.assert_close(mine.running_var, eager.running_var, **tol)
    eager.eval(), mine.eval()
    torch.testing.assert_close(jm(x), eager(x), **tol)


def test_instance_norm_errors():
    x = randn(2, 3, 4)
    for fn, err, text in ((lambda x: F.instance_norm(x[:, :, :1]), ValueError, "more than 1 spatial element"),
                          (lambda x: F.instance_norm(x, weight=torch.ones(4)), RuntimeError, "weight should contain 3"),
                          (lambda x: F.instance_norm(x, use_input_stats=False), RuntimeError,
                           "running_mean and running_var to be defined"),
                          (lambda x: F.instance_norm(x, torch.zeros(3), torch.ones(3), momentum=None),
                           NotImplementedError, "momentum=None")):
        with pytest.raises(err, match=text):
            thunder.jit(fn)(x)


INTERPOLATE_NEAREST = [
    ((2, 3, 5, 7), {"scale_factor": 2}), ((2, 3, 5, 7), {"size": (9, 4)}), ((1, 2, 7), {"scale_factor": 1.7}),
    ((1, 2, 3, 4, 5), {"scale_factor": (2, 0.5, 1.5)}), ((2, 3, 5, 7), {"scale_factor": 3, "mode": "nearest-exact"}),
    ((2, 3, 50, 70), {"size": (33, 101), "mode": "nearest-exact"}),
    ((2, 3, 13, 7), {"scale_factor": 1.3, "recompute_scale_factor": True}), ((2, 3, 5, 5), {"scale_factor": 1.1}),
    ((1, 1, 1000), {"scale_factor": 1.001, "mode": "nearest-exact"}), ((1, 1, 999), {"size": 1000})]


@pytest.mark.parametrize(("shape", "kw"), INTERPOLATE_NEAREST, ids=str)
def test_interpolate_nearest_takes_eagers_elements(shape, kw):
    # The source index of each output element as eager's kernels compute it (float arithmetic),
    # exactly: the same elements, in fp32, bf16 and uint8; no opaque call.
    for dtype in (torch.float32, torch.bfloat16, torch.uint8):
        x = (randn(*shape) * 50).to(dtype)
        jfn = thunder.jit(lambda x: F.interpolate(x, **kw))
        torch.testing.assert_close(jfn(x), F.interpolate(x, **kw), rtol=0, atol=0)
        assert not thunder.examine.opaque_ops(jfn)


@pytest.mark.parametrize(("shape", "kw"), INTERPOLATE_NEAREST, ids=str)
def test_interpolate_nearest_gradient_is_atens_backward(shape, kw):
    # The gradient of nearest interpolation is ATen's upsample backward (one call, given the
    # forward's scale factors), not scatters undoing the forward's gathers; as eager's, in fp32
    # and bf16.
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        x = randn(*shape, dtype=dtype)
        jf = jit_of_matching_step(lambda a: F.interpolate(a, **kw), x, rtol=0, atol=0)
        bwd = str(thunder.last_backward_traces(jf)[-1])
        assert "upsample_nearest_backward(" in bwd and "scatter" not in bwd, bwd


def test_interpolate_other_modes_and_errors():
    x = randn(2, 3, 5, 7)
    jfn = thunder.jit(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    torch.testing.assert_close(jfn(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
    assert thunder.examine.opaque_ops(jfn) == ["torch.nn.functional.interpolate"]  # its torch call
    up = torch.nn.Upsample(scale_factor=2)
    torch.testing.assert_close(thunder.jit(up)(x), up(x))
    for kw, text in (({}, "either size or scale_factor"), ({"size": 3, "scale_factor": 2}, "only one of"),
                     ({"size": (3,)}, "same number of spatial dimensions"),
                     ({"scale_factor": 2, "align_corners": True}, "align_corners option"),
                     ({"scale_factor": 2, "antialias": True}, "Anti-alias option")):
        with pytest.raises(ValueError, match=text):
            thunder.jit(lambda x, kw=kw: F.interpolate(x, **kw))(x)


@pytest.mark.parametrize(("fn", "shape"), [
    (lambda x: F.pixel_shuffle(x, 2), (2, 8, 3, 5)), (lambda x: F.pixel_shuffle(x, 3), (9, 4, 2)),
    (lambda x: torch.pixel_shuffle(x, 2), (2, 3, 4, 5, 6)), (lambda x: F.pixel_unshuffle(x, 2), (2, 3, 4, 6)),
    (lambda x: F.pixel_unshuffle(x, 3), (3, 6, 9)), (lambda x: F.channel_shuffle(x, 2), (2, 6, 3, 3)),
    (lambda x: F.channel_shuffle(x, 3), (2, 6, 5)), (lambda x: torch.nn.PixelShuffle(2)(x) * 2, (1, 4, 3, 3))],
    ids=["shuffle2", "shuffle3_unbatched", "shuffle_batch_dims", "unshuffle2", "unshuffle3", "channels2",
         "channels3_1d", "module"])
def test_pixel_and_channel_shuffles(fn, shape):
    # Reshape, permutation, reshape: eager's elements exactly, gradients, no opaque call.
    x = randn(*shape).requires_grad_()
    jfn = thunder.jit(fn)
    got, want = jfn(x), fn(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    g = randn(*want.shape)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])
    assert not thunder.examine.opaque_ops(jfn)


@pytest.mark.parametrize(("fn", "text"), [
    (lambda: F.pixel_shuffle(torch.ones(3, 4), 2), "at least 3 dimensions"),
    (lambda: F.pixel_shuffle(torch.ones(1, 3, 4, 4), 2), "divisible by the square of upscale_factor"),
    (lambda: F.pixel_shuffle(torch.ones(1, 4, 4, 4), 0), "positive upscale_factor"),
    (lambda: F.pixel_unshuffle(torch.ones(1, 1, 5, 4), 2), "height to be divisible"),
    (lambda: F.pixel_unshuffle(torch.ones(1, 1, 4, 5), 2), "width to be divisible"),
    (lambda: F.channel_shuffle(torch.ones(1, 3, 2, 2), 2), "divisible by groups"),
    (lambda: F.channel_shuffle(torch.ones(4), 2), "> 2 dims")])
def test_pixel_and_channel_shuffle_errors(fn, text):
    with pytest.raises(RuntimeError, match=text):
        fn()
    with pytest.raises(RuntimeError, match=text):
        thunder.jit(fn)()


@pytest.mark.parametrize(("a", "b", "kw"), [((4, 8), (4, 8), {}), ((2, 1), (2, 3), {}),
                                          ((3, 5, 6), (1, 5, 6), {"dim": -1}), ((7,), (7,), {"dim": 0}),
                                          ((4, 8), (4, 8), {"eps": 0.5})], ids=str)
def test_cosine_similarity(a, b, kw):
    # Broadcast operands (a (2, 1) operand expanded before its norm), eps, values and gradients; a
    # zero row (its norm clamped to eps) and bf16.
    for dtype in (torch.float32, torch.float64):
        x, y = randn(*a, dtype=dtype).requires_grad_(), randn(*b, dtype=dtype).requires_grad_()
        def fn(x, y):
            return F.cosine_similarity(x, y, **kw)

        jfn = thunder.jit(fn)
        got, want = jfn(x, y), fn(x, y)
        torch.testing.assert_close(got, want)
        g = randn(*want.shape, dtype=dtype)
        torch.testing.assert_close(torch.autograd.grad(got, (x, y), g), torch.autograd.grad(want, (x, y), g))
        assert not thunder.examine.opaque_ops(jfn)
    x, y = torch.zeros(2, 3), randn(2, 3)
    torch.testing.assert_close(thunder.jit(F.cosine_similarity)(x, y), F.cosine_similarity(x, y))
    xb = randn(4, 64).bfloat16()
    check(lambda x: F.cosine_similarity(x, x * 2 + 1), (xb,), dtype=torch.bfloat16)
    with pytest.raises(RuntimeError, match="expected common dtype to be floating point"):
        thunder.jit(F.cosine_similarity)(torch.tensor([[1, 2]]), torch.tensor([[1, 0]]))


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]), ("ij", [(3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]), ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("bchw,bchw->bc", [(2, 3, 4, 5), (2, 3, 4, 5)]),
    ("i,i->", [(5,), (5,)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]), ("ij,kj->ik", [(3, 1), (4, 5)]), ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("...i,...i", [(2, 3, 4), (3, 4)]), ("i,j,k->ijk", [(2,), (3,), (4,)]), ("ab,cd->", [(2, 3), (4, 5)])]


@pytest.mark.parametrize(("eq", "shapes"), EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(eq, shapes):
    # Contractions as matmuls of permuted operands, products, sums, ellipses, broadcast size-1
    # subscripts, implicit outputs; values and gradients against eager, bf16 values; no opaque call.
    args = [randn(*s, dtype=torch.float64).requires_grad_() for s in shapes]
    jfn = thunder.jit(lambda *t: torch.einsum(eq, *t))
    got, want = jfn(*args), torch.einsum(eq, *args)
    torch.testing.assert_close(got, want)
    g = randn(*want.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(got, args, g), torch.autograd.grad(want, args, g))
    assert not thunder.examine.opaque_ops(jfn)
    low = [a.detach().bfloat16() for a in args]
    torch.testing.assert_close(jfn(*low), torch.einsum(eq, *low), rtol=2e-2, atol=5e-2)


def test_einsum_operand_list_diagonals_and_errors():
    a, b = randn(3, 4), randn(4, 2)
    torch.testing.assert_close(thunder.jit(lambda a, b: torch.einsum("ij,jk->ik", [a, b]))(a, b),
                               torch.einsum("ij,jk->ik", a, b))
    jfn = thunder.jit(lambda a: torch.einsum("ii->i", a))  # a diagonal: einsum's torch call
    sq = randn(3, 3)
    torch.testing.assert_close(jfn(sq), torch.einsum("ii->i", sq))
    assert thunder.examine.opaque_ops(jfn) == ["torch.einsum"]
    for eq, shapes, text in (("ij,jk->ik", [(3, 4), (5, 2)], "do not broadcast"),
                             ("ij->ijk", [(3, 4)], "does not appear in the equation"),
                             ("ij,jk->ik", [(3, 4)], "fewer operands"),
                             ("ijk->i", [(3, 4)], "number of subscripts"),
                             ("i,i->ii", [(3,), (3,)], "more than once")):
        args = [randn(*s) for s in shapes]
        with pytest.raises(RuntimeError):
            torch.einsum(eq, *args)
        with pytest.raises(RuntimeError, match=text):
            thunder.jit(lambda *t, eq=eq: torch.einsum(eq, *t))(*args)


# ---- dropout -----------------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_dropout_statistics(dtype, decompose):
    x = torch.ones(200, 100, dtype=dtype)
    out = thunder.jit(lambda x: F.dropout(x, 0.3), decompose_to_prims=decompose)(x)
    assert out.shape == x.shape and out.dtype == dtype
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.02
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7),
                               **_tolerances(dtype, True))


@DECOMPOSE
def test_dropout_identity_cases(decompose):
    x = randn(3, 4)
    check(lambda x: F.dropout(x, 0.5, training=False), (x,), decompose=decompose)
    check(lambda x: F.dropout(x, 0.0), (x,), decompose=decompose)
    check(lambda x: F.dropout(x, 1.0), (x,), decompose=decompose)
    check(lambda x: F.dropout(x, 1.5), (x,), decompose=decompose)
    check(torch.nn.Dropout(0.2).eval(), (x,), decompose=decompose)


# ---- attention ---------------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_sdpa(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    if dtype is torch.float32:
        kw.update(rtol=1e-4, atol=1e-4)
    q, k, v = randn(2, 3, 5, 8, dtype=dtype), randn(2, 3, 7, 8, dtype=dtype), \
        randn(2, 3, 7, 6, dtype=dtype)
    sdpa = F.scaled_dot_product_attention
    check(sdpa, (q, k, v), **kw)
    check(lambda q, k, v: sdpa(q, k, v, is_causal=True), (q, k, v), **kw)
    check(lambda q, k, v: sdpa(q, k, v, scale=0.3), (q, k, v), **kw)
    bool_mask = torch.rand(5, 7) > 0.3
    bool_mask[:, 0] = True
    check(lambda q, k, v, m: sdpa(q, k, v, attn_mask=m), (q, k, v, bool_mask), **kw)
    full_masked = bool_mask.clone()
    full_masked[1] = False
    check(lambda q, k, v, m: sdpa(q, k, v, attn_mask=m), (q, k, v, full_masked), **kw)
    float_mask = randn(2, 1, 5, 7, dtype=dtype)
    check(lambda q, k, v, m: sdpa(q, k, v, m), (q, k, v, float_mask), **kw)
    check(lambda q, k, v: sdpa(q, k, v, bool_mask, is_causal=True), (q, k, v), **kw)
    check(sdpa, (randn(5, 8, dtype=dtype), randn(7, 8, dtype=dtype), randn(7, 4, dtype=dtype)),
          **kw)
    # Grouped-query attention: 6 query heads over 2 key/value heads.
    qg = randn(2, 6, 5, 8, dtype=dtype)
    kg, vg = randn(2, 2, 7, 8, dtype=dtype), randn(2, 2, 7, 8, dtype=dtype)
    check(lambda q, k, v: sdpa(q, k, v, enable_gqa=True), (qg, kg, vg), **kw)
    check(lambda q, k, v: sdpa(q, k, v, is_causal=True, enable_gqa=True), (qg, kg, vg), **kw)


@DECOMPOSE
def test_sdpa_dropout_shape(decompose):
    q = randn(2, 2, 4, 8)
    out = thunder.jit(lambda q: F.scaled_dot_product_attention(q, q, q, dropout_p=0.5),
                      decompose_to_prims=decompose)(q)
    assert out.shape == (2, 2, 4, 8) and out.dtype == torch.float32


# ---- losses ------------------------------------------------------------------------------------

REDUCTIONS = pytest.mark.parametrize("reduction", ["none", "mean", "sum"])


@DECOMPOSE
@DTYPES
@REDUCTIONS
@pytest.mark.parametrize("loss", [F.nll_loss, F.cross_entropy], ids=["nll", "cross_entropy"])
def test_class_index_losses(loss, reduction, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(6, 5, dtype=dtype)
    t = torch.tensor([0, 4, 2, -100, 1, 3])
    w = torch.rand(5, dtype=dtype) + 0.5
    check(lambda x, t: loss(x, t, reduction=reduction), (x, t), **kw)
    check(lambda x, t, w: loss(x, t, w, reduction=reduction), (x, t, w), **kw)
    check(lambda x, t: loss(x, t, ignore_index=2, reduction=reduction), (x, t.clamp(min=0)), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction), (randn(5, dtype=dtype), t[1]), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction),
          (randn(2, 5, 3, 4, dtype=dtype), torch.randint(0, 5, (2, 3, 4))), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction), (x, t[:4]), **kw)


@DECOMPOSE
@DTYPES
@REDUCTIONS
def test_cross_entropy_smoothing_and_probabilities(reduction, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(6, 5, dtype=dtype)
    t = torch.tensor([0, 4, 2, -100, 1, 3])
    w = torch.rand(5, dtype=dtype) + 0.5
    check(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1, reduction=reduction),
          (x, t), **kw)
    check(lambda x, t, w: F.cross_entropy(x, t, w, label_smoothing=0.2, reduction=reduction),
          (x, t, w), **kw)
    probs = torch.softmax(randn(6, 5), -1).to(dtype)
    check(lambda x, p: F.cross_entropy(x, p, reduction=reduction), (x, probs), **kw)
    check(lambda x, p, w: F.cross_entropy(x, p, w, label_smoothing=0.3, reduction=reduction),
          (x, probs, w), **kw)
    check(lambda x, p: F.cross_entropy(x, p, reduction=reduction),
          (randn(2, 5, 3, dtype=dtype), torch.softmax(randn(2, 5, 3), 1).to(dtype)), **kw)


@DECOMPOSE
def test_loss_errors_and_legacy_flags(decompose):
    x, t = randn(3, 4), torch.tensor([0, 1, 2])
    check(lambda x, t: F.cross_entropy(x, t, reduction="bogus"), (x, t), decompose=decompose)
    check(F.nll_loss, (x, t.int()), decompose=decompose)
    check(lambda x, t: F.nll_loss(x, t, size_average=False), (x, t), decompose=decompose)
    check(lambda x, t: F.nll_loss(x, t, reduce=False), (x, t), decompose=decompose)
    check(torch.nn.CrossEntropyLoss(), (x, t), decompose=decompose)


@DECOMPOSE
@DTYPES
@REDUCTIONS
@pytest.mark.parametrize("loss", [F.mse_loss, F.l1_loss], ids=["mse", "l1"])
def test_pointwise_losses(loss, reduction, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x, t = randn(3, 4, dtype=dtype), randn(3, 4, dtype=dtype)
    check(lambda x, t: loss(x, t, reduction=reduction), (x, t), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction), (noncontig(3, 4, dtype=dtype), t), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction),
          (randn(0, 2, dtype=dtype), randn(0, 2, dtype=dtype)), **kw)
    check(lambda x, t: loss(x, t, reduction=reduction), (x, randn(3, 4)), **kw)


@DECOMPOSE
@DTYPES
@REDUCTIONS
def test_binary_cross_entropy_with_logits(reduction, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(3, 4, dtype=dtype)
    target = torch.rand(3, 4, dtype=dtype)
    bce = F.binary_cross_entropy_with_logits
    # Eager bfloat16 rounds every intermediate of this composite; thunder computes in float32.
    wide = dict(kw, rtol=5e-2, atol=1e-1) if dtype is torch.bfloat16 else kw
    check(lambda x, t: bce(x, t, reduction=reduction), (x * 10, target), **wide)
    check(lambda x, t, w, pw: bce(x, t, w, reduction=reduction, pos_weight=pw),
          (x, target, torch.rand(4, dtype=dtype), torch.rand(4, dtype=dtype) * 3), **kw)
    # a target of another float dtype: eager's loss has the target's dtype
    other = torch.float64 if dtype is not torch.float64 else torch.float32
    check(lambda x, t: bce(x, t, reduction=reduction), (x, target.to(other)), **wide)


@DECOMPOSE
@DTYPES
@REDUCTIONS
@pytest.mark.parametrize("loss", [
    lambda x, t, r: F.smooth_l1_loss(x, t, reduction=r),
    lambda x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.3),
    lambda x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.0),
    lambda x, t, r: F.huber_loss(x, t, reduction=r),
    lambda x, t, r: F.huber_loss(x, t, reduction=r, delta=0.4),
], ids=["smooth_l1", "smooth_l1_beta", "smooth_l1_beta0", "huber", "huber_delta"])
def test_smooth_losses(loss, reduction, dtype, decompose):
    # |input - target| on both sides of beta / delta; broadcast and empty operands.
    kw = {"decompose": decompose, "dtype": dtype}
    x, t = randn(3, 4, dtype=dtype), randn(3, 4, dtype=dtype)
    check(lambda x, t: loss(x, t, reduction), (x, t), **kw)
    check(lambda x, t: loss(x, t, reduction), (noncontig(3, 4, dtype=dtype), t), **kw)
    check(lambda x, t: loss(x, t, reduction), (randn(0, 2, dtype=dtype), randn(0, 2, dtype=dtype)), **kw)


@DECOMPOSE
@DTYPES
@REDUCTIONS
def test_margin_and_embedding_losses(reduction, dtype, decompose):
    # ATen's composites: margin ranking, hinge embedding (targets 1, -1 and others), soft margin,
    # cosine embedding (2-D rows with a 1-D target, 1-D with a 0-d one, a zero row) and Poisson NLL
    # (log input, and full with targets on both sides of 1).
    kw = {"decompose": decompose, "dtype": dtype}
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.5], dtype=dtype)
    x1, x2 = randn(5, dtype=dtype), randn(5, dtype=dtype)
    check(lambda a, b, t: F.margin_ranking_loss(a, b, t, 0.3, reduction=reduction), (x1, x2, sign), **kw)
    check(lambda a, t: F.hinge_embedding_loss(a, t, 0.5, reduction=reduction), (x1 * 2, sign), **kw)
    check(lambda a, t: F.hinge_embedding_loss(a, t, reduction=reduction), (randn(2, 5, dtype=dtype), sign), **kw)
    check(lambda a, t: F.soft_margin_loss(a, t, reduction=reduction), (x1 * 2, sign), **kw)
    rows = randn(5, 3, dtype=dtype)
    rows[1] = 0
    check(lambda a, b, t: F.cosine_embedding_loss(a, b, t, 0.2, reduction=reduction),
          (rows, randn(5, 3, dtype=dtype), sign), **kw)
    check(lambda a, b, t: F.cosine_embedding_loss(a, b, t, reduction=reduction),
          (randn(3, dtype=dtype), randn(3, dtype=dtype), torch.tensor(-1.0, dtype=dtype)), **kw)
    counts = torch.tensor([0.0, 0.5, 1.0, 2.0, 5.0], dtype=dtype)
    check(lambda a, t: F.poisson_nll_loss(a, t, reduction=reduction), (x1, counts), **kw)
    check(lambda a, t: F.poisson_nll_loss(a, t, log_input=False, full=True, reduction=reduction),
          (x1.abs(), counts), **kw)


def test_margin_and_embedding_loss_errors_and_dtypes():
    # Eager's messages for dims, targets and reductions; integer operands as eager promotes them.
    sign = torch.tensor([1.0, -1.0, 1.0])
    check(F.margin_ranking_loss, (randn(3), randn(3, 1), randn(3)))
    check(lambda a, b, t: F.margin_ranking_loss(a, b, t, reduction="x"), (randn(3), randn(3), sign))
    check(lambda a, b, t: F.margin_ranking_loss(a, b, t, size_average=False), (randn(3), randn(3), sign))
    check(F.margin_ranking_loss, (torch.arange(3), torch.arange(3), torch.tensor([1, -1, 1])))
    check(F.cosine_embedding_loss, (randn(2, 3), randn(2, 3), randn(2, 1)))
    check(F.cosine_embedding_loss, (randn(2, 3), randn(3), randn(2)))
    check(F.cosine_embedding_loss, (randn(3), randn(2, 3), torch.tensor(1.0)))
    check(F.cosine_embedding_loss, (torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.int64),
                                    torch.tensor([1, -1])))
    check(F.hinge_embedding_loss, (torch.arange(4), torch.tensor([1, -1, 1, -1])))
    check(F.soft_margin_loss, (randn(3), torch.tensor([1, -1, 1])))
    check(F.soft_margin_loss, (randn(3), torch.ones(2, 3)))
    check(F.soft_margin_loss, (torch.arange(3), torch.arange(3)))
    check(lambda a, t: F.poisson_nll_loss(a, t, reduction="x"), (randn(3), randn(3)))
    check(F.poisson_nll_loss, (torch.arange(3), torch.arange(3)))
    for fn, args in [(F.margin_ranking_loss, (randn(3), randn(3), randn(3))),
                     (F.cosine_embedding_loss, (randn(2, 3), randn(2, 3), torch.ones(2))),
                     (F.poisson_nll_loss, (randn(3), randn(3))), (F.soft_margin_loss, (randn(3), randn(3)))]:
        jfn = thunder.jit(fn)
        jfn(*args)
        assert not thunder.examine.opaque_ops(jfn)


def test_soft_margin_loss_target_requiring_grad_raises_as_eager():
    # Eager has no derivative for the target and raises in the forward; so does its torch call.
    x, t = randn(3, 4).requires_grad_(), randn(3, 4).requires_grad_()
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'target'"):
        thunder.jit(F.soft_margin_loss)(x, t)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target, dtype, decompose):
    # Targets with zeros (their terms are 0), log-probability inputs, a 0-d input's batchmean.
    kw = {"decompose": decompose, "dtype": dtype}
    p = F.log_softmax(randn(4, 6), -1).to(dtype)
    q = F.softmax(randn(4, 6) * 3, -1)
    q[0, :3] = 0
    q = (q.clamp_min(1e-4).log() if log_target else q).to(dtype)
    def fn(x, t):
        return F.kl_div(x, t, reduction=reduction, log_target=log_target)

    check(fn, (p, q), **kw)
    check(fn, (p[0, 0], q[0, 1]), **kw)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_glu(dim, dtype, decompose):
    check(lambda x: F.glu(x, dim), (randn(4, 6, 2, dtype=dtype) * 3,), decompose=decompose,
          dtype=dtype)
    check(lambda x: F.glu(x, dim), (noncontig(4, 6, dtype=dtype),), decompose=decompose, dtype=dtype)


@DECOMPOSE
def test_glu_smooth_and_kl_errors(decompose):
    # torch's messages: an odd or scalar halving dimension, integer inputs, a negative beta, a
    # non-positive delta, an unknown reduction.
    for args in ((randn(3, 5),), (torch.tensor(1.0),), (torch.arange(4),)):
        check(lambda x: F.glu(x, 1 if x.dim() > 1 else 0), args, decompose=decompose)
    x, t = randn(3), randn(3)
    check(lambda x, t: F.smooth_l1_loss(x, t, beta=-1.0), (x, t), decompose=decompose)
    check(lambda x, t: F.huber_loss(x, t, delta=0.0), (x, t), decompose=decompose)
    check(lambda x, t: F.kl_div(x, t, reduction="avg"), (x, t), decompose=decompose)
    check(lambda x, t: F.huber_loss(x, t, reduction="avg"), (x, t), decompose=decompose)
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is size 5"):
        thunder.jit(lambda x: F.glu(x, 1), decompose_to_prims=decompose)(randn(3, 5))


@DECOMPOSE
def test_pointwise_loss_errors(decompose):
    check(F.mse_loss, (randn(3), randn(2)), decompose=decompose)
    check(F.mse_loss, (torch.arange(3), torch.arange(3)), decompose=decompose)
    check(F.binary_cross_entropy_with_logits, (randn(3), randn(2)), decompose=decompose)


# ---- convolution -------------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_conv(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    if dtype is torch.float32:
        kw.update(rtol=1e-4, atol=1e-4)
    x2, w2, b2 = randn(2, 4, 7, 6, dtype=dtype), randn(6, 4, 3, 2, dtype=dtype), \
        randn(6, dtype=dtype)
    check(F.conv2d, (x2, w2), **kw)
    check(F.conv2d, (x2, w2, b2), **kw)
    check(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)), (x2, w2, b2),
          **kw)
    check(lambda x, w: F.conv2d(x, w, padding="same"), (x2, w2), **kw)
    check(lambda x, w: F.conv2d(x, w, padding="same", dilation=2), (x2, w2), **kw)
    check(lambda x, w: F.conv2d(x, w, padding="valid"), (x2, w2), **kw)
    check(lambda x, w: F.conv2d(x, w, groups=2), (x2, randn(6, 2, 3, 3, dtype=dtype)), **kw)
    check(F.conv2d, (x2[0], w2), **kw)  # unbatched
    check(F.conv2d, (noncontig(2, 4, 7, 6, dtype=dtype), w2), **kw)
    x1, w1 = randn(2, 3, 9, dtype=dtype), randn(5, 3, 4, dtype=dtype)
    check(F.conv1d, (x1, w1), **kw)
    check(lambda x, w: F.conv1d(x, w, padding="same"), (x1, w1), **kw)
    check(lambda x, w: F.conv1d(x, w, stride=2, padding=2), (x1, w1), **kw)
    check(F.conv3d, (randn(1, 2, 4, 5, 6, dtype=dtype), randn(3, 2, 2, 2, 2, dtype=dtype)), **kw)
    conv = torch.nn.Conv2d(4, 3, 3, padding=1).to(dtype)
    check(conv, (x2,), **kw)


@DECOMPOSE
def test_conv_errors(decompose):
    x, w = randn(1, 2, 5, 5), randn(3, 2, 3, 3)
    check(lambda x, w: F.conv2d(x, w, stride=2, padding="same"), (x, w), decompose=decompose)
    check(lambda x, w: F.conv2d(x, w, padding="foo"), (x, w), decompose=decompose)
    check(F.conv2d, (x.double(), w), decompose=decompose)
    check(F.conv2d, (x, randn(3, 3, 3, 3)), decompose=decompose)
    check(F.conv2d, (randn(2, 3), w), decompose=decompose)
    check(F.conv2d, (x, randn(3, 2, 7, 7)), decompose=decompose)
    check(lambda x, w: F.conv2d(x, w, stride=[1, 1, 1]), (x, w), decompose=decompose)


# ---- pooling -----------------------------------------------------------------------------------

POOL_ARGS = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2},
    {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
]


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("kwargs", POOL_ARGS, ids=str)
def test_max_pool2d(kwargs, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 7, 8, dtype=dtype)
    check(lambda x: F.max_pool2d(x, **kwargs), (x,), **kw)
    check(lambda x: F.max_pool2d(x, **kwargs), (x[0],), **kw)
    check(lambda x: F.max_pool2d(x, dilation=2, **kwargs), (x,), **kw)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("kwargs", POOL_ARGS, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(kwargs, count_include_pad, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 7, 8, dtype=dtype)
    check(lambda x: F.avg_pool2d(x, count_include_pad=count_include_pad, **kwargs), (x,), **kw)
    check(lambda x: F.avg_pool2d(x, count_include_pad=count_include_pad, **kwargs),
          (noncontig(3, 7, 8, dtype=dtype),), **kw)
    check(lambda x: F.avg_pool2d(x, divisor_override=5, **kwargs), (x,), **kw)


@DECOMPOSE
def test_pool_1d_errors_and_modules(decompose):
    x = randn(2, 3, 9)
    check(lambda x: F.max_pool1d(x, 3, 2, 1), (x,), decompose=decompose)
    check(lambda x: F.avg_pool1d(x, 3, 2, 1, True, False), (x,), decompose=decompose)
    check(lambda x: F.max_pool2d(x, 2, padding=2), (randn(1, 2, 5, 5),), decompose=decompose)
    check(lambda x: F.max_pool2d(x, 7), (randn(1, 2, 5, 5),), decompose=decompose)
    check(torch.nn.MaxPool2d(2), (randn(1, 2, 4, 4),), decompose=decompose)
    check(torch.nn.AvgPool2d(3, 1, 1), (randn(1, 2, 4, 4),), decompose=decompose)
    check(lambda x: F.avg_pool2d(x, 2), (torch.randint(-9, 9, (1, 2, 4, 4)),),
          decompose=decompose)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("out", [1, 2, (3, 4), (None, 2), (3, 3), (5, 7)], ids=str)
def test_adaptive_avg_pool2d(out, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    if dtype is torch.float32:
        kw.update(rtol=1e-5, atol=1e-5)
    check(lambda x: F.adaptive_avg_pool2d(x, out), (randn(2, 3, 6, 8, dtype=dtype),), **kw)
    check(lambda x: F.adaptive_avg_pool2d(x, out), (randn(3, 7, 10, dtype=dtype),), **kw)


@DECOMPOSE
def test_adaptive_avg_pool1d(decompose):
    check(lambda x: F.adaptive_avg_pool1d(x, 3), (randn(2, 3, 9),), decompose=decompose)
    check(lambda x: F.adaptive_avg_pool1d(x, 4), (randn(2, 3, 9),), decompose=decompose)
    check(torch.nn.AdaptiveAvgPool2d((1, 1)), (randn(2, 3, 5, 5),), decompose=decompose)


# ---- pad ---------------------------------------------------------------------------------------


@DECOMPOSE
@DTYPES
def test_pad(dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 4, dtype=dtype)
    check(lambda x: F.pad(x, (1, 2)), (x,), **kw)
    check(lambda x: F.pad(x, [1, 0, 0, 2, 3, 1], value=2.5), (x,), **kw)
    check(lambda x: F.pad(x, (-1, 1)), (x,), **kw)
    check(lambda x: F.pad(x, (1, 1), "constant", 0.0), (noncontig(3, 4, dtype=dtype),), **kw)
    check(lambda x: F.pad(x, (1, 2)), (torch.arange(6).reshape(2, 3),), **kw)


@DECOMPOSE
@DTYPES
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_non_constant(mode, dtype, decompose):
    kw = {"decompose": decompose, "dtype": dtype}
    x = randn(2, 3, 4, dtype=dtype)
    check(lambda x: F.pad(x, (2, 1), mode=mode), (x,), **kw)
    check(lambda x: F.pad(x, (1, 2, 2, 0), mode=mode), (x,), **kw)
    check(lambda x: F.pad(x, (1, 2, 2, 0), mode=mode), (randn(2, 3, 4, 5, dtype=dtype),), **kw)
    check(lambda x: F.pad(x, (1, 1, 1, 1, 1, 1), mode=mode), (randn(1, 2, 3, 4, 5, dtype=dtype),),
          **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_pad_reflect_and_replicate_gradients_are_atens_backward(mode, dtype):
    # The gradient of reflect and replicate padding is ATen's backward (one call, as eager's
    # autograd runs it), not scatters into zeros; as eager's over 1, 2 and 3 padded dims, batched
    # and unbatched.
    torch.manual_seed(0)
    for pad, shape in (((2, 1), (2, 3, 4)), ((2, 1), (3, 4)), ((1, 2, 2, 0), (2, 3, 4, 5)), ((1, 2, 2, 0), (3, 4, 5)),
                       ((1, 1, 1, 1, 1, 1), (1, 2, 3, 4, 5))):
        x = torch.randn(shape, dtype=dtype)
        jf = jit_of_matching_step(lambda a, pad=pad: F.pad(a, pad, mode=mode), x, rtol=0, atol=0)
        bwd = str(thunder.last_backward_traces(jf)[-1])
        assert "pad_backward(" in bwd and "scatter" not in bwd, bwd


@DECOMPOSE
def test_pad_errors(decompose):
    x = randn(1, 2, 3, 3)
    check(lambda x: F.pad(x, [1]), (x,), decompose=decompose)
    check(lambda x: F.pad(x, [1] * 10), (x,), decompose=decompose)
    check(lambda x: F.pad(x, [5, 5, 5, 5], mode="reflect"), (x,), decompose=decompose)
    check(lambda x: F.pad(x, [1, 1], mode="reflect"), (x,), decompose=decompose)
    check(lambda x: F.pad(x, [1, 1], mode="foo"), (x,), decompose=decompose)
    check(lambda x: F.pad(x, [1, 1], mode="reflect", value=1.0), (randn(2, 3),),
          decompose=decompose)


@pytest.mark.parametrize("shapes,kw", [
    (((5, 7), (5, 7)), {}), (((5, 7), (7,)), {}), (((7,), (5, 7)), {"keepdim": True}),
    (((3, 4, 6), (4, 6)), {"p": 1}), (((5, 7), (5, 7)), {"p": float("inf")}), (((5, 7), (5, 7)), {"p": 0}),
    (((5, 7), (5, 7)), {"p": 1.5, "eps": 0.0}), (((), ()), {}), (((5, 7), (5, 7)), {"p": -1.0}),
], ids=str)
def test_pairwise_distance(shapes, kw):
    # eager's norm(x1 - x2 + eps, p) over the last dim of the larger rank: values, dtypes (integers
    # give floats through eps), broadcasting, and gradients against torch.autograd
    gen = torch.Generator().manual_seed(0)
    fn = lambda a, b: F.pairwise_distance(a, b, **kw) * 1
    for dtype in (torch.float64, torch.float16, torch.int64):
        x1, x2 = ((torch.randn(s, generator=gen) * 3).to(dtype) for s in shapes)
        check(fn, (x1, x2), dtype=dtype if dtype.is_floating_point else torch.float32)
    x1, x2 = (torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes)
    a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    c, d = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    got, want = thunder.jit(fn)(a, b), fn(c, d)
    cot = torch.randn(want.shape, generator=gen, dtype=want.dtype)
    for g, w, x in zip(torch.autograd.grad(got, (a, b), cot, allow_unused=True),
                       torch.autograd.grad(want, (c, d), cot, allow_unused=True), (x1, x2)):
        torch.testing.assert_close(torch.zeros_like(x) if g is None else g, torch.zeros_like(x) if w is None else w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", ["plain", "stride_none_pair", "padded_ceil", "dilated", "unbatched", "channels_last",
                                  "nan_inf"])
def test_max_pool2d_training_runs_atens_kernel_with_indices(case, dtype):
    # Training runs max_pool2d as eager's autograd does: ATen's kernel keeping each window's first
    # maximum's index, and its backward reading them (not windows unfolded, an argmax and a
    # scatter). Values and gradients as eager's, NaN and infinities included.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 10, dtype=dtype)
    f = {
        "plain": lambda a: F.max_pool2d(a, 2),
        "stride_none_pair": lambda a: F.max_pool2d(a, (3, 2), stride=None),
        "padded_ceil": lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True),
        "dilated": lambda a: F.max_pool2d(a, 2, 1, dilation=(2, 3)),
        "unbatched": lambda a: F.max_pool2d(a[0], 3, 2),
        "channels_last": lambda a: F.max_pool2d(a.to(memory_format=torch.channels_last), 2),
        "nan_inf": lambda a: F.max_pool2d(a, 2),
    }[case]
    if case == "nan_inf":
        x[0, 0, 0, 0], x[0, 1, 2, 3], x[1, 2, 4, 4] = float("nan"), float("inf"), -float("inf")
    jf = jit_of_matching_step(f, x)
    fwd, bwd = (str(t) for t in (thunder.last_traces(jf)[-1], thunder.last_backward_traces(jf)[-1]))
    assert "torch.ops.aten.max_pool2d_with_indices(" in fwd and "unfold" not in fwd, fwd
    assert "torch.ops.aten.max_pool2d_with_indices_backward(" in bwd and "scatter" not in bwd, bwd


@pytest.mark.parametrize("case", ["ties_2d", "ties_1d", "relu_zeros", "dilated_ceil", "overlap_1d"])
def test_max_pool_gradient_goes_to_each_windows_first_maximum_as_in_eager(case):
    # amax shares a window's cotangent among tied maxima; eager's max_pool routes it to the first
    # (ties are common: a ReLU's zeros, rounded or quantized values).
    torch.manual_seed(0)
    f, x = {
        "ties_2d": (lambda a: F.max_pool2d(a, 2), torch.ones(1, 1, 2, 2)),
        "ties_1d": (lambda a: F.max_pool1d(a, 2), torch.tensor([[[3.0, 3, 1, 1]]])),
        "relu_zeros": (lambda a: F.max_pool2d(F.relu(a), 3, 2, 1), torch.randn(2, 3, 9, 9)),
        "dilated_ceil": (lambda a: F.max_pool2d(a.round(), 3, 1, 1, dilation=2, ceil_mode=True),
                         torch.randn(2, 3, 9, 9) * 2),
        "overlap_1d": (lambda a: F.max_pool1d(a.round(), 3, 2, 1), torch.randn(2, 3, 11)),
    }[case]
    xe, xj = x.clone().requires_grad_(), x.clone().requires_grad_()
    jf = thunder.jit(f)
    want, got = f(xe), jf(xj)
    torch.testing.assert_close(got, want)
    cot = torch.randn_like(want)
    want.backward(cot)
    got.backward(cot)
    torch.testing.assert_close(xj.grad, xe.grad)
    with torch.no_grad():
        torch.testing.assert_close(jf(x), f(x))
