"""Training steps of CNN and UNet pooling, upsampling and padding on the GPU: thunder next to eager PyTorch (and
torch.compile) on the same inputs in the same run.

Rows: max_pool2d as a ResNet stem uses it (kernel 3, stride 2, padding 1), after a ReLU; max_pool2d
and avg_pool2d over 2 x 2 windows; nearest upsampling by 2 as diffusion UNets' upsamplers do; reflect
padding by 1 (convolutions with padding_mode="reflect"). Each
row is a training step `fn(x).backward(g)` with g the output's shape. "whole" is the call timed by
triton's do_bench (L2 cleared before each call, the host's per-call work included); "kernels" the
device time of the call's kernels from torch.profiler (L2 cleared before each call). Values and
gradients are checked against eager before any timing.

    python benchmarks/pool_gpu.py [--no-compile] [--dtypes float32,bfloat16] [--label NAME] [--out pool_gpu.json]
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch
import torch.nn.functional as F
from fusion_gpu import bench, kernel_time, row_benchmark_args

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder


def relu_max_pool_stem(x):
    return F.max_pool2d(F.relu(x), 3, 2, 1)


def max_pool_2x2(x):
    return F.max_pool2d(x, 2)


def avg_pool_2x2(x):
    return F.avg_pool2d(x, 2)


def upsample_nearest_2x(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def reflect_pad_1(x):
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


ROWS = [(relu_max_pool_stem, (32, 64, 112, 112)), (max_pool_2x2, (32, 128, 56, 56)),
        (avg_pool_2x2, (32, 128, 56, 56)), (upsample_nearest_2x, (8, 256, 64, 64)), (reflect_pad_1, (8, 128, 128, 128))]


def step_of(fn, x, g):
    def step():
        x.grad = None
        fn(x).backward(g)
        return x.grad
    return step


def main():
    args = row_benchmark_args("pool_gpu.json")
    rows = []
    print(f"{'step':<40} {'dtype':<9} {'thunder':>8} {'eager':>8} {'compile':>8}  {'kern thr':>8} {'kern eag':>8}  "
          f"{'whole thr/eag':>13} {'kern thr/eag':>12}")
    for dtype in [getattr(torch, d) for d in args.dtypes.split(",")]:
        for fn, shape in ROWS:
            if args.only and args.only not in fn.__name__:
                continue
            torch.manual_seed(0)
            x = torch.randn(shape, device="cuda", dtype=dtype)
            with torch.no_grad():
                g = torch.randn_like(fn(x))
            variants = {"thunder": thunder.jit(fn), "eager": fn}
            if not args.no_compile:
                torch._dynamo.reset()
                variants["compile"] = torch.compile(fn)
            calls = {k: step_of(f, x.clone().requires_grad_(), g) for k, f in variants.items()}
            want = calls["eager"]()
            tol = {} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
            for call in calls.values():
                torch.testing.assert_close(call(), want, **tol)
            times = {k: bench(f) for k, f in calls.items()}
            kthr, keag = kernel_time(calls["thunder"]), kernel_time(calls["eager"])
            name = f"{fn.__name__} fwd+bwd {'x'.join(map(str, shape))}"
            row = {"step": name, "dtype": str(dtype).split(".")[-1], "label": args.label,
                   "kernels_thunder_us": kthr * 1e6, "kernels_eager_us": keag * 1e6,
                   **{f"{k}_us": t * 1e6 for k, t in times.items()}}
            rows.append(row)
            print(f"{name:<40} {row['dtype']:<9} {row['thunder_us']:8.1f} {row['eager_us']:8.1f} "
                  f"{row.get('compile_us', float('nan')):8.1f}  {kthr * 1e6:8.1f} {keag * 1e6:8.1f}  "
                  f"{times['thunder'] / times['eager']:13.2f} {kthr / keag:12.2f}", flush=True)
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "label": args.label,
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
