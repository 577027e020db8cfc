"""A custom C++ CPU kernel claimed for an operation, through thunder.extend.

The kernel (SiLU, x * sigmoid(x), for contiguous float32 tensors) is C++ compiled with the system
compiler into a shared library and called through ctypes on the tensors' data pointers. An
OperatorExecutor claims `thunder.torch.silu` wherever its checker accepts the call (float32 on the
CPU); everything else stays with the torch executor. A torch.autograd.Function gives the kernel its
gradient.

    python examples/custom_cpu_kernel.py
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import torch

import thunder
import thunder.torch as ltorch
from thunder.extend import OperatorExecutor, register_executor

KERNEL = r"""
#include <cmath>
#include <cstdint>

extern "C" void silu_f32(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    out[i] = v / (1.0f + std::exp(-v));
  }
}
"""


def build_kernel() -> ctypes.CDLL:
    """Compiles KERNEL once (cached by its hash in the temp directory) and loads it."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found")
    digest = hashlib.sha256(KERNEL.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"thunder_example_silu_{digest}.so")
    if not os.path.exists(path):
        src = path[:-3] + ".cpp"
        with open(src, "w") as f:
            f.write(KERNEL)
        tmp = f"{path}.{os.getpid()}"
        subprocess.run([compiler, "-O3", "-shared", "-fPIC", src, "-o", tmp], check=True)
        os.replace(tmp, path)  # atomic: concurrent builds never load a half-written library
    lib = ctypes.CDLL(path)
    lib.silu_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.silu_f32.restype = None
    return lib


_lib = None


def silu_kernel(x: torch.Tensor) -> torch.Tensor:
    global _lib
    if _lib is None:
        _lib = build_kernel()
    x = x.contiguous()
    out = torch.empty_like(x)
    _lib.silu_f32(x.data_ptr(), out.data_ptr(), x.numel())
    return out


class SiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return silu_kernel(x.detach())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * s * (1 + x * (1 - s))


def silu_impl(input, inplace=False):
    return SiLU.apply(input)


def silu_checker(input, inplace=False):
    return input.device.type == "cpu" and input.dtype == torch.float32 and not inplace


cpu_ex = OperatorExecutor("cpp_kernels", version="0.1")
register_executor(cpu_ex)
cpu_ex.register_implementation(ltorch.silu, execution_transform=silu_impl, checker=silu_checker)


def mlp(x, w1, w2):
    return torch.nn.functional.silu(x @ w1) @ w2


def main():
    torch.manual_seed(0)
    x = torch.randn(16, 32, requires_grad=True)
    w1 = torch.randn(32, 64, requires_grad=True)
    w2 = torch.randn(64, 8, requires_grad=True)
    jmlp = thunder.jit(mlp, executors=[cpu_ex, *thunder.get_default_executors()])
    out = jmlp(x, w1, w2)
    ref_inputs = [t.detach().clone().requires_grad_() for t in (x, w1, w2)]
    expected = mlp(*ref_inputs)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    for got, want in zip((x, w1, w2), ref_inputs):
        torch.testing.assert_close(got.grad, want.grad)
    trace = str(thunder.last_traces(jmlp)[-1])
    assert "cpp_kernels.silu(" in trace, trace
    print(trace)
    print("The C++ kernel ran as cpp_kernels.silu; values and gradients match eager.")
    return trace


if __name__ == "__main__":
    main()
