"""The cache of compiled programs: hits and misses, and recompilation on each guard (tensor metadata,
Python values, structure, keyword arguments, grad mode, module flags), the cache options, and
tensors captured by closures."""

from __future__ import annotations

import pytest
import torch

import thunder
from thunder.executors import fusionex

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("cache_fusion_all", min_cpu_numel=0))


def counts(jfn):
    return thunder.cache_misses(jfn), thunder.cache_hits(jfn)


def test_hits_and_misses_same_inputs():
    def f(a, b):
        return a * b + 1

    jf = thunder.jit(f)
    assert counts(jf) == (0, 0)
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(jf(a, b), f(a, b))
    assert counts(jf) == (1, 0)
    for i in range(3):
        a2, b2 = torch.randn(2, 3), torch.randn(2, 3)  # new values, same metadata
        torch.testing.assert_close(jf(a2, b2), f(a2, b2))
        assert counts(jf) == (1, i + 1)


def _check_recompiles(fn, first_args, second_args, first_kwargs=None, second_kwargs=None):
    """fn jitted: the first call compiles, the same call again hits, the second call compiles a new
    entry, and then both kinds of call hit; every result equals eager."""
    first_kwargs = first_kwargs or {}
    second_kwargs = second_kwargs or {}
    jf = thunder.jit(fn)
    torch.testing.assert_close(jf(*first_args, **first_kwargs), fn(*first_args, **first_kwargs))
    torch.testing.assert_close(jf(*first_args, **first_kwargs), fn(*first_args, **first_kwargs))
    assert counts(jf) == (1, 1)
    torch.testing.assert_close(jf(*second_args, **second_kwargs), fn(*second_args, **second_kwargs))
    assert counts(jf) == (2, 1)
    torch.testing.assert_close(jf(*second_args, **second_kwargs), fn(*second_args, **second_kwargs))
    torch.testing.assert_close(jf(*first_args, **first_kwargs), fn(*first_args, **first_kwargs))
    assert counts(jf) == (2, 3)
    return jf


def test_recompile_on_shape():
    jf = _check_recompiles(lambda x: x.sum(0) * 2, (torch.randn(2, 3),), (torch.randn(4, 3),))
    assert jf(torch.randn(2, 3)).shape == (3,)


def test_recompile_on_rank():
    _check_recompiles(lambda x: x.sum(0), (torch.randn(2, 3),), (torch.randn(2, 3, 1),))


def test_recompile_on_dtype():
    def f(x):
        return x + x

    jf = _check_recompiles(f, (torch.ones(2, 2),), (torch.ones(2, 2, dtype=torch.float64),))
    assert jf(torch.ones(2, 2, dtype=torch.float64)).dtype == torch.float64
    assert jf(torch.ones(2, 2, dtype=torch.int64)).dtype == torch.int64
    assert counts(jf)[0] == 3


def test_recompile_on_requires_grad():
    def f(x):
        return x * 3

    x = torch.randn(3)
    jf = _check_recompiles(f, (x,), (x.clone().requires_grad_(True),))
    xr = x.clone().requires_grad_(True)
    out = jf(xr)
    assert out.requires_grad
    out.sum().backward()
    torch.testing.assert_close(xr.grad, torch.full((3,), 3.0))
    assert not jf(x).requires_grad


def test_recompile_on_contiguity():
    def f(x):
        return x.reshape(-1) * 2

    base = torch.arange(6.0).reshape(2, 3)
    transposed = torch.arange(6.0).reshape(3, 2).t()  # (2, 3), not contiguous
    assert not transposed.is_contiguous()
    _check_recompiles(f, (base,), (transposed,))


def test_is_contiguous_seen_while_tracing():
    """The traced function sees the input's real layout: a transposed input is not contiguous."""
    def f(x):
        return x * 2 if x.is_contiguous() else x * 3

    base = torch.arange(6.0).reshape(2, 3)
    transposed = torch.arange(6.0).reshape(3, 2).t()
    _check_recompiles(f, (base,), (transposed,))


