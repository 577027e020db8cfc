"""Accuracy and time of long float32 sums: eager against thunder's fused kernels, side by side in one
process. Relative error against a float64 sum of the same values; time as the median of a few calls
(CUDA: 20 calls between events, each call's host time included; and the device time of the kernels
per call from torch.profiler, L2 cleared before each). "thunder, rows kept" is thunder with
THUNDER_FUSION_SPLIT_ROWS=0 (full and long-row reductions left as the rows they are).
Prints a table and writes JSON (--out).
    PYTHONPATH=. python scripts/sum_accuracy.py [--device cuda] [--only SUBSTRING] [--out sum_accuracy.json]"""
import argparse
import json
import os
import statistics
import time

import torch

import thunder
from thunder.executors import fusionex

FUSE_ALL = thunder.extend.register_executor(fusionex.ThunderFusionExecutor("sum_accuracy", min_cpu_numel=0))

CASES = {
    "sum of 4M x 0.1": (lambda x: x.sum(), lambda: torch.full((4_000_000,), 0.1)),
    "mean of 4M x 0.1": (lambda x: x.mean(), lambda: torch.full((4_000_000,), 0.1)),
    "sum of 4M randn": (lambda x: x.sum(), lambda: torch.randn(4_000_000, generator=torch.Generator().manual_seed(0))),
    "row sums 1024 x 65536 randn": (lambda x: x.sum(1),
                                    lambda: torch.randn(1024, 65536, generator=torch.Generator().manual_seed(0))),
    "column sums 65536 x 1024 of 0.1": (lambda x: x.sum(0), lambda: torch.full((65536, 1024), 0.1)),
    "column means 65536 x 1024 randn": (lambda x: x.mean(0),
                                        lambda: torch.randn(65536, 1024, generator=torch.Generator().manual_seed(0)).abs()),
    "column sums 4096 x 4096 randn": (lambda x: x.sum(0),
                                      lambda: torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0)).abs()),
    "mean squared error 8 x 3 x 512 x 512": (lambda x: ((x - 0.5) ** 2).mean(),
                                             lambda: torch.rand(8, 3, 512, 512, generator=torch.Generator().manual_seed(0))),
    "sum of 64M randn": (lambda x: x.sum(), lambda: torch.randn(64 << 20, generator=torch.Generator().manual_seed(0))),
    # Few long rows: a block (a thread) each unless split.
    "per-sample MSE 8 x 3 x 512 x 512": (lambda x: ((x - 0.5) ** 2).mean(dim=(1, 2, 3)),
                                         lambda: torch.rand(8, 3, 512, 512, generator=torch.Generator().manual_seed(0))),
    "mean of per-sample MSEs 8 x 3 x 512 x 512": (lambda x: ((x - 0.5) ** 2).mean(dim=(1, 2, 3)).mean(),
                                                  lambda: torch.rand(8, 3, 512, 512, generator=torch.Generator().manual_seed(0))),
    "row sums 4 x 1M randn": (lambda x: x.sum(1), lambda: torch.randn(4, 1 << 20, generator=torch.Generator().manual_seed(0))),
    "row maxima 16 x 256K randn": (lambda x: x.amax(1), lambda: torch.randn(16, 1 << 18, generator=torch.Generator().manual_seed(0))),
    "per-image means 64 x 3 x 224 x 224": (lambda x: x.mean(dim=(1, 2, 3)),
                                         lambda: torch.rand(64, 3, 224, 224, generator=torch.Generator().manual_seed(0))),
}


def median_ms(fn, x, repeats=7):
    fn(x)
    times = []
    for _ in range(repeats):
        if x.is_cuda:  # 20 calls back to back between events (includes each call's host time)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(20):
                fn(x)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 20)
            continue
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def device_ms(fn, x):
    """Device time of fn(x)'s kernels per call, in ms (CUDA only)."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
    from fusion_gpu import kernel_time

    return kernel_time(lambda: fn(x)) * 1e3


def rel_error(got, exact):
    return float(((got.double() - exact).abs() / exact.abs().clamp_min(1e-30)).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sum_accuracy.json")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="", help="cases whose name contains this")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    rows = []
    cols = ["eager rel. error", "thunder rel. error", "eager ms", "thunder ms", "thunder, rows kept ms"]
    if cuda:
        cols += ["eager kernels ms", "thunder kernels ms", "thunder, rows kept, kernels ms"]
    print("| case | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, (fn, make) in CASES.items():
        if args.only not in name:
            continue
        x = make().to(args.device)
        exact = fn(x.double())
        jfn = thunder.jit(fn, executors=[FUSE_ALL])
        os.environ["THUNDER_FUSION_SPLIT_ROWS"] = "0"
        try:
            kept = thunder.jit(fn, executors=[FUSE_ALL])
            kept(x)
        finally:
            del os.environ["THUNDER_FUSION_SPLIT_ROWS"]
        row = {"case": name, "eager_rel_error": rel_error(fn(x), exact),
               "thunder_rel_error": rel_error(jfn(x), exact), "fused_kernels": len(fusionex.fusion_kernels(jfn)),
               "kernel_ir": [k.kernel_ir.splitlines()[0] for k in fusionex.fusion_kernels(jfn)],
               "eager_ms": median_ms(fn, x), "thunder_ms": median_ms(jfn, x), "rows_kept_ms": median_ms(kept, x)}
        line = (f"| {name} | {row['eager_rel_error']:.1e} | {row['thunder_rel_error']:.1e} | "
                f"{row['eager_ms']:.3f} | {row['thunder_ms']:.3f} | {row['rows_kept_ms']:.3f} |")
        if cuda:
            row.update(eager_kernel_ms=device_ms(fn, x), thunder_kernel_ms=device_ms(jfn, x),
                       rows_kept_kernel_ms=device_ms(kept, x))
            line += (f" {row['eager_kernel_ms']:.4f} | {row['thunder_kernel_ms']:.4f} |"
                     f" {row['rows_kept_kernel_ms']:.4f} |")
        rows.append(row)
        print(line, flush=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "device": args.device, "threads": torch.get_num_threads(),
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
