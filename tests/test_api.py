"""The public API: the seed README's Hello World, thunder.jit / thunder.compile on functions and
modules with every kind of input and output, trace inspection, compile statistics, executors and
examine."""

from __future__ import annotations

import ast
import contextlib
import io
import re

import pytest
import torch
import torch.nn.functional as F

import thunder

# ---------------------------------------------------------------------------------------------
# The seed README's Hello World, verbatim.

HELLO_WORLD = '''
import torch
import thunder


def foo(a, b):
    return a + b


cfoo = thunder.compile(foo)

a = torch.full((2, 2), 1)
b = torch.full((2, 2), 3)

result = cfoo(a, b)

print(f"{result=}")

# prints
# result=tensor(
#  [[4, 4]
#   [4, 4]])
'''


def test_readme_hello_world():
    buf = io.StringIO()
    namespace = {"__name__": "__hello_world__"}
    with contextlib.redirect_stdout(buf):
        exec(compile(HELLO_WORLD, "<README hello world>", "exec"), namespace)
    printed = buf.getvalue()
    assert " ".join(printed.split()) == "result=tensor([[4, 4], [4, 4]])"
    # Exactly what eager prints.
    result = torch.full((2, 2), 1) + torch.full((2, 2), 3)
    assert printed == f"{result=}\n"
    assert namespace["result"].dtype == torch.int64
    torch.testing.assert_close(namespace["result"], torch.full((2, 2), 4))


def test_faq_torchcompile_executor_example():
    """The FAQ's executor example: torch.compile through thunder's executor list."""
    try:
        tc = thunder.extend.get_executor("torchcompile")
    except ValueError as e:
        pytest.fail(f"the FAQ example needs a 'torchcompile' executor: {e}")

    def model(x, y):
        return x + y

    exc_list = [tc, *thunder.get_always_executors()]
    jmodel = thunder.jit(model, executors=exc_list)
    x, y = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(jmodel(x, y), x + y)


# ---------------------------------------------------------------------------------------------
# jit and compile: inputs and outputs


@pytest.mark.parametrize("entry", ["jit", "compile"])
def test_function_args_kwargs(entry):
    def f(a, b, *, scale=1.0, bias=None):
        out = a * scale - b
        return out if bias is None else out + bias

    jf = getattr(thunder, entry)(f)
    a, b, bias = torch.randn(2, 3), torch.randn(2, 3), torch.randn(3)
    torch.testing.assert_close(jf(a, b), f(a, b))
    torch.testing.assert_close(jf(a, b, scale=2.5), f(a, b, scale=2.5))
    torch.testing.assert_close(jf(a, b=b, bias=bias), f(a, b, bias=bias))
    torch.testing.assert_close(jf(a=a, b=b, scale=-1.0, bias=bias), f(a, b, scale=-1.0, bias=bias))


def test_varargs_and_varkwargs():
    def f(*tensors, **named):
        out = sum(tensors)
        for k in sorted(named):
            out = out * named[k]
        return out

    jf = thunder.jit(f)
    xs = [torch.randn(3) for _ in range(3)]
    torch.testing.assert_close(jf(*xs), f(*xs))
    torch.testing.assert_close(jf(*xs, p=torch.full((3,), 2.0), q=3), f(*xs, p=torch.full((3,), 2.0), q=3))


def test_nested_inputs():
    def f(pair, items, mapping):
        a, (b, c) = pair
        out = a + b * c
        for t in items:
            out = out - t
        return out * mapping["scale"] + mapping["inner"]["t"]

    args = ((torch.randn(3), (torch.randn(3), torch.randn(3))),
            [torch.randn(3), torch.randn(3)],
            {"scale": 0.5, "inner": {"t": torch.randn(3)}})
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(*args), f(*args))


def test_nested_outputs():
    def f(x, y):
        s = x + y
        return {"sum": s, "parts": [x, (y, s * 2)], "n": 3, "name": "out", "none": None,
                "f": 1.5, "flag": True, "shape": x.shape[0]}

    x, y = torch.randn(2), torch.randn(2)
    jf = thunder.jit(f)
    out = jf(x, y)
    expected = f(x, y)
    assert type(out) is dict and list(out) == list(expected)
    assert type(out["parts"]) is list and type(out["parts"][1]) is tuple
    torch.testing.assert_close(out["sum"], expected["sum"])
    torch.testing.assert_close(out["parts"], expected["parts"])
    assert out["f"] == 1.5
    assert out["n"] == 3 and type(out["n"]) is int
    assert out["name"] == "out"
    assert out["none"] is None
    assert out["flag"] is True
    assert out["shape"] == 2


@pytest.mark.parametrize("value", [None, 7, 2.5, "text", (1, "a", None), [1, 2]],
                         ids=["None", "int", "float", "str", "tuple", "list"])
