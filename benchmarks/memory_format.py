"""nn.BatchNorm2d + ReLU training steps on channels_last and contiguous (NCHW) inputs: eager and thunder
(default executors) side by side in one process, on the CPU or the GPU. A step is the module's forward
(running statistics updated) and its backward for a fixed gradient of x's memory format; steps of the
two variants alternate, the figure is the median of `--repeats` steps (the GPU's synchronised around
each). Values and gradients are checked against eager before timing. Writes --out (JSON).

    python benchmarks/memory_format.py [--device cpu] [--repeats 9] [--out memory_format.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch
from torch import nn

import thunder

SHAPES = [(16, 64, 56, 56), (32, 128, 28, 28)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default="memory_format.json")
    args = ap.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    rows = []
    print(f"{'shape':<18} {'format':<15} {'eager ms':>9} {'thunder ms':>11} {'thunder/eager':>14}")
    for shape in SHAPES:
        for fmt_name, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
            torch.manual_seed(0)
            eager = nn.Sequential(nn.BatchNorm2d(shape[1]), nn.ReLU()).to(dev)
            jitted = thunder.jit(nn.Sequential(nn.BatchNorm2d(shape[1]), nn.ReLU()).to(dev))
            x = torch.randn(shape, device=dev).to(memory_format=fmt).requires_grad_()
            g = torch.randn(shape, device=dev).to(memory_format=fmt)

            def step(mod, x=x, g=g):
                x.grad = None
                y = mod(x)
                y.backward(g)
                return y, x.grad

            (ye, ge), (yt, gt) = step(eager), step(jitted)
            torch.testing.assert_close(yt, ye)
            torch.testing.assert_close(gt, ge, atol=5e-3, rtol=5e-3)  # sums over n * h * w rows
            times = {"eager": [], "thunder": []}
            for _ in range(2):
                step(eager), step(jitted)
            for _ in range(args.repeats):
                for name, mod in (("eager", eager), ("thunder", jitted)):
                    sync()
                    t0 = time.perf_counter()
                    step(mod)
                    sync()
                    times[name].append(time.perf_counter() - t0)
            e, t = statistics.median(times["eager"]), statistics.median(times["thunder"])
            rows.append({"shape": list(shape), "format": fmt_name, "eager_ms": e * 1e3, "thunder_ms": t * 1e3,
                         "thunder_over_eager": t / e})
            print(f"{'x'.join(map(str, shape)):<18} {fmt_name:<15} {e * 1e3:9.2f} {t * 1e3:11.2f} {t / e:14.2f}",
                  flush=True)
    with open(args.out, "w") as f:
        json.dump({"device": dev, "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows,
                   "date": time.strftime("%Y-%m-%d %H:%M")}, f, indent=1)


if __name__ == "__main__":
    main()
