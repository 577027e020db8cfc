"""Randomly generated programs through the fusion executor against eager, on the CPU and on CUDA
where present: chains that meet, values read by several kernels (recomputed or written), reductions
with kept dims, matmuls between fused regions (symbols the fuser does not take, which regions must
not enclose), several outputs. Each program is built from a seed, so a failure names a reproducible
case."""

from __future__ import annotations

import random

import pytest
import torch

import thunder
from thunder.executors import fusionex

CUDA = torch.cuda.is_available() and fusionex.available("cuda")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs CUDA, its driver and NVRTC"))]

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("fusion_random", min_cpu_numel=0))

UNARY = [torch.sin, torch.tanh, torch.sigmoid, lambda t: t * 0.5 + 0.25, torch.abs, torch.neg]
BINARY = [torch.add, torch.mul, torch.sub, torch.maximum, lambda a, b: torch.where(a > b, a, b * 0.5)]


def _program(seed):
    rng = random.Random(seed)
    steps = []
    n_values = 3  # the inputs a, b, c
    for _ in range(rng.randint(4, 14)):
        kind = rng.choice(["unary", "unary", "binary", "binary", "binary", "reduce", "matmul"])
        if kind == "unary":
            steps.append(("unary", rng.randrange(len(UNARY)), rng.randrange(n_values)))
        elif kind == "binary":
            steps.append(("binary", rng.randrange(len(BINARY)), rng.randrange(n_values), rng.randrange(n_values)))
        elif kind == "reduce":
            steps.append(("reduce", rng.choice(["sum", "amax", "mean"]), rng.randrange(n_values), rng.choice([0, 1])))
        else:
            steps.append(("matmul", rng.randrange(n_values)))
        n_values += 1
    outs = sorted({rng.randrange(3, n_values) for _ in range(rng.randint(1, 3))})
    return steps, outs


def _run(steps, outs, a, b, c, w):
    vals = [a, b, c]
    for s in steps:
        if s[0] == "unary":
            vals.append(UNARY[s[1]](vals[s[2]]))
        elif s[0] == "binary":
            vals.append(BINARY[s[1]](vals[s[2]], vals[s[3]]))
        elif s[0] == "reduce":
            x = vals[s[2]]
            r = getattr(x, s[1])(s[3], keepdim=True)
            vals.append(torch.tanh(x - r))  # broadcast back, bounded
        else:
            vals.append(torch.tanh(vals[s[1]] @ w))
    return tuple(vals[i] for i in outs)


# Square values too: dims of equal sizes in different roles (a row and a column reduction of one
# value) must never be iterated as one.
SHAPES = [(48, 64), (40, 40)]


def _inputs(seed, device, shape):
    if device == "cpu" and not fusionex.available("cpu"):
        pytest.skip("no C++ compiler")
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (torch.randn(shape, generator=gen).to(device) for _ in range(3))
    w = (torch.randn(shape[1], shape[1], generator=gen) / 8).to(device)
    return gen, a, b, c, w


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(40))
def test_random_program_matches_eager(seed, device, shape):
    steps, outs = _program(seed)
    _, a, b, c, w = _inputs(seed, device, shape)

    def fn(a, b, c):
        return _run(steps, outs, a, b, c, w)

    jfn = thunder.jit(fn, executors=[FUSE_ALL])
    for got, want in zip(jfn(a, b, c), fn(a, b, c)):
        # CUDA's sinf/tanhf/expf differ from torch's kernels by an ulp or two; chains compound it.
        tol = dict(rtol=1e-5, atol=2e-5) if device == "cpu" else dict(rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got, want, **tol, msg=lambda m: f"seed {seed}, {steps}, {outs}: {m}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(20))
def test_random_program_gradients_match_eager(seed, device, shape):
    # The same programs differentiated: their backward programs are fused too.
    steps, outs = _program(1000 + seed)
    gen, a, b, c, w = _inputs(seed, device, shape)
    cots = [torch.randn(shape, generator=gen).to(device) for _ in outs]

    def loss(a, b, c):
        return sum((o * g).sum() for o, g in zip(_run(steps, outs, a, b, c, w), cots))

    ta = [t.clone().requires_grad_() for t in (a, b, c)]
    ea = [t.clone().requires_grad_() for t in (a, b, c)]
    jl = thunder.jit(loss, executors=[FUSE_ALL])
    got, want = jl(*ta), loss(*ea)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    if not want.requires_grad:
        return
    got.backward()
    want.backward()
    for x, y in zip(ta, ea):
        if y.grad is None:
            assert x.grad is None or not x.grad.any()
            continue
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"seed {seed}, {steps}, {outs}: {m}")