def test_a_branch_on_strides_recompiles_for_another_layout():
    """Two non-contiguous layouts of one shape: a program that read the strides runs only for its own;
    one that did not is shared by both (its kernels take the strides as they come)."""
    transposed = torch.arange(24.0).reshape(4, 6).t()  # (6, 4), strides (1, 6)
    strided = torch.arange(48.0).reshape(6, 8)[:, ::2]  # (6, 4), strides (8, 2)
    _check_recompiles(lambda x: x * 2 if x.stride(0) == 1 else x * 3, (transposed,), (strided,))
    _check_recompiles(lambda x: x.sum(0) if x.t().is_contiguous() else x.sum(1), (transposed,), (strided,))
    jf = thunder.jit(lambda x: x * 2)
    for x in (transposed, strided, transposed):
        torch.testing.assert_close(jf(x), x * 2)
    assert counts(jf) == (1, 2)


def test_view_of_transposed_input_raises_like_eager():
    def f(x):
        return x.view(-1)

    transposed = torch.arange(6.0).reshape(3, 2).t()
    with pytest.raises(RuntimeError):
        f(transposed)
    with pytest.raises(RuntimeError):
        thunder.jit(f)(transposed)


def test_transposed_input_values():
    def f(x, y):
        return x @ y + x

    x = torch.randn(3, 3)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x, x), f(x, x))
    xt = x.t()
    torch.testing.assert_close(jf(xt, xt), f(xt, xt))
    assert counts(jf) == (2, 0)


@pytest.mark.parametrize("first,second", [(1, 2), (2.0, 3.5), (True, False), (1, 1.0)],
                         ids=["int", "float", "bool", "int-vs-float"])
def test_recompile_on_number_value(first, second):
    def f(x, n):
        return x * n + (1 if isinstance(n, float) else 0)

    x = torch.randn(3)
    _check_recompiles(f, (x, first), (x, second))


def test_number_used_in_control_flow():
    def f(x, n):
        for _ in range(n):
            x = x * 2
        return x

    x = torch.ones(2)
    _check_recompiles(f, (x, 1), (x, 3))


def test_recompile_on_string_value():
    def f(x, mode):
        if mode == "double":
            return x * 2
        return x - 1

    x = torch.randn(3)
    jf = _check_recompiles(f, (x, "double"), (x, "dec"))
    torch.testing.assert_close(jf(x, "double"), x * 2)
    torch.testing.assert_close(jf(x, "dec"), x - 1)


def test_recompile_none_vs_tensor():
    def f(x, bias=None):
        return x * 2 if bias is None else x * 2 + bias

    x = torch.randn(3)
    _check_recompiles(f, (x, None), (x, torch.ones(3)))


def test_recompile_on_tuple_length():
    def f(xs):
        return sum(xs)

    a, b, c = torch.randn(3), torch.randn(3), torch.randn(3)
    _check_recompiles(f, ((a, b),), ((a, b, c),))


def test_recompile_tuple_vs_list():
    def f(xs):
        return xs[0] + xs[1] + (1 if isinstance(xs, list) else 0)

    a, b = torch.randn(3), torch.randn(3)
    _check_recompiles(f, ((a, b),), ([a, b],))


def test_recompile_on_nested_structure():
    def f(d):
        out = d["a"] * 2
        for t in d["rest"]:
            out = out + (t if isinstance(t, torch.Tensor) else t[0] * t[1])
        return out

    a, b, c = torch.randn(3), torch.randn(3), torch.randn(3)
    _check_recompiles(f, ({"a": a, "rest": [b]},), ({"a": a, "rest": [(b, c)]},))


def test_recompile_on_dict_keys():
    def f(d):
        return sum(v * i for i, v in enumerate(d.values()))

    a, b = torch.randn(3), torch.randn(3)
    _check_recompiles(f, ({"x": a, "y": b},), ({"x": a, "z": b},))
    # Same keys, another order: the order matters to f.
    _check_recompiles(f, ({"x": a, "y": b},), ({"y": b, "x": a},))


def test_recompile_on_nested_tensor_metadata():
    def f(pair):
        return pair[0] + pair[1][0]

    _check_recompiles(f, ((torch.ones(2), [torch.ones(2)]),),
                      ((torch.ones(2), [torch.ones(2, dtype=torch.float64)]),))


def test_recompile_on_keyword_arguments():
    def f(x, scale=1.0, shift=None):
        out = x * scale
        return out if shift is None else out + shift

    x = torch.randn(3)
    # A keyword given vs. left out.
    _check_recompiles(f, (x,), (x,), {}, {"scale": 2.0})
    # Another keyword value.
    _check_recompiles(f, (x,), (x,), {"scale": 2.0}, {"scale": 3.0})
    # A different keyword.
    _check_recompiles(f, (x,), (x,), {"scale": 2.0}, {"shift": torch.ones(3)})


