"""Achieved memory bandwidth of thunder's CUDA fusion kernels, next to eager PyTorch and torch.compile on
the same operation in the same run, and to a device-to-device copy of the same bytes.

Bandwidth = (bytes each kernel must read once + bytes it must write once) / time; times are CUDA-event
medians (triton.testing.do_bench, which clears the L2 cache between repetitions) after warm-up. The
thunder time is the whole jitted call (guard check, output allocation, kernel launches); the L2 clear
before each repetition leaves the host time to issue it. NVRTC compile time is reported per kernel (a fresh kernel cache).
The "fwd+bwd" rows are training steps (thunder's forward and backward programs against eager's autograd
and torch.compile's): cross_entropy's (`F.cross_entropy(x.float(), y).backward()`) is counted as reading
the logits in each direction and writing their gradient once; layer_norm and rms_norm fwd+bwd call `.backward(g)` on the
output and are counted as reading x and writing y, then reading g and x and writing x's gradient.
Training steps also report their kernels' bandwidth ("kernels thr/eag/cmp/copy": the same bytes over the
device time torch.profiler records per step, for thunder, eager and torch.compile): small steps are host-bound, and
this column compares the kernels themselves.
"residual dropout fwd+bwd" is `(y + F.dropout(x, 0.1)).backward(g)` with thunder jitted with
fuse_random=True (the mask drawn inside the fused kernels, saved as its 16-byte random state): counted
as reading x and y and writing the sum, then reading g and writing x's gradient. Its numbers are not
eager's, so it is checked by structure: x's gradient is g / 0.9 or 0, about 90% kept.

    python benchmarks/fusion_gpu.py [--quick] [--no-compile] [--out benchmarks/results/fusion_gpu.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("THUNDER_CACHE_DIR", tempfile.mkdtemp(prefix="thunder-bench-cache-"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import thunder  # noqa: E402
from thunder.executors import fusionex  # noqa: E402


def bench(fn, reps_ms=120):
    try:
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=reps_ms, return_mode="median") * 1e-3
    except ImportError:  # pragma: no cover - triton ships with CUDA torch
        for _ in range(5):
            fn()
        times = []
        for _ in range(50):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) * 1e-3)
        return statistics.median(times)


def row_benchmark_args(out, extra=None):
    """The command line of the per-operation GPU benchmarks that time rows side by side (--no-compile,
    --label, --dtypes, --only, --out with the default `out`; `extra(parser)` adds a benchmark's own)."""
    ap = argparse.ArgumentParser()
    if extra is not None:
        extra(ap)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--label", default="thunder")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--only", default="", help="the rows of the functions whose name contains this text")
    ap.add_argument("--out", default=out)
    return ap.parse_args()


def _device_us(prof):
    return sum(getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
               for e in prof.key_averages())


def kernel_time(fn, n=20):
    """Seconds of device activity (kernels, copies, fills) per call of fn, from torch.profiler: a
    step whose host time exceeds its kernels' is timed by its kernels here. The L2 cache is cleared
    before each call (a 256 MB fill); the fills' own time, profiled alone, is subtracted."""
    from torch.profiler import ProfilerActivity, profile

    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as both:
        for _ in range(n):
            flush.fill_(1)
            fn()
        torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as alone:
        for _ in range(n):
            flush.fill_(1)
        torch.cuda.synchronize()
    return (_device_us(both) - _device_us(alone)) / n * 1e-6


_copy_cache: dict[int, float] = {}


def copy_bandwidth(nbytes):
    """Bandwidth of a device-to-device copy moving `nbytes` in total (half read, half written)."""
    key = nbytes // 2
    if key not in _copy_cache:
        src = torch.empty(key, dtype=torch.uint8, device="cuda").random_()
        dst = torch.empty_like(src)
        _copy_cache[key] = nbytes / bench(lambda: dst.copy_(src))
    return _copy_cache[key]


# ---- the operations ----------------------------------------------------------------------------------

def gelu_chain(x, w, b):
    return F.gelu(x * w + b) * 0.5 + x


def softmax(x):
    return torch.softmax(x, -1)


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def cross_entropy(x, y):
    return F.cross_entropy(x.float(), y)


def residual_dropout(x, y):
    return y + F.dropout(x, 0.1, training=True)


def rope(q, cos, sin):
    """Rotary position embedding as Llama-family models write it (rotate_half by a cat)."""
    half = q.shape[-1] // 2
    return q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin


