"""thunder.extend: custom operators, implementations of existing symbols, executor registries and
Python fusion executors, checked against eager PyTorch."""

from __future__ import annotations

import pytest
import torch

import thunder
import thunder.torch as ltorch
from thunder.core import transforms
from thunder.extend import (
    FusionExecutor,
    OperatorExecutor,
    add_always_executor,
    add_default_executor,
    deregister_executor,
    get_all_executors,
    get_always_executors,
    get_default_executors,
    get_executor,
    register_executor,
    remove_always_executor,
    remove_default_executor,
    set_always_executors,
    set_default_executors,
)

_counter = [0]


def _fresh(name="testex"):
    """A new registered operator executor with a unique name."""
    _counter[0] += 1
    ex = OperatorExecutor(f"{name}{_counter[0]}", version="0.1")
    register_executor(ex)
    return ex


def _final(jfn):
    return str(thunder.last_traces(jfn)[-1])


# ---- register_operator --------------------------------------------------------------------------


def test_operator_with_meta_runs_and_appears_in_the_trace():
    ex = _fresh()

    def meta(a, b, *, alpha=1.0):
        return torch.empty_like(a)

    def impl(a, b, *, alpha=1.0):
        return a * b + alpha

    mul_add = ex.register_operator("mul_add", meta=meta, fn=impl)

    def f(x, y):
        return mul_add(x, y, alpha=2.0).sin()

    jf = thunder.jit(f, executors=[ex])
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(jf(x, y), torch.sin(x * y + 2.0))
    assert f"{ex.name}.mul_add(x, y, alpha=2.0)" in _final(jf)
    # Outside thunder.jit the operator runs its implementation.
    torch.testing.assert_close(mul_add(x, y), x * y + 1.0)
    assert mul_add.id == f"{ex.name}.mul_add"


def test_operator_like_another_symbol_and_multiple_outputs():
    ex = _fresh()
    twice = ex.register_operator("twice", like=ltorch.mul, fn=lambda a, b: (a * b) * 2)

    def split_meta(a):
        return torch.empty_like(a), torch.empty(a.shape[0], dtype=torch.float64)

    def split_impl(a):
        return a + 1, a.sum(1, dtype=torch.float64)

    split = ex.register_operator("split", meta=split_meta, fn=split_impl)

    def f(x, y):
        u, s = split(twice(x, y))
        return u.exp(), s

    jf = thunder.jit(f, executors=[ex])
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    for got, want in zip(jf(x, y), (torch.exp(x * y * 2 + 1), (x * y * 2).sum(1, dtype=torch.float64))):
        torch.testing.assert_close(got, want)
    final = _final(jf)
    assert f"{ex.name}.twice(x, y)" in final and f"{ex.name}.split(" in final


def test_operator_gradient_matches_eager():
    ex = _fresh()
    fn = lambda a, s: a * s  # noqa: E731
    scale = ex.register_operator("scale", meta=lambda a, s: torch.empty_like(a), fn=fn)
    # Its gradient: torch.autograd through the implementation.
    ex.register_implementation(scale, scale, grad_transform=transforms.torch_autograd_grad(fn))

    def f(x, w):
        return scale(x @ w, 3.0).tanh().sum()

    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(3, 2, requires_grad=True)
    x2, w2 = (t.detach().clone().requires_grad_() for t in (x, w))
    thunder.jit(f, executors=[ex])(x, w).backward()
    (torch.tanh((x2 @ w2) * 3.0)).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_operator_without_its_executor_is_an_error_naming_it():
    ex = _fresh()
    op = ex.register_operator("lonely", meta=lambda a: torch.empty_like(a), fn=lambda a: a + 1)
    jf = thunder.jit(lambda x: op(x), executors=["torch"])
    with pytest.raises(NotImplementedError, match=f"{ex.name}.lonely"):
        jf(torch.randn(2))


# ---- register_implementation ---------------------------------------------------------------------


def test_implementation_of_a_torch_symbol_with_checker():
    ex = _fresh()
    calls = []

    def mul_impl(a, b):
        calls.append(1)
        return torch.mul(a, b)

    ex.register_implementation(ltorch.mul, execution_transform=mul_impl,
                               checker=lambda a, b: isinstance(b, torch.Tensor) and a.dtype == torch.float32)

    def f(a, b):
        return a * b + 1

    jf = thunder.jit(f, executors=[ex])
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(jf(a, b), f(a, b))
    assert f"{ex.name}.mul(a, b)" in _final(jf) and calls
    # The checker declines float64: the torch executor runs it.
    jd = thunder.jit(f, executors=[ex])
    torch.testing.assert_close(jd(a.double(), b.double()), f(a.double(), b.double()))
    assert "torch.mul(a, b)" in _final(jd)


