"""GPT-2 training steps on the GPU: eager, thunder (its default executors: the fuser, PyTorch's attention
kernels) with torch's dropout, thunder with dropout drawn inside its fused kernels
(`fuse_random=True`), thunder with its programs replayed as CUDA graphs (`cuda_graphs=True`), and
torch.compile (and, with --reduce-overhead, its CUDA-graph mode), side by side in one process.

Model: benchmarks/gpt_model.py's GPT (default: GPT-2 small, 124M parameters, dropout 0.1) with the
cross-entropy loss inside the compiled module, fp32 weights under bf16 autocast (as nanoGPT trains),
AdamW (fused) outside the compiled part. Every variant starts from the same weights.

Correctness: with `--check`, one step of each variant at dropout 0 runs from the same weights and
batch, and its loss and gradients are compared with eager's (bf16 tolerances); thunder with torch's
dropout is also compared at dropout 0.1 under the same seed (its masks are eager's).

Timing: `--warmup` steps, then `--steps` steps between CUDA synchronisations, repeated `--repeats`
times with the variants interleaved; the figure is the median step time. Also the first step's time
(compilation included), and the memory a step takes above what is allocated before it (its peak:
activations saved for the backward, gradients, temporaries). Writes benchmarks/results/training_gpu.json.

    python benchmarks/training_gpu.py [--config gpt2] [--batch 8] [--tokens 1024] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import tempfile
import time

os.environ.setdefault("THUNDER_CACHE_DIR", tempfile.mkdtemp(prefix="thunder-bench-cache-"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import torch
from gpt_model import CONFIGS, GPT, WithLoss
from torch import nn

import thunder
from thunder.executors import fusionex

RESULTS = os.path.join(ROOT, "benchmarks", "results", "training_gpu.json")


def make_variants(base, no_compile, reduce_overhead=False):
    variants = {"eager": copy.deepcopy(base)}
    variants["thunder"] = thunder.jit(copy.deepcopy(base))
    variants["thunder fuse_random"] = thunder.jit(copy.deepcopy(base), fuse_random=True)
    variants["thunder cuda_graphs"] = thunder.jit(copy.deepcopy(base), cuda_graphs=True)
    if not no_compile:
        variants["torch.compile"] = torch.compile(copy.deepcopy(base))
        if reduce_overhead:
            variants["torch.compile reduce-overhead"] = torch.compile(copy.deepcopy(base), mode="reduce-overhead")
    return variants


def params_of(m):
    return list(m.parameters())


def step_fn(model, opt, idx, tgt, mark_step=False):
    def step():
        if mark_step:  # torch.compile's CUDA graphs: a new step may overwrite the previous one's outputs
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def interleaved_step_times(steps: dict, repeats: int, n: int) -> dict:
    """Seconds per step of each callable in `steps`: `repeats` blocks of `n` steps between CUDA
    synchronisations, the callables interleaved and the order reversed every other repeat."""
    times = {name: [] for name in steps}
    for r in range(repeats):
        for name in list(steps) if r % 2 == 0 else list(reversed(list(steps))):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(n):
                steps[name]()
            torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) / n)
    return times


def kernel_profiles(steps: dict, n: int = 3, top: int = 18, keep: int = 40) -> dict:
    """Each step's CUDA kernels over `n` steps (torch.profiler), per step and largest first: the
    `keep` largest are returned, the `top` largest printed."""
    out = {}
    for name, step in steps.items():
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(n):
                step()
            torch.cuda.synchronize()
        kernels = sorted(((e.key, e.device_time_total / n, e.count // n) for e in prof.key_averages()
                          if e.device_time_total > 0), key=lambda r: -r[1])
        total = sum(t for _, t, _ in kernels)
        launches = sum(c for _, _, c in kernels)
        out[name] = {"kernel_ms_per_step": total / 1e3, "launches_per_step": launches,
                     "top": [{"kernel": k, "us_per_step": t, "calls_per_step": c} for k, t, c in kernels[:keep]]}
        print(f"\n{name}: {total / 1e3:.2f} ms of kernels per step, {launches} launches; largest:")
        for k, t, c in kernels[:top]:
            print(f"  {t / 1e3:7.3f} ms  {c:4d}x  {k[:110]}")
    return out


def check(base, idx, tgt, no_compile):
    """One step's loss and gradients of each variant against eager's (dropout 0, then 0.1 for the
    variant whose masks are eager's)."""
    report = {}
    for p in (0.0, 0.1):
        m = copy.deepcopy(base)
        for mod in m.modules():
            if isinstance(mod, nn.Dropout):
                mod.p = p
            elif isinstance(getattr(mod, "dropout", None), float):  # attention's dropout_p
                mod.dropout = p
        variants = make_variants(m, no_compile=True)  # torch.compile's steps are not checked here
        if p > 0:
            variants = {k: v for k, v in variants.items() if k in ("eager", "thunder")}
        grads = {}
        for name, v in variants.items():
            # Three forward + backward runs (no update): CUDA graphs are captured at the second and
            # replayed at the third, the one compared.
            for _ in range(3):
                for q in params_of(v):
                    q.grad = None
                torch.manual_seed(123)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = v(idx, tgt)
                loss.backward()
            grads[name] = (loss.detach().float(), [q.grad.float() for q in params_of(v)])
        ref_loss, ref_grads = grads.pop("eager")
        for name, (loss, gs) in grads.items():
            # Per parameter: the largest difference relative to the largest eager gradient entry.
            err = max((a - b).abs().max().item() / (b.abs().max().item() + 1e-6) for a, b in zip(gs, ref_grads))
            ok = abs(loss.item() - ref_loss.item()) <= 2e-2 * abs(ref_loss.item()) and err < 5e-2
            report[f"{name} dropout {p}"] = {"loss": loss.item(), "eager_loss": ref_loss.item(),
                                             "max_rel_grad_err": err, "ok": ok}
            print(f"  check {name:22s} dropout {p}: loss {loss.item():.5f} (eager {ref_loss.item():.5f}), "
                  f"max relative gradient difference {err:.2e}" + ("" if ok else "  MISMATCH"), flush=True)
    return report


def instruction_profile(m, idx, tgt, n=5, top=30):
    """Host time of thunder's programs per instruction symbol (fusions counted together), over `n`
    forward + backward calls (the GPU synchronised before each), against the calls' wall time."""
    from thunder import _core

    _core.program_profile(reset=True)
    wall = 0.0
    for _ in range(n):
        torch.cuda.synchronize()
        _core.set_program_profiling(True)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(idx, tgt)
        loss.backward()
        wall += time.perf_counter() - t0
        _core.set_program_profiling(False)
        for p in m.parameters():
            p.grad = None
    torch.cuda.synchronize()
    sums = {}
    for name, (calls, secs) in _core.program_profile(reset=True).items():
        key = "fusion kernels" if name.rstrip("0123456789") == "fusion" else name
        c, s = sums.get(key, (0, 0.0))
        sums[key] = (c + calls, s + secs)
    # The entry program's one instruction runs the forward program inside torch.autograd: nested.
    total = sum(s for k, (_, s) in sums.items() if k != "thunder.run_autograd_function")
    print(f"  thunder's instructions per forward + backward: {total / n * 1e3:.2f} ms of "
          f"{wall / n * 1e3:.2f} ms wall, {sum(c for c, _ in sums.values()) / n - 1:.0f} instructions")
    rows = sorted(sums.items(), key=lambda kv: -kv[1][1])
    for name, (calls, secs) in rows[:top]:
        print(f"    {secs / n * 1e3:7.3f} ms  {calls / n:6.1f}x  {secs / calls * 1e6:7.1f} us each  {name}")
    return {"wall_ms": wall / n * 1e3, "instructions_ms": total / n * 1e3,
            "by_symbol": {k: {"calls": c / n, "ms": s / n * 1e3} for k, (c, s) in rows}}


def host_times(variants, idx, tgt, n=10):
    """Host time of each variant's forward and backward: the calls return before their kernels finish
    (the GPU's queue is far from full), so the wall time of each call is the host's work."""
    out = {}
    for name, m in variants.items():
        fwd, bwd = [], []
        for _ in range(n):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = m(idx, tgt)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.cuda.synchronize()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            for p in m.parameters():
                p.grad = None
        out[name] = {"forward_host_ms": statistics.median(fwd) * 1e3, "backward_host_ms": statistics.median(bwd) * 1e3}
        print(f"  host {name:22s} forward {out[name]['forward_host_ms']:6.2f} ms, "
              f"backward {out[name]['backward_host_ms']:6.2f} ms", flush=True)
    m = variants["thunder"]
    out["thunder_instructions"] = instruction_profile(m, idx, tgt)
    prof = cProfile.Profile()
    for _ in range(3):
        torch.cuda.synchronize()
        prof.enable()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(idx, tgt)
        loss.backward()
        prof.disable()
        for p in m.parameters():
            p.grad = None
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(35)
    stats.sort_stats("cumulative").print_stats(25)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="gpt2", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--reduce-overhead", action="store_true",
                    help="also torch.compile(mode='reduce-overhead') (CUDA graphs)")
    ap.add_argument("--variants", default="",
                    help="comma-separated names of the variants to run (default: all; eager always runs)")
    ap.add_argument("--check", action="store_true", help="compare one step of each variant with eager")
    ap.add_argument("--profile", action="store_true",
                    help="after timing, each variant's CUDA kernels over 3 steps (torch.profiler), largest first")
    ap.add_argument("--host", action="store_true",
                    help="after timing, each variant's host time for forward and backward (no synchronisation "
                         "inside), and a cProfile of thunder's forward + backward")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs CUDA"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cfg = copy.deepcopy(CONFIGS[args.config])
    cfg.dropout = args.dropout
    torch.manual_seed(0)
    base = WithLoss(GPT(cfg)).cuda().train()
    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), device="cuda")
    tgt = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), device="cuda")
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "config": args.config,
               "batch": args.batch, "tokens": args.tokens, "dropout": args.dropout, "autocast": "bfloat16"}
    if args.check:
        results["check"] = check(base, idx, tgt, args.no_compile)
        # The checked models and their CUDA graphs go now, not inside a later collection (torch.compile's
        # CUDA-graph mode collects garbage while it captures).
        gc.collect()
    variants = make_variants(base, args.no_compile, args.reduce_overhead)
    if args.variants:
        keep = {"eager", *(v.strip() for v in args.variants.split(","))}
        variants = {k: v for k, v in variants.items() if k in keep}
    steps, first, nvrtc, peak = {}, {}, {}, {}
    for name, m in variants.items():
        opt = torch.optim.AdamW(params_of(m), lr=1e-4, fused=True)
        steps[name] = step_fn(m, opt, idx, tgt, mark_step="reduce-overhead" in name)
        torch.cuda.synchronize()
        before = fusionex.cache_stats()
        t0 = time.perf_counter()
        loss = steps[name]()
        torch.cuda.synchronize()
        first[name] = time.perf_counter() - t0
        after = fusionex.cache_stats()
        nvrtc[name] = (after["compiles"] - before["compiles"], after["compile_seconds"] - before["compile_seconds"])
        assert torch.isfinite(loss), f"{name}: loss {loss}"
        for _ in range(args.warmup):
            steps[name]()
        # Memory a step takes above what is allocated before it (every variant's weights and
        # optimizer states stay allocated throughout; gradients are freed after each step).
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before_step = torch.cuda.memory_allocated()
        steps[name]()
        torch.cuda.synchronize()
        peak[name] = (torch.cuda.max_memory_allocated() - before_step) / 2**20
        print(f"  {name}: first step {first[name]:.2f} s ({nvrtc[name][0]} kernels compiled, "
              f"{nvrtc[name][1]:.2f} s of NVRTC summed over them)", flush=True)
    times = interleaved_step_times(steps, args.repeats, args.steps)
    eager = statistics.median(times["eager"])
    rows = {}
    toks = args.batch * args.tokens
    print(f"\n{results['device']}, torch {torch.__version__}; {args.config}, batch {args.batch} x {args.tokens} "
          f"tokens, dropout {args.dropout}, bf16 autocast, fused AdamW")
    print(f"{'variant':24s} {'ms/step':>9s} {'vs eager':>9s} {'tokens/s':>10s} {'first step s':>13s} "
          f"{'step peak MiB':>14s}")
    for name in variants:
        t = statistics.median(times[name])
        rows[name] = {"ms_per_step": t * 1e3, "vs_eager": t / eager, "tokens_per_s": toks / t,
                      "first_step_s": first[name], "all_ms": [x * 1e3 for x in times[name]],
                      "nvrtc_kernels": nvrtc[name][0], "nvrtc_seconds_summed": nvrtc[name][1],
                      "step_peak_mib": peak[name]}
        print(f"{name:24s} {t * 1e3:9.1f} {t / eager:9.3f} {toks / t:10.0f} {first[name]:13.2f} {peak[name]:14.0f}")
    results["rows"] = rows
    if args.profile:
        results["profile"] = kernel_profiles(steps)
    if args.host:
        results["host"] = host_times(variants, idx, tgt)
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
