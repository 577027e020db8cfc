"""A training step of the GPT-2-style model on the CPU: thunder's own autograd against eager, side by
side in one run.

Targets (the autograd issue):
  * saved-for-backward bytes and peak memory of a training step: at most eager's;
  * training step time on the CPU without thunder's own fusion (executors=["torch"]): at most 1.1x
    eager's.

Model: benchmarks/gpt_model.py's GPT (default: the "gpt2-small-demo" config, 4 layers, d=256,
vocab 8192) with the cross-entropy loss inside the jitted module, fp32, AdamW. Eager and thunder get
identical copies of the model and the same batches.

  1. saved bytes: every tensor autograd saves for the backward during one forward (eager: by its
     nodes; thunder: by its torch.autograd.Function), seen through torch.autograd.graph's
     saved_tensors_hooks, counted once per storage; reported in total and without the parameters
     and inputs (which are alive anyway);
  2. peak memory: the highest allocated CPU memory during forward + backward above the level at the
     start of the step (from torch.profiler's memory events), gradients already allocated; and the
     level when 25/50/75% of the backward's allocation events have happened (how fast the backward
     frees what the forward saved);
  3. step time: forward + backward + optimizer step, eager and thunder interleaved (each repeat runs
     `--steps` steps of one, then of the other, alternating which goes first, so both see the same
     machine load); median per-step time over the repeats and the median of the per-repeat ratios.
Writes benchmarks/results/training_step.json (training_step_fused.json with --fused: thunder with its
default executors, the fuser among them, instead of executors=["torch"]), or to --out.

    .venv/bin/python benchmarks/training_step.py [--config gpt2-small-demo] [--batch 4]
        [--tokens 128] [--steps 1] [--repeats 31] [--threads N] [--fused] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import torch
from gpt_model import CONFIGS, GPT, WithLoss

import thunder

RESULTS = os.path.join(ROOT, "benchmarks", "results", "training_step.json")
TIME_TARGET = 1.1


def saved_bytes(step_forward, exclude):
    """Bytes of the distinct storages autograd saves during `step_forward()`: (total, activations)."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = (s.nbytes(), t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step_forward()
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    total = sum(n for n, _ in storages.values())
    activations = sum(n for p, (n, _) in storages.items() if p not in excluded)
    del loss
    return total, activations


