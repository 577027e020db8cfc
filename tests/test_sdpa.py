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


# The attention of CUDA training programs (ltorch.sdpa_autograd_forward / _backward): torch's own
# kernel choice, its flash, memory-efficient and cuDNN kernels called directly, F.sdpa under torch
# autograd otherwise.


def _attention_grads(q, k, v, g, mask, p, causal, gqa=False):
    from thunder.core import autograd as ag

    out, handle = ag.sdpa_autograd_forward(q, k, v, mask, p, causal, None, gqa)
    grads = ag.sdpa_autograd_backward(g, handle, q, k, v, (True, False, True))
    return out, grads, handle


def _eager_attention(q, k, v, g, mask, p, causal, gqa=False):
    q, k, v = (t.detach().requires_grad_(True) for t in (q, k, v))
    kw = {"enable_gqa": True} if gqa else {}
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal, **kw)
    out.backward(g)
    return out.detach(), (q.grad, None, v.grad)


@pytest.mark.parametrize("kind", ["plain", "causal", "mask", "gqa"])
def test_attention_through_torch_autograd_matches_eager_on_the_cpu(kind):
    # Off CUDA (and for calls the direct kernels do not take) the forward runs F.sdpa under torch
    # autograd and the backward asks torch for the gradients.
    from thunder.core import autograd as ag

    torch.manual_seed(0)
    kv_heads = 2 if kind == "gqa" else 4
    q = torch.randn(2, 4, 9, 16)
    k, v = torch.randn(2, kv_heads, 9, 16), torch.randn(2, kv_heads, 9, 16)
    g = torch.randn(2, 4, 9, 16)
    mask = torch.randn(9, 9) if kind == "mask" else None
    gqa = kind == "gqa"
    out, grads, handle = _attention_grads(q, k, v, g, mask, 0.0, kind == "causal", gqa)
    assert not hasattr(handle, "_thunder_sdpa") and handle.numel() == 0
    want_out, want = _eager_attention(q, k, v, g, mask, 0.0, kind == "causal", gqa)
    torch.testing.assert_close(out, want_out)
    assert grads[1] is None
    torch.testing.assert_close(grads[0], want[0])
    torch.testing.assert_close(grads[2], want[2])
    # A second backward (retain_graph) gives the same gradients.
    again = ag.sdpa_autograd_backward(g, handle, q, k, v, (True, False, True))
    torch.testing.assert_close(again[0], grads[0])


def test_attention_direct_calls_check_the_ops_signatures(monkeypatch):
    from thunder.core import autograd as ag

    monkeypatch.setattr(ag, "_sdpa_direct_ok", {})
    assert not ag._sdpa_backend_direct(0) and not ag._sdpa_backend_direct(4)  # math, overrideable
    for choice in (1, 2, 3):  # this torch's flash, efficient and cuDNN ops take the written arguments
        assert ag._sdpa_backend_direct(choice)
    # Another signature (as cuDNN's before torch 2.5): not called directly.
    sigs = dict(ag._SDPA_SIGNATURES)
    (fwd, args), bwd = sigs[3]
    sigs[3] = ((fwd, args.replace("attn_bias compute_log_sumexp ", "")), bwd)
    monkeypatch.setattr(ag, "_SDPA_SIGNATURES", sigs)
    monkeypatch.setattr(ag, "_sdpa_direct_ok", {})
    assert not ag._sdpa_backend_direct(3) and ag._sdpa_backend_direct(1)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("case", ["plain", "causal", "dropout", "head_dim_40", "mask", "gqa"])
def test_cuda_attention_direct_kernels_match_eager(case, dtype):
    e = 40 if case == "head_dim_40" else 64
    kv_heads = 2 if case == "gqa" else 4
    torch.manual_seed(0)
    q = torch.randn(2, 4, 33, e, device="cuda", dtype=dtype)
    k = torch.randn(2, kv_heads, 33, e, device="cuda", dtype=dtype)
    v = torch.randn(2, kv_heads, 33, e, device="cuda", dtype=dtype)
    g = torch.randn(2, 4, 33, e, device="cuda", dtype=dtype)
    mask = torch.randn(33, 33, device="cuda", dtype=dtype) if case == "mask" else None
    p = 0.3 if case == "dropout" else 0.0
    causal = case in ("causal", "dropout")
    gqa = case == "gqa"
    torch.manual_seed(7)
    out, grads, handle = _attention_grads(q, k, v, g, mask, p, causal, gqa)
    choice = -1 if gqa else int(torch._fused_sdp_choice(q, k, v, mask, p, causal))
    direct = mask is None and not gqa and (choice in (2, 3) or (choice == 1 and e % 8 == 0))
    assert hasattr(handle, "_thunder_sdpa") == direct, (choice, case)
    torch.manual_seed(7)
    want_out, want = _eager_attention(q, k, v, g, mask, p, causal, gqa)
    tol = {} if dtype is torch.float32 else {"rtol": 1e-2, "atol": 1e-2}
    torch.testing.assert_close(out, want_out, **tol)  # dropout: the same random stream as eager
    torch.testing.assert_close(grads[0], want[0], **tol)
    torch.testing.assert_close(grads[2], want[2], **tol)
    assert grads[1] is None


def test_attention_without_torchs_kernel_choice_runs_through_autograd(monkeypatch):
    # A torch without the private _fused_sdp_choice: the direct calls step aside, nothing fails.
    from thunder.core import autograd as ag

    monkeypatch.delattr(torch, "_fused_sdp_choice")
    q = torch.randn(1, 2, 5, 8)
    assert ag._sdpa_direct(q, q, q, 0.0, True, None) is None
