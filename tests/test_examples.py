"""The examples in examples/ run and check themselves against eager (the GPU one needs CUDA and
Triton)."""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import pytest
import torch

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _example(name):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None
                    and shutil.which("clang++") is None, reason="needs a C++ compiler")
def test_custom_cpu_kernel_example(capsys):
    trace = _example("custom_cpu_kernel").main()
    assert "cpp_kernels.silu(" in trace
    assert "match eager" in capsys.readouterr().out


def _has_triton():
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not torch.cuda.is_available() or not _has_triton(), reason="needs CUDA and Triton")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_custom_triton_kernel_example(dtype):
    trace = _example("custom_triton_kernel").main(dtype)
    assert "triton_kernels.silu_mul(" in trace
