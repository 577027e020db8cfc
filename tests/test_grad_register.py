"""User-registered gradients (thunder.core.transforms): an operator defined through thunder.extend
gets its backward from an augmented-forward / backward pair of Python functions."""

from __future__ import annotations

import pytest
import torch

import thunder
from thunder.core.transforms import register_augmented_forward, register_backward, register_grad
from thunder.extend import OperatorExecutor

_ex = OperatorExecutor("grad_test_ex")


def _scaled_mul(x, w, scale=2.0):
    return x * w * scale


scaled_mul = _ex.register_operator("scaled_mul", meta=lambda x, w, scale=2.0: torch.empty_like(x),
                                   fn=_scaled_mul)
calls = {"forward": 0, "backward": 0}


@register_augmented_forward(scaled_mul)
def _scaled_mul_forward(x, w, scale=2.0):
    calls["forward"] += 1
    return _scaled_mul(x, w, scale), (x, w, torch.tensor(scale))


@register_backward(scaled_mul)
def _scaled_mul_backward(x, w, scale, g):
    calls["backward"] += 1
    return g * w * scale, g * x * scale


def test_registered_gradient_runs_in_thunders_backward():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)

    def f(x, w):
        return (scaled_mul(x, w, 3.0) ** 2).sum()

    jf = thunder.jit(f, executors=[_ex, "torch"])
    before = dict(calls)
    jf(x, w).backward()
    assert calls["forward"] > before["forward"] and calls["backward"] > before["backward"]
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    ((x * w * 3.0) ** 2).sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)
    bwd = str(thunder.last_backward_traces(jf)[-1])
    assert "scaled_mul_backward" in bwd
    assert "scaled_mul_augmented_forward" in str(thunder.last_traces(jf)[-1])


def test_operator_without_gradient_is_an_error_naming_it():
    op = _ex.register_operator("no_grad_op", meta=lambda x: torch.empty_like(x), fn=lambda x: x + 1)
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(NotImplementedError, match="no_grad_op"):
        thunder.jit(lambda x: op(x).sum(), executors=[_ex, "torch"])(x)


def test_backward_returning_none_for_a_needed_gradient_is_an_error():
    op = _ex.register_operator("bad_grad_op", meta=lambda x: torch.empty_like(x), fn=lambda x: x * 2)
    register_grad(op, augmented_forward=lambda x: (x * 2, ()), backward=lambda g: (None,))
    x = torch.randn(3, requires_grad=True)
    y = thunder.jit(lambda x: op(x).sum(), executors=[_ex, "torch"])(x)
    with pytest.raises(ValueError, match="returned None"):
        y.backward()


def test_register_grad_rejects_unknown_symbols():
    with pytest.raises(ValueError, match="unknown symbol"):
        register_grad("ltorch.no_such_op", augmented_forward=lambda x: x, backward=lambda g: g)


def test_torch_autograd_grad_differentiates_an_operator_through_torch():
    from thunder.core.transforms import torch_autograd_grad

    fn = lambda a, s: torch.sin(a) * s
    op = _ex.register_operator("sin_scale", meta=lambda a, s: torch.empty_like(a), fn=fn)
    register_grad(op, **torch_autograd_grad(fn))
    x = torch.randn(4, requires_grad=True)
    y = thunder.jit(lambda x: op(x * 2, 3.0).sum(), executors=[_ex, "torch"])(x)
    y.backward(retain_graph=True)
    y.backward()
    torch.testing.assert_close(x.grad, 2 * 2 * 3.0 * torch.cos(2 * x.detach()))
