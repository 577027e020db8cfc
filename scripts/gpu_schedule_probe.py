"""Schedule probes on CUDA: the same operation under different schedules or formulations, timed side
by side in one process (bandwidth over a device-to-device copy's, bytes read once + written once).
  - wide rows kept in shared memory (the default where they fit) against rows read through L2 once
    per pass (THUNDER_CUDA_SMEM_LIMIT=49152), for softmax and the cross-entropy forward;
  - the bf16 pointwise chain with eager's roundings against the same chain computed in fp32
    throughout, and without its erf: how much of its time is arithmetic; chains with a clamp,
    hardtanh or relu in place of the gelu;
  - with --ce-forward, the cross-entropy forward's whole call, kernels and host time per call;
  - with --kernels, the device time of each kernel of a few training steps (thunder's kernels are
    named after their schedule and operations), thunder beside eager;
  - with --gelu-backward, GPT-2's gelu backward as one column kernel against a pointwise kernel and
    a column sum (device time, registers);
  - with --column-sums, layer_norm's and rms_norm's training steps with their weight and bias
    gradients summed in the input gradient's row kernel (blocks of 256 or 512 threads) against a
    column kernel of their own, or with their accumulators in shared memory (blocks of 512 or
    1024 threads), beside eager (PROBE_COLUMN_VARIANTS picks variants by name,
    PROBE_PTXAS=1 prints the backward kernels' registers);
  - with --outer, column kernels over ResNet-18's channels_last activations at batch 128 (a column
    sum, a variance about given means, batch_norm's two backward sums; rows x channels) and
    channels_last batch_norm's forward and training step, under the variables of the column
    kernels whose rows split over blocks (PROBE_OUTER_VARIANTS picks variants by name), beside
    eager: device time with L2 cleared, bandwidth over a copy's;
  - with --warp-rows, the device time of row kernels (layer_norm's forward and backward as under
    bf16 autocast, a bf16 softmax) over 8192 rows of GPT-like widths, with rows of up to 4, 8, 16
    and 32 chunks a lane on a warp each (THUNDER_CUDA_WARP_ROW_CHUNKS), beside eager.
Run on the GPU machine after building:
  python3 scripts/gpu_schedule_probe.py [--pointwise-only | --kernels | --ce-forward | --warp-rows |
      --gelu-backward | --column-sums | --outer] [--out probe.json]"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from fusion_gpu import (
    bench,
    copy_bandwidth,
    cross_entropy,
    gelu_chain,
    kernel_time,
    layer_norm,
    softmax,
    training_step,
)

import thunder
from thunder.executors import fusionex

_executors = {}


def jit_with(fn, env):
    """fn jitted through an executor of its own for the variables in `env` (set while the caller
    makes the first calls, which build the kernels): a region fused again by the same executor
    reuses its kernel."""
    key = tuple(sorted(env.items()))
    if key not in _executors:
        _executors[key] = thunder.extend.register_executor(
            fusionex.ThunderFusionExecutor(f"probe{len(_executors)}"))
    return thunder.jit(fn, executors=[_executors[key]])


def ptxas_log(src, width=200):
    """ptxas's register and spill lines for CUDA source `src` compiled for sm_90."""
    os.environ["THUNDER_NVRTC_FLAGS"] = "--ptxas-options=-v"
    try:
        _, log, _ = thunder._core.fuser_nvrtc_compile(src, 90)
        lines = [line.split("ptxas info    : ")[-1] for line in log.splitlines()
                 if "Used" in line or "spill" in line]
        return " ".join(lines)[:width] if lines else f"(no register lines; log: {log[:200]!r})"
    finally:
        os.environ.pop("THUNDER_NVRTC_FLAGS", None)


def ptxas_info(jfn, smem_limit=227 * 1024, width=200):
    """ptxas's register and spill lines for each fused kernel of jfn's last program, compiled for
    sm_90 with `smem_limit` bytes of shared memory a block (an H100's or H200's by default)."""
    return [ptxas_log(thunder._core.fuser_cuda_source(k, smem_limit)[0], width)
            for k in fusionex.fusion_kernels(jfn)]


def probe(name, fn, args, nbytes, env=None, ptxas=False):
    """Times fn jitted with the variables in `env` set while its kernels are generated (jit_with)."""
    env = env or {}
    os.environ.update(env)
    try:
        jfn = jit_with(fn, env)
        jfn(*args)  # kernels are built here, with the variables in force
        regs = ""
        if ptxas:
            limit = int(env.get("THUNDER_CUDA_SMEM_LIMIT", 227 * 1024))
            regs = "".join(" | " + info for info in ptxas_info(jfn, limit))
    finally:
        for k in env:
            os.environ.pop(k, None)
    t = bench(lambda: jfn(*args))
    ratio = nbytes / t / copy_bandwidth(nbytes)
    print(f"{name:58s} {t * 1e6:9.1f} us {ratio:6.2f} of copy{regs}", flush=True)
    return {"name": name, "us": t * 1e6, "vs_copy": ratio, "ptxas": regs}


