"""Gradients of scaled_dot_product_attention on the CPU against eager: the flash-attention kernel pair
where PyTorch's CPU flash kernel takes the arguments, the differentiated decomposition (eager's math
kernel) where it does not (a value head size different from the query's, masks it cannot take)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder


def _grads_vs_eager(q, k, v, **kw):
    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **kw)

    jf = thunder.jit(f)
    out = jf(q, k, v)
    expected = f(q, k, v)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), g)
    want = torch.autograd.grad(expected, (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    return str(thunder.last_backward_traces(jf)[-1])


def _qkv(e_qk=16, e_v=16, lq=5, lk=7, dtype=torch.float32):
    torch.manual_seed(0)
    q = torch.randn(2, 3, lq, e_qk, dtype=dtype, requires_grad=True)
    k = torch.randn(2, 3, lk, e_qk, dtype=dtype, requires_grad=True)
    v = torch.randn(2, 3, lk, e_v, dtype=dtype, requires_grad=True)
    return q, k, v


@pytest.mark.parametrize("mask", ["none", "causal", "float", "bool"])
def test_sdpa_grad_value_head_size_differs_from_query(mask):
    q, k, v = _qkv(e_qk=16, e_v=24)
    kw = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "float":
        kw["attn_mask"] = torch.randn(5, 7)
    elif mask == "bool":
        kw["attn_mask"] = torch.rand(5, 7) > 0.3
    bwd = _grads_vs_eager(q, k, v, **kw)
    assert "sdpa_flash_cpu_backward" not in bwd


def test_sdpa_grad_uses_flash_pair_when_it_takes_the_shapes():
    q, k, v = _qkv()
    bwd = _grads_vs_eager(q, k, v, is_causal=True)
    assert "sdpa_flash_cpu_backward" in bwd


@pytest.mark.parametrize("mask_shape", [(3, 5, 7), (1, 5, 7)])
def test_sdpa_grad_mask_the_flash_kernel_cannot_take(mask_shape):
    q, k, v = _qkv()
    bwd = _grads_vs_eager(q, k, v, attn_mask=torch.randn(mask_shape))
    assert "sdpa_flash_cpu_backward" not in bwd


def test_sdpa_grad_four_dim_broadcast_mask_keeps_flash():
    q, k, v = _qkv()
    bwd = _grads_vs_eager(q, k, v, attn_mask=torch.randn(1, 3, 5, 7))
    assert "sdpa_flash_cpu_backward" in bwd


def test_sdpa_grad_mask_of_another_dtype_falls_back():
    q, k, v = _qkv(dtype=torch.float64)
    bwd = _grads_vs_eager(q, k, v, attn_mask=torch.randn(5, 7, dtype=torch.float32))
    assert "sdpa_flash_cpu_backward" not in bwd


def test_sdpa_grad_float64_value_head_size_differs():
    q, k, v = _qkv(e_qk=8, e_v=12, dtype=torch.float64)
    _grads_vs_eager(q, k, v, scale=0.3)


@pytest.mark.parametrize("mask_shape", [(5, 1), (1, 7), (2, 1, 5, 1)])
def test_sdpa_grad_broadcast_mask_the_flash_kernel_takes(mask_shape):
    q, k, v = _qkv()
    bwd = _grads_vs_eager(q, k, v, attn_mask=torch.randn(mask_shape))
    assert "sdpa_flash_cpu_backward" in bwd
