"""Clear errors for programs thunder cannot run (data-dependent control flow, torch.compile'd
callables, bad executors and arguments, shape mismatches), and in-place updates of inputs, which
must give eager's results or a clear NotImplementedError, never a wrong answer."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import thunder

THIS_FILE = os.path.basename(__file__)


def _line_of(marker: str) -> int:
    """The line number in this file of the line that ends with the comment `# <marker>`."""
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# {marker}") and "_line_of" not in line:
                return i
    raise AssertionError(f"marker {marker} not found")


# ---------------------------------------------------------------------------------------------
# Data-dependent control flow


def branch_on_sum(x):
    if x.sum() > 0:  # MARK-IF
        return x * 2
    return x - 1


def test_if_on_tensor_raises_data_dependent_error_with_location():
    x = torch.ones(3)
    with pytest.raises(thunder.DataDependentError) as info:
        thunder.jit(branch_on_sum)(x)
    msg = str(info.value)
    assert THIS_FILE in msg
    assert f":{_line_of('MARK-IF')}" in msg, msg
    assert "if x.sum() > 0" in msg
    assert isinstance(info.value, RuntimeError)  # DataDependentError is a RuntimeError


def test_bool_of_tensor():
    def f(x):
        return x * 2 if bool(x.max() > 1) else x  # MARK-BOOL

    with pytest.raises(thunder.DataDependentError) as info:
        thunder.jit(f)(torch.randn(3))
    assert THIS_FILE in str(info.value) and f":{_line_of('MARK-BOOL')}" in str(info.value)


def test_while_and_assert_on_tensor():
    def f(x):
        while x.sum() < 10:
            x = x * 2
        return x

    with pytest.raises(thunder.DataDependentError):
        thunder.jit(f)(torch.ones(3))

    def g(x):
        assert (x > 0).all()
        return x

    with pytest.raises(thunder.DataDependentError):
        thunder.jit(g)(torch.ones(3))


def test_item_used_in_branch():
    def f(x):
        if x.sum().item() > 0:  # MARK-ITEM
            return x
        return -x

    with pytest.raises(thunder.DataDependentError) as info:
        thunder.jit(f)(torch.ones(3))
    msg = str(info.value)
    assert "item()" in msg
    assert THIS_FILE in msg and f":{_line_of('MARK-ITEM')}" in msg


def test_tolist():
    def f(x):
        return [v * 2 for v in x.tolist()]  # MARK-TOLIST

    with pytest.raises(thunder.DataDependentError) as info:
        thunder.jit(f)(torch.ones(3))
    msg = str(info.value)
    assert "tolist()" in msg
    assert THIS_FILE in msg and f":{_line_of('MARK-TOLIST')}" in msg


def test_int_and_float_of_tensor():
    with pytest.raises(thunder.DataDependentError, match=r"int\(tensor\)"):
        thunder.jit(lambda x: x * int(x.sum()))(torch.ones(3))
    with pytest.raises(thunder.DataDependentError, match=r"float\(tensor\)"):
        thunder.jit(lambda x: x * float(x.sum()))(torch.ones(3))


def test_data_dependent_shape_op():
    with pytest.raises(thunder.DataDependentError, match="nonzero"):
        thunder.jit(lambda x: torch.nonzero(x))(torch.ones(3))
    with pytest.raises(thunder.DataDependentError, match=r"torch\.where\(condition\) with one argument[\s\S]*test_errors.py"):
        thunder.jit(lambda x: torch.where(x > 0))(torch.ones(3))
    # the three-argument form is fine
    torch.testing.assert_close(thunder.jit(lambda x: torch.where(x > 1, x, -x))(torch.arange(3.0)),
                               torch.tensor([-0.0, -1.0, 2.0]))


def test_failed_compile_caches_nothing_and_function_still_usable():
    jf = thunder.jit(branch_on_sum)
    with pytest.raises(thunder.DataDependentError):
        jf(torch.ones(3))
    with pytest.raises(thunder.DataDependentError):
        jf(torch.ones(3))
    assert thunder.cache_hits(jf) == 0


# ---------------------------------------------------------------------------------------------
# Bad callables, executors and arguments


def test_jit_of_torch_compile_function():
    def f(x):
        return x + 1

    with pytest.raises(TypeError, match="torchcompile"):
        thunder.jit(torch.compile(f))


def test_jit_does_not_import_torch_dynamo():
    # The torch.compile check must not import torch._dynamo itself (about a second of every first
    # jit in a process that never uses torch.compile).
    import subprocess
    import sys

    code = ("import sys, torch, thunder\n"
            "thunder.jit(lambda x: x * 2)(torch.ones(3))\n"
            "thunder.jit(torch.nn.Linear(2, 2))(torch.ones(2))\n"
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_jit_of_torch_compile_module():
    with pytest.raises(TypeError, match="torchcompile"):
        thunder.jit(torch.compile(torch.nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="torchcompile"):
        thunder.compile(torch.compile(torch.nn.Linear(2, 2)))


def test_unknown_executor_name():
    with pytest.raises(ValueError) as info:
        thunder.jit(lambda x: x, executors=["no_such_executor"])
    msg = str(info.value)
    assert "no_such_executor" in msg
    assert "torch" in msg and "python" in msg  # the available executors are listed
    with pytest.raises(ValueError, match="no_such_executor"):
        thunder.extend.get_executor("no_such_executor")


def test_bad_executor_type():
    with pytest.raises(TypeError):
        thunder.jit(lambda x: x, executors=[42])


@pytest.mark.parametrize("obj", [3, "text", None, torch.ones(2)],
                         ids=["int", "str", "None", "tensor"])
def test_non_callable(obj):
    with pytest.raises(TypeError) as info:
        thunder.jit(obj)
    assert type(obj).__name__ in str(info.value)


class Custom:
    pass


@pytest.mark.parametrize("bad,typename", [({1, 2}, "set"), (Custom(), "Custom"),
                                          (object(), "object"), (b"raw", "bytes")],
                         ids=["set", "custom", "object", "bytes"])
def test_unsupported_argument_type(bad, typename):
    def f(x, y):
        return x

    with pytest.raises(TypeError) as info:
        thunder.jit(f)(torch.ones(2), bad)
    msg = str(info.value)
    assert "argument 1" in msg and "'y'" in msg
    assert typename in msg


def test_unsupported_nested_and_keyword_argument_type():
    def f(x, items=None):
        return x

    with pytest.raises(TypeError) as info:
        thunder.jit(f)(torch.ones(2), [torch.ones(2), {3}])
    assert "argument 1" in str(info.value) and "[1]" in str(info.value) and "set" in str(info.value)
    with pytest.raises(TypeError) as info:
        thunder.jit(f)(torch.ones(2), items=Custom())
    assert "items" in str(info.value) and "Custom" in str(info.value)


def test_shape_mismatch_names_shapes_and_line():
    def f(x, y):
        z = x * 2
        return z + y  # MARK-SHAPE

    x, y = torch.randn(2, 3), torch.randn(4)
    with pytest.raises(RuntimeError):
        f(x, y)  # eager refuses too
    with pytest.raises((ValueError, RuntimeError)) as info:
        thunder.jit(f)(x, y)
    msg = str(info.value)
    assert "2, 3" in msg and "4" in msg, msg
    assert THIS_FILE in msg and f":{_line_of('MARK-SHAPE')}" in msg, msg


def test_matmul_shape_mismatch():
    def f(a, b):
        return a @ b  # MARK-MATMUL

    with pytest.raises((ValueError, RuntimeError)) as info:
        thunder.jit(f)(torch.randn(2, 3), torch.randn(4, 5))
    msg = str(info.value)
    assert THIS_FILE in msg and f":{_line_of('MARK-MATMUL')}" in msg, msg


def test_error_inside_nested_user_function_points_at_it():
    def helper(a, b):
        return torch.cat([a, b], dim=0)  # MARK-HELPER

    def f(a, b):
        return helper(a, b) * 2

    with pytest.raises((ValueError, RuntimeError, IndexError)) as info:
        thunder.jit(f)(torch.randn(2, 3), torch.randn(2, 4))
    msg = str(info.value)
    assert THIS_FILE in msg and f":{_line_of('MARK-HELPER')}" in msg, msg


# ---------------------------------------------------------------------------------------------
# In-place updates of inputs: the result and the mutated inputs equal eager's.


def _clone(args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]


def check_inplace(fn, *args, calls=2):
    """Runs fn eagerly and jitted on separate clones of args (twice, so the cached program is
    checked too): results and every input after the call must be equal."""
    jf = thunder.jit(fn)
    for _ in range(calls):
        eager_args = _clone(args)
        jit_args = _clone(args)
        expected = fn(*eager_args)
        actual = jf(*jit_args)
        torch.testing.assert_close(actual, expected)
        for i, (a, e) in enumerate(zip(jit_args, eager_args)):
            if isinstance(e, torch.Tensor):
                torch.testing.assert_close(a, e, msg=lambda m, i=i: f"input {i} after the call: {m}")
    return jf


def iadd(x, y):
    x += y
    return x


def iadd_then_use(x, y):
    x += y
    return x * 2


def test_inplace_iadd():
    check_inplace(iadd, torch.randn(3), torch.randn(3))
    check_inplace(iadd_then_use, torch.randn(2, 3), torch.randn(3))


def test_inplace_add_():
    check_inplace(lambda x, y: x.add_(y, alpha=2), torch.randn(3), torch.randn(3))


def test_inplace_mul_():
    check_inplace(lambda x: x.mul_(2), torch.randn(3))


def test_inplace_mul_returns_same_values_used_later():
    def f(x, y):
        x.mul_(2)
        return x + y, y.sub_(1)

    check_inplace(f, torch.randn(3), torch.randn(3))


def test_inplace_relu():
    check_inplace(lambda x: torch.relu_(x), torch.randn(4))
    check_inplace(lambda x: F.relu(x, inplace=True), torch.randn(4))
    check_inplace(lambda x: x.relu_() + 1, torch.randn(4))


def test_inplace_relu_module():
    m = torch.nn.ReLU(inplace=True)
    check_inplace(lambda x: m(x) * 3, torch.randn(4))


def test_inplace_setitem():
    def set_index(x, v):
        x[1] = v
        return x * 2

    def set_slice(x, v):
        x[:, 1:] = v
        return x

    def set_index_tensor(x, idx, v):
        x[idx] = v
        return x

    check_inplace(set_index, torch.randn(3), torch.tensor(5.0))
    check_inplace(set_slice, torch.randn(2, 3), torch.randn(2, 2))
    check_inplace(set_index_tensor, torch.randn(5), torch.tensor([0, 3]), torch.tensor([1.0, 2.0]))


def test_inplace_setitem_boolean_mask():
    """x[mask] = v has a static result shape (unlike reading x[mask]): it is an index_put."""
    def set_mask(x):
        x[x < 0] = 0.0
        return x

    def set_mask_tensor(x, m, v):
        x[m] = v
        return x + 1

    check_inplace(set_mask, torch.randn(5))
    check_inplace(set_mask_tensor, torch.randn(2, 3), torch.randn(2, 3) > 0, torch.tensor(7.0))
    # A mask over the leading dim, a row value broadcast to every selected row.
    check_inplace(set_mask_tensor, torch.randn(3, 4), torch.tensor([True, False, True]), torch.randn(4))


def test_inplace_setitem_boolean_mask_one_value_per_element_is_refused():
    def f(x, m, v):
        x[m] = v  # one value per selected element: how many depends on the mask's values
        return x

    x, m = torch.randn(4), torch.tensor([True, False, True, False])
    with pytest.raises(NotImplementedError, match="data-dependent"):
        thunder.jit(f)(x, m, torch.randn(2))


def test_inplace_copy_():
    check_inplace(lambda x, y: x.copy_(y), torch.randn(3), torch.randn(3))
    # Broadcasting and dtype conversion in copy_.
    check_inplace(lambda x, y: x.copy_(y), torch.randn(2, 3), torch.arange(3))


def test_inplace_masked_fill_():
    x = torch.randn(4)
    check_inplace(lambda x, m: x.masked_fill_(m, -1.0), x, x > 0)


def test_inplace_on_module_input_and_buffer():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x):
            self.count.add_(1)
            x.mul_(2)
            return x + self.count

    m = M()
    jm = thunder.jit(m)
    x = torch.ones(3)
    out = jm(x)
    torch.testing.assert_close(out, torch.full((3,), 3.0))
    torch.testing.assert_close(x, torch.full((3,), 2.0))
    torch.testing.assert_close(m.count, torch.tensor(1.0))
    out = jm(x)
    torch.testing.assert_close(out, torch.full((3,), 6.0))
    torch.testing.assert_close(m.count, torch.tensor(2.0))


def test_inplace_on_intermediate():
    def f(x):
        y = x * 2
        y.add_(1)
        y[0] = 0.0
        return y

    check_inplace(f, torch.randn(3))


def test_inplace_through_view_of_input_updates_the_input():
    def f(x):
        v = x[0:2]
        v.add_(1)
        return x

    x, xe = torch.zeros(3), torch.zeros(3)
    torch.testing.assert_close(thunder.jit(f)(x), f(xe))
    torch.testing.assert_close(x, xe)


def test_inplace_through_view_without_inverse_of_input_raises():
    def f(x):
        v = x.diagonal()
        v.add_(1)  # MARK-VIEW
        return x

    with pytest.raises(NotImplementedError) as info:
        thunder.jit(f)(torch.zeros(3, 3))
    msg = str(info.value)
    assert "view" in msg and "'x'" in msg
    assert THIS_FILE in msg and f":{_line_of('MARK-VIEW')}" in msg


@pytest.mark.parametrize("view", ["transpose", "unsqueeze", "select", "reshape", "diagonal"])
def test_inplace_through_view_is_correct_or_refused(view):
    """Never a wrong answer: either eager's results (output and input) or NotImplementedError."""
    def f(x):
        v = {"transpose": lambda: x.t(), "unsqueeze": lambda: x.unsqueeze(0),
             "select": lambda: x[1], "reshape": lambda: x.view(-1),
             "diagonal": lambda: x.diagonal()}[view]()
        v.mul_(3)
        return x + 1, v

    x = torch.randn(3, 3)
    try:
        check_inplace(f, x)
    except NotImplementedError as e:
        assert "view" in str(e)