ROW_VARIANTS = {
    "": {},
    "rows through L2": {"THUNDER_CUDA_SMEM_LIMIT": "49152"},
}


def kernel_table(name, fn, args, n=10):
    """Per kernel name: device microseconds per call of fn, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn(*args)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn(*args)
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = (getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)) / n
        if us > 0:
            rows.append({"step": name, "kernel": e.key, "us": us, "calls": e.count / n})
    rows.sort(key=lambda r: -r["us"])
    print(f"{name}: {sum(r['us'] for r in rows):.1f} us of device time per call", flush=True)
    for r in rows[:8]:
        print(f"  {r['us']:8.1f} us {r['calls']:4.1f}x  {r['kernel'][:110]}", flush=True)
    return rows


def kernels():
    rows = []
    for dt in (torch.float32, torch.bfloat16):
        for width in (4096, 50304):
            x = torch.randn(2048, width, device="cuda", dtype=dt, requires_grad=True)
            y = torch.randint(0, width, (2048,), device="cuda")
            for who, f in (("thunder", thunder.jit(cross_entropy)), ("eager", cross_entropy)):
                rows += kernel_table(f"{who} cross_entropy fwd+bwd 2048x{width} {dt}",
                                     training_step(f, cotangent=False), (x, y))
        x = torch.randn(2048, 50304, device="cuda", dtype=dt)
        for who, f in (("thunder", thunder.jit(softmax)), ("eager", softmax)):
            rows += kernel_table(f"{who} softmax 2048x50304 {dt}", f, (x,))
        x = torch.randn(8192, 4096, device="cuda", dtype=dt, requires_grad=True)
        w = torch.randn(4096, device="cuda", dtype=dt, requires_grad=True)
        b = torch.randn(4096, device="cuda", dtype=dt, requires_grad=True)
        g = torch.randn(8192, 4096, device="cuda", dtype=dt)
        for who, f in (("thunder", thunder.jit(layer_norm)), ("eager", layer_norm)):
            rows += kernel_table(f"{who} layer_norm fwd+bwd 8192x4096 {dt}", training_step(f, cotangent=True),
                                 (x, w, b, g))
    return rows


def warp_rows():
    rows = []

    def ln_bf16_out(x, w, b):  # layer_norm in fp32 under autocast; the next matmul reads bf16
        return F.layer_norm(x, (x.shape[-1],), w, b).to(torch.bfloat16)

    for width in (768, 1024, 1600, 2048, 4096):
        x = torch.randn(8192, width, device="cuda", requires_grad=True)
        w = torch.randn(width, device="cuda", requires_grad=True)
        b = torch.randn(width, device="cuda", requires_grad=True)
        g = torch.randn(8192, width, device="cuda", dtype=torch.bfloat16)
        xs = torch.randn(8192, width, device="cuda", dtype=torch.bfloat16)
        for chunks in ("eager", "4", "8", "16", "32"):
            if chunks == "eager":
                ln, sm = ln_bf16_out, softmax
            else:
                env = {"THUNDER_CUDA_WARP_ROW_CHUNKS": chunks}
                ln, sm = jit_with(ln_bf16_out, env), jit_with(softmax, env)
                os.environ.update(env)
                try:
                    training_step(ln, cotangent=True)(x, w, b, g)
                    sm(xs)
                finally:
                    os.environ.pop("THUNDER_CUDA_WARP_ROW_CHUNKS")
            rows += kernel_table(f"{chunks} layer_norm fwd+bwd 8192x{width}", training_step(ln, cotangent=True),
                                 (x, w, b, g))
            rows += kernel_table(f"{chunks} softmax bf16 8192x{width}", sm, (xs,))
    return rows


def column_sums():
    """layer_norm's and rms_norm's training steps with the weight and bias gradients summed in the
    input gradient's row kernel (blocks of 256 or 512 threads: THUNDER_CUDA_COLUMN_BLOCK; 1024
    measured 0.15-0.46 of a copy, its 64 registers a thread spill)
    against a column kernel of their own (THUNDER_FUSION_COLUMNS_OVER_ROWS=0), beside eager: device
    time per step, and its bandwidth over a copy's (5 passes: read x, write y; read g and x, write
    x's gradient)."""
    from fusion_gpu import rms_norm

    rows = []
    variants = {"eager": None, "column kernel": {"THUNDER_FUSION_COLUMNS_OVER_ROWS": "0"},
                "rows 256": {"THUNDER_CUDA_COLUMN_BLOCK": "256"}, "rows 512": {"THUNDER_CUDA_COLUMN_BLOCK": "512"},
                "rows 1024": {"THUNDER_CUDA_COLUMN_BLOCK": "1024"},
                "rows 512 1 block/SM": {"THUNDER_CUDA_COLUMN_BLOCKS_PER_SM": "1"},
                "smem 512": {"THUNDER_CUDA_COLUMN_SMEM": "1"},
                "smem 1024": {"THUNDER_CUDA_COLUMN_SMEM": "1", "THUNDER_CUDA_COLUMN_BLOCK": "1024"},
                "rows 512 2 blocks/SM": {"THUNDER_CUDA_COLUMN_MIN_BLOCKS": "2"},
                "acc 16 2 blocks/SM": {"THUNDER_CUDA_COLUMN_ACCUMULATORS": "16", "THUNDER_CUDA_COLUMN_MIN_BLOCKS": "2"},
                "acc 16": {"THUNDER_CUDA_COLUMN_ACCUMULATORS": "16"},
                "no hoist": {"THUNDER_CUDA_HOIST_REGS": "0"}, "hoist 16": {"THUNDER_CUDA_HOIST_REGS": "16"}}
    if os.environ.get("PROBE_COLUMN_VARIANTS"):
        keep = os.environ["PROBE_COLUMN_VARIANTS"].split(",")
        variants = {k: v for k, v in variants.items() if k in keep}
    for acc in os.environ.get("PROBE_COLUMN_ACCUMULATORS", "").split(","):
        if acc:
            variants[f"rows 512 acc {acc}"] = {"THUNDER_CUDA_COLUMN_ACCUMULATORS": acc}
    widths = [tuple(int(v) for v in s.split("x")) for s in
              os.environ.get("PROBE_SHAPES", "2048x4096,8192x768,8192x4096").split(",")]
    for dt in (torch.float32, torch.bfloat16):
        for n, width in widths:
            x = torch.randn(n, width, device="cuda", dtype=dt, requires_grad=True)
            w = torch.randn(width, device="cuda", dtype=dt, requires_grad=True)
            b = torch.randn(width, device="cuda", dtype=dt, requires_grad=True)
            g = torch.randn(n, width, device="cuda", dtype=dt)
            nbytes = 5 * x.numel() * x.element_size()
            copy = copy_bandwidth(nbytes)
            for op, fn, args in (("layer_norm", layer_norm, (x, w, b, g)), ("rms_norm", rms_norm, (x, w, g))):
                for vname, env in variants.items():
                    f = fn
                    if env is not None:
                        f = jit_with(fn, env)
                        os.environ.update(env)
                        try:
                            training_step(f, cotangent=True)(*args)  # builds the kernels
                            if os.environ.get("PROBE_PTXAS"):
                                for k in thunder.last_backward_traces(f)[-1].fusion_callables:
                                    print("    ptxas:", ptxas_log(thunder._core.fuser_cuda_source(k, 227 * 1024)[0], 400))
                        finally:
                            for k in env:
                                os.environ.pop(k, None)
                    name = f"{vname} {op} fwd+bwd {n}x{width} {dt}"
                    table = kernel_table(name, training_step(f, cotangent=True), args)
                    us = sum(r["us"] for r in table)
                    print(f"    {nbytes / (us * 1e-6) / copy:.2f} of copy", flush=True)
                    rows += table
    return rows


