"""A custom Triton GPU kernel claimed for an operation, and a new fused operator, through
thunder.extend.

- `thunder.torch.silu` is claimed on CUDA (float32, float16, bfloat16) by a Triton kernel;
- `silu_mul(a, b) = silu(a) * b` (the gate of a SwiGLU MLP) is a new operator of the same executor,
  one Triton kernel instead of three torch kernels; jitted code calls it like a torch function.

`silu_mul` gets its gradient through `grad_transform`; `silu` keeps thunder's own gradient rule
(torch.autograd.Functions make both kernels differentiable when called outside thunder too).
Requires CUDA and Triton.

    python examples/custom_triton_kernel.py
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

import thunder
import thunder.torch as ltorch
from thunder.extend import OperatorExecutor, register_executor

BLOCK = 1024


@triton.jit
def _silu_mul_kernel(a_ptr, b_ptr, out_ptr, n, HAS_B: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    y = a / (1.0 + tl.exp(-a))
    if HAS_B:
        y = y * tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(a, b=None):
    if a.device.type == "meta":  # thunder works out shapes on meta tensors: no kernel to run
        return torch.empty_like(a)
    a = a.contiguous()
    b = a if b is None else b.contiguous()
    out = torch.empty_like(a)
    n = a.numel()
    _silu_mul_kernel[(triton.cdiv(n, BLOCK),)](a, b, out, n, HAS_B=b is not a, BLOCK=BLOCK)
    return out


class SiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _launch(x.detach())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x.float())
        return (grad.float() * s * (1 + x.float() * (1 - s))).to(x.dtype)


class SiLUMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _launch(a.detach(), b.detach())

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        af, g = a.float(), grad.float()
        s = torch.sigmoid(af)
        silu = af * s
        return (g * b.float() * s * (1 + af * (1 - s))).to(a.dtype), (g * silu).to(b.dtype)


_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

triton_ex = OperatorExecutor("triton_kernels", version=triton.__version__)
register_executor(triton_ex)


def silu_checker(input, inplace=False):
    return input.device.type == "cuda" and input.dtype in _DTYPES and not inplace


triton_ex.register_implementation(ltorch.silu, execution_transform=lambda input, inplace=False: SiLU.apply(input),
                                  checker=silu_checker)


def silu_mul_meta(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError("silu_mul: a and b must have the same shape and dtype")
    return torch.empty_like(a)


silu_mul = triton_ex.register_operator("silu_mul", meta=silu_mul_meta, fn=SiLUMul.apply)


# The operator's gradient, used by thunder's backward program: the augmented forward returns the
# output and what the backward needs; the backward returns one gradient per tensor argument. While
# tracing, thunder calls the augmented forward on meta tensors to learn the residuals' shapes (so
# _launch returns early for them; a `residual_meta` function can be given instead).
def silu_mul_augmented_forward(a, b):
    return _launch(a, b), (a, b)


def silu_mul_backward(a, b, grad):
    return SiLUMul.backward(_Saved(a, b), grad)


class _Saved:
    def __init__(self, *tensors):
        self.saved_tensors = tensors


triton_ex.register_implementation(silu_mul, silu_mul,
                                  grad_transform=(silu_mul_augmented_forward, silu_mul_backward))


def swiglu(x, w_gate, w_up, w_down):
    return silu_mul(x @ w_gate, x @ w_up) @ w_down


def reference(x, w_gate, w_up, w_down):
    return (torch.nn.functional.silu(x @ w_gate) * (x @ w_up)) @ w_down


def main(dtype=torch.float32):
    torch.manual_seed(0)
    make = lambda *s: (torch.randn(*s, device="cuda", dtype=dtype) / s[0] ** 0.5).requires_grad_()  # noqa: E731
    args = [make(64, 128), make(128, 256), make(128, 256), make(256, 128)]
    ref_args = [a.detach().clone().requires_grad_() for a in args]
    tol = {} if dtype is torch.float32 else {"rtol": 2e-2, "atol": 2e-2}

    jswiglu = thunder.jit(swiglu, executors=[triton_ex, *thunder.get_default_executors()])
    out = jswiglu(*args)
    expected = reference(*ref_args)
    torch.testing.assert_close(out, expected, **tol)
    out.float().square().sum().backward()
    expected.float().square().sum().backward()
    for got, want in zip(args, ref_args):
        torch.testing.assert_close(got.grad, want.grad, **tol)
    # Training: the forward runs the operator's augmented forward, the backward its backward.
    trace = str(thunder.last_traces(jswiglu)[-1])
    assert "silu_mul_augmented_forward(" in trace, trace
    assert "silu_mul_backward(" in str(thunder.last_backward_traces(jswiglu)[-1])
    with torch.no_grad():  # inference: the operator itself
        jswiglu(*args)
    trace = str(thunder.last_traces(jswiglu)[-1])
    assert "triton_kernels.silu_mul(" in trace, trace

    jsilu = thunder.jit(lambda x: torch.nn.functional.silu(x) * 2,
                        executors=[triton_ex, *thunder.get_default_executors()])
    x = make(1000, 33)
    torch.testing.assert_close(jsilu(x), torch.nn.functional.silu(x) * 2, **tol)
    silu_trace = str(thunder.last_traces(jsilu)[-1])
    assert "triton_kernels.silu(" in silu_trace, silu_trace
    print(trace)
    print("The Triton kernels ran as triton_kernels.silu_mul and triton_kernels.silu; values and "
          "gradients match eager.")
    return trace


if __name__ == "__main__":
    main()
