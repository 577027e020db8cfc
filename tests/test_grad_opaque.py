"""Training through torch functions thunder has no rules for (opaque calls): their gradient comes from
torch's own autograd, run inside thunder's forward and backward programs."""

import pytest
import torch

import thunder

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _check(fn, *inputs, **kwargs):
    """Values and gradients of jit(fn) against eager's, for every input that requires grad."""
    jfn = thunder.jit(fn)
    eager_inputs = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    out = jfn(*inputs, **kwargs)
    expected = fn(*eager_inputs, **kwargs)
    torch.testing.assert_close(out, expected)
    wrt = [x for x in inputs if x.requires_grad]
    eager_wrt = [x for x in eager_inputs if x.requires_grad]
    cot = torch.randn_like(out)
    got = torch.autograd.grad(out, wrt, cot)
    want = torch.autograd.grad(expected, eager_wrt, cot)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    return jfn


def test_opaque_unary_gets_torch_gradient():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    jfn = _check(lambda x: torch.special.i0e(x) * 2, x)
    fwd = str(thunder.last_traces(jfn)[-1])
    bwd = str(thunder.last_backward_traces(jfn)[-1])
    assert "special_i0e_augmented_forward" in fwd
    assert "special_i0e_backward" in bwd


def test_opaque_with_keyword_arguments_and_tuple_result():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)

    def f(x):
        values, indices = torch.cummax(x * 3, dim=1)
        return values * indices.to(x.dtype) + torch.logcumsumexp(x, dim=0)

    _check(f, x)


def test_opaque_with_tensors_inside_a_list_argument():
    a = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def f(a, b):
        return torch.linalg.multi_dot([a.sin(), b.T * 2, a]).cos()

    jfn = _check(f, a, b)
    assert "linalg_multi_dot_augmented_forward" in str(thunder.last_traces(jfn)[-1])


def test_opaque_mixed_requires_grad_and_repeated_argument():
    a = torch.randn(5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64)

    def f(a, b):
        return torch.block_diag(a[None], b[None], a[None])

    jfn = _check(f, a, b)
    assert b.grad is None


def test_opaque_gradient_accumulates_over_calls_and_retain_graph():
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    w_eager = w.detach().clone().requires_grad_(True)
    jfn = thunder.jit(lambda w: torch.special.erfcx(w).sum())
    for _ in range(2):
        out = jfn(w)
        out.backward(retain_graph=True)
        out.backward()
        e = torch.special.erfcx(w_eager).sum()
        e.backward(retain_graph=True)
        e.backward()
    torch.testing.assert_close(w.grad, w_eager.grad)


def test_opaque_in_a_module_trains_like_eager():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 6)

        def forward(self, x):
            return torch.logcumsumexp(self.lin(x), dim=-1).mean()

    torch.manual_seed(0)
    m = Net()
    e = Net()
    e.load_state_dict(m.state_dict())
    jm = thunder.jit(m)
    x = torch.randn(3, 6)
    jm(x).backward()
    e(x).backward()
    for (name, p), (_, q) in zip(m.named_parameters(), e.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_opaque_inplace_function_still_refused_with_location():
    x = torch.randn(4, requires_grad=True)

    def f(x):
        y = x * 2
        torch.ops.aten.cauchy_(y)
        return y

    with pytest.raises(NotImplementedError, match=r"in-place operation torch\.ops\.aten\.cauchy_") as e:
        thunder.jit(f)(x)
    assert "test_grad_opaque.py" in str(e.value)


def test_torch_ops_overloads_print_as_called():
    a = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)

    def f(a):
        return torch.ops.aten.special_i1(a) + torch.ops.aten.sinc.default(a)

    jfn = _check(f, a)
    assert "thunder_grad.sinc_default_augmented_forward(" in str(thunder.last_traces(jfn)[-1])
    with torch.no_grad():
        jfn(a)
    source = str(thunder.last_traces(jfn)[-1])
    assert "torch.ops.aten.sinc.default(a)" in source and "torch.ops.aten.special_i1(a)" in source


# Complex values: thunder's gradient rules are those of real values, so while gradients are
# recorded a call with a complex tensor or dtype runs as a torch call (torch's autograd applies the
# conjugate conventions); Python complex numbers are torch calls always.
def _complex(*shape, requires_grad=True):
    return torch.randn(*shape, dtype=torch.complex128, requires_grad=requires_grad)


