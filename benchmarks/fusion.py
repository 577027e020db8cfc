"""thunder's fusion executor on the CPU against eager, side by side in one process.

Cases (fp32; x is 1024 x 4096 = 4M floats, w and b are 4096-vectors broadcast over the rows):
  pointwise      gelu(x * w + b) * 0.5 + x
  softmax        torch.softmax(x, -1)
  layer_norm     F.layer_norm(x, (4096,), w, b)
  rms_norm       F.rms_norm(x, (4096,), w)
  log_softmax    torch.log_softmax(x, -1)
  cross_entropy  F.cross_entropy(x, y), y: 1024 class indices (forward)
  layer_norm_bwd (F.layer_norm(x, (4096,), w, b) * g).sum().backward(): forward + backward, the jitted
                 function's backward through thunder's autograd
  softmax_bwd    (torch.softmax(x, -1) * g).sum().backward(): forward + backward
  cross_entropy_bwd  F.cross_entropy(x, y).backward(): forward + backward
  group_norm_bwd (F.group_norm(xi, 32, wc, bc) * gi).sum().backward(), xi the same 4M floats as an image
                 batch 16 x 256 x 32 x 32, wc and bc 256-vectors: forward + backward
  silu_group_norm_bwd  the same with F.silu after the group_norm (a diffusion UNet's block)
  batch_norm_bwd (F.batch_norm(xi, None, None, wc, bc, training=True) * gi).sum().backward(): the
                 same, each channel normalized over the batch and its 32 x 32 positions
  dropout_bwd    (y + F.dropout(x, 0.1)).sum().backward() jitted with fuse_random=True: the mask is
                 drawn inside the fused kernels (forward and backward) instead of by torch; checked by
                 its structure (each element kept and scaled, or zero, in both directions; 90% kept)
                 since its random numbers are not eager's

Each case is jitted with the default executors (the fuser among them) and checked against eager. Times
are per call: eager and thunder alternate (which goes first alternates too), `--repeats` pairs, and the
figure is the median; the ratio is the median of the per-pair ratios. Bandwidth is the bytes the case
must move at least (inputs read once, outputs written once) over its time, set against a measured copy
of 16 MiB into a preallocated 16 MiB buffer (read + write); `x.clone()` of the same 16 MiB is timed
too: a new output, the least any case with a 16 MiB output can take. First-call figures come from a fresh
kernel cache (a temporary THUNDER_CACHE_DIR) unless --keep-cache: the first call's time, the number of
kernels compiled and the compile time per kernel (compiles run in parallel, one per core).

`--gpt` adds the 12-layer GPT-2-size forward of benchmarks/compile_latency.py (d=768, no_grad, 1 x 64
tokens) in fresh processes: the first call with an empty kernel cache (cold), then in a second process
with the kernels on disk, and with the fuser off (THUNDER_FUSION=0), each against that process's eager
call (one torch and one fuser thread by default: --gpt-threads). Writes benchmarks/results/fusion.json
(fusion_t<N>.json with --threads N).

    .venv/bin/python benchmarks/fusion.py [--repeats 25] [--gpt] [--only softmax,layer_norm]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "fusion.json")
RESULTS_T = os.path.join(ROOT, "benchmarks", "results", "fusion_t{}.json")
ROWS, COLS = 1024, 4096


def _cases(torch, F):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, COLS, generator=g)
    w = torch.randn(COLS, generator=g)
    b = torch.randn(COLS, generator=g)
    y = torch.randint(0, COLS, (ROWS,), generator=g)
    gout = torch.randn(ROWS, COLS, generator=g)
    f4 = 4

    def ln_fwd(x, w, b, g):
        return F.layer_norm(x, (COLS,), w, b) * g

    def sm_fwd(x, g):
        return torch.softmax(x, -1) * g

    image = (16, 256, 32, 32)  # the same 4M floats as an image batch
    xi, gi = x.reshape(image), gout.reshape(image)
    wc, bc = w[: image[1]].clone(), b[: image[1]].clone()

    def gn_fwd(x, w, b, g):
        return F.group_norm(x, 32, w, b) * g

    def silu_gn_fwd(x, w, b, g):
        return F.silu(F.group_norm(x, 32, w, b)) * g

    def bn_fwd(x, w, b, g):
        return F.batch_norm(x, None, None, w, b, training=True) * g

    def image_step():
        return (xi.clone().requires_grad_(), wc.clone().requires_grad_(), bc.clone().requires_grad_(), gi)

    # Rotary embedding over the same 4M floats as q of 4 x 8 heads x 1024 positions x 128.
    q = x.reshape(4, 8, 1024, 128)
    cos, sin = torch.randn(1024, 128, generator=g), torch.randn(1024, 128, generator=g)

    def rope(q, cos, sin):
        half = q.shape[-1] // 2
        return q * cos + torch.cat((-q[..., half:], q[..., :half]), -1) * sin

    def rope_fwd(q, cos, sin, g):
        return rope(q, cos, sin) * g

    nbytes = ROWS * COLS * f4
    vec = COLS * f4
    return {
        # name: (fn, args factory, bytes moved at least, needs grad)
        "pointwise": (lambda x, w, b: torch.nn.functional.gelu(x * w + b) * 0.5 + x,
                      lambda: (x, w, b), 2 * nbytes + 2 * vec, False),
        "softmax": (lambda x: torch.softmax(x, -1), lambda: (x,), 2 * nbytes, False),
        "layer_norm": (lambda x, w, b: F.layer_norm(x, (COLS,), w, b), lambda: (x, w, b),
                       2 * nbytes + 2 * vec, False),
        "rms_norm": (lambda x, w: F.rms_norm(x, (COLS,), w, 1e-6), lambda: (x, w), 2 * nbytes + vec,
                     False),
        "log_softmax": (lambda x: torch.log_softmax(x, -1), lambda: (x,), 2 * nbytes, False),
        "cross_entropy": (lambda x, y: F.cross_entropy(x, y), lambda: (x, y), nbytes + ROWS * 8, False),
        # forward: read x, write out (+ saved stats); backward: read x, g, write dx (+ dw, db)
        "layer_norm_bwd": (ln_fwd, lambda: (x.clone().requires_grad_(), w.clone().requires_grad_(),
                                            b.clone().requires_grad_(), gout), 5 * nbytes, True),
        "group_norm_bwd": (gn_fwd, image_step, 5 * nbytes, True),
        "silu_group_norm_bwd": (silu_gn_fwd, image_step, 5 * nbytes, True),
        "batch_norm_bwd": (bn_fwd, image_step, 5 * nbytes, True),
        "softmax_bwd": (sm_fwd, lambda: (x.clone().requires_grad_(), gout), 5 * nbytes, True),
        # forward: read x; backward: read x (or what was saved of it), write dx
        "cross_entropy_bwd": (lambda x, y: F.cross_entropy(x, y), lambda: (x.clone().requires_grad_(), y),
                              3 * nbytes, True),
        # forward: read x and y, write the sum; backward: write dx (the cotangent is a broadcast 1)
        "dropout_bwd": (lambda x, y: y + F.dropout(x, 0.1, training=True),
                        lambda: (x.clone().requires_grad_(), gout), 4 * nbytes, True),
        # read q, write the result (cos and sin are small); one kernel with the cat as indexing
        "rope": (rope, lambda: (q, cos, sin), 2 * nbytes, False),
        # forward: read q and g, write out; backward: read g, write dq
        "rope_bwd": (rope_fwd, lambda: (q.clone().requires_grad_(), cos, sin, gout.reshape(q.shape)),
                     5 * nbytes, True),
    }


# Cases jitted with options, and checked by a function of (jitted, args) instead of against eager.
JIT_OPTIONS = {"dropout_bwd": {"fuse_random": True}}


def _check_dropout(torch, jitted, args):
    x, y = args
    x.grad = None
    out = jitted(x, y)
    out.sum().backward()
    # The backward's mask (the gradient is 1 / 0.9 or 0) is the forward's.
    kept = x.grad != 0
    torch.testing.assert_close(x.grad, torch.where(kept, 1 / 0.9, 0.0))
    torch.testing.assert_close(out, torch.where(kept, y + x.detach() / 0.9, y))
    share = kept.double().mean().item()
    assert abs(share - 0.9) < 0.01, share
    x.grad = None


CHECKS = {"dropout_bwd": _check_dropout}


def _time_once(fn, args):
    t0 = time.perf_counter_ns()
    fn(*args)
    return (time.perf_counter_ns() - t0) / 1e9


def _copy_bandwidth(torch, repeats):
    src = torch.randn(ROWS, COLS)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    ts = [_time_once(dst.copy_, (src,)) for _ in range(repeats)]
    t = statistics.median(ts)
    # A clone writes a new 16 MiB tensor, as every case with a 16 MiB output does: the least time any
    # kernel takes that reads x and returns a new tensor of its size (its pages are not the
    # preallocated buffer's, hot in cache).
    for _ in range(3):
        src.clone()
    clone = statistics.median(_time_once(src.clone, ()) for _ in range(repeats))
    return 2 * src.numel() * 4 / t / 1e9, t, clone


def run_cases(args) -> dict:
    import torch
    import torch.nn.functional as F

    import thunder
    from thunder.executors import fusionex

    names = [n.strip() for n in args.only.split(",")] if args.only else None
    results = {}
    for name, (fn, make_args, nbytes, grad) in _cases(torch, F).items():
        if names and name not in names:
            continue
        jitted = thunder.jit(fn, **JIT_OPTIONS.get(name, {}))
        if grad:
            def _with_backward(f):
                return lambda *a: f(*a).sum().backward()

            fn_timed, jfn = _with_backward(fn), _with_backward(jitted)
        else:
            fn_timed, jfn = fn, jitted
        before = fusionex.cache_stats()
        a = make_args()
        t0 = time.perf_counter_ns()
        out = jfn(*a)
        first_s = (time.perf_counter_ns() - t0) / 1e9
        after = fusionex.cache_stats()
        compiles = after["compiles"] - before["compiles"]
        compile_s = after["compile_seconds"] - before["compile_seconds"]
        ea = make_args()
        ref = fn(*ea)
        if name in CHECKS:
            CHECKS[name](torch, jitted, a)
        elif grad:
            out = jitted(*a)
            torch.testing.assert_close(out, ref)
            ref.sum().backward()
        else:
            torch.testing.assert_close(out, ref)
        if grad and name not in CHECKS:
            for ta, te in zip(a, ea):
                if isinstance(ta, torch.Tensor) and ta.requires_grad:
                    # Weight and bias gradients sum 1024 rows: a reduction's tolerance.
                    torch.testing.assert_close(ta.grad, te.grad, rtol=1e-4, atol=1e-3)
        kernels = len(fusionex.fusion_kernels(jitted))
        bwd = thunder.last_backward_traces(jitted) if grad else None
        bwd_kernels = str(bwd[-1]).count("= fusion") if bwd else 0
        a = make_args()
        fn = fn_timed
        for _ in range(3):
            fn(*a)
            jfn(*a)
        te, tt, ratios = [], [], []
        for r in range(args.repeats):
            if r % 2 == 0:
                e = _time_once(fn, a)
                t = _time_once(jfn, a)
            else:
                t = _time_once(jfn, a)
                e = _time_once(fn, a)
            te.append(e)
            tt.append(t)
            ratios.append(t / e)
        res = {
            "eager_ms": statistics.median(te) * 1e3,
            "thunder_ms": statistics.median(tt) * 1e3,
            "ratio": statistics.median(ratios),
            "eager_min_ms": min(te) * 1e3,
            "thunder_min_ms": min(tt) * 1e3,
            "bytes": nbytes,
            "eager_GBps": nbytes / statistics.median(te) / 1e9,
            "thunder_GBps": nbytes / statistics.median(tt) / 1e9,
            "fused_kernels_forward": kernels,
            "fused_kernels_backward": bwd_kernels,
            "first_call_s": first_s,
            "kernels_compiled": compiles,
            "compile_s_per_kernel": compile_s / compiles if compiles else 0.0,
        }
        results[name] = res
        print(f"  {name:15s} eager {res['eager_ms']:7.2f} ms  thunder {res['thunder_ms']:7.2f} ms  "
              f"ratio {res['ratio']:.2f}  first call {first_s:.2f} s ({compiles} compiled)", flush=True)
    return results


def _gpt_child(env_extra: dict) -> dict:
    env = dict(os.environ, **env_extra)
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "compile_latency.py"), "--child",
           "--batch", "1", "--tokens", "64", "--n-layer", "12"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit("GPT child failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_gpt(repeats: int, threads: int) -> dict:
    rows = {"cold": [], "kernels_on_disk": [], "fusion_off": []}
    env = {"OMP_NUM_THREADS": str(threads), "THUNDER_NUM_THREADS": str(threads)} if threads else {}
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            rows["cold"].append(_gpt_child(dict(env, THUNDER_CACHE_DIR=d)))
            rows["kernels_on_disk"].append(_gpt_child(dict(env, THUNDER_CACHE_DIR=d)))
        rows["fusion_off"].append(_gpt_child(dict(env, THUNDER_FUSION="0")))
        print(f"  repeat {r}: " + ", ".join(
            f"{k} first call {v[-1]['first_call_s'] * 1e3:.0f} ms (eager {v[-1]['eager_call_s'] * 1e3:.0f} ms)"
            for k, v in rows.items()), flush=True)
    out = {}
    for k, runs in rows.items():
        out[k] = {key: statistics.median(run[key] for run in runs)
                  for key in ("eager_call_s", "first_call_s", "overhead_s", "cached_call_s")}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--only", default="", help="comma-separated case names")
    p.add_argument("--gpt", action="store_true", help="also the GPT-2 first-call figures")
    p.add_argument("--gpt-repeats", type=int, default=3)
    p.add_argument("--gpt-threads", type=int, default=1,
                   help="torch and fuser threads in the GPT processes (0: defaults); one thread keeps "
                        "the eager reference steady on a 2-core machine shared with other work")
    p.add_argument("--keep-cache", action="store_true",
                   help="use the usual kernel cache (first calls then load kernels from disk)")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for torch and for the fuser's pool (default: torch's default)")
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args()
    if args.threads:
        os.environ["THUNDER_NUM_THREADS"] = str(args.threads)

    tmp = None
    if not args.keep_cache:
        tmp = tempfile.TemporaryDirectory()
        os.environ["THUNDER_CACHE_DIR"] = tmp.name
    sys.path.insert(0, ROOT)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import thunder  # noqa: F401  (the fuser is a default executor)
    from thunder.executors import fusionex

    if not fusionex.enabled_by_default() or not fusionex.available("cpu"):
        raise SystemExit("the fusion executor is off (THUNDER_FUSION=0 or no C++ compiler)")
    copy_gbps, copy_s, clone_s = _copy_bandwidth(torch, 41)
    print(f"CPU, {torch.get_num_threads()} torch threads, {_core_threads()} fuser threads; "
          f"copy of 16 MiB: {copy_s * 1e3:.2f} ms = {copy_gbps:.1f} GB/s (read + write); "
          f"x.clone() (a new 16 MiB output): {clone_s * 1e3:.2f} ms")
    cases = run_cases(args)
    table = ["| case | eager ms | thunder ms | thunder / eager | eager GB/s | thunder GB/s | "
             "thunder % of copy | kernels (fwd/bwd) | first call s | compile s / kernel |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in cases.items():
        table.append(
            f"| {name} | {r['eager_ms']:.2f} | {r['thunder_ms']:.2f} | **{r['ratio']:.2f}x** | "
            f"{r['eager_GBps']:.1f} | {r['thunder_GBps']:.1f} | {100 * r['thunder_GBps'] / copy_gbps:.0f} % | "
            f"{r['fused_kernels_forward']}/{r['fused_kernels_backward']} | {r['first_call_s']:.2f} | "
            f"{r['compile_s_per_kernel']:.2f} |")
    print("\n".join(table))
    gpt = None
    if args.gpt:
        gpt = run_gpt(args.gpt_repeats, args.gpt_threads)
        for k, v in gpt.items():
            print(f"  GPT-2 forward, {k}: eager {v['eager_call_s'] * 1e3:.1f} ms, first call "
                  f"{v['first_call_s'] * 1e3:.1f} ms (+{v['overhead_s']:.3f} s), cached call "
                  f"{v['cached_call_s'] * 1e3:.1f} ms")
    if not args.no_json:
        data = {
            "date": datetime.date.today().isoformat(),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
            "copy_GBps": copy_gbps,
            "clone_ms": clone_s * 1e3,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "cases": cases,
        }
        if gpt is not None:
            data["gpt2_forward"] = dict(gpt, threads=args.gpt_threads or "default")
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS_T.format(args.threads) if args.threads else RESULTS, "w") as f:
            json.dump(data, f, indent=1)
    if tmp is not None:
        tmp.cleanup()


def _core_threads():
    from thunder import _core

    return _core.fuser_threads()


if __name__ == "__main__":
    main()
