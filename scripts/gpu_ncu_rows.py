"""One fused row-kernel call over 2048 rows of the given width and dtype, for Nsight Compute (the kernel
thunder_rows_* of the last call): softmax, or the cross-entropy forward of the benchmark
(`F.cross_entropy(x.float(), y)`), or layer_norm's training step (`layer_norm`: its backward row kernel
is thunder_rows_sum). Usage: python3 scripts/gpu_ncu_rows.py 50304 bfloat16 [cross_entropy | layer_norm]"""
import sys

import torch
import torch.nn.functional as F

import thunder

width, dtype = int(sys.argv[1]), getattr(torch, sys.argv[2])
op = sys.argv[3] if len(sys.argv) > 3 else "softmax"
x = torch.randn(2048, width, device="cuda", dtype=dtype)
y = torch.randint(0, width, (2048,), device="cuda")
if op == "softmax":
    f, args = thunder.jit(lambda t: torch.softmax(t, -1)), (x,)
elif op == "cross_entropy":
    f, args = thunder.jit(lambda t, i: F.cross_entropy(t.float(), i)), (x, y)
elif op == "layer_norm":
    x.requires_grad_()
    w = torch.randn(width, device="cuda", dtype=dtype, requires_grad=True)
    b = torch.randn(width, device="cuda", dtype=dtype, requires_grad=True)
    g = torch.randn_like(x)
    ln = thunder.jit(lambda t, w, b: F.layer_norm(t, (width,), w, b))
    f, args = (lambda t, w, b, g: ln(t, w, b).backward(g)), (x, w, b, g)
else:
    raise SystemExit(f"unknown operation {op!r}: softmax, cross_entropy or layer_norm")
for _ in range(3):
    f(*args)
torch.cuda.synchronize()
