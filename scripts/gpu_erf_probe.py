"""The bf16 gelu chain (gelu(x*w+b)*0.5+x, 8192x4096) written in triton with three erf formulations and
without erf, with and without eager's bf16 roundings between the operations: how much of the chain's
time its erf takes, and what a cheaper erf would give. An experiment beside thunder's kernels (these
kernels are not thunder's); run on the GPU machine:
    python3 scripts/gpu_erf_probe.py"""
import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from fusion_gpu import bench, copy_bandwidth

try:
    from triton.language.extra import libdevice
except ImportError:
    from triton.language.extra.cuda import libdevice

@triton.jit
def chain(X, W, B, Y, n, cols, MODE: tl.constexpr, ROUND: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(X + offs, mask=m).to(tl.float32)
    w = tl.load(W + offs % cols, mask=m).to(tl.float32)
    b = tl.load(B + offs % cols, mask=m).to(tl.float32)
    t = x * w
    if ROUND:
        t = t.to(tl.bfloat16).to(tl.float32)
    t = t + b
    if ROUND:
        t = t.to(tl.bfloat16).to(tl.float32)
    u = t * 0.7071067811865476
    if MODE == 0:
        e = libdevice.erf(u)
    elif MODE == 1:
        a = tl.abs(u)
        k = 1.0 / (1.0 + 0.3275911 * a)
        p = ((((1.061405429 * k - 1.453152027) * k + 1.421413741) * k - 0.284496736) * k + 0.254829592) * k
        r = 1.0 - p * tl.exp2(-a * a * 1.4426950408889634)
        e = tl.where(u < 0, -r, r)
    elif MODE == 2:
        a = tl.abs(u)
        s = u * u
        # The cost of an accurate branch-free erf: two polynomials (degree 6 and 9), both evaluated, and
        # an exponential. Placeholder coefficients: its values are not erf's (a cost model only).
        p1 = ((((((-0.0001 * s + 0.001) * s - 0.005) * s + 0.02) * s - 0.07) * s + 0.2) * s - 0.37) * s + 1.128
        q = (((((((((0.00001 * a - 0.0002) * a + 0.001) * a - 0.006) * a + 0.02) * a - 0.05) * a + 0.1) * a - 0.2) * a - 0.6) * a - 0.1) * a
        r2 = 1.0 - tl.exp2(q)
        r = tl.where(a < 0.92, u * p1, tl.where(u < 0, -r2, r2))
        e = r
    else:
        e = u
    g = t * 0.5 * (1.0 + e)
    if ROUND:
        g = g.to(tl.bfloat16).to(tl.float32)
    g = g * 0.5
    if ROUND:
        g = g.to(tl.bfloat16).to(tl.float32)
    tl.store(Y + offs, (g + x).to(tl.bfloat16), mask=m)

x = torch.randn(8192, 4096, device="cuda", dtype=torch.bfloat16)
w = torch.randn(4096, device="cuda", dtype=torch.bfloat16); b = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
n = x.numel(); nbytes = 2 * n * 2
ref = torch.nn.functional.gelu(x * w + b) * 0.5 + x
for mode, mname in ((0, "libdevice erf"), (1, "A&S 7.1.26 erf"), (2, "two-range 2-ulp-cost erf"), (3, "no erf")):
    for rnd in (1, 0):
        for block in (1024, 2048):
            def f(mode=mode, rnd=rnd, block=block):
                chain[(triton.cdiv(n, block),)](x, w, b, y, n, 4096, MODE=mode, ROUND=rnd, BLOCK=block)
            f(); torch.cuda.synchronize()
            t = bench(f)
            err = (y.float() - ref.float()).abs().max().item()
            print(f"triton bf16 chain {mname:26s} roundings={rnd} block={block}: {t*1e6:7.1f} us {nbytes / t / copy_bandwidth(nbytes):.2f} of copy, max diff vs eager {err:.3g}", flush=True)