OUTER_VARIANTS = {
    "default": {},
    "512 blocks": {"THUNDER_CUDA_OUTER_BLOCKS": "512"},
    "1024 blocks": {"THUNDER_CUDA_OUTER_BLOCKS": "1024"},
    "2048 blocks": {"THUNDER_CUDA_OUTER_BLOCKS": "2048"},
    "8 rows": {"THUNDER_CUDA_OUTER_ROWS": "8"},
    "1024 blocks 8 rows": {"THUNDER_CUDA_OUTER_BLOCKS": "1024", "THUNDER_CUDA_OUTER_ROWS": "8"},
    "512 threads 1024 blocks": {"THUNDER_CUDA_OUTER_THREADS": "512", "THUNDER_CUDA_OUTER_BLOCKS": "1024"},
}


def outer():
    """Column kernels of channels_last batch_norm at ResNet-18's shapes (batch 128), under each of
    OUTER_VARIANTS, beside eager's kernels for the same results."""
    import torch.nn.functional as F

    variants = dict(OUTER_VARIANTS)
    if os.environ.get("PROBE_OUTER_VARIANTS"):
        keep = os.environ["PROBE_OUTER_VARIANTS"].split(",")
        variants = {k: v for k, v in variants.items() if k in keep}
    shapes = [tuple(int(v) for v in s.split("x")) for s in
              os.environ.get("PROBE_SHAPES", "128x64x112x112,128x64x56x56,128x128x28x28,128x256x14x14,128x512x7x7").split(",")]
    dtypes = [getattr(torch, d) for d in os.environ.get("PROBE_DTYPES", "bfloat16").split(",")]

    def col_sum(x):
        return x.float().sum(0)

    def col_var(x, m):
        return ((x.float() - m) ** 2).sum(0)

    def bwd_sums(g, x, m):
        gf = g.float()
        return gf.sum(0), (gf * (x.float() - m)).sum(0)

    def bn(x):
        return F.batch_norm(x, None, None, training=True)

    eager = {"sum": lambda x: torch.sum(x, 0, dtype=torch.float32),
             "var": lambda x, m: torch.var_mean(x.float(), 0, correction=0)[0],
             "bwd sums": bwd_sums, "batch_norm fwd": bn}
    rows = []
    for dt in dtypes:
        for n, c, h, w in shapes:
            x4 = torch.randn(n, c, h, w, device="cuda", dtype=dt).to(memory_format=torch.channels_last)
            x4.requires_grad_(True)
            g4 = torch.randn_like(x4)
            x = x4.detach().permute(0, 2, 3, 1).reshape(-1, c)  # the same memory, rows x channels
            g = g4.permute(0, 2, 3, 1).reshape(-1, c)
            m = x.float().mean(0)
            es = x.element_size()
            cases = [("sum", col_sum, (x,), x.numel() * es), ("var", col_var, (x, m), x.numel() * es),
                     ("bwd sums", bwd_sums, (g, x, m), 2 * x.numel() * es),
                     ("batch_norm fwd", bn, (x4.detach(),), 2 * x.numel() * es),
                     ("batch_norm fwd+bwd", bn, (x4, g4), 5 * x.numel() * es)]
            for op, fn, args, nbytes in cases:
                copy = copy_bandwidth(nbytes)
                step = op.endswith("fwd+bwd")
                for vname, env in [("eager", None)] + list(variants.items()):
                    f = eager.get(op, fn) if env is None else jit_with(fn, env)
                    call = training_step(f, cotangent=True) if step else f
                    if env is not None:
                        os.environ.update(env)
                        try:
                            call(*args)  # builds the kernels
                        finally:
                            for k in env:
                                os.environ.pop(k, None)
                    t = kernel_time(lambda call=call, args=args: call(*args))
                    r = nbytes / t / copy
                    name = f"{op} {n}x{c}x{h}x{w} {dt} {vname}"
                    print(f"{name:64s} {t * 1e6:9.1f} us {r:6.2f} of copy", flush=True)
                    rows.append({"name": name, "us": t * 1e6, "vs_copy": r})
            del x4, g4, x, g
    return rows


