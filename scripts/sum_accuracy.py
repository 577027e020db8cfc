"""Accuracy and time of long float32 sums: eager against thunder's fused CPU kernels, side by side in
one process. Relative error against a float64 sum of the same values; time as the median of a few
calls (CUDA: 20 calls between events, each call's host time included). Prints a table and writes JSON (--out).
    PYTHONPATH=. python scripts/sum_accuracy.py [--device cuda] [--out sum_accuracy.json]"""
import argparse
import json
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


def rel_error(got, exact):
    return float(((got.double() - exact).abs() / exact.abs().clamp_min(1e-30)).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sum_accuracy.json")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    print("| case | eager rel. error | thunder rel. error | eager ms | thunder ms |")
    print("|---|---:|---:|---:|---:|")
    for name, (fn, make) in CASES.items():
        x = make().to(args.device)
        exact = fn(x.double())
        jfn = thunder.jit(fn, executors=[FUSE_ALL])
        row = {"case": name, "eager_rel_error": rel_error(fn(x), exact),
               "thunder_rel_error": rel_error(jfn(x), exact), "fused_kernels": len(fusionex.fusion_kernels(jfn)),
               "eager_ms": median_ms(fn, x), "thunder_ms": median_ms(jfn, x)}
        rows.append(row)
        print(f"| {name} | {row['eager_rel_error']:.1e} | {row['thunder_rel_error']:.1e} | "
              f"{row['eager_ms']:.2f} | {row['thunder_ms']:.2f} |")
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "device": args.device, "threads": torch.get_num_threads(),
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
