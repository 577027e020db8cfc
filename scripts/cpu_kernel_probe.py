"""A fused CPU kernel timed outside Python, against a plain copy of the same bytes: where a row kernel's
time goes next to the memory traffic it cannot avoid.

Each case (1024 x 4096 fp32: softmax, layer_norm, log_softmax, rms_norm) is jitted once into a fresh kernel cache; its shared
object is then loaded by a small C++ program that calls `thunder_kernel` over all rows on one or two
threads (rows split in halves), best of 200 calls. `--rotate N` writes each call's output into the
next of N buffers, as a program that allocates a new output each call does (one buffer stays hot in
the last-level cache; several do not). The copy row is a kernel compiled with the same flags that
copies x into the output: the least time for any kernel that reads x and writes a tensor of its size.

    .venv/bin/python scripts/cpu_kernel_probe.py [--rotate 8]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

HARNESS = r"""
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <random>
#include <thread>
#include <vector>
// probe <so> <threads> <rotate> <floats of pointer 0> ... ; an output's count is prefixed with 'o'.
int main(int argc, char** argv) {
  void* h = dlopen(argv[1], RTLD_NOW);
  if (!h) { std::fprintf(stderr, "%s\n", dlerror()); return 1; }
  auto kernel = (void (*)(int64_t, int64_t, char**))dlsym(h, "thunder_kernel");
  auto items = (int64_t (*)())dlsym(h, "thunder_items");
  const int threads = std::atoi(argv[2]), rotate = std::atoi(argv[3]);
  std::vector<std::vector<float*>> bufs;
  std::mt19937 g(0);
  std::normal_distribution<float> d;
  for (int i = 4; i < argc; ++i) {
    const bool out = argv[i][0] == 'o';
    const size_t n = std::strtoull(argv[i] + (out ? 1 : 0), nullptr, 10);
    std::vector<float*> b;
    for (int k = 0; k < (out ? rotate : 1); ++k) {
      float* p = (float*)std::aligned_alloc(64, (n * 4 + 63) / 64 * 64);
      for (size_t j = 0; j < n; ++j) p[j] = out ? 0.0f : d(g);
      b.push_back(p);
    }
    bufs.push_back(b);
  }
  const int64_t rows = items();
  std::vector<char*> ptrs(bufs.size());
  double best = 1e30;
  for (int it = 0; it < 200; ++it) {
    for (size_t i = 0; i < bufs.size(); ++i) ptrs[i] = (char*)bufs[i][it % bufs[i].size()];
    auto t0 = std::chrono::steady_clock::now();
    if (threads == 1) {
      kernel(0, rows, ptrs.data());
    } else {
      std::thread other([&] { kernel(0, rows / 2, ptrs.data()); });
      kernel(rows / 2, rows, ptrs.data());
      other.join();
    }
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (t < best) best = t;
  }
  std::printf("%.3f\n", best);
}
"""

COPY = r"""
typedef long long int64_t;
extern "C" int64_t thunder_items() { return 1024LL; }
extern "C" void thunder_kernel(int64_t begin, int64_t end, char** ptrs) {
  const float* __restrict in0 = (const float*)ptrs[0];
  float* __restrict out0 = (float*)ptrs[1];
  for (int64_t r = begin; r < end; ++r) {
#pragma omp simd
    for (int64_t c = 0; c < 4096; ++c) out0[r * 4096 + c] = in0[r * 4096 + c];
  }
}
"""


def kernel_object(fn, args, cache):
    """The shared object of the one kernel `fn` compiles into the kernel cache `cache`."""
    import thunder

    before = set(glob.glob(os.path.join(cache, "**", "*.so"), recursive=True))
    jfn = thunder.jit(fn)
    jfn(*args)
    objs = set(glob.glob(os.path.join(cache, "**", "*.so"), recursive=True)) - before
    if len(objs) != 1:
        raise SystemExit(f"expected one newly compiled kernel in {cache}, found {len(objs)}")
    return objs.pop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotate", type=int, default=8, help="output buffers the calls cycle through")
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F

    from thunder import _core

    work = tempfile.mkdtemp(prefix="thunder-cpu-probe-")
    cache = os.environ["THUNDER_CACHE_DIR"] = os.path.join(work, "cache")  # before thunder reads it
    harness = os.path.join(work, "probe")
    with open(harness + ".cpp", "w") as f:
        f.write(HARNESS)
    subprocess.run(["g++", "-O2", "-std=c++17", harness + ".cpp", "-o", harness, "-ldl", "-lpthread"], check=True)
    n, cols = 1024 * 4096, 4096
    x, w, b = torch.randn(1024, cols), torch.randn(cols), torch.randn(cols)
    cases = {
        "softmax": (kernel_object(lambda t: torch.softmax(t, -1), (x,), cache),
                    [str(n), f"o{n}"]),
        "layer_norm": (kernel_object(lambda t, a, c: F.layer_norm(t, (cols,), a, c), (x, w, b), cache),
                       [str(n), str(cols), str(cols), f"o{n}"]),
        "log_softmax": (kernel_object(lambda t: torch.log_softmax(t, -1), (x,), cache), [str(n), f"o{n}"]),
        "rms_norm": (kernel_object(lambda t, a: F.rms_norm(t, (cols,), a), (x, w), cache),
                     [str(n), str(cols), f"o{n}"]),
    }
    copy = os.path.join(work, "copy.so")
    with open(copy[:-3] + ".cpp", "w") as f:
        f.write(COPY)
    subprocess.run(f"g++ {_core.fuser_cpu_flags()} -o {copy} {copy[:-3]}.cpp", shell=True, check=True)
    cases["copy"] = (copy, [str(n), f"o{n}"])
    print(f"1024 x 4096 fp32, best of 200 calls, outputs cycling through {args.rotate} buffers")
    print(f"{'kernel':12s} {'1 thread ms':>12s} {'2 threads ms':>13s}")
    for name, (so, sizes) in cases.items():
        t = [subprocess.run([harness, so, str(th), str(args.rotate), *sizes], capture_output=True, text=True,
                            check=True).stdout.strip() for th in (1, 2)]
        print(f"{name:12s} {t[0]:>12s} {t[1]:>13s}")


if __name__ == "__main__":
    main()