def test_keyword_vs_positional():
    def f(x, y):
        return x - y

    x, y = torch.randn(3), torch.randn(3)
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x, y), f(x, y))
    torch.testing.assert_close(jf(x, y=y), f(x, y))
    torch.testing.assert_close(jf(y=y, x=x), f(x, y))
    torch.testing.assert_close(jf(y, y=x), f(y, x))
    assert thunder.cache_misses(jf) >= 2
    assert thunder.cache_misses(jf) + thunder.cache_hits(jf) == 4


def test_recompile_on_grad_mode():
    def f(x, w):
        return (x @ w).relu()

    x, w = torch.randn(2, 3), torch.randn(3, 4, requires_grad=True)
    jf = thunder.jit(f)
    out = jf(x, w)
    assert out.requires_grad
    assert counts(jf) == (1, 0)
    with torch.no_grad():
        out_ng = jf(x, w)
    assert not out_ng.requires_grad
    torch.testing.assert_close(out_ng, out.detach())
    assert counts(jf) == (2, 0)
    with torch.no_grad():
        jf(x, w)
    jf(x, w)
    assert counts(jf) == (2, 2)


def test_no_grad_inside_function():
    def f(x):
        with torch.no_grad():
            y = x * 2
        return x * 3 + y

    x = torch.randn(3, requires_grad=True)
    jf = thunder.jit(f)
    out = jf(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 3.0))
    torch.testing.assert_close(out, f(x))
    assert torch.is_grad_enabled()


def test_recompile_on_module_training_flag():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.lin(x)
            return y * 2 if self.lin.training else y - 1

    m = M()
    jm = thunder.jit(m)
    x = torch.randn(2, 4)
    torch.testing.assert_close(jm(x), m(x))
    m.lin.eval()
    torch.testing.assert_close(jm(x), m(x))
    assert counts(jm) == (2, 0)
    m.lin.train()
    torch.testing.assert_close(jm(x), m(x))
    assert counts(jm) == (2, 1)


def test_recompile_on_module_attribute_value():
    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.factor = 2.0

        def forward(self, x):
            return x * self.factor

    m = Scale()
    jm = thunder.jit(m)
    x = torch.randn(3)
    torch.testing.assert_close(jm(x), x * 2)
    m.factor = 5.0
    torch.testing.assert_close(jm(x), x * 5)
    assert thunder.cache_misses(jm) == 2


def test_recompile_on_parameter_metadata():
    lin = torch.nn.Linear(3, 2)
    jm = thunder.jit(lin)
    x = torch.randn(4, 3)
    torch.testing.assert_close(jm(x), lin(x))
    lin.weight = torch.nn.Parameter(torch.randn(5, 3))
    lin.bias = torch.nn.Parameter(torch.randn(5))
    out = jm(x)
    assert out.shape == (4, 5)
    torch.testing.assert_close(out, lin(x))
    assert thunder.cache_misses(jm) == 2


def test_cache_same_input():
    def f(x, n):
        return x * n

    jf = thunder.jit(f, cache="same input")
    assert thunder.cache_option(jf) == thunder.CACHE_OPTIONS.SAME_INPUT
    x = torch.randn(3)
    torch.testing.assert_close(jf(x, 2), x * 2)
    for _ in range(3):
        y = torch.randn(3)
        torch.testing.assert_close(jf(y, 2), y * 2)
    assert counts(jf) == (1, 3)


def test_cache_no_caching():
    def f(x):
        return x.exp()

    jf = thunder.jit(f, cache="no caching")
    assert thunder.cache_option(jf) == thunder.CACHE_OPTIONS.NO_CACHING
    x = torch.randn(3)
    for i in range(3):
        torch.testing.assert_close(jf(x), x.exp())
        assert counts(jf) == (i + 1, 0)


def test_cache_option_default_and_enum():
    f = lambda x: x + 1  # noqa: E731
    assert thunder.cache_option(thunder.jit(f)) == thunder.CACHE_OPTIONS.CONSTANT_VALUES
    jf = thunder.jit(f, cache=thunder.CACHE_OPTIONS.NO_CACHING)
    assert thunder.cache_option(jf) is thunder.CACHE_OPTIONS.NO_CACHING
    jm = thunder.jit(torch.nn.Linear(2, 2), cache="same input")
    assert thunder.cache_option(jm) is thunder.CACHE_OPTIONS.SAME_INPUT
    with pytest.raises(ValueError, match="no such cache"):
        thunder.jit(f, cache="no such cache")