def test_reading_an_inputs_grad_is_refused_clearly():
    # An optimizer-like update inside the jitted function: .grad of an input is the caller's tensor,
    # which the program cannot read (None would skip the update silently).
    def step(params, lr: float):
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    continue
                p.sub_(lr * p.grad)

    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    with pytest.raises(NotImplementedError, match=r"cannot read an input's \.grad") as e:
        thunder.jit(step)([p], 0.1)
    assert "test_errors.py" in str(e.value)
    # A tensor made inside the function has no .grad, as in eager.
    assert thunder.jit(lambda x: (x * 2).grad is None and x.sum())(torch.randn(3)) is not None


def test_augmented_assignment_that_cannot_cast_raises_as_eager():
    # `a *= 1.5` on an integer tensor: eager's RuntimeError (a TypeError made Python fall back to
    # a = a * 1.5, a float result and an untouched input).
    def f(a):
        a *= 1.5
        return a

    for fn in (f, thunder.jit(f)):
        a = torch.tensor([2, 4])
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            fn(a)
        assert a.tolist() == [2, 4]


def test_inplace_shift_updates_the_input_as_in_eager():
    # No rule for <<=: its out-of-place form, copied into x (not Python's fallback to x = x << 1).
    def f(x):
        x <<= 1
        x += 1

    a, b = torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3])
    f(a)
    thunder.jit(f)(b)
    assert b.tolist() == a.tolist() == [3, 5, 7]