def test_non_tensor_return(value):
    def f(x):
        return value

    jf = thunder.jit(f)
    assert jf(torch.randn(2)) == value
    assert type(jf(torch.randn(2))) is type(value)


def test_return_input_and_multiple_outputs():
    def f(x, y):
        return x, y, x + y

    x, y = torch.randn(3), torch.randn(3)
    jf = thunder.jit(f)
    a, b, c = jf(x, y)
    torch.testing.assert_close((a, b, c), f(x, y))
    # Returning an input gives back a tensor with the input's values.
    torch.testing.assert_close(a, x)


def test_python_number_inputs_and_outputs():
    def f(x, n, s):
        return x * n + s, n * 2, s

    jf = thunder.jit(f)
    x = torch.randn(3)
    out = jf(x, 3, 0.5)
    torch.testing.assert_close(out, f(x, 3, 0.5))
    assert out[1] == 6 and out[2] == 0.5


def test_shape_arithmetic():
    def f(x):
        n, m = x.shape
        return x.reshape(m, n) * n + x.numel() + x.size(1) + len(x)

    x = torch.randn(2, 3)
    torch.testing.assert_close(thunder.jit(f)(x), f(x))


def test_dtype_and_device_arguments():
    def f(x, dtype, device):
        return x.to(dtype=dtype, device=device) + torch.ones(x.shape, dtype=dtype, device=device)

    x = torch.randn(3)
    jf = thunder.jit(f)
    out = jf(x, torch.float64, torch.device("cpu"))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, f(x, torch.float64, torch.device("cpu")))


@pytest.mark.parametrize("entry", ["jit", "compile"])
def test_module(entry):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 8)
            self.fc2 = torch.nn.Linear(8, 2)

        def forward(self, x, *, extra=None):
            h = F.relu(self.fc1(x))
            out = self.fc2(h)
            return {"out": out, "hidden": h} if extra is None else (out + extra, h)

    m = M()
    jm = getattr(thunder, entry)(m)
    assert isinstance(jm, torch.nn.Module)
    assert isinstance(jm, thunder.ThunderModule)
    x = torch.randn(3, 4)
    torch.testing.assert_close(jm(x), m(x))
    extra = torch.randn(2)
    torch.testing.assert_close(jm(x, extra=extra), m(x, extra=extra))


def test_compile_recipe_and_plugins():
    def f(x):
        return torch.tanh(x) * 2

    x = torch.randn(4)
    jf = thunder.compile(f, recipe="auto", plugins=None)
    torch.testing.assert_close(jf(x), f(x))
    jm = thunder.compile(torch.nn.Linear(4, 2), recipe="auto", plugins=None)
    torch.testing.assert_close(jm(x), jm._model(x))
    with pytest.raises(ValueError, match="no-such-recipe"):
        thunder.compile(f, recipe="no-such-recipe")


def test_functools_wraps():
    def my_function(x):
        """Docstring."""
        return x

    jf = thunder.jit(my_function)
    assert jf.__name__ == "my_function"
    assert jf.__doc__ == "Docstring."


def test_autograd_through_jitted_function():
    def f(x, w):
        return (torch.sin(x) @ w).sum()

    x = torch.randn(2, 3, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    thunder.jit(f)(x, w).backward()
    f(x2, w2).backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


# ---------------------------------------------------------------------------------------------
# Traces


def _traced():
    def f(a, b):
        return a + b

    jf = thunder.jit(f)
    a = torch.full((2, 2), 1)
    b = torch.full((2, 2), 3)
    jf(a, b)
    return jf


def test_last_traces_stages_parse():
    jf = _traced()
    traces = thunder.last_traces(jf)
    assert len(traces) >= 3
    texts = [str(t) for t in traces]
    assert "captured" in texts[0].splitlines()[0]
    assert "final" in texts[-1].splitlines()[0]
    for text in texts:
        ast.parse(text)


def test_traces_of_a_model_parse():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.GELU(),
                            torch.nn.Dropout(0.1), torch.nn.Linear(4, 1))
    jm = thunder.jit(m)
    jm(torch.randn(2, 4))
    for t in thunder.last_traces(jm):
        ast.parse(str(t))
    ast.parse(str(thunder.last_prologue_traces(jm)[-1]))


def test_final_trace_shows_torch_call_with_comment():
    jf = _traced()
    final = str(thunder.last_traces(jf)[-1])
    lines = final.splitlines()
    assert '  t0 = torch.add(a, b)  # t0: "cpu i64[2, 2]"' in lines, final
    i = lines.index('  t0 = torch.add(a, b)  # t0: "cpu i64[2, 2]"')
    # The torch-level symbol is shown as a comment beneath the executed call.
    assert re.match(r'\s+# t0 = ltorch\.add\(a, b.*\)  # t0: "cpu i64\[2, 2\]"', lines[i + 1]), final
    assert "return t0" in final