def training_step(fn, cotangent):
    """fn(*inputs).backward(g) with the gradients cleared first (so no call accumulates into them);
    returns the differentiable inputs' gradients (a tuple; `flat` joins them). With `cotangent`, the
    step's last argument is g; otherwise fn returns a scalar loss (cross-entropy's)."""
    def step(*args):
        inputs, g = (args[:-1], args[-1]) if cotangent else (args, None)
        grads = [a for a in inputs if a.requires_grad]
        for t in grads:
            t.grad = None
        fn(*inputs).backward(g)
        return tuple(t.grad for t in grads)  # not concatenated here: a copy the timings would include
    return step


def flat(x):
    """A step's gradients as one flat tensor (for the checks, outside the timings)."""
    return torch.cat([t.flatten() for t in x]) if isinstance(x, tuple) else x


def cases(quick, dts=(torch.float32, torch.bfloat16)):
    out = []
    for mb in ([64] if quick else [64, 256]):
        for dt in dts:
            esize = torch.finfo(dt).bits // 8
            cols = 4096
            rows = mb * 2**20 // (esize * cols)
            out.append(("pointwise gelu(x*w+b)*0.5+x", f"{mb} MB", dt, gelu_chain, (rows, cols), "pw"))
    widths = [4096, 50304] if quick else [4096, 32000, 50304]
    for dt in dts:
        for w in widths + [128256]:  # 128256: rows one block's shared memory cannot hold
            out.append(("softmax", f"2048x{w}", dt, softmax, (2048, w), "x"))
        for w in (4096, 8192):  # the hidden sizes of 7B- and 70B-class models
            out.append(("layer_norm", f"2048x{w}", dt, layer_norm, (2048, w), "xwb"))
            out.append(("rms_norm", f"2048x{w}", dt, rms_norm, (2048, w), "xw"))
            out.append(("layer_norm fwd+bwd", f"2048x{w}", dt, layer_norm, (2048, w), "xwb_b"))
            out.append(("rms_norm fwd+bwd", f"2048x{w}", dt, rms_norm, (2048, w), "xw_b"))
        for w in widths:
            out.append(("cross_entropy fwd", f"2048x{w}", dt, cross_entropy, (2048, w), "ce"))
            out.append(("cross_entropy fwd+bwd", f"2048x{w}", dt, cross_entropy, (2048, w), "ceb"))
        out.append(("residual dropout fwd+bwd", "8192x4096", dt, residual_dropout, (8192, 4096), "drop_b"))
        # q of 8 sequences of 2048 tokens, 32 heads of 128: one kernel with the cat as indexing.
        out.append(("rotary embedding", "8x32x2048x128", dt, rope, (8, 32, 2048, 128), "rope"))
        out.append(("rotary embedding fwd+bwd", "8x32x2048x128", dt, rope, (8, 32, 2048, 128), "rope_b"))
    return out


def make_inputs(shape, dt, kind):
    if kind.startswith("rope"):  # q; cos and sin per position and channel; the cotangent of a step
        q = torch.randn(shape, device="cuda", dtype=dt, requires_grad=kind == "rope_b")
        cos, sin = (torch.randn(shape[-2:], device="cuda", dtype=dt) for _ in range(2))
        return (q, cos, sin) + ((torch.randn_like(q),) if kind == "rope_b" else ())
    x = torch.randn(shape, device="cuda", dtype=dt)
    w = torch.randn(shape[-1], device="cuda", dtype=dt)
    b = torch.randn(shape[-1], device="cuda", dtype=dt)
    y = torch.randint(0, shape[-1], (shape[0],), device="cuda")
    if kind == "drop_b":  # x needs a gradient, y does not; g is the output's
        return (x.requires_grad_(), torch.randn_like(x), torch.randn_like(x))
    if kind in ("xwb_b", "xw_b"):  # a training step: every input needs a gradient; g is the output's
        args = (x, w, b) if kind == "xwb_b" else (x, w)
        for t in args:
            t.requires_grad_()
        return (*args, torch.randn_like(x))
    if kind == "pw" or kind == "xwb":
        return (x, w, b)
    if kind == "xw":
        return (x, w)
    if kind == "x":
        return (x,)
    if kind == "ceb":
        x.requires_grad_()
    return (x, y)


