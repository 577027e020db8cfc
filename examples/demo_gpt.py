"""thunder demo: jit a small GPT on the CPU, print the program that ran, compare with eager.

bash scripts/demo.sh            # sets up .venv, builds, runs this file
.venv/bin/python examples/demo_gpt.py [--layers 4] [--embd 256] [--batch 2] [--tokens 64] [--lines 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]

import torch
from gpt_model import GPT, GPTConfig

import thunder


def median_ms(fn, x, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn(x)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def excerpt(lines, n):
    """The trace's header, its signature shortened, and its first n body lines (the per-input type
    comments right after the signature are summarised in one line)."""
    out, i = [], 0
    while i < len(lines) and not lines[i].startswith("def "):
        out.append(lines[i])
        i += 1
    if i < len(lines):
        sig = lines[i]
        if len(sig) > 100:
            n_params = sig.count(",") + 1
            sig = sig[: sig.index(",", sig.index(",") + 1)] + f", ... ({n_params} parameters)):"
        out.append(sig)
        i += 1
    j = i
    while (
        j < len(lines) and lines[j].startswith("  # ") and '"' in lines[j] and " = " not in lines[j]
    ):
        j += 1
    if j > i:
        out.append(
            f"  # ({j - i} lines of input annotations omitted: name, device, dtype and shape)"
        )
    body = lines[j:]
    out.extend(body[:n])
    if len(body) > n:
        out.append(f"  # ... ({len(body) - n} more lines)")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description="jit a small GPT with thunder")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--lines", type=int, default=60, help="lines of the final trace to print")
    args = p.parse_args()

    torch.manual_seed(0)
    cfg = GPTConfig(
        block_size=256,
        vocab_size=args.vocab,
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.embd,
    )
    model = GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens))
    print(
        f"GPT: {cfg.n_layer} layers, d={cfg.n_embd}, {cfg.n_head} heads, vocab {cfg.vocab_size}, "
        f"{model.num_parameters() / 1e6:.1f}M parameters; input {args.batch} x {args.tokens} tokens; "
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )

    with torch.no_grad():
        expected = model(idx)  # eager warm-up and reference

        jmodel = thunder.jit(model)
        t0 = time.perf_counter()
        out = jmodel(idx)  # first call: capture, transforms, planning, then the run
        first_s = time.perf_counter() - t0

        torch.testing.assert_close(out, expected)

        trace = str(thunder.last_traces(jmodel)[-1])
        lines = trace.splitlines()
        print(excerpt(lines, args.lines))
        n_ops = sum(
            1
            for ln in lines
            if ln.startswith("  ") and not ln.lstrip().startswith("#") and "=" in ln
        )
        print(
            f"\nfinal trace: {len(lines)} lines, {n_ops} operations; "
            f"{len(thunder.last_traces(jmodel))} traces kept (one per stage)"
        )

        eager_ms = median_ms(model, idx, args.calls)
        thunder_ms = median_ms(jmodel, idx, args.calls)
        eager_ms2 = median_ms(model, idx, args.calls)  # again, to show the run-to-run spread
        eager_ms = min(eager_ms, eager_ms2)

    stages = thunder.compile_stats(jmodel).last_stage_times
    print("\noutputs match eager (torch.testing.assert_close): yes")
    print(
        f"first call (compile + run): {first_s * 1e3:8.1f} ms   "
        f"[{', '.join(f'{k} {v * 1e3:.2f} ms' for k, v in stages.items())}]"
    )
    print(f"eager forward   (median of {args.calls}): {eager_ms:8.2f} ms")
    print(
        f"thunder forward (median of {args.calls}): {thunder_ms:8.2f} ms   ({thunder_ms / eager_ms:.2f}x eager)"
    )
    print(f"cache: {thunder.cache_hits(jmodel)} hits, {thunder.cache_misses(jmodel)} miss(es)")


if __name__ == "__main__":
    main()