def test_final_trace_is_executable_python():
    jf = _traced()
    final = str(thunder.last_traces(jf)[-1])
    assert "def computation(a, b):" in final
    # The printed program runs with torch and gives the same answer.
    namespace = {}
    src = "\n".join(line for line in final.splitlines()
                    if not line.startswith("import thunder"))
    exec(compile(src, "<final trace>", "exec"), namespace)
    a, b = torch.full((2, 2), 1), torch.full((2, 2), 3)
    torch.testing.assert_close(namespace["computation"](a, b), a + b)


def test_last_traces_before_call_raises():
    jf = thunder.jit(lambda x: x)
    with pytest.raises(RuntimeError):
        thunder.last_traces(jf)


def test_last_traces_of_non_jitted_raises():
    with pytest.raises(TypeError):
        thunder.last_traces(lambda x: x)


def test_last_prologue_traces():
    jf = _traced()
    pro = thunder.last_prologue_traces(jf)
    assert len(pro) >= 1
    text = str(pro[-1])
    ast.parse(text)
    assert "(2, 2)" in text and "int64" in text


def test_compile_stats_stage_times():
    jf = _traced()
    stats = thunder.compile_stats(jf)
    times = stats.last_stage_times
    assert isinstance(times, dict) and len(times) >= 2
    assert all(isinstance(v, float) and v >= 0 for v in times.values())
    assert stats.last_trace_host_stop >= stats.last_trace_host_start
    assert stats.last_traces is not None and len(stats.last_traces) == len(thunder.last_traces(jf))
    assert thunder.last_backward_traces(jf) == [] or isinstance(thunder.last_backward_traces(jf), list)


def test_compile_data_and_options():
    jf = thunder.jit(lambda x: x * 2, executors=["torch"])
    jf(torch.randn(2))
    opts = thunder.last_compile_options(jf)
    assert [e.name for e in opts["executors"]][0] == "torch"
    assert opts["cache"] == thunder.CACHE_OPTIONS.CONSTANT_VALUES


def test_unknown_compile_option_warns():
    # A misspelt option would otherwise do nothing, silently.
    with pytest.warns(UserWarning, match="'fuse_randm' have no effect.*'fuse_random'"):
        thunder.jit(lambda x: x * 2, fuse_randm=True)
    jf = thunder.jit(lambda x: x * 2, fuse_random=True, rematerialize=False)
    assert thunder.last_compile_options(jf)["fuse_random"] is True


# ---------------------------------------------------------------------------------------------
# Executors


def test_executor_lists():
    always = thunder.get_always_executors()
    default = thunder.get_default_executors()
    every = thunder.get_all_executors()
    assert isinstance(always, tuple) and isinstance(default, tuple) and isinstance(every, tuple)
    names = {e.name for e in every}
    assert {"torch", "python"} <= names
    assert {e.name for e in always} <= names
    assert {e.name for e in default} <= names
    torch_ex = thunder.extend.get_executor("torch")
    assert torch_ex.name == "torch"
    assert torch_ex is thunder.pytorch_executor
    assert torch_ex in every


@pytest.mark.parametrize("spec", ["name", "object", "single-name"])
def test_jit_with_executors(spec):
    torch_ex = thunder.extend.get_executor("torch")
    executors = {"name": ["torch"], "object": [torch_ex], "single-name": "torch"}[spec]

    def f(x, y):
        return torch.relu(x) * y

    jf = thunder.jit(f, executors=executors)
    x, y = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(jf(x, y), f(x, y))
    used = [e.name for e in thunder.compile_data(jf)["executors"]]
    assert used[0] == "torch"
    assert "python" in used  # always-executors are appended


def test_jit_with_always_executors_only():
    jf = thunder.jit(lambda x: x.sin(), executors=thunder.get_always_executors())
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), x.sin())


def test_operations_run_by_torch_executor():
    from thunder.examine import operations

    jf = _traced()
    ops = operations(jf)
    assert ops == [("ltorch.add", "torch")]


# ---------------------------------------------------------------------------------------------
# examine


def test_examine_lists_opaque_ops():
    from thunder.examine import examine, opaque_ops

    def f(x):
        return torch.special.erfcx(x) + x.sin()

    x = torch.randn(4)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = examine(f, x)
    text = buf.getvalue()
    assert report is not None, text
    assert report["matches_eager"] is True
    assert any("erfcx" in name for name in report["opaque"]), report
    assert "erfcx" in text and "opaque" in text
    assert "match eager" in text
    jf = thunder.jit(f)
    torch.testing.assert_close(jf(x), f(x))
    assert any("erfcx" in name for name in opaque_ops(jf))


