"""The `sdpa` executor: runs `scaled_dot_product_attention` with PyTorch's fused attention kernels.

It claims `thunder.torch.scaled_dot_product_attention` where a fused kernel supports the call and runs
it with only the fused backends enabled (flash attention on the CPU; flash, memory-efficient and
cuDNN attention on CUDA), so the call never falls back to the unfused math path. Elsewhere it leaves
the call to the other executors. The gradient is thunder's rule for the symbol: on the CPU the
flash-attention forward and backward kernels (`ltorch.sdpa_flash_cpu` and
`ltorch.sdpa_flash_cpu_backward`, which this executor claims too); elsewhere the differentiated
decomposition.

What the checker accepts (a conservative subset of what the kernels support):

- query, key and value: 4-D (batch, heads, sequence, head_dim), one dtype, one device, the same
  number of heads (no enable_gqa), the same head_dim;
- CPU: float32, float64, bfloat16 or float16; no dropout;
- CUDA: float16 or bfloat16, or float32 (memory-efficient kernel); head_dim a multiple of 8 and at
  most 256; dropout allowed;
- attn_mask: None, or a boolean or floating tensor of the query's dtype that does not require grad
  and broadcasts to (batch, heads, L, S) (on the CPU: a 2-D or 4-D one); not together with
  is_causal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thunder.extend import OperatorExecutor

__all__ = ["sdpa_ex", "sdpa_checker", "fused_backends"]

_CPU_DTYPES = {torch.float32, torch.float64, torch.bfloat16, torch.float16}
_CUDA_DTYPES = {torch.float16, torch.bfloat16, torch.float32}


def fused_backends(device_type: str):
    from torch.nn.attention import SDPBackend

    if device_type == "cuda":
        names = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")
    else:
        names = ("FLASH_ATTENTION",)
    return [getattr(SDPBackend, n) for n in names if hasattr(SDPBackend, n)]


def _mask_ok(mask, q, k, is_causal):
    if mask is None:
        return True
    if is_causal or not isinstance(mask, torch.Tensor) or mask.requires_grad:
        return False
    if mask.dtype != torch.bool and mask.dtype != q.dtype:
        return False
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if mask.ndim > 4 or (q.device.type == "cpu" and mask.ndim not in (2, 4)):
        return False
    for m, t in zip(reversed(mask.shape), reversed(target)):
        if m not in (1, t):
            return False
    return True


def sdpa_checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None,
                 enable_gqa=False) -> bool:
    """True when a fused kernel runs this call (see the module's documentation)."""
    q, k, v = query, key, value
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)):
        return False
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or enable_gqa:
        return False
    if not (q.dtype == k.dtype == v.dtype) or not (q.device == k.device == v.device):
        return False
    if not (q.shape[0] == k.shape[0] == v.shape[0] and q.shape[1] == k.shape[1] == v.shape[1]):
        return False
    if not (q.shape[3] == k.shape[3] == v.shape[3]) or k.shape[2] != v.shape[2]:
        return False
    if min(q.shape[2], k.shape[2], q.shape[3]) == 0:
        return False
    if not _mask_ok(attn_mask, q, k, is_causal):
        return False
    if q.device.type == "cpu":
        return q.dtype in _CPU_DTYPES and dropout_p == 0.0
    if q.device.type == "cuda":
        head_dim = q.shape[3]
        return q.dtype in _CUDA_DTYPES and head_dim % 8 == 0 and head_dim <= 256
    return False


def _contiguous_last(t):
    return t if t.stride(-1) == 1 else t.contiguous()


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 *, scale=None, enable_gqa=False):
    from torch.nn.attention import sdpa_kernel

    q, k, v = (_contiguous_last(t) for t in (query, key, value))
    with sdpa_kernel(fused_backends(q.device.type)):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)


def flash_attention_cpu(query, key, value, dropout_p, is_causal, *, attn_mask=None, scale=None):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)


def flash_attention_cpu_backward(grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *,
                                 attn_mask=None, scale=None):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
        grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, attn_mask=attn_mask,
        scale=scale)


sdpa_ex = OperatorExecutor("sdpa")
sdpa_ex.register_implementation(
    "ltorch.scaled_dot_product_attention",
    execution_transform=scaled_dot_product_attention,
    checker=sdpa_checker,
)
# Training on the CPU: thunder's gradient rule splits attention into the flash kernel's forward
# (which also returns the log-sum-exp) and its backward; both are the fused kernels.
sdpa_ex.register_implementation("ltorch.sdpa_flash_cpu", execution_transform=flash_attention_cpu)
sdpa_ex.register_implementation("ltorch.sdpa_flash_cpu_backward",
                                execution_transform=flash_attention_cpu_backward)