def gelu_backward(h, g):
    """GPT-2's MLP backward around gelu: gelu(h) (tanh form) recomputed for the next matmul's weight
    gradient, its backward against g, and the bias gradient (a column sum): one column kernel."""
    c = 0.7978845608028654
    hf, gf = h.float(), g.float()
    t = torch.tanh(c * (hf + 0.044715 * hf * hf * hf))
    y = 0.5 * hf * (1 + t)
    dy = (gf * (0.5 * (1 + t) + 0.5 * hf * (1 - t * t) * c * (1 + 3 * 0.044715 * hf * hf))).to(h.dtype)
    return y.to(h.dtype), dy, dy.float().sum(0).to(h.dtype).float()


def gelu_backward_split():
    """The gelu backward's column kernel against the same work as a pointwise kernel (the two full-size
    outputs) and a column sum reading dy: device time per call, registers per thread."""
    rows = []
    h = torch.randn(8192, 3072, device="cuda", dtype=torch.bfloat16)
    g = torch.randn(8192, 3072, device="cuda", dtype=torch.bfloat16)
    fused = thunder.jit(gelu_backward)
    pointwise = thunder.jit(lambda h, g: gelu_backward(h, g)[:2])
    colsum = thunder.jit(lambda dy: dy.float().sum(0).to(dy.dtype).float() + 0)
    dy = pointwise(h, g)[1]
    torch.testing.assert_close(fused(h, g)[2], colsum(dy), rtol=1e-2, atol=1e-1)
    for name, fn, args in (("fused column kernel", fused, (h, g)), ("pointwise part", pointwise, (h, g)),
                           ("column sum of dy", colsum, (dy,)), ("eager", gelu_backward, (h, g))):
        rows += kernel_table(f"gelu backward 8192x3072 bf16: {name}", fn, args)
        if fn is not gelu_backward:
            for info in ptxas_info(fn, width=300):
                print("   ", info)
    return rows