GLOBAL_T = torch.ones(3)


def test_closure_captured_tensor_by_reference():
    captured = torch.ones(3)

    def f(x):
        return x + captured

    jf = thunder.jit(f)
    x = torch.zeros(3)
    torch.testing.assert_close(jf(x), torch.ones(3))
    captured.mul_(5)
    torch.testing.assert_close(jf(x), torch.full((3,), 5.0))
    captured.add_(1)
    torch.testing.assert_close(jf(x), torch.full((3,), 6.0))
    assert counts(jf) == (1, 2)


def test_global_tensor_by_reference():
    def f(x):
        return x * GLOBAL_T

    jf = thunder.jit(f)
    x = torch.full((3,), 2.0)
    try:
        GLOBAL_T.fill_(1.0)
        torch.testing.assert_close(jf(x), x)
        GLOBAL_T.fill_(3.0)
        torch.testing.assert_close(jf(x), x * 3)
        assert thunder.cache_misses(jf) == 1
    finally:
        GLOBAL_T.fill_(1.0)


def test_module_buffer_mutated_between_calls():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("offset", torch.zeros(3))

        def forward(self, x):
            return x + self.offset

    m = M()
    jm = thunder.jit(m)
    x = torch.randn(3)
    torch.testing.assert_close(jm(x), x)
    m.offset.fill_(2.0)
    torch.testing.assert_close(jm(x), x + 2)
    assert counts(jm) == (1, 1)


def test_separate_jits_have_separate_caches():
    f = lambda x: x * 2  # noqa: E731
    j1, j2 = thunder.jit(f), thunder.jit(f)
    x = torch.randn(2)
    j1(x)
    j1(x)
    assert counts(j1) == (1, 1)
    assert counts(j2) == (0, 0)
    j2(x)
    assert counts(j2) == (1, 0)


def test_compile_stats_counters():
    jf = thunder.jit(lambda x: x - 1)
    x = torch.randn(2)
    jf(x)
    jf(x)
    jf(torch.randn(3))
    stats = thunder.compile_stats(jf)
    assert stats.cache_misses == 2
    assert stats.cache_hits == 1
    assert stats.calls == 3


GLOBAL_SCALE = 2.0
GLOBAL_MODE = "double"


def _helper_reading_a_global(x):
    return x + (1 if GLOBAL_MODE == "double" else -1)


def test_a_global_number_or_string_the_function_reads_is_guarded():
    # Its value is a constant of the program: a new value recompiles instead of reusing a stale
    # program (the function's own globals, and those of the functions it calls).
    global GLOBAL_SCALE, GLOBAL_MODE

    def f(x):
        return _helper_reading_a_global(x * GLOBAL_SCALE)

    class M(torch.nn.Module):
        def forward(self, x):
            return x * GLOBAL_SCALE

    x = torch.ones(3)
    jf, jm = thunder.jit(f), thunder.jit(M())
    try:
        torch.testing.assert_close(jf(x), f(x))
        torch.testing.assert_close(jm(x), x * 2)
        assert "check_value(sys.modules['test_cache'].GLOBAL_SCALE, 2.0)" in str(thunder.last_prologue_traces(jf)[-1])
        GLOBAL_SCALE = 3.0
        torch.testing.assert_close(jf(x), f(x))
        torch.testing.assert_close(jm(x), x * 3)
        GLOBAL_MODE = "other"
        torch.testing.assert_close(jf(x), f(x))
        assert thunder.cache_misses(jf) == 3
    finally:
        GLOBAL_SCALE, GLOBAL_MODE = 2.0, "double"