def memory_profile(model, idx, tgt):
    """Memory allocated during forward + backward above the level at the start (bytes, from
    torch.profiler's memory events): the peak, and the level when a quarter, half and three
    quarters of the backward's allocation events have happened."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        loss = model(idx, tgt)
        with torch.profiler.record_function("training_step.backward"):
            loss.backward()
        del loss
    events = prof.profiler.kineto_results.events()
    start_bwd = next(e.start_ns() for e in events if e.name() == "training_step.backward")
    mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    level = peak = 0
    backward_levels = []
    for t, n in mem:
        level += n
        peak = max(peak, level)
        if t >= start_bwd:
            backward_levels.append(level)
    quarters = [backward_levels[int(f * (len(backward_levels) - 1))] for f in (0.25, 0.5, 0.75)]
    return peak, quarters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="gpt2-small-demo", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--fused", action="store_true", help="thunder's default executors (with the fuser)")
    ap.add_argument("--out", default="",
                    help="where the JSON goes (default: benchmarks/results/training_step[_fused].json)")
    args = ap.parse_args()
    results = args.out or (RESULTS.replace(".json", "_fused.json") if args.fused else RESULTS)
    executors = None if args.fused else ["torch"]
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = CONFIGS[args.config]
    torch.manual_seed(0)
    eager = WithLoss(GPT(cfg))
    twin = copy.deepcopy(eager)
    jitted = thunder.jit(twin) if executors is None else thunder.jit(twin, executors=executors)
    opt = torch.optim.AdamW(eager.parameters(), lr=1e-4)
    jopt = torch.optim.AdamW(twin.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), generator=g)
    tgt = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), generator=g)

    def train_step(model, optimizer):
        loss = model(idx, tgt)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        return loss

    # Warm up (compiles thunder's programs, allocates gradients and optimizer state).
    for _ in range(2):
        le = train_step(eager, opt).item()
        lt = train_step(jitted, jopt).item()
    assert thunder.last_backward_traces(jitted), "thunder's own backward did not run"
    kernels = (len(thunder.last_traces(jitted)[-1].fusion_callables),
               len(thunder.last_backward_traces(jitted)[-1].fusion_callables))

    params = list(eager.parameters())
    jparams = list(twin.parameters())
    e_total, e_act = saved_bytes(lambda: eager(idx, tgt), params + [idx, tgt])
    t_total, t_act = saved_bytes(lambda: jitted(idx, tgt), jparams + [idx, tgt])

    e_peak, e_quarters = memory_profile(eager, idx, tgt)
    t_peak, t_quarters = memory_profile(jitted, idx, tgt)

    e_times, t_times, ratios = [], [], []
    for r in range(args.repeats):
        order = [(eager, opt, e_times), (jitted, jopt, t_times)]
        if r % 2:
            order.reverse()
        per = {}
        for model, optimizer, sink in order:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer)
            dt = (time.perf_counter() - t0) / args.steps
            sink.append(dt)
            per[id(model)] = dt
        ratios.append(per[id(jitted)] / per[id(eager)])

    e_ms = statistics.median(e_times) * 1e3
    t_ms = statistics.median(t_times) * 1e3
    ratio = statistics.median(ratios)
    mb = 1 / 2**20
    rows = [
        ("saved for backward, total (MiB)", e_total * mb, t_total * mb, t_total / e_total),
        ("saved for backward, activations (MiB)", e_act * mb, t_act * mb, t_act / e_act),
        ("peak memory of forward + backward (MiB)", e_peak * mb, t_peak * mb, t_peak / e_peak),
    ] + [
        (f"  memory at {q}% of the backward (MiB)", e * mb, t * mb, t / e)
        for q, e, t in zip((25, 50, 75), e_quarters, t_quarters)
    ] + [
        ("training step time (ms)", e_ms, t_ms, ratio),
    ]
    print(f"GPT-2-style {args.config}: batch {args.batch} x {args.tokens} tokens, fp32, AdamW, CPU, "
          f"{torch.get_num_threads()} threads; thunder executors="
          f"{'default (with the fuser)' if executors is None else executors}")
    print(f"{'':46} {'eager':>10} {'thunder':>10} {'ratio':>7}")
    for name, e, t, q in rows:
        print(f"{name:46} {e:10.2f} {t:10.2f} {q:7.3f}")
    print(f"last warm-up losses: eager {le:.6f} thunder {lt:.6f}; fused regions forward/backward: "
          f"{kernels[0]}/{kernels[1]}")
    met = {
        "saved_bytes": t_total <= e_total,
        "peak_memory": t_peak <= e_peak,
        "step_time": ratio <= TIME_TARGET,
    }
    print("targets met:", met)
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as f:
        json.dump({
            "config": args.config, "batch": args.batch, "tokens": args.tokens, "fused": args.fused,
            "fused_regions_forward_backward": kernels,
            "steps": args.steps, "repeats": args.repeats,
            "saved_bytes": {"eager_total": e_total, "thunder_total": t_total,
                            "eager_activations": e_act, "thunder_activations": t_act},
            "peak_memory_bytes": {"eager": e_peak, "thunder": t_peak},
            "backward_memory_quarters_bytes": {"eager": e_quarters, "thunder": t_quarters},
            "step_time_ms": {"eager": e_ms, "thunder": t_ms, "ratio": ratio,
                             "eager_all": e_times, "thunder_all": t_times, "ratios": ratios},
            "targets": {"time_ratio": TIME_TARGET}, "met": met,
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "torch": torch.__version__, "threads": torch.get_num_threads(),
                        "cpus": os.cpu_count()},
            "date": time.strftime("%Y-%m-%d"),
        }, f, indent=1)
    print(f"wrote {os.path.relpath(results, ROOT)}")


if __name__ == "__main__":
    main()