@pytest.mark.parametrize("name,fn", [
    ("mul_abs", lambda z, w: (z * w).abs()),
    ("exp_real", lambda z, w: (z.exp() * w).real),
    ("div_imag", lambda z, w: (z / w).imag),
    ("sum_angle", lambda z, w: torch.angle(z + w.conj())),
    ("matmul", lambda z, w: torch.view_as_real(z @ w.mT)),
    ("where_cat", lambda z, w: torch.view_as_real(torch.cat([torch.where(z.real > 0, z, w), w * 2]))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_complex_tensors_get_torch_gradients(name, fn):
    _check(fn, _complex(3, 4), _complex(3, 4))


def test_complex_from_real_inputs_and_back():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = _complex(3, 4)
    _check(lambda x, w: (torch.complex(x, x * 2) * w).abs(), x, w)
    _check(lambda x, w: torch.view_as_real(torch.polar(x.abs(), x) * w), x, w)
    _check(lambda x: (x.to(torch.complex128) * (1 + 2j)).imag, x)
    # a complex tensor that needs no gradient beside a real one that does
    _check(lambda x, w: (x * w).real, x, _complex(3, 4, requires_grad=False))


def test_python_complex_numbers():
    x = torch.randn(3, 4)
    for fn in (lambda a: a * 1j, lambda a: 1j * a, lambda a: a + (2 + 1j), lambda a: (a - 0.5j) / (1 + 1j)):
        jfn = thunder.jit(fn)
        for t in (x, x.double(), x.to(torch.complex64), torch.arange(12).reshape(3, 4)):
            out, expected = jfn(t), fn(t)
            assert out.dtype == expected.dtype
            torch.testing.assert_close(out, expected)


def test_complex_without_gradients_keeps_thunder_rules():
    z = _complex(3, 4, requires_grad=False)
    jfn = thunder.jit(lambda z: (z * z).exp())
    torch.testing.assert_close(jfn(z), (z * z).exp())
    final = str(thunder.last_traces(jfn)[-1])
    assert "prims.exp(" in final and "augmented_forward" not in final
    # with a gradient: the torch calls' own forward and backward
    jfn = thunder.jit(lambda z: (z * z).exp())
    _check(lambda z: (z * z).exp(), z.requires_grad_())
    jfn(z)
    assert "exp_augmented_forward" in str(thunder.last_traces(jfn)[-1])


def test_digamma_gradient_from_torch():
    # digamma's derivative (polygamma(1, x)) has no primitive: with a gradient it runs as its torch
    # call; without one it keeps thunder's rule.
    x = torch.rand(4, 6, dtype=torch.float64) + 0.5
    jfn = _check(lambda t: torch.digamma(t) * t + torch.special.psi(t), x.clone().requires_grad_())
    assert "digamma_augmented_forward" in str(thunder.last_traces(jfn)[-1])
    jfn = thunder.jit(lambda t: torch.digamma(t) * t)
    torch.testing.assert_close(jfn(x), torch.digamma(x) * x)
    assert "prims.digamma(" in str(thunder.last_traces(jfn)[-1])


class _OpaqueBatchNorm(torch.nn.Module):
    # torch.batch_norm (the function below F.batch_norm) has no thunder rule: it runs as its torch call.
    def __init__(self, c):
        super().__init__()
        self.weight, self.bias = torch.nn.Parameter(torch.rand(c) + 0.5), torch.nn.Parameter(torch.randn(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                                0.1, 1e-5, False)


@pytest.mark.parametrize("make", [lambda: _OpaqueBatchNorm(4).double(),
                                  lambda: torch.nn.InstanceNorm1d(4, track_running_stats=True, affine=True).double()],
                         ids=["opaque", "instance_norm"])
def test_opaque_function_updating_buffers_in_training(make):
    # An opaque function updating running statistics: torch's autograd records it with only the
    # tensors that require grad (its running statistics, updated in place, must not). instance_norm,
    # which has thunder's rule, beside it.
    import copy

    torch.manual_seed(0)
    m = make()
    m2 = copy.deepcopy(m)
    jm = thunder.jit(m)
    for _ in range(2):
        x = torch.randn(3, 4, 5, dtype=torch.float64)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = jm(a), m2(b)
        torch.testing.assert_close(got, want)
        g = torch.randn_like(want)
        got.backward(g)
        want.backward(g)
        torch.testing.assert_close(a.grad, b.grad)
        for p, q in zip(m.parameters(), m2.parameters()):
            torch.testing.assert_close(p.grad, q.grad)
        for p, q in zip(m.buffers(), m2.buffers()):
            torch.testing.assert_close(p, q)