def test_a_module_changed_after_its_first_call_recompiles():
    # A hook registered or removed, a submodule replaced or added: eager runs the module as it is
    # now, so the cached program (traced from the module as it was) is not reused.
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    jm = thunder.jit(m)
    x = torch.randn(2, 4)
    torch.testing.assert_close(jm(x), m(x))
    handle = m[0].register_forward_hook(lambda mod, inp, out: out * 0 + 1)
    torch.testing.assert_close(jm(x), m(x))
    handle.remove()
    torch.testing.assert_close(jm(x), m(x))
    handle = torch.nn.modules.module.register_module_forward_hook(lambda mod, inp, out: out * 2)
    try:
        torch.testing.assert_close(jm(x), m(x))
    finally:
        handle.remove()
    m[0] = torch.nn.Linear(4, 4)
    torch.testing.assert_close(jm(x), m(x))
    m.add_module("extra", torch.nn.Tanh())
    torch.testing.assert_close(jm(x), m(x))
    jm(x).sum().backward()
    assert m[0].weight.grad is not None
    calls = thunder.cache_misses(jm)
    jm(x)
    assert thunder.cache_misses(jm) == calls  # unchanged: the program is reused


def test_a_variable_of_an_enclosing_function_is_guarded():
    scale = 2.0
    jfn = thunder.jit(lambda x: x * scale)
    x = torch.ones(3)
    torch.testing.assert_close(jfn(x), x * 2)
    scale = 3.0
    torch.testing.assert_close(jfn(x), x * scale)
    assert "check_value(closure['scale'], 3.0)" in str(thunder.last_prologue_traces(jfn)[-1])


GLOBAL_WEIGHT = torch.ones(4)


def test_a_global_tensor_rebound_recompiles():
    # The program holds the tensor it read; in-place updates of that tensor are seen, and another
    # tensor bound to the name recompiles.
    global GLOBAL_WEIGHT

    def f(x):
        return x * GLOBAL_WEIGHT

    jfn, x = thunder.jit(f), torch.ones(4)
    old = GLOBAL_WEIGHT
    try:
        torch.testing.assert_close(jfn(x), f(x))
        GLOBAL_WEIGHT.mul_(3)
        torch.testing.assert_close(jfn(x), f(x))
        GLOBAL_WEIGHT = torch.full((4,), 5.0)
        torch.testing.assert_close(jfn(x), f(x))
        assert "check_identity(sys.modules['test_cache'].GLOBAL_WEIGHT)" in str(thunder.last_prologue_traces(jfn)[-1])
    finally:
        GLOBAL_WEIGHT = old.fill_(1.0)


def test_negative_zero_is_not_zero_to_the_guards():
    # x / s and copysign tell -0.0 from 0.0: a program compiled for one is not reused for the other.
    jf = thunder.jit(lambda x, s: (x / s, torch.copysign(x, s)))
    x = torch.ones(2)
    for s in (0.0, -0.0, 0.0):
        want = (x / s, torch.copysign(x, torch.tensor(s)))
        got = jf(x, s)
        torch.testing.assert_close(got, want)


_ZERO = 0.0


def test_negative_zero_global_recompiles():
    global _ZERO
    jf = thunder.jit(lambda x: x / _ZERO)
    x = torch.ones(2)
    try:
        for z in (0.0, -0.0):
            _ZERO = z
            torch.testing.assert_close(jf(x), x / z)
    finally:
        _ZERO = 0.0


_IDX = [0, 1]
_DTYPE = torch.float32


def test_private_attributes_dtypes_and_lists_of_numbers_are_guarded():
    # Values the program uses as constants: a private attribute, a dtype attribute, a list
    # attribute changed in place, a global list and a global dtype. Changing any recompiles (the
    # old program gave the old values).
    global _IDX, _DTYPE

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self._scale = 2.0
            self.dt = torch.float32
            self.sizes = [1.0, 2.0]

        def forward(self, x):
            return (x * self._scale * self.sizes[0]).to(self.dt)[:, _IDX].to(_DTYPE)

    m = M()
    jm = thunder.jit(m)
    x = torch.arange(12.0).view(2, 6)
    try:
        for change in (None, lambda: setattr(m, "_scale", 3.0), lambda: setattr(m, "dt", torch.float64),
                       lambda: m.sizes.__setitem__(0, 5.0), lambda: globals().__setitem__("_IDX", [3, 4]),
                       lambda: globals().__setitem__("_DTYPE", torch.float16)):
            if change is not None:
                change()
            want, got = m(x), jm(x)
            assert got.dtype == want.dtype
            torch.testing.assert_close(got, want)
        assert "check_value(module.get_submodule('')._scale, 3.0)" in str(thunder.last_prologue_traces(jm)[-1])
    finally:
        _IDX, _DTYPE = [0, 1], torch.float32


