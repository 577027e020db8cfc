"""One fused softmax call over rows of the given width and dtype (under Nsight Compute: the kernel
thunder_rows_* of the last call). Usage: python3 scripts/gpu_ncu_softmax.py 50304 float32"""
import sys

import torch

import thunder

width, dtype = int(sys.argv[1]), getattr(torch, sys.argv[2])
x = torch.randn(2048, width, device="cuda", dtype=dtype)
f = thunder.jit(lambda t: torch.softmax(t, -1))
for _ in range(3):
    f(x)
torch.cuda.synchronize()