def test_examine_fully_supported_module():
    from thunder.examine import examine

    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = examine(m, torch.randn(2, 3))
    assert report["matches_eager"] is True
    assert report["opaque"] == []
    assert "Every operation has a thunder rule" in buf.getvalue()


@pytest.mark.parametrize("fn", [
    lambda x: torch.max(x, 1).values,
    lambda x: x.min(dim=0).indices,
    lambda x: torch.topk(x, 2).indices,
    lambda x: x.sort(1).values,
], ids=["max_values", "min_indices", "topk_indices", "sort_values"])
def test_named_tuple_results_have_their_fields(fn):
    x = torch.randn(4, 6)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


@pytest.mark.parametrize("fn", [
    lambda x: x.softmax(1, torch.float64),
    lambda x: torch.log_softmax(x, 1, torch.float64),
], ids=["Tensor.softmax", "torch.log_softmax"])
def test_softmax_positional_dtype(fn):
    x = torch.randn(4, 6)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


def test_stride_queries_while_tracing_follow_eager():
    def f(x):
        y = x.t()
        if y.is_contiguous():
            return y * 2
        return y.contiguous().view(-1) * 3

    x = torch.randn(3, 4)
    torch.testing.assert_close(thunder.jit(f)(x), f(x))


def test_unused_random_op_still_advances_the_generator():
    def f(x):
        torch.rand(3)  # unused, but eager draws from the generator here
        return torch.nn.functional.dropout(x, 0.5) * 2

    x = torch.randn(64)
    torch.manual_seed(0)
    expected, expected_next = f(x), torch.rand(4)
    jf = thunder.jit(f)
    for _ in range(2):  # compiling call and cached call
        torch.manual_seed(0)
        actual, actual_next = jf(x), torch.rand(4)
        torch.testing.assert_close(actual, expected)
        torch.testing.assert_close(actual_next, expected_next)


def test_structured_results_keep_their_types():
    # Named tuples, torch.return_types (`.values`), torch.Size and OrderedDict come back as eager's
    # types, not plain tuples and dicts.
    import collections
    import dataclasses

    Pair = collections.namedtuple("Pair", "a b")
    fns = [
        lambda x: torch.max(x, 1),
        lambda x: x.sort(),
        lambda x: Pair(x * 2, [x + 1, (x.shape, x.sum())]),
        lambda x: collections.OrderedDict(a=x, b={"c": torch.min(x, 0)}),
    ]
    x = torch.randn(3, 4, requires_grad=True)
    for f in fns:
        want, got = f(x), thunder.jit(f)(x)
        assert type(got) is type(want)
        torch.testing.assert_close(got, want)
    got = thunder.jit(fns[2])(x)
    assert type(got.b[1][0]) is torch.Size
    assert type(thunder.jit(fns[3])(x)["b"]["c"]) is type(torch.min(x, 0))
    values = thunder.jit(fns[0])(x).values
    values.sum().backward()
    assert x.grad is not None

    @dataclasses.dataclass
    class Out:
        y: torch.Tensor

    with pytest.raises(TypeError, match="object of type .*Out holding tensors"):
        thunder.jit(lambda x: Out(x * 2))(x)


def test_module_changed_through_the_jitted_wrapper_or_to_none_after_the_first_call():
    lin = torch.nn.Linear(3, 2)
    jl = thunder.jit(lin)
    x = torch.randn(4, 3)
    jl(x)
    lin.bias = None  # a parameter set to None: the program without it
    torch.testing.assert_close(jl(x), lin(x))
    jl.weight = torch.nn.Parameter(torch.zeros(2, 3))  # set on the wrapped module
    assert lin.weight is jl.weight
    torch.testing.assert_close(jl(x), lin(x))


@pytest.mark.parametrize("layout", ["copy", "view"])
def test_in_place_update_through_contiguous_as_eager(layout):
    # contiguous() of a non-contiguous tensor is a copy (the update leaves the input alone); of a
    # contiguous one, the tensor itself (the update reaches the input). The copy was taken for a
    # view without an inverse and refused.
    def f(x):
        h = x.t().contiguous()
        h.mul_(2)
        return h + x.t()

    base = torch.randn(4, 3)
    x = base if layout == "copy" else base.t()
    a, b = x.clone(memory_format=torch.preserve_format), x.clone(memory_format=torch.preserve_format)
    assert a.stride() == x.stride()
    torch.testing.assert_close(thunder.jit(f)(a), f(b))
    torch.testing.assert_close(a, b)


def test_numpy_integer_scalars_and_size_varargs_as_eager():
    np = pytest.importorskip("numpy")
    x = torch.randn(2, 3)
    for f in (lambda x: x[np.int64(1)], lambda x: x.reshape(np.int64(3), 2), lambda x: x.broadcast_to(2, 2, 3)):
        torch.testing.assert_close(thunder.jit(f)(x), f(x))