def test_a_tensor_attribute_assigned_anew_recompiles():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.tensor(2.0)

        def forward(self, x):
            return x * self.scale

    m = Scaled()
    jm = thunder.jit(m)
    x = torch.ones(3)
    torch.testing.assert_close(jm(x), x * 2)
    m.scale = torch.tensor(3.0)
    torch.testing.assert_close(jm(x), x * 3)
    torch.testing.assert_close(jm(x), x * 3)
    assert counts(jm) == (2, 1)


class _KeepsItsAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(8, 8)
        self.last = None

    def forward(self, x):
        w = (self.q(x) @ x.transpose(-1, -2)).softmax(-1)
        self.last = w
        self.stats = {"max": w.amax(), "n": 3}
        y = w @ x
        self.out = y
        return y


def test_module_attributes_set_to_traced_tensors_are_set_on_every_call():
    torch.manual_seed(0)
    eager, jitted = _KeepsItsAttention(), _KeepsItsAttention()
    jitted.load_state_dict(eager.state_dict())
    jm = thunder.jit(jitted)
    for _ in range(3):
        x = torch.randn(2, 5, 8)
        want, got = eager(x), jm(x)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(jitted.last, eager.last)
        torch.testing.assert_close(jitted.stats["max"], eager.stats["max"])
        assert jitted.stats["n"] == 3 and jitted.out is got
        # the stored tensor differentiates like eager's
        g = torch.autograd.grad((jitted.last ** 2).sum(), jitted.q.weight, retain_graph=True)
        torch.testing.assert_close(g, torch.autograd.grad((eager.last ** 2).sum(), eager.q.weight, retain_graph=True))
        want.sum().backward()
        got.sum().backward()
        torch.testing.assert_close(jitted.q.weight.grad, eager.q.weight.grad)
    # `last` was None at the first call: one compile for that, one for a tensor; then hits.
    assert counts(jm) == (2, 1)


def test_state_read_and_set_by_the_module_warns_and_stays_correct():
    class Decaying(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.h = torch.zeros(3)

        def forward(self, x):
            self.h = self.h * 0.5 + x
            return self.h

    eager, jitted = Decaying(), Decaying()
    jm = thunder.jit(jitted)
    for _ in range(3):
        x = torch.randn(3)
        with pytest.warns(UserWarning, match="'h' is read and set by the traced code"):
            got = jm(x)
        torch.testing.assert_close(got, eager(x))
    torch.testing.assert_close(jitted.h, eager.h)


def test_a_traced_tensor_that_escapes_says_so_when_used():
    acts = []
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    m[0].register_forward_hook(lambda mod, i, o: acts.append(o))
    thunder.jit(m)(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match="placeholder thunder traced with, used after tracing"):
        acts[0].sum()


def test_a_counter_the_module_increments_warns_that_each_call_compiles():
    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls

    m = Counter()
    jm = thunder.jit(m)
    for i in range(1, 4):
        with pytest.warns(UserWarning, match="the traced code changed 'calls'"):
            torch.testing.assert_close(jm(torch.ones(2)), torch.full((2,), float(i)))
    assert m.calls == 3 and counts(jm) == (3, 0)


def test_the_default_dtype_shapes_the_program_and_its_guard():
    # Python floats and creation ops without a dtype take torch.get_default_dtype(), at trace time
    # (the rules) and in the guard (a later change compiles again).
    def f(x):
        return (x * 2.5).exp() + torch.ones(x.shape) + torch.arange(3.0) + torch.full((3,), 2.0) + torch.rand(3) * 0

    x = torch.arange(3)
    for executors in (None, [FUSE_ALL]):
        jf = thunder.jit(f) if executors is None else thunder.jit(f, executors=executors)
        try:
            for dtype in (torch.float32, torch.float64, torch.float32):
                torch.set_default_dtype(dtype)
                got = jf(x)
                assert got.dtype == dtype
                torch.testing.assert_close(got, f(x))
        finally:
            torch.set_default_dtype(torch.float32)
        assert counts(jf) == (2, 1)


def test_negative_zero_inside_a_guarded_tuple_recompiles():
    class Divides(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.by = (1.0, 0.0)

        def forward(self, x):
            return x / self.by[1]

    m = Divides()
    jm = thunder.jit(m)
    x = torch.ones(2)
    assert jm(x).tolist() == [float("inf")] * 2
    m.by = (1.0, -0.0)
    assert jm(x).tolist() == [float("-inf")] * 2
    assert counts(jm) == (2, 0)