def test_implementation_by_an_operator_and_by_name():
    ex = _fresh()
    fast_gelu = ex.register_operator("fast_gelu", like=ltorch.gelu,
                                     fn=lambda a, approximate="none": torch.nn.functional.gelu(a, approximate=approximate))
    ex.register_implementation("ltorch.gelu", fast_gelu)
    jf = thunder.jit(lambda x: torch.nn.functional.gelu(x) * 2, executors=[ex])
    x = torch.randn(5)
    torch.testing.assert_close(jf(x), torch.nn.functional.gelu(x) * 2)
    assert f"{ex.name}.fast_gelu(x" in _final(jf)


def test_examine_reports_the_custom_executor(capsys):
    from thunder.examine import operations

    ex = _fresh()
    op = ex.register_operator("twice", meta=lambda a: torch.empty_like(a), fn=lambda a: a * 2)
    jf = thunder.jit(lambda x: op(x).cos(), executors=[ex])
    jf(torch.randn(3))
    ops = operations(jf)
    assert (f"{ex.name}.twice", ex.name) in ops and ("ltorch.cos", "torch") in ops


# ---- bad input -------------------------------------------------------------------------------------


def test_meta_with_wrong_shape_is_detected_at_first_run():
    ex = _fresh()
    op = ex.register_operator("transposer", meta=lambda a: torch.empty_like(a), fn=lambda a: a.t().contiguous())
    jf = thunder.jit(lambda x: op(x) + 1, executors=[ex])
    with pytest.raises(RuntimeError, match=rf"{ex.name}\.transposer.*shape \(3, 2\).*meta function declared.*shape \(2, 3\)"):
        jf(torch.randn(2, 3))


def test_meta_with_wrong_dtype_is_detected_at_first_run():
    ex = _fresh()
    op = ex.register_operator("to_double", meta=lambda a: torch.empty_like(a), fn=lambda a: a.double())
    jf = thunder.jit(lambda x: op(x), executors=[ex])
    with pytest.raises(RuntimeError, match=rf"{ex.name}\.to_double.*float64.*declared.*float32"):
        jf(torch.randn(2, 3))


def test_implementation_returning_a_non_tensor_is_an_error():
    ex = _fresh()
    op = ex.register_operator("broken", meta=lambda a: torch.empty_like(a), fn=lambda a: None)
    jf = thunder.jit(lambda x: op(x) * 2, executors=[ex])
    with pytest.raises(RuntimeError, match=rf"{ex.name}\.broken: its result is a NoneType.*declared a tensor"):
        jf(torch.randn(2))
    ex2 = _fresh()
    op2 = ex2.register_operator("pair", meta=lambda a: (torch.empty_like(a), torch.empty_like(a)),
                                fn=lambda a: a)
    jf2 = thunder.jit(lambda x: op2(x)[0], executors=[ex2])
    with pytest.raises(RuntimeError, match=rf"{ex2.name}\.pair"):
        jf2(torch.randn(2))


def test_checker_exception_names_executor_and_op():
    ex = _fresh()

    def bad_checker(a, b):
        raise KeyError("boom")

    ex.register_implementation(ltorch.sub, execution_transform=torch.sub, checker=bad_checker)
    jf = thunder.jit(lambda a, b: a - b, executors=[ex])
    with pytest.raises(RuntimeError, match=rf"executor '{ex.name}'.*ltorch\.sub.*boom"):
        jf(torch.randn(2), torch.randn(2))


def test_registering_a_taken_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_executor(OperatorExecutor("torch"))
    ex = _fresh()
    ex.register_operator("once", meta=lambda a: torch.empty_like(a), fn=lambda a: a)
    with pytest.raises(ValueError, match=rf"'{ex.name}\.once' is already registered"):
        ex.register_operator("once", meta=lambda a: torch.empty_like(a), fn=lambda a: a)
    # Operators printed under one module= share its names, whichever executor registers them.
    import math

    _fresh().register_operator("sqrt", meta=lambda a: torch.empty_like(a), module=math)
    with pytest.raises(ValueError, match=r"'math\.sqrt' is already registered .*same module="):
        _fresh().register_operator("sqrt", meta=lambda a: torch.empty_like(a), module=math)


