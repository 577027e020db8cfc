"""Host time per call of small jitted calls on CUDA against eager (cross-entropy forward and softmax
of 64x512 fp32, y * 2 of 64 int64 values, no grad): the best of three loops of 3000 calls each, so
the host's per-call work (guards, output allocation, launch) sets the figure, not the kernels. Run on
the GPU machine after building:
    python3 scripts/gpu_host_probe.py"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder  # noqa: E402


def host_us(f, n=3000):
    for _ in range(50):
        f()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            f()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def main():
    x = torch.randn(64, 512, device="cuda")
    y = torch.randint(0, 512, (64,), device="cuda")
    ce = lambda a, b: F.cross_entropy(a, b)  # noqa: E731
    sm = lambda a: torch.softmax(a, -1)  # noqa: E731
    mul = lambda a: a * 2  # noqa: E731
    with torch.no_grad():
        jce, jsm, jmul = thunder.jit(ce), thunder.jit(sm), thunder.jit(mul)
        calls = {"cross_entropy fwd 64x512": (ce, jce, (x, y)), "softmax 64x512": (sm, jsm, (x,)),
                 "y * 2 (64 int64)": (mul, jmul, (y,))}
        print(f"{'call':28s} {'eager us':>9s} {'thunder us':>11s}")
        for name, (fn, jfn, args) in calls.items():
            e = host_us(lambda fn=fn, args=args: fn(*args))
            t = host_us(lambda jfn=jfn, args=args: jfn(*args))
            print(f"{name:28s} {e:9.2f} {t:11.2f}", flush=True)


if __name__ == "__main__":
    main()
