"""group_norm and batch_norm on the GPU: thunder's fused kernels next to eager PyTorch and torch.compile
on the same inputs in the same run, and to a device-to-device copy of the same bytes.

group_norm's rows (and those of silu(group_norm) and silu(group_norm(x + temb)), as diffusion UNets use
them) are image batches (n, c, h, w) with 32 groups, as in diffusion UNets: many groups
of a few thousand elements, and few groups of tens of thousands (one long row each). batch_norm's
are training steps of F.batch_norm without running statistics and of nn.BatchNorm2d, which updates
its running statistics in place at each call (the weight and bias gradients are sums over the
samples and the spatial dims of each channel). "fwd" is the forward
(counted as reading x and writing y); "fwd+bwd" a training step, `group_norm(x, 32, w, b).backward(g)`
(counted as 5 passes over x's bytes: x read and y written, then g and x read and x's gradient
written). "whole" is the call timed by triton's do_bench (L2 cleared before each call, the host's
per-call work included); "kernels" the device time of the call's kernels from torch.profiler (L2
cleared before each call). Ratios are to a copy's bandwidth over the same bytes. Values and
gradients are checked against eager before any timing. With --channels-last, x and its gradient are
channels_last tensors (as a CNN trained in that memory format feeds them), and the shapes include a
ResNet stem's (32 x 64 x 112 x 112).

    python benchmarks/image_norm_gpu.py [--no-compile] [--channels-last] [--label NAME] [--out image_norm_gpu.json]
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch
import torch.nn.functional as F
from fusion_gpu import bench, copy_bandwidth, kernel_time, row_benchmark_args

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder

SHAPES = [(8, 256, 64, 64), (32, 128, 32, 32), (2, 512, 64, 64), (1, 320, 64, 64)]
BN_SHAPES = [(32, 64, 64, 64), (64, 256, 16, 16)]
GROUPS = 32


def group_norm(x, w, b):
    return F.group_norm(x, GROUPS, w, b)


def group_norm_silu(x, w, b):
    return F.silu(F.group_norm(x, GROUPS, w, b))


def temb_group_norm_silu(x, w, b, temb):
    """A diffusion UNet's resnet block between its convolutions: the time embedding added per sample
    and channel, then group_norm and silu."""
    return F.silu(F.group_norm(x + temb, GROUPS, w, b))


def batch_norm_train(x, w, b):
    return F.batch_norm(x, None, None, w, b, training=True)


def batch_norm_module(channels, dtype):
    """nn.BatchNorm2d in training: its running statistics updated in place at each call."""
    m = torch.nn.BatchNorm2d(channels).to("cuda", dtype)
    m.__name__ = "BatchNorm2d"
    return m


def batch_norm_relu_module(channels, dtype):
    """nn.BatchNorm2d and a ReLU in training, as a ResNet's blocks run them."""
    m = torch.nn.Sequential(torch.nn.BatchNorm2d(channels), torch.nn.ReLU()).to("cuda", dtype)
    m.__name__ = "BatchNorm2d+ReLU"
    return m


def step_of(fn):
    def step(*args):
        *inputs, g = args
        for t in inputs:
            t.grad = None
        fn(*inputs).backward(g)
        return tuple(t.grad for t in inputs)
    return step


def check(got, want, dtype):
    tol = {} if dtype == torch.float32 else {"atol": 5e-2, "rtol": 2e-2}
    for a, e in zip(got, want):
        scale = max(e.abs().max().item(), 1.0)
        torch.testing.assert_close(a, e, atol=tol.get("atol", 1e-4) * scale, rtol=tol.get("rtol", 1e-4))


def make_calls(fn, op, inputs, g, use_compile, dtype):
    """thunder's jitted fn and the calls timed (thunder, eager, torch.compile) of the forward or
    the training step, checked against eager first."""
    jfn = thunder.jit(fn)
    cfn = None
    if use_compile:
        torch._dynamo.reset()  # each row its own compile (rows share the functions' code)
        cfn = torch.compile(fn)
    if op == "fwd":
        calls = {"thunder": lambda: jfn(*inputs), "eager": lambda: fn(*inputs)}
        if cfn is not None:
            calls["compile"] = lambda: cfn(*inputs)
        with torch.no_grad():
            check((calls["thunder"](),), (calls["eager"](),), dtype)
        return jfn, calls

    def leaf():
        return tuple(t.detach().clone().requires_grad_() for t in inputs)

    ins_t, ins_e, ins_c = leaf(), leaf(), leaf()
    calls = {"thunder": lambda: step_of(jfn)(*ins_t, g), "eager": lambda: step_of(fn)(*ins_e, g)}
    if cfn is not None:
        calls["compile"] = lambda: step_of(cfn)(*ins_c, g)
    check(calls["thunder"](), calls["eager"](), dtype)
    return jfn, calls