def test_bad_registrations_are_type_errors():
    ex = _fresh()
    with pytest.raises(TypeError, match="exactly one of meta= and like="):
        ex.register_operator("x", fn=lambda a: a)
    with pytest.raises(TypeError, match="exactly one of op= and execution_transform="):
        ex.register_implementation(ltorch.mul)
    with pytest.raises(ValueError, match="unknown symbol"):
        ex.register_implementation("no_such_op", execution_transform=torch.mul)


# ---- registries ------------------------------------------------------------------------------------


def test_executor_registry_functions():
    ex = _fresh()
    assert get_executor(ex.name) is ex and ex in get_all_executors()
    defaults = get_default_executors()
    always = get_always_executors()
    try:
        add_default_executor(ex)
        assert get_default_executors()[0] is ex
        remove_default_executor(ex)
        assert ex not in get_default_executors()
        set_default_executors([ex.name])
        assert get_default_executors() == (ex,)
        add_always_executor(ex)
        assert get_always_executors()[-1] is ex
        remove_always_executor(ex.name)
        assert ex not in get_always_executors()
        set_always_executors(list(always) + [ex])
        assert get_always_executors()[-1] is ex
    finally:
        set_default_executors(defaults)
        set_always_executors(always)
    deregister_executor(ex)
    with pytest.raises(ValueError, match="unknown executor"):
        get_executor(ex.name)
    assert thunder.get_executor is get_executor if hasattr(thunder, "get_executor") else True


# ---- FusionExecutor --------------------------------------------------------------------------------


class _ExecFusion(FusionExecutor):
    """Runs each region as the Python function of its source (no compiler)."""

    def __init__(self, name):
        super().__init__(name)
        self.sources = []
        for p in ("add", "mul", "sub", "exp", "tanh", "broadcast_in_dim", "convert_element_type"):
            self.register_supported(f"prims.{p}")

    def fuse(self, region, index):
        name = f"Py{index}"
        src = region.source(name)
        self.sources.append(src)
        ns = {}
        exec(compile(src, name, "exec"), ns)
        return name, ns[name]


def test_python_fusion_executor_gets_maximal_regions():
    _counter[0] += 1
    fx = _ExecFusion(f"pyfuse{_counter[0]}")

    def f(x, w):
        a = torch.exp(x * 2 + 1)        # region 0
        b = a @ w                       # matmul: not fusible, splits the regions
        return torch.tanh(b - 1) * b    # region 1

    jf = thunder.jit(f, executors=[fx])
    x, w = torch.randn(3, 4), torch.randn(4, 5)
    torch.testing.assert_close(jf(x, w), f(x, w))
    final = _final(jf)
    assert "= Py0(x)" in final and "= Py1(" in final and "torch.matmul" in final
    assert len(fx.sources) == 2 and "def Py0(x):" in fx.sources[0]
    assert "torch.exp" in fx.sources[0] and "torch.tanh" in fx.sources[1]


def test_fusion_executor_declining_leaves_regions_to_others():
    _counter[0] += 1

    class Decline(_ExecFusion):
        def fuse(self, region, index):
            return None

    jf = thunder.jit(lambda x: torch.exp(x) * 2, executors=[Decline(f"decline{_counter[0]}")])
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), torch.exp(x) * 2)
    assert "torch.exp(x)" in _final(jf)


def test_grad_transform_must_be_a_pair_or_a_dict():
    ex = _fresh()
    op = ex.register_operator("g", meta=lambda a: torch.empty_like(a), fn=lambda a: a)
    with pytest.raises(TypeError, match="grad_transform must be a pair"):
        ex.register_implementation(op, op, grad_transform=lambda a: a)


