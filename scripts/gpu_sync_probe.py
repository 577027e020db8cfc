"""Whether a jitted call waits for the GPU, and its time with the host kept ahead: each call is made
while the GPU is still busy with a long sleep kernel. A call that returns in about the sleep's time
waits for the device (a synchronizing driver call or copy); one that returns in microseconds does
not. Then, with the host ahead (the sleep queued first), the time between events around the call
is its device time alone, against do_bench's figure (L2 flush, events, the call). Run on the GPU
machine after building:
    python3 scripts/gpu_sync_probe.py"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import thunder  # noqa: E402
from fusion_gpu import bench  # noqa: E402


def cases():
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(2048, 4096, device="cuda", dtype=dt)
        y = torch.randint(0, 4096, (2048,), device="cuda")
        ce = lambda a, b: F.cross_entropy(a.float(), b)  # noqa: E731
        name = str(dt).replace("torch.", "")
        yield f"cross_entropy fwd 2048x4096 {name}", ce, (x, y)
        yield f"softmax 2048x4096 {name}", lambda a: torch.softmax(a, -1), (x,)
        yield f"x * 2 2048x4096 {name}", lambda a: a * 2, (x,)


def main():
    cycles = int(2e6)  # about 1 ms at the H200's clock
    torch.cuda._sleep(cycles)
    torch.cuda.synchronize()
    t = time.perf_counter()
    torch.cuda._sleep(cycles)
    torch.cuda.synchronize()
    sleep_us = (time.perf_counter() - t) * 1e6
    print(f"sleep kernel: {sleep_us:.0f} us")
    print(f"{'call':40s} {'who':8s} {'host us, GPU busy':>18s} {'events, host ahead':>19s} {'do_bench':>9s}")
    for name, fn, args in cases():
        for who, f in (("eager", fn), ("thunder", thunder.jit(fn))):
            for _ in range(5):
                f(*args)
            torch.cuda.synchronize()
            host, dev = [], []
            for _ in range(20):
                torch.cuda._sleep(cycles)
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                t = time.perf_counter()
                s.record()
                f(*args)
                e.record()
                host.append((time.perf_counter() - t) * 1e6)
                torch.cuda.synchronize()
                dev.append(s.elapsed_time(e) * 1e3)
            host.sort()
            dev.sort()
            whole = bench(lambda f=f, a=args: f(*a)) * 1e6
            print(f"{name:40s} {who:8s} {host[10]:18.1f} {dev[10]:19.1f} {whole:9.1f}", flush=True)


if __name__ == "__main__":
    main()