def moved_bytes(kind, shape, dt):
    n = math.prod(shape)
    es = torch.finfo(dt).bits // 8
    if kind == "ce":  # read the logits once; the per-row losses are negligible
        return n * es
    if kind == "ceb":  # forward: read the logits; backward: read them (or what was saved), write the gradient
        return 3 * n * es
    if kind == "rope_b":  # forward: read q, write the output; backward: read g, write q's gradient
        return 4 * n * es
    if kind.endswith("_b"):  # forward: read x, write y; backward: read g and x, write x's gradient
        return 5 * n * es
    return 2 * n * es  # read x once, write the result once (weights are small)


def _write(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "fusion_gpu.json"))
    ap.add_argument("--only", default="", help="run the rows whose 'operation size' contains this text")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated: float32, bfloat16, float16")
    args = ap.parse_args()
    assert torch.cuda.is_available() and fusionex.available("cuda"), "needs CUDA, its driver and NVRTC"
    torch.manual_seed(0)
    dev = torch.cuda.get_device_properties(0)
    results = {"device": dev.name, "torch": torch.__version__, "nvrtc": thunder._core.fuser_nvrtc_version(),
               "cache_dir": os.environ["THUNDER_CACHE_DIR"], "rows": []}
    big = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda").random_()
    results["copy_GBps_512MB"] = 2 * big.numel() / bench(lambda: big.clone()) / 1e9
    big = None  # freed before the rows run
    header = (f"{'operation':30s} {'size':12s} {'dtype':9s} {'thunder':>9s} {'eager':>9s} {'compile':>9s} "
              f"{'copy':>9s} {'thr/copy':>8s} {'eag/copy':>8s} {'cmp/copy':>8s} {'nvrtc s':>8s} {'kernels thr/eag/cmp/copy':>30s}")
    lines = []
    print(header, flush=True)
    for name, size, dt, fn, shape, kind in cases(args.quick, [getattr(torch, d.strip()) for d in args.dtypes.split(",")]):
        if args.only and args.only not in f"{name} {size}":
            continue
        inp = make_inputs(shape, dt, kind)
        jfn = thunder.jit(fn, executors=[thunder.fusion_executor], fuse_random=kind == "drop_b")
        timed_fn, timed_jfn = fn, jfn
        step = None
        if kind == "ceb" or kind.endswith("_b"):
            step = functools.partial(training_step, cotangent=kind != "ceb")
        if step:  # a training step: thunder's forward and backward programs against eager's
            timed_fn, timed_jfn = step(fn), step(jfn)
        before = fusionex.cache_stats()["compile_seconds"]
        got = flat(timed_jfn(*inp)).clone()
        torch.cuda.synchronize()
        compile_s = fusionex.cache_stats()["compile_seconds"] - before
        kernels = fusionex.fusion_kernels(jfn)
        if step:
            kernels += list(thunder.last_backward_traces(jfn)[-1].fusion_callables)
        # Fused kernels round where eager's kernels round: the reference is eager in the same dtype.
        ref = flat(timed_fn(*inp)).clone()
        eager = lambda: timed_fn(*inp)  # noqa: E731
        tol = dict(rtol=2e-2, atol=2e-2) if dt != torch.float32 else dict(rtol=1e-4, atol=1e-4)
        try:
            if kind == "drop_b":
                # Random numbers of its own: x's gradient is g / 0.9 where kept, 0 elsewhere.
                g = inp[-1].flatten()
                kept = got != 0
                torch.testing.assert_close(got, torch.where(kept, g / 0.9, 0.0).to(got.dtype), **tol)
                share = kept.double().mean().item()
                if abs(share - 0.9) > 0.01:
                    raise AssertionError(f"\n\nkept share {share:.4f}, expected 0.9")
            elif step and dt != torch.float32:
                # Gradients of low-precision steps: thunder sums a weight's gradient over fp32 products
                # where eager sums bf16-rounded ones, so the two differ by eager's rounding; each is
                # measured against the step computed in fp32.
                exact = flat(timed_fn(*(a.detach().float().requires_grad_(a.requires_grad) if a.is_floating_point()
                                   else a for a in inp)))
                err, err_eager = ((t.float() - exact).abs().max().item() for t in (got, ref))
                if err > 2 * err_eager:
                    raise AssertionError(f"\n\nthunder's error {err:.3g} against eager's {err_eager:.3g} (fp32 step)")
            else:
                torch.testing.assert_close(got, ref, **tol)
            check = "ok"
        except AssertionError as e:
            check = "MISMATCH " + str(e).splitlines()[2 if len(str(e).splitlines()) > 2 else 0]
        nbytes = moved_bytes(kind, shape, dt)
        copy_bw = copy_bandwidth(nbytes if kind != "ce" else 2 * nbytes)
        t_thunder = bench(lambda: timed_jfn(*inp))  # the whole jitted call (guards, allocation, launch)
        t_eager = bench(eager)
        t_compile = k_compile = float("nan")
        if not args.no_compile:
            try:
                cfn = torch.compile(fn)
                if step:
                    cfn = step(cfn)
                cfn(*inp)
                t_compile = bench(lambda: cfn(*inp))
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                print(f"torch.compile failed on {name}: {type(e).__name__}: {e}"[:300])
        # Training steps are timed by their kernels too (their host time can exceed the kernels').
        k_thunder = k_eager = float("nan")
        if step:
            try:
                k_thunder, k_eager = kernel_time(lambda: timed_jfn(*inp)), kernel_time(eager)
                if not math.isnan(t_compile):  # torch.compile built and ran the step
                    k_compile = kernel_time(lambda: cfn(*inp))
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                print(f"profiling failed on {name}: {type(e).__name__}: {e}"[:300])
        bw = {k: nbytes / t / 1e9 for k, t in (("thunder", t_thunder), ("eager", t_eager), ("compile", t_compile))}
        row = dict(op=name, size=size, dtype=str(dt).replace("torch.", ""), bytes=nbytes, kernels=len(kernels),
                   thunder_us=t_thunder * 1e6, eager_us=t_eager * 1e6, compile_us=t_compile * 1e6,
                   thunder_GBps=bw["thunder"], eager_GBps=bw["eager"], compile_GBps=bw["compile"],
                   copy_GBps=copy_bw / 1e9, thunder_vs_copy=bw["thunder"] * 1e9 / copy_bw,
                   eager_vs_copy=bw["eager"] * 1e9 / copy_bw, compile_vs_copy=bw["compile"] * 1e9 / copy_bw,
                   thunder_kernel_us=k_thunder * 1e6, eager_kernel_us=k_eager * 1e6,
                   thunder_kernels_vs_copy=nbytes / k_thunder / copy_bw,
                   eager_kernels_vs_copy=nbytes / k_eager / copy_bw,
                   compile_kernel_us=k_compile * 1e6, compile_kernels_vs_copy=nbytes / k_compile / copy_bw,
                   nvrtc_compile_s=compile_s, check=check, kernel_ir=[k.kernel_ir.splitlines()[0] for k in kernels])
        results["rows"].append(row)
        line = (f"{name:30s} {size:12s} {row['dtype']:9s} {bw['thunder']:9.0f} {bw['eager']:9.0f} {bw['compile']:9.0f} "
                f"{copy_bw / 1e9:9.0f} {row['thunder_vs_copy']:8.2f} {row['eager_vs_copy']:8.2f} "
                f"{row['compile_vs_copy']:8.2f} {compile_s:8.3f}"
                + (f"  {row['thunder_kernels_vs_copy']:9.2f} {row['eager_kernels_vs_copy']:9.2f}"
                   f" {row['compile_kernels_vs_copy']:9.2f}" if step else "")
                + ("" if check == "ok" else "  " + check))
        lines.append(line)
        print(line, flush=True)
        _write(args.out, results)
        inp = got = ref = None  # freed before the next row
    st = fusionex.cache_stats()
    results["nvrtc_compiles"] = st["compiles"]
    results["nvrtc_seconds_total"] = st["compile_seconds"]
    results["nvrtc_seconds_per_kernel"] = st["compile_seconds"] / max(st["compiles"], 1)
    _write(args.out, results)
    print(f"\n{dev.name}, torch {torch.__version__}; GB/s = (bytes read once + written once) / median time")
    print(f"copy of 512 MB: {results['copy_GBps_512MB']:.0f} GB/s; NVRTC: {st['compiles']} kernels, "
          f"{results['nvrtc_seconds_per_kernel'] * 1e3:.0f} ms per kernel")
    print(header)
    for line in lines:
        print(line)
    print(f"wrote {args.out}  ({time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()