def test_inplace_methods_that_change_the_shape_are_refused():
    for f in (lambda x: x.t_(), lambda x: x.unsqueeze_(0), lambda x: x.transpose_(0, 1)):
        with pytest.raises(NotImplementedError, match="in-place operation torch.Tensor.(t_|unsqueeze_|transpose_)"):
            thunder.jit(f)(torch.zeros(3, 2))


def test_manual_seed_inside_a_jitted_function_is_refused():
    def f(x):
        torch.manual_seed(5)
        return x + torch.rand(2)

    with pytest.raises(NotImplementedError, match="torch.manual_seed inside a jitted function"):
        thunder.jit(f)(torch.zeros(2))
    assert torch.manual_seed.__module__ == "torch.random"  # put back after tracing


def test_random_calls_without_tensor_inputs_draw_as_eager():
    # Their outputs' shapes are learned by calling them; that call must not draw the numbers.
    f = lambda x: x[torch.randperm(4)] + torch.normal(0.0, 1.0, size=(4,))
    x = torch.arange(4.0)
    torch.manual_seed(0)
    want = (f(x), torch.rand(1))
    torch.manual_seed(0)
    got = (thunder.jit(f)(x), torch.rand(1))
    torch.testing.assert_close(got, want)


def test_bad_shapes_raise_an_error_eager_code_catches_as_runtime_error():
    # Eager raises RuntimeError for sizes that do not fit; thunder's error is a ValueError and a
    # RuntimeError, so `except RuntimeError` fallbacks work inside and around jitted functions.
    def f(x):
        try:
            return x.reshape(5, 7)
        except RuntimeError:
            return x * 0

    x = torch.randn(3, 4)
    torch.testing.assert_close(thunder.jit(f)(x), f(x))
    for exc in (ValueError, RuntimeError):
        with pytest.raises(exc, match="cannot be broadcast"):
            thunder.jit(lambda x: x + torch.ones(5))(x)


def test_set_default_dtype_inside_a_jitted_function_is_refused():
    def f(x):
        torch.set_default_dtype(torch.float64)
        return x + torch.ones(2)

    with pytest.raises(NotImplementedError, match="torch.set_default_dtype inside a jitted function"):
        thunder.jit(f)(torch.zeros(2))
    assert torch.get_default_dtype() == torch.float32 and torch.set_default_dtype.__module__ == "torch"


def test_gradients_inside_a_jitted_function_are_refused_clearly():
    lin = torch.nn.Linear(4, 1)

    def step(x):
        loss = lin(x).pow(2).mean()
        loss.backward()
        return loss

    def penalty(x):
        (g,) = torch.autograd.grad(lin(x).sum(), x, create_graph=True)
        return g.norm()

    for fn, name in ((step, "torch.Tensor.backward"), (penalty, "torch.autograd.grad")):
        with pytest.raises(NotImplementedError, match=f"cannot trace {name} inside a jitted function") as e:
            thunder.jit(fn)(torch.randn(3, 4, requires_grad=True))
        assert "test_errors.py" in str(e.value)
