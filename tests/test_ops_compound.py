"""Arithmetic as eager computes it, inside chains (so each decomposition runs fused, not as the torch
call a lone function becomes): compound functions (addcmul, addcdiv, lerp) with their operands
converted to the common dtype before any arithmetic (an integer product does not wrap, a
half-precision product is not rounded before a float32 sum), `value` truncated for integers,
lerp's two formulas either side of weight 0.5; add and sub with alpha in the common dtype;
Python's floor division for floats; integers meeting a half-precision result through that dtype;
eager's errors (bool subtraction, integer addcdiv, lerp's dtypes)."""

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


def _compare(fn, args, low_atol=1e-2):
    """jit(fn) with the fuser on every region and with the default executors, against eager: the
    same dtype and values, or an error of the same kind. low_atol: the absolute tolerance of
    float16/bfloat16 results."""
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
        torch.testing.assert_close(got, expected, rtol=1e-2 if low else 1e-5, atol=low_atol if low else 1e-5,
                                   equal_nan=True)


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


BINARY = {
    "add_alpha": lambda a, b: torch.add(a, b, alpha=2) * 1,
    "sub_alpha": lambda a, b: torch.sub(a, b, alpha=3) * 1,
    "rsub": lambda a, b: torch.rsub(a, b, alpha=2) * 1,
    "floor_divide": lambda a, b: torch.floor_divide(a, b) * 1,
    "div_floor": lambda a, b: torch.div(a, b, rounding_mode="floor") * 1,
    "remainder": lambda a, b: torch.remainder(a, b) * 1,
    "fmod": lambda a, b: torch.fmod(a, b) * 1,
    "xlogy": lambda a, b: torch.xlogy(a, b) * 1,
}
EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 7.0, 1e-3, float("inf"), -float("inf"), float("nan")]


def _with_edges(dtype, gen):
    t = _make(dtype, gen)
    if dtype.is_floating_point:
        t[0, :12] = torch.tensor(EDGES)
    elif dtype != torch.bool:
        info = torch.iinfo(dtype)
        t[0, :5] = torch.tensor([0, 3001, -2049, info.max, info.min], dtype=torch.int64).to(dtype)
    return t


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_arithmetic_as_eager(name):
    gen = torch.Generator().manual_seed(3)
    dtypes = [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32]
    for da, db in itertools.product(dtypes, dtypes):
        # eager's CPU kernels round some bf16 intermediates (alpha * y) that thunder keeps in float32:
        # a bf16 unit in the last place of operands up to 16 apart
        _compare(BINARY[name], (_with_edges(da, gen), _with_edges(db, gen)), low_atol=1 / 16)


def test_floor_division_follows_python():
    x = torch.tensor([7.0, -7.0, 7.0, float("inf"), 1.0, -1.0, 0.0, 68.0])
    y = torch.tensor([-float("inf"), float("inf"), 0.0, 3.0, 3.0, 3.0, -2.0, -2.71875])
    fn = lambda a, b: torch.floor_divide(a, b) * 1
    for dtype in (torch.float32, torch.bfloat16):
        got = thunder.jit(fn, executors=[FUSE_ALL])(x.to(dtype), y.to(dtype))
        want = fn(x.to(dtype), y.to(dtype))
        torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
        keep = ~want.isnan()  # zeros' signs as eager's (a NaN's sign bit is not meaningful)
        assert got[keep].signbit().tolist() == want[keep].signbit().tolist()
    assert fn(x, y)[:2].tolist() == [-1.0, -1.0]  # floor(7 / -inf) would be -0


def test_integers_meet_half_precision_through_it():
    i = torch.tensor([3001, 2049, 65519, 70000], dtype=torch.int32)
    h = torch.tensor([7.0, 1.0, 1.0, 1.0], dtype=torch.float16)
    for fn in (lambda a, b: torch.fmod(a, b) * 1, lambda a, b: torch.remainder(a, b) * 1, lambda a, b: (a + b) * 1):
        got, want = thunder.jit(fn, executors=[FUSE_ALL])(i, h), fn(i, h)
        torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)


def test_bool_subtraction_is_refused():
    b = torch.ones(3, dtype=torch.bool)
    f = torch.ones(3)
    with pytest.raises(RuntimeError, match="with a bool tensor is not supported"):
        thunder.jit(lambda x, y: x - y)(f, b)
    with pytest.raises(RuntimeError, match="with two bool tensors is not supported"):
        thunder.jit(lambda x, y: torch.sub(x, y))(b, b)
    with pytest.raises(RuntimeError, match="argument alpha must not be a floating point number"):
        thunder.jit(lambda x: torch.add(x, x, alpha=0.5))(torch.ones(3, dtype=torch.int32))


def test_sign_bits_of_bf16_vectors_compile():
    # g++ crashed vectorizing __builtin_signbit of values loaded from bf16.
    x = torch.randn(7, 12).to(torch.bfloat16)
    x[0, :3] = torch.tensor([-0.0, float("nan"), -float("inf")])
    for fn in (lambda t: torch.signbit(t) & True, lambda t: torch.copysign(t, -t) * 1):
        torch.testing.assert_close(thunder.jit(fn, executors=[FUSE_ALL])(x), fn(x), equal_nan=True)


def test_alpha_gradients():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x, y: (torch.sub(x, y, alpha=3) * torch.add(x, y, alpha=-2) + torch.rsub(x, y, alpha=0.5)).sin()
    got = torch.autograd.grad(thunder.jit(fn, executors=[FUSE_ALL])(a, b).sum(), (a, b))
    want = torch.autograd.grad(fn(a, b).sum(), (a, b))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_round_with_decimals(dtype):
    x = torch.tensor([1.25, -2.5, 1234.5678, 0.05, -0.15, 2.675, float("inf"), float("nan")]).to(dtype)
    for d in (0, 1, 2, -1, -2):
        fn = lambda t: torch.round(t, decimals=d) * 1  # noqa: B023
        torch.testing.assert_close(thunder.jit(fn, executors=[FUSE_ALL])(x), fn(x), equal_nan=True)

    def in_place(t):
        t = t.clone()
        t.round_(decimals=1)
        return t

    torch.testing.assert_close(thunder.jit(in_place)(x), in_place(x), equal_nan=True)


def test_rounding_functions_on_integers_and_bool():
    i = torch.tensor([3, -2, 7])
    for fn in (torch.floor, torch.ceil, torch.round, torch.trunc, torch.fix):
        got = thunder.jit(lambda t: fn(t) * 2)(i)  # noqa: B023
        assert got.dtype == torch.int64 and got.tolist() == [6, -4, 14]
        with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
            thunder.jit(lambda t: fn(t))(torch.tensor([True]))  # noqa: B023
    with pytest.raises(NotImplementedError, match="with decimals"):
        thunder.jit(lambda t: torch.round(t, decimals=1))(i)
