"""Checks shared by the random-program tests (test_fusion_random*.py): a program through a fusion
executor against eager, forward values and gradients, with the failing program named."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.executors import fusionex, torchex


def seeded_inputs(seed, device, shape):
    """The generator after drawing them, and three standard-normal inputs of `shape`."""
    if device == "cpu" and not fusionex.available("cpu"):
        pytest.skip("no C++ compiler")
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (torch.randn(shape, generator=gen).to(device) for _ in range(3))
    return gen, a, b, c


def _jitted_and_eager(fn, executor, fuse_random, jit_args, eager_args):
    """fn through the executor and in eager, each after torch.manual_seed(0). With fuse_random, the
    program draws dropout's masks in its kernels and eager draws the same numbers."""
    torch.manual_seed(0)
    got = thunder.jit(fn, executors=[executor], fuse_random=fuse_random)(*jit_args)
    torch.manual_seed(0)
    with philox_dropout_reference() if fuse_random else contextlib.nullcontext():
        want = fn(*eager_args)
    return got, want


def check_forward(fn, args, device, executor, what, fuse_random=False):
    """fn(*args) through the executor against eager (see _jitted_and_eager for fuse_random)."""
    # CUDA's sinf/tanhf/expf differ from torch's kernels by an ulp or two; chains compound it.
    tol = {"rtol": 1e-5, "atol": 2e-5} if device == "cpu" else {"rtol": 1e-4, "atol": 1e-4}
    got, want = _jitted_and_eager(fn, executor, fuse_random, args, args)
    for got, want in zip(got, want):
        torch.testing.assert_close(got, want, **tol, msg=lambda m: f"{what}: {m}")


def philox_dropout(x, p=0.5, training=True, inplace=False):
    """F.dropout drawing its mask as thunder.jit(..., fuse_random=True) does: uniform_philox's numbers
    under a state from the device's generator, taken in call order."""
    if not training or p == 0.0:
        return x
    seed, offset = torchex.philox_state(device=x.device).tolist()
    keep = torchex.philox_uniform_values(tuple(x.shape), seed, offset, x.device) < 1 - p
    return torch.where(keep, x * (1 / (1 - p)), 0.0)


@contextlib.contextmanager
def philox_dropout_reference():
    """Eager code run inside draws F.dropout's masks as fused_random programs do."""
    saved = F.dropout
    F.dropout = philox_dropout
    try:
        yield
    finally:
        F.dropout = saved


def check_gradients(loss, inputs, executor, what, fuse_random=False):
    """loss(*inputs) and its gradients through the executor against eager's (see _jitted_and_eager
    for fuse_random)."""
    ta = [t.clone().requires_grad_() for t in inputs]
    ea = [t.clone().requires_grad_() for t in inputs]
    got, want = _jitted_and_eager(loss, executor, fuse_random, ta, ea)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    if not want.requires_grad:
        return
    got.backward()
    want.backward()
    for x, y in zip(ta, ea):
        if y.grad is None:
            assert x.grad is None or not x.grad.any()
            continue
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-4, msg=lambda m: f"{what}: {m}")
