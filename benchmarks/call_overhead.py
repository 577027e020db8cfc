"""Per-call overhead of a cached thunder call on tiny CPU tensors, side by side with eager in one run.

Targets (the issue):
  * a cached call of a 10-op function on tiny CPU tensors: at most 1.3x eager's time;
  * the guard check for 5 tensor inputs: at most 5 microseconds.

Figures, all measured in this one process, eager and jitted calls interleaved (each repeat times
`--calls` calls of one, then of the other, alternating which goes first); per-call time is the median
over `--repeats` repeats, and the ratio is the median of the per-repeat ratios:
  1. ten_op: a 10-op elementwise function of 5 tensors of shape (4, 4): eager vs thunder.
  2. guard: thunder.jit of `lambda a, b, c, d, e: a` (a cache hit whose program runs no instruction)
     vs the same plain Python function; the difference is thunder's guard check + dispatch.
  3. mlp3: the 3-op MLP of DESIGN.md (Linear 16->32, ReLU, Linear 32->16; input 8 x 16), forward only,
     parameters requiring grad: eager vs thunder vs torch.compile (n/a if torch.compile fails here).
  4. train_step: a small classifier's training step, forward and backward (Linear 16->32, ReLU,
     Linear 32->10, cross-entropy against 8 labels; `loss.backward()` each call): eager vs thunder vs
     torch.compile. Its tensors are below the fuser's CPU size, so thunder runs torch's kernels: the
     figure is the cost of thunder's programs and autograd bridge against eager's autograd.
Writes benchmarks/results/call_overhead.json.

    .venv/bin/python benchmarks/call_overhead.py [--calls 2000] [--repeats 15] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch

import thunder

RESULTS = os.path.join(ROOT, "benchmarks", "results", "call_overhead.json")
RATIO_TARGET = 1.3
GUARD_TARGET_US = 5.0


def ten_ops(a, b, c, d, e):
    t = a + b  # 1
    t = t * c  # 2
    t = torch.relu(t)  # 3
    t = t - d  # 4
    t = torch.sin(t)  # 5
    t = t * e  # 6
    t = t + 1.0  # 7
    t = torch.exp(t)  # 8
    t = t / 2.0  # 9
    return torch.tanh(t)  # 10


def identity5(a, b, c, d, e):
    return a


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def forward(self, x, labels):
        return torch.nn.functional.cross_entropy(self.net(x), labels)


def _train_step(model):
    def step(x, labels):
        model(x, labels).backward()
    return step


def _check_train_step(models: dict, x, labels):
    """Each variant's loss and gradients against eager's, from zeroed gradients."""
    ref = None
    for m in models.values():
        for p in m.parameters():
            p.grad = None
        loss = m(x, labels)
        loss.backward()
        got = (loss.detach(), [p.grad.clone() for p in m.parameters()])
        if ref is None:
            ref = got
        else:
            torch.testing.assert_close(got[0], ref[0])
            for a, b in zip(got[1], ref[1]):
                torch.testing.assert_close(a, b)


def _time_calls(fn, args, calls):
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter_ns() - t0) / calls / 1e3  # us per call


def compare(fns: dict, args, calls, repeats):
    """Interleaved timing of several callables on the same args; returns per-call us lists."""
    for fn in fns.values():  # warm up (and compile)
        for _ in range(max(50, calls // 10)):
            fn(*args)
    names = list(fns)
    samples = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            order = names if r % 2 == 0 else names[::-1]
            for n in order:
                samples[n].append(_time_calls(fns[n], args, calls))
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def summarize(samples, base="eager"):
    out = {}
    for n, s in samples.items():
        out[n] = {"median_us": statistics.median(s), "min_us": min(s), "samples_us": s}
        if n != base:
            out[n]["ratio_to_" + base] = statistics.median(x / y for x, y in zip(s, samples[base]))
    return out


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--calls", type=int, default=2000, help="calls per timed block")
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per callable")
    p.add_argument("--no-torch-compile", action="store_true")
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    results = {}

    # 1. ten-op function
    xs = tuple(torch.randn(4, 4) for _ in range(5))
    jten = thunder.jit(ten_ops)
    torch.testing.assert_close(jten(*xs), ten_ops(*xs))
    results["ten_op"] = summarize(
        compare({"eager": ten_ops, "thunder": jten}, xs, args.calls, args.repeats)
    )
    results["ten_op"]["thunder"]["cache_misses"] = thunder.cache_misses(jten)
    results["ten_op"]["thunder"]["final_trace"] = str(thunder.last_traces(jten)[-1])

    # 2. guard check: a cache hit that runs nothing
    jid = thunder.jit(identity5)
    assert jid(*xs) is xs[0] or torch.equal(jid(*xs), xs[0])
    g = summarize(compare({"eager": identity5, "thunder": jid}, xs, args.calls * 5, args.repeats))
    g["guard_plus_dispatch_us"] = statistics.median(
        t - e for t, e in zip(g["thunder"]["samples_us"], g["eager"]["samples_us"])
    )
    g["returns_input_itself"] = jid(*xs) is xs[0]
    results["guard"] = g

    # 3. 3-op MLP
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    x = torch.randn(8, 16)
    fns = {"eager": mlp, "thunder": thunder.jit(mlp)}
    torch.testing.assert_close(fns["thunder"](x), mlp(x))
    tc_note = None
    if not args.no_torch_compile:
        try:
            t0 = time.perf_counter()
            tc = torch.compile(mlp)
            torch.testing.assert_close(tc(x), mlp(x))
            tc_note = f"first call {time.perf_counter() - t0:.1f} s"
            fns["torch.compile"] = tc
        except Exception as e:  # noqa: BLE001 - any failure means "not available on this machine"
            tc_note = f"n/a: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    else:
        tc_note = "n/a: skipped (--no-torch-compile)"
    results["mlp3"] = summarize(compare(fns, (x,), args.calls, args.repeats))
    results["mlp3"]["torch_compile_note"] = tc_note

    # 4. training step of a small classifier
    clf = Classifier()
    labels = torch.randint(0, 10, (8,))
    steps = {"eager": clf, "thunder": thunder.jit(clf)}
    if "torch.compile" in fns:
        steps["torch.compile"] = torch.compile(clf)
    _check_train_step(steps, x, labels)
    results["train_step"] = summarize(
        compare({n: _train_step(m) for n, m in steps.items()}, (x, labels), args.calls // 4, args.repeats)
    )
    results["train_step"]["thunder"]["final_traces"] = [
        str(thunder.last_traces(steps["thunder"])[-1]), str(thunder.last_backward_traces(steps["thunder"])[-1])]

    # report
    ten, mlp3 = results["ten_op"], results["mlp3"]
    ratio = ten["thunder"]["ratio_to_eager"]
    guard_us = g["guard_plus_dispatch_us"]
    print(
        f"CPU ({os.cpu_count()} cores), torch {torch.__version__}, python {platform.python_version()}; "
        f"{args.repeats} repeats x {args.calls} calls, interleaved; median per call"
    )
    print(f"{'figure':40s}{'eager us':>10s}{'thunder us':>12s}{'ratio':>8s}{'target':>10s}{'':>8s}")
    print(
        f"{'10-op function, 5 x (4,4) f32':40s}{ten['eager']['median_us']:10.2f}"
        f"{ten['thunder']['median_us']:12.2f}{ratio:8.2f}{'<= 1.30x':>10s}"
        f"{'MET' if ratio <= RATIO_TARGET else 'MISSED':>8s}"
    )
    print(
        f"{'cache hit running nothing (5 tensors)':40s}{g['eager']['median_us']:10.2f}"
        f"{g['thunder']['median_us']:12.2f}{'':8s}{'':10s}"
    )
    print(
        f"{'  guard + dispatch (difference)':40s}{'':10s}{guard_us:12.2f}{'':8s}{'<= 5 us':>10s}"
        f"{'MET' if guard_us <= GUARD_TARGET_US else 'MISSED':>8s}"
    )
    tc_col = (
        f"{mlp3['torch.compile']['median_us']:.2f} us ({mlp3['torch.compile']['ratio_to_eager']:.2f}x)"
        if "torch.compile" in mlp3
        else "n/a"
    )
    print(
        f"{'3-op MLP (8x16 -> 32 -> 16), fwd':40s}{mlp3['eager']['median_us']:10.2f}"
        f"{mlp3['thunder']['median_us']:12.2f}{mlp3['thunder']['ratio_to_eager']:8.2f}"
        f"   torch.compile: {tc_col}"
    )
    if tc_note:
        print(f"  torch.compile: {tc_note}")
    st = results["train_step"]
    tc_col = (
        f"{st['torch.compile']['median_us']:.2f} us ({st['torch.compile']['ratio_to_eager']:.2f}x)"
        if "torch.compile" in st
        else "n/a"
    )
    print(
        f"{'classifier training step (8x16), f+b':40s}{st['eager']['median_us']:10.2f}"
        f"{st['thunder']['median_us']:12.2f}{st['thunder']['ratio_to_eager']:8.2f}"
        f"   torch.compile: {tc_col}"
    )

    if not args.no_json:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(
                {
                    "benchmark": "call_overhead",
                    "command": "python benchmarks/call_overhead.py " + " ".join(sys.argv[1:]),
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads(),
                    },
                    "calls": args.calls,
                    "repeats": args.repeats,
                    "targets": {"ten_op_ratio": RATIO_TARGET, "guard_us": GUARD_TARGET_US},
                    "met": {
                        "ten_op_ratio": ratio <= RATIO_TARGET,
                        "guard_us": guard_us <= GUARD_TARGET_US,
                    },
                    "results": results,
                },
                f,
                indent=2,
            )
        print(f"wrote {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    main()