def test_grad_transform_is_used_in_backward():
    ex = _fresh()
    calls = []

    def cube_impl(a):
        return a * a * a

    cube = ex.register_operator("cube", meta=lambda a: torch.empty_like(a), fn=cube_impl)

    def augmented_forward(a):
        return cube_impl(a), (a,)

    def backward(a, grad):
        calls.append(1)
        return 3 * a * a * grad

    ex.register_implementation(cube, cube, grad_transform=(augmented_forward, backward))
    x = torch.randn(5, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    jf = thunder.jit(lambda t: cube(t).sum(), executors=[ex])
    jf(x).backward()
    (x2 ** 3).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    if not thunder.last_backward_traces(jf):
        pytest.skip("thunder.jit builds no backward program here: the backward is torch.autograd's")
    assert calls, "the registered backward did not run"
    assert f"{cube.name}_backward" in str(thunder.last_backward_traces(jf)[-1])


# ---- printing, module=, python_printer=, bind_postprocess=, *args/**kwargs ----------------------


def _parses(jfn):
    """The final trace (and every other stage) as source that `ast` accepts."""
    import ast

    for trc in thunder.last_traces(jfn) + thunder.last_backward_traces(jfn):
        ast.parse(str(trc))
    return _final(jfn)


def test_trace_of_a_user_operator_prints_no_import_of_the_executor():
    ex = _fresh("printex")
    op = ex.register_operator("my_add", meta=lambda a, b: torch.empty_like(a), fn=lambda a, b: a + b)
    ex.register_implementation(ltorch.mul, execution_transform=torch.mul, checker=lambda a, b: True)
    jf = thunder.jit(lambda a, b: op(a, b) * b, executors=[ex])
    x = torch.randn(3)
    torch.testing.assert_close(jf(x, x), (x + x) * x)
    final = _parses(jf)
    assert f"{ex.name}.my_add(a, b)" in final and f"{ex.name}.mul(t0, b)" in final
    assert f"import {ex.name}" not in final
    assert f"# {ex.name}: not a Python module" in final


def test_torch_executor_calls_of_torch_submodules_need_only_import_torch():
    import torch.nn.functional as F

    q, k, v = torch.randn(2, 3, 5, 16), torch.randn(2, 3, 7, 16), torch.randn(2, 3, 7, 24)
    jf = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v))
    jf(q, k, v)
    final = _parses(jf)
    assert "torch.nn.functional.scaled_dot_product_attention(" in final
    assert "not a Python module" not in final


def test_builtin_executor_namespaces_are_not_imported():
    import torch.nn.functional as F

    q = torch.randn(1, 2, 4, 8, requires_grad=True)
    jf = thunder.jit(lambda q: F.scaled_dot_product_attention(q, q, q).sum())
    jf(q).backward()
    final = _parses(jf)
    assert "import sdpa" not in final and "sdpa.sdpa_flash_cpu(" in final


def test_operator_with_module_prints_an_import_that_works():
    import ast

    import extend_kernels

    ex = _fresh()
    op = ex.register_operator("scaled_add", meta=lambda a, b, alpha=1.0: torch.empty_like(a),
                              module=extend_kernels)
    jf = thunder.jit(lambda a, b: op(a, b, 3.0).exp(), executors=[ex])
    x, y = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(jf(x, y), torch.exp(x + 3.0 * y))
    final = _parses(jf)
    assert "import extend_kernels" in final
    assert "extend_kernels.scaled_add(a, b, 3.0)" in final
    assert op.id == "extend_kernels.scaled_add"
    # The printed trace runs as it is: its import finds the kernel.
    scope = {}
    exec(compile(ast.parse(final), "<trace>", "exec"), scope)
    torch.testing.assert_close(scope["computation"](x, y), torch.exp(x + 3.0 * y))


def test_operator_with_a_class_or_module_name_as_module():
    ex = _fresh()
    twice = ex.register_operator("twice", meta=lambda a: torch.empty_like(a),
                                 module=__import__("extend_kernels").Kernels)
    add = ex.register_operator("plus", like=ltorch.add, module="extend_kernels")
    jf = thunder.jit(lambda a, b: add(twice(a), b), executors=[ex])
    x = torch.randn(3)
    torch.testing.assert_close(jf(x, x), 3 * x)
    final = _parses(jf)
    assert "extend_kernels.Kernels.twice(a)" in final and "import extend_kernels" in final
    assert "extend_kernels.plus(t0, b)" in final


def test_module_without_the_operator_is_an_error():
    ex = _fresh()
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        ex.register_operator("nope", meta=lambda a: a, module="extend_kernels")
    with pytest.raises(ValueError, match="cannot be imported"):
        ex.register_operator("x", meta=lambda a: a, fn=lambda a: a, module="no_such_module_xyz")


def test_python_printer_prints_the_call():
    ex = _fresh()
    seen = []

    def printer(bsym, lhs, args, kwargs):
        seen.append((lhs, list(args), dict(kwargs)))
        call = f"my_kernel({', '.join(args)}, alpha={kwargs.get('alpha', '1.0')})"
        return f"{lhs} = {call}" if lhs else call

    op = ex.register_operator("k", meta=lambda a, *, alpha=1.0: torch.empty_like(a),
                              fn=lambda a, *, alpha=1.0: a * alpha, python_printer=printer)
    jf = thunder.jit(lambda x: op(x, alpha=2.0) + 1, executors=[ex])
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), x * 2.0 + 1)
    final = _parses(jf)
    assert "t0 = my_kernel(x, alpha=2.0)  # t0:" in final
    assert ("t0", ["x"], {"alpha": "2.0"}) in seen