def main():
    args = row_benchmark_args("image_norm_gpu.json", extra=lambda ap: ap.add_argument(
        "--channels-last", action="store_true", help="x and its gradient in channels_last"))
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    bn_shapes = BN_SHAPES + ([(32, 64, 112, 112)] if args.channels_last else [])
    rows = []
    print(f"{'operation':<34} {'dtype':<9} {'thunder':>8} {'eager':>8} {'compile':>8}  "
          f"{'kern thr':>8} {'kern eag':>8}  {'thr/copy':>8} {'eag/copy':>8} {'cmp/copy':>8}  "
          f"{'kthr/copy':>9} {'keag/copy':>9} kernels")
    for dtype in [getattr(torch, d) for d in args.dtypes.split(",")]:
        for fn, shape in ([(group_norm, s) for s in SHAPES] + [(group_norm_silu, s) for s in SHAPES[:2]] +
                          [(temb_group_norm_silu, s) for s in SHAPES[:2]] +
                          [(batch_norm_train, s) for s in bn_shapes] +
                          [(batch_norm_module, s) for s in bn_shapes] +
                          [(batch_norm_relu_module, s) for s in bn_shapes]):
            if args.only and args.only not in fn.__name__:
                continue
            torch.manual_seed(0)
            x = torch.randn(shape, device="cuda", dtype=dtype).to(memory_format=fmt)
            w = torch.randn(shape[1], device="cuda", dtype=dtype)
            b = torch.randn(shape[1], device="cuda", dtype=dtype)
            g = torch.randn_like(x)  # x's memory format
            inputs = (x, w, b)
            if fn is temb_group_norm_silu:
                inputs += (torch.randn(shape[0], shape[1], 1, 1, device="cuda", dtype=dtype),)
            if fn in (batch_norm_module, batch_norm_relu_module):  # one module for every variant's calls
                fn, inputs = fn(shape[1], dtype), (x,)
            nbytes = x.numel() * x.element_size()
            for op in ("fwd", "fwd+bwd"):
                jfn, calls = make_calls(fn, op, inputs, g, not args.no_compile, dtype)
                moved = (2 if op == "fwd" else 5) * nbytes
                copy = copy_bandwidth(2 * nbytes)
                with torch.no_grad() if op == "fwd" else contextlib.nullcontext():
                    times = {k: bench(f) for k, f in calls.items()}
                    kthr, keag = kernel_time(calls["thunder"]), kernel_time(calls["eager"])
                kernels = len(thunder.last_traces(jfn)[-1].fusion_callables)
                if op != "fwd":
                    kernels = f"{kernels}+{len(thunder.last_backward_traces(jfn)[-1].fusion_callables)}"
                name = f"{fn.__name__.split('_train')[0]} {op} {'x'.join(map(str, shape))}"
                if args.channels_last:
                    name += " cl"
                row = {"operation": name, "dtype": str(dtype).split(".")[-1], "label": args.label,
                       "bytes": moved, "copy_GBps": copy / 1e9, "kernels": str(kernels),
                       "kernels_thunder_us": kthr * 1e6, "kernels_eager_us": keag * 1e6}
                for k, t in times.items():
                    row[f"{k}_us"] = t * 1e6
                    row[f"{k}_over_copy"] = moved / t / copy
                row["kernels_thunder_over_copy"] = moved / kthr / copy
                row["kernels_eager_over_copy"] = moved / keag / copy
                rows.append(row)
                cmp = row.get("compile_over_copy")
                print(f"{name:<34} {row['dtype']:<9} {row['thunder_us']:8.1f} {row['eager_us']:8.1f} "
                      f"{row.get('compile_us', float('nan')):8.1f}  {row['kernels_thunder_us']:8.1f} "
                      f"{row['kernels_eager_us']:8.1f}  {row['thunder_over_copy']:8.2f} {row['eager_over_copy']:8.2f} "
                      f"{cmp if cmp is not None else float('nan'):8.2f}  {row['kernels_thunder_over_copy']:9.2f} "
                      f"{row['kernels_eager_over_copy']:9.2f} {kernels}", flush=True)
    device = torch.cuda.get_device_name()
    with open(args.out, "w") as f:
        json.dump({"device": device, "torch": torch.__version__, "label": args.label, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
