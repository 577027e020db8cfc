"""thunder's fused gelu(x*w+b)*0.5+x at sizes from a few hundred KB to 64 MB, bf16 and fp32: device
time per call (kernel_time: L2 flushed before each call) and the whole call (do_bench), beside
eager's. For comparing pointwise schedules across sizes (small kernels launch few blocks). Run on
the GPU machine after building:
    python3 scripts/gpu_pointwise_sizes.py"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import thunder  # noqa: E402
from fusion_gpu import bench, gelu_chain, kernel_time  # noqa: E402


def main():
    jf = thunder.jit(gelu_chain)
    print(f"{'shape':14s} {'dtype':9s} {'thunder kernel us':>18s} {'eager kernels us':>17s} {'thunder call us':>16s}")
    for rows, cols in ((64, 4096), (2048, 768), (8192, 768), (2048, 3072), (8192, 3072), (8192, 4096)):
        for dt in (torch.bfloat16, torch.float32):
            x = torch.randn(rows, cols, device="cuda", dtype=dt)
            w, b = torch.randn(cols, device="cuda", dtype=dt), torch.randn(cols, device="cuda", dtype=dt)
            torch.testing.assert_close(jf(x, w, b), gelu_chain(x, w, b), atol=2e-2, rtol=2e-2)
            ours, eager = (lambda a=(x, w, b): jf(*a)), (lambda a=(x, w, b): gelu_chain(*a))
            tk, ek, tc = kernel_time(ours) * 1e6, kernel_time(eager) * 1e6, bench(ours) * 1e6
            name = str(dt).replace("torch.", "")
            print(f"{rows}x{cols:<9d} {name:9s} {tk:18.2f} {ek:17.2f} {tc:16.2f}", flush=True)


if __name__ == "__main__":
    main()
