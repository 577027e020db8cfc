"""The sdpa executor: scaled_dot_product_attention on PyTorch's fused kernels where its checker
accepts the call, the torch executor elsewhere; values and gradients against eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.core.capture import TensorProxy
from thunder.executors.sdpaex import sdpa_checker

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CLAIMED = "sdpa.scaled_dot_product_attention("


def _run(fn, *args):
    """Runs fn jitted and eagerly on copies of args; compares values and gradients. Returns the
    final trace."""
    return str(thunder.last_traces(_jit_and_check(fn, *args))[-1])


def _jit_and_check(fn, *args):
    for a in args:
        if isinstance(a, torch.Tensor):
            a.grad = None
    ref = [a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
           for a in args]
    jf = thunder.jit(fn)
    out = jf(*args)
    expected = fn(*ref)
    tol = {"rtol": 2e-2, "atol": 2e-2} if out.dtype in (torch.float16, torch.bfloat16) else {}
    torch.testing.assert_close(out, expected, **tol)
    if any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        for a, r in zip(args, ref):
            if isinstance(a, torch.Tensor) and a.requires_grad:
                torch.testing.assert_close(a.grad, r.grad, **tol)
    return jf


def _qkv(device="cpu", dtype=torch.float32, shape=(2, 3, 5, 8), requires_grad=True):
    torch.manual_seed(0)
    return [torch.randn(shape, device=device, dtype=dtype, requires_grad=requires_grad)
            for _ in range(3)]


def test_sdpa_is_in_the_default_executors():
    assert thunder.extend.get_executor("sdpa") in thunder.get_default_executors()


@pytest.mark.parametrize("kind", ["plain", "causal", "bool_mask", "float_mask", "scale"])
def test_sdpa_claims_supported_calls_forward_and_backward(kind):
    q, k, v = _qkv()
    mask = None
    if kind == "bool_mask":
        mask = torch.rand(5, 5) > 0.3
        mask[:, 0] = True
    elif kind == "float_mask":
        mask = torch.randn(2, 1, 5, 5)
    causal = kind == "causal"
    scale = 0.3 if kind == "scale" else None

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)

    # Inference: the sdpa executor runs the call.
    q0, k0, v0 = (t.detach() for t in (q, k, v))
    assert CLAIMED in _run(f, q0, k0, v0)
    # Training: the forward and backward flash-attention kernels, both claimed by sdpa.
    jf = _jit_and_check(f, q, k, v)
    if not thunder.last_backward_traces(jf):
        pytest.skip("thunder.jit builds no backward program here: the backward is torch.autograd's")
    forward, backward = str(thunder.last_traces(jf)[-1]), str(thunder.last_backward_traces(jf)[-1])
    assert "sdpa.sdpa_flash_cpu(" in forward or CLAIMED in forward, forward
    if "sdpa.sdpa_flash_cpu(" in forward:
        assert "sdpa.sdpa_flash_cpu_backward(" in backward, backward


@pytest.mark.parametrize("case", ["dropout", "gqa", "head_dims", "three_d", "mask_grad"])
def test_sdpa_checker_leaves_unsupported_calls_to_torch(case):
    q, k, v = _qkv()
    if case == "dropout":
        # Random: compare shapes only, and that the call went to torch.
        jf = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
        assert jf(q, k, v).shape == q.shape
        assert "sdpa." not in str(thunder.last_traces(jf)[-1])
        return
    if case == "gqa":
        q = torch.randn(2, 6, 5, 8, requires_grad=True)
        fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # noqa: E731
    elif case == "head_dims":
        q, k = q.detach(), k.detach()
        v = torch.randn(2, 3, 5, 4)
        fn = F.scaled_dot_product_attention
    elif case == "three_d":
        q, k, v = (t.detach()[0].requires_grad_() for t in (q, k, v))
        fn = F.scaled_dot_product_attention
    else:
        m = torch.randn(5, 5, requires_grad=True)
        fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m)  # noqa: E731
    assert "sdpa." not in _run(fn, q, k, v)


def _proxy(shape, dtype, device):
    # A tensor proxy as checkers see it: metadata only, on any device (no memory is allocated).
    return TensorProxy(None, shape, dtype, torch.device(device), False)


def test_sdpa_checker_cuda_rules():
    def ok(dtype, head_dim=64, **kw):
        q = _proxy((2, 4, 16, head_dim), dtype, "cuda")
        return sdpa_checker(q, q, q, **kw)

    assert ok(torch.float16) and ok(torch.bfloat16) and ok(torch.float32)
    assert ok(torch.float16, dropout_p=0.1)  # dropout runs in the fused CUDA kernels
    assert not ok(torch.float64)
    assert not ok(torch.float16, head_dim=60) and not ok(torch.float16, head_dim=512)
    cpu = _proxy((2, 4, 16, 64), torch.float32, "cpu")
    assert sdpa_checker(cpu, cpu, cpu) and not sdpa_checker(cpu, cpu, cpu, dropout_p=0.1)
    q = _proxy((2, 4, 16, 64), torch.float16, "cuda")
    assert not sdpa_checker(q, q, q, attn_mask=_proxy((16, 16), torch.float32, "cuda"))
    assert sdpa_checker(q, q, q, attn_mask=_proxy((16, 16), torch.bool, "cuda"))
    assert not sdpa_checker(q, q, q, attn_mask=_proxy((16, 16), torch.bool, "cuda"), is_causal=True)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_sdpa_cuda_forward_and_backward(dtype):
    # In training the forward runs a fused attention kernel pair: the memory-efficient kernels for
    # float32, eager's own kernel choice (flash, cuDNN, ...) otherwise; never the decomposition.
    fused = (CLAIMED, "sdpa_efficient(", "sdpa_autograd_forward(")

    def check(trace):
        assert any(f in trace for f in fused), trace
        assert "softmax" not in trace, trace

    q, k, v = _qkv("cuda", dtype, (2, 4, 64, 64))
    check(_run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), q, k, v))
    mask = torch.rand(64, 64, device="cuda") > 0.2
    mask[:, 0] = True
    check(_run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), q, k, v))
