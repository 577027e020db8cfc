"""How the L2 clearing before each timed call weighs on a kernel that only reads (cross-entropy's
forward at 2048x4096, or another width), against a copy and read-only ATen reductions of the same bytes. triton's
do_bench clears L2 by zeroing 256 MB, which leaves L2 full of dirty lines: a kernel's first reads
then also write those lines back. Each call is timed three ways: after that zeroing (do_bench's
own), after reading 256 MB (L2 left full of clean lines), and with its inputs in L2 (no clearing; the
GPU then waits for the host between calls, so that column is the host's time for small calls).
Each call's bandwidth is then set against the copy's as benchmarks/fusion_gpu.py counts it (the bytes
read once and written once). Run on the GPU machine after building:
    python3 scripts/gpu_flush_probe.py [width]"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder  # noqa: E402


def timed(fn, clear, reps=200):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        clear()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        ts.append((s, e))
    torch.cuda.synchronize()
    us = sorted(s.elapsed_time(e) * 1e3 for s, e in ts)
    return us[len(us) // 2]


def calls(dt, width):
    x = torch.randn(2048, width, device="cuda", dtype=dt)
    y = torch.randint(0, width, (2048,), device="cuda")
    dst = torch.empty_like(x)
    ce = thunder.jit(lambda a, b: F.cross_entropy(a.float(), b))
    sm = thunder.jit(lambda a: torch.softmax(a, -1))
    return {"copy x (read and write)": lambda: dst.copy_(x),
            "eager x.amax(-1) (read)": lambda: x.amax(-1),
            "eager x.sum() (read)": lambda: x.sum(),
            "thunder cross_entropy fwd (read)": lambda: ce(x, y),
            "thunder softmax (read and write)": lambda: sm(x)}


def main():
    width = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    flush = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    sink = torch.empty((), dtype=torch.int64, device="cuda")
    clears = {"zeroed (do_bench)": flush.zero_, "read 256 MB": lambda: torch.sum(flush, (0,), out=sink),
              "none": lambda: None}
    print(f"2048 x {width}")
    print(f"{'call':44s}" + "".join(f"{c:>20s}" for c in clears) + "   (us, median; then of a copy's bandwidth)")
    for dt in (torch.float32, torch.bfloat16):
        name = str(dt).replace("torch.", "")
        times = {cname: [timed(fn, c) for c in clears.values()] for cname, fn in calls(dt, width).items()}
        copy = times["copy x (read and write)"]
        for cname, row in times.items():
            print(f"{cname + ' ' + name:44s}" + "".join(f"{t:20.1f}" for t in row), flush=True)
        for cname, row in times.items():
            moved = 2 if "read and write" in cname else 1  # x's bytes, as fusion_gpu.py counts them
            print(f"{'  ' + cname + ' ' + name:44s}" + "".join(f"{moved * c / (2 * t):20.2f}" for c, t in zip(copy, row)))


if __name__ == "__main__":
    main()