def host_us(fn, args, n=300):
    """Host microseconds per call of fn, the calls queued back to back (the device keeps up)."""
    import time

    for _ in range(20):
        fn(*args)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn(*args)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


def ce_forward():
    """Cross-entropy forward: the whole call's time (bench), its kernels' device time, and the host
    time per call, thunder beside eager."""
    rows = []
    for dt in (torch.float32, torch.bfloat16):
        for width in (4096, 50304):
            x = torch.randn(2048, width, device="cuda", dtype=dt)
            y = torch.randint(0, width, (2048,), device="cuda")
            n = x.numel() * x.element_size()
            for who, f in (("thunder", thunder.jit(cross_entropy)), ("eager", cross_entropy)):
                name = f"{who} cross_entropy fwd 2048x{width} {dt}"
                table = kernel_table(name, f, (x, y))
                t = bench(lambda f=f, x=x, y=y: f(x, y))
                h = host_us(f, (x, y))
                ratio = n / t / copy_bandwidth(2 * n)
                print(f"  whole call {t * 1e6:.1f} us ({ratio:.2f} of copy), host {h:.1f} us per call", flush=True)
                rows.append({"name": name, "us": t * 1e6, "vs_copy": ratio, "host_us": h, "kernels": table})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--pointwise-only", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="only the per-kernel tables of training steps")
    ap.add_argument("--ce-forward", action="store_true", help="only the cross-entropy forward's times")
    ap.add_argument("--warp-rows", action="store_true", help="only the row kernels with warp-per-row limits")
    ap.add_argument("--column-sums", action="store_true",
                    help="only layer_norm's and rms_norm's steps with and without column sums over rows")
    ap.add_argument("--gelu-backward", action="store_true",
                    help="only the gelu backward's column kernel against a pointwise kernel and a column sum")
    ap.add_argument("--outer", action="store_true",
                    help="only channels_last batch_norm's column kernels under the split-row variables")
    args = ap.parse_args()
    only = (outer if args.outer else ce_forward if args.ce_forward else kernels if args.kernels else warp_rows if args.warp_rows
            else gelu_backward_split if args.gelu_backward else column_sums if args.column_sums else None)
    if only:
        rows = only()
        if args.out:
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)
        return
    rows = []
    for dt in (torch.float32, torch.bfloat16) if not args.pointwise_only else ():
        es = torch.finfo(dt).bits // 8
        x = torch.randn(2048, 50304, device="cuda", dtype=dt)
        y = torch.randint(0, 50304, (2048,), device="cuda")
        n = x.numel() * es
        for vname, env in ROW_VARIANTS.items():
            rows.append(probe(f"softmax 2048x50304 {dt} {vname}", softmax, (x,), 2 * n, env, ptxas=True))
        for vname, env in ROW_VARIANTS.items():
            rows.append(probe(f"cross_entropy fwd 2048x50304 {dt} {vname}", cross_entropy, (x, y), n, env,
                              ptxas=True))
        del x
    x = torch.randn(8192, 4096, device="cuda", dtype=torch.bfloat16)
    w, b = torch.randn(4096, device="cuda", dtype=torch.bfloat16), torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    n = 2 * x.numel() * 2
    variants = {
        "gelu chain bf16, eager's roundings": gelu_chain,
        "gelu chain bf16, fp32 throughout": lambda x, w, b: (F.gelu(x.float() * w.float() + b.float()) * 0.5
                                                             + x.float()).bfloat16(),
        "gelu chain bf16, tanh gelu": lambda x, w, b: F.gelu(x * w + b, approximate="tanh") * 0.5 + x,
        "chain bf16 without gelu": lambda x, w, b: (x * w + b) * 0.5 + x,
        "clamp chain bf16": lambda x, w, b: torch.clamp(x * w + b, -1.0, 1.0) * 0.5 + x,
        "hardtanh chain bf16": lambda x, w, b: F.hardtanh(x * w + b) * 0.5 + x,
        "relu chain bf16": lambda x, w, b: F.relu(x * w + b) * 0.5 + x,
        "x + 1 bf16": lambda x, w, b: x + 1,
    }
    for name, fn in variants.items():
        rows.append(probe(name, fn, (x, w, b), n, ptxas=True))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
