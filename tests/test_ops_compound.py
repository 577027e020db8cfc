"""Compound elementwise functions (addcmul, addcdiv, lerp) as eager computes them: their operands
converted to the common dtype before any arithmetic (an integer product does not wrap, a
half-precision product is not rounded before a float32 sum), `value` truncated for integers, lerp's
two formulas either side of weight 0.5, and eager's errors. Each runs inside a chain, so its
decomposition runs fused, not as the torch call a lone function becomes."""

import itertools

import pytest
import torch

import thunder
from thunder.executors import fusionex

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fuse_compound", min_cpu_numel=0))
DTYPES = [torch.bool, torch.uint8, torch.float16, torch.float32]
# beyond DTYPES' triples: wider integers, bf16 and float64 beside the others
MORE = [(torch.int32, torch.int32, torch.int64), (torch.float32, torch.int32, torch.int32),
        (torch.bfloat16, torch.bfloat16, torch.bfloat16), (torch.float32, torch.bfloat16, torch.bfloat16),
        (torch.float64, torch.float16, torch.int32), (torch.int64, torch.float64, torch.float64)]


def _make(dtype, gen):
    if dtype == torch.bool:
        return torch.rand(9, 13, generator=gen) > 0.5
    if dtype.is_floating_point:
        return (torch.randn(9, 13, generator=gen) * 4).to(dtype)
    return torch.randint(1, 20, (9, 13), generator=gen).to(dtype)  # products past 255 and 2^7


def _compare(fn, args):
    """jit(fn) with the fuser on every region and with the default executors, against eager: the
    same dtype and values, or an error of the same kind."""
    try:
        expected = fn(*args)
    except (RuntimeError, NotImplementedError) as e:
        for executors in ([FUSE_ALL], None):
            with pytest.raises(type(e) if isinstance(e, NotImplementedError) else RuntimeError):
                thunder.jit(fn, executors=executors)(*args)
        return
    for executors in ([FUSE_ALL], None):
        got = thunder.jit(fn, executors=executors)(*args)
        assert got.dtype == expected.dtype
        low = expected.dtype in (torch.float16, torch.bfloat16)
        torch.testing.assert_close(got, expected, rtol=1e-2 if low else 1e-5, atol=1e-2 if low else 1e-5)


FUNCTIONS = {
    "addcmul": lambda s, a, b: torch.addcmul(s, a, b) * 1,
    "addcmul_value_int": lambda s, a, b: torch.addcmul(s, a, b, value=3) * 1,
    "addcmul_value_float": lambda s, a, b: torch.addcmul(s, a, b, value=0.5) * 1,  # truncated to 0 for integers
    "addcmul_value_bool": lambda s, a, b: torch.addcmul(s, a, b, value=True) * 1,
    "addcdiv": lambda s, a, b: torch.addcdiv(s, a, b) * 1,
    "addcdiv_value": lambda s, a, b: torch.addcdiv(s, a, b, value=-0.5) * 1,
    "lerp_low": lambda s, a, b: torch.lerp(s, a, 0.3) * 1,
    "lerp_one": lambda s, a, b: torch.lerp(s, a, 1.0) * 1,
    "lerp_tensor": lambda s, a, b: torch.lerp(s, a, b) * 1,
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_compound_functions_promote_as_eager(name):
    gen = torch.Generator().manual_seed(0)
    for ds, da, db in [*itertools.product(DTYPES, DTYPES, DTYPES), *MORE]:
        _compare(FUNCTIONS[name], (_make(ds, gen), _make(da, gen), _make(db, gen)))


def test_integer_products_do_not_wrap_in_a_float_sum():
    a = torch.full((64, 64), 200, dtype=torch.uint8)
    s = torch.zeros(64, 64)
    fn = lambda s, a: torch.addcmul(s, a, a, value=0.5) + 1
    torch.testing.assert_close(thunder.jit(fn, executors=[FUSE_ALL])(s, a), fn(s, a))
    assert fn(s, a)[0, 0].item() == 20001.0


def test_lerp_is_exact_at_weight_one_and_its_gradients():
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(8, 16, generator=gen, dtype=torch.float64)
    end = torch.randn(8, 16, generator=gen, dtype=torch.float64) * 1e8
    weight = torch.rand(8, 16, generator=gen, dtype=torch.float64) * 2 - 0.5
    weight[0] = 1.0
    fn = lambda s, e, w: torch.lerp(s, e, w) * 2
    got = thunder.jit(fn, executors=[FUSE_ALL])(start, end, weight)
    assert torch.equal(got[0], end[0] * 2)
    torch.testing.assert_close(got, fn(start, end, weight))
    args = [t.clone().requires_grad_() for t in (start, end, weight)]
    eager_args = [t.clone().requires_grad_() for t in (start, end, weight)]
    cot = torch.randn(8, 16, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(thunder.jit(fn, executors=[FUSE_ALL])(*args), args, cot)
    want = torch.autograd.grad(fn(*eager_args), eager_args, cot)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_addcmul_and_addcdiv_gradients(dtype):
    gen = torch.Generator().manual_seed(2)
    mk = lambda: (torch.randn(8, 16, generator=gen) + 3).to(dtype).requires_grad_()
    for fn in (lambda s, a, b: torch.addcmul(s, a, b, value=0.3).sin(), lambda s, a, b: torch.addcdiv(s, a, b, value=2).cos()):
        args = [mk() for _ in range(3)]
        eager_args = [t.detach().clone().requires_grad_() for t in args]
        cot = torch.randn(8, 16, generator=gen).to(dtype)
        got = torch.autograd.grad(thunder.jit(fn, executors=[FUSE_ALL])(*args), args, cot)
        want = torch.autograd.grad(fn(*eager_args), eager_args, cot)
        tol = 1e-2 if dtype == torch.float16 else 1e-5
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=tol, atol=tol)


def test_errors_name_the_problem():
    i = torch.ones(3, dtype=torch.int32)
    f = torch.ones(3)
    with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
        thunder.jit(lambda s, a, b: torch.addcdiv(s, a, b) * 1)(f, i, i)
    with pytest.raises(RuntimeError, match="expected dtype float32 for `end` but got dtype float16"):
        thunder.jit(lambda s, e: torch.lerp(s, e, 0.5) * 1)(f, f.half())
    with pytest.raises(NotImplementedError, match="lerp: not implemented for 'int32'"):
        thunder.jit(lambda s, e: torch.lerp(s, e, 0.5) * 1)(i, i)
    with pytest.raises(NotImplementedError, match="addcmul: not implemented for 'Bool'"):
        b = torch.ones(3, dtype=torch.bool)
        thunder.jit(lambda s, a, c: torch.addcmul(s, a, c) * 1)(b, b, b)