def test_python_printer_must_print_valid_python():
    ex = _fresh()
    op = ex.register_operator("bad", meta=lambda a: torch.empty_like(a), fn=lambda a: a + 1,
                              python_printer=lambda b, lhs, args, kwargs: f"{lhs} = = oops")
    jf = thunder.jit(lambda x: op(x), executors=[ex])
    x = torch.randn(2)
    torch.testing.assert_close(jf(x), x + 1)
    with pytest.raises(Exception, match="not valid Python"):
        str(thunder.last_traces(jf)[-1])


def test_bind_postprocess_sees_each_recorded_call():
    ex = _fresh()
    calls = []

    def post(bsym):
        calls.append((bsym.sym.name, len(bsym.args), dict(bsym.kwargs), tuple(bsym.output.shape)))

    op = ex.register_operator("scale", meta=lambda a, s=2.0: torch.empty_like(a),
                              fn=lambda a, s=2.0: a * s, bind_postprocess=post)
    jf = thunder.jit(lambda x: op(op(x), s=3.0), executors=[ex])
    x = torch.randn(2, 3)
    torch.testing.assert_close(jf(x), x * 6.0)
    assert calls == [("scale", 1, {}, (2, 3)), ("scale", 1, {"s": 3.0}, (2, 3))]
    jf(x)  # a cache hit records nothing
    assert len(calls) == 2


def test_bind_postprocess_can_reject_a_call_at_the_users_line():
    ex = _fresh()

    def post(bsym):
        if bsym.args[0].ndim != 2:
            raise ValueError("my_op takes matrices")

    op = ex.register_operator("my_op", meta=lambda a: torch.empty_like(a), fn=lambda a: a,
                              bind_postprocess=post)
    with pytest.raises(ValueError, match=r"my_op takes matrices[\s\S]*test_extend.py"):
        thunder.jit(lambda x: op(x), executors=[ex])(torch.randn(3))


def test_operator_with_star_args_and_star_kwargs():
    ex = _fresh()

    def meta(a, *others, scale=1.0, **options):
        return torch.empty_like(a)

    def impl(a, *others, scale=1.0, **options):
        out = a * scale
        for o in others:
            out = out + o
        if options.get("negate"):
            out = -out
        return out

    checked = []

    def checker(a, *others, scale=1.0, **options):
        checked.append((len(others), scale, dict(options)))
        return True

    op = ex.register_operator("combine", meta=meta, fn=impl)
    ex.register_implementation(op, op, checker=checker)

    def f(x, y, z):
        return op(x, y, z, scale=2.0, negate=True) + op(x) + op(x, y)

    jf = thunder.jit(f, executors=[ex])
    x, y, z = torch.randn(3), torch.randn(3), torch.randn(3)
    torch.testing.assert_close(jf(x, y, z), f(x, y, z))
    final = _parses(jf)
    assert f"{ex.name}.combine(x, (y, z), scale=2.0, options={{'negate': True}})" in final
    assert f"{ex.name}.combine(x, ())" in final
    assert (2, 2.0, {"negate": True}) in checked and (0, 1.0, {}) in checked


def test_operator_with_star_args_gradient_reaches_tensors_in_star_args():
    ex = _fresh()

    def impl(a, *others, scale=1.0):
        return a * scale + sum(others)

    op = ex.register_operator("weighted", meta=lambda a, *o, scale=1.0: torch.empty_like(a),
                              fn=impl)

    def augmented_forward(a, *others, scale=1.0):
        return impl(a, *others, scale=scale), (torch.tensor(scale),)

    def backward_all(scale, g):  # one gradient per tensor, *others included
        return (g * scale, g, g)

    ex.register_implementation(op, op, grad_transform=(augmented_forward, backward_all))
    x = torch.randn(4, requires_grad=True)
    c = torch.randn(4)
    d = torch.randn(4, requires_grad=True)
    thunder.jit(lambda x, c, d: (op(x, c, d, scale=3.0) * d).sum(), executors=[ex])(x, c, d).backward()
    x2, d2 = (t.detach().clone().requires_grad_() for t in (x, d))
    (impl(x2, c, d2, scale=3.0) * d2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(d.grad, d2.grad)
