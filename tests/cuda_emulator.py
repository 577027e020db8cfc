"""Runs generated CUDA kernels on the CPU, for tests on machines without a GPU.

The kernel source is compiled as C++20 with a small shim: blocks run one after another, the threads of
a block as OS threads; `__syncthreads` is a barrier over the block and `__shfl_xor_sync` exchanges
values through memory between two barriers over the warp, so a shuffle that only part of a warp
executes deadlocks here as it does on a GPU. Each launch runs in a forked child with a time limit:
a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile

_SHIM = r"""
#include <barrier>
#include <cstring>
#include <math.h>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>
struct EmuDim3 { unsigned x = 0, y = 1, z = 1; };
inline thread_local EmuDim3 threadIdx, blockIdx;
inline EmuDim3 blockDim, gridDim;
inline std::barrier<>* emu_block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> emu_warp_barriers;
inline double emu_fslots[1024];
inline long long emu_islots[1024];
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)
#define __restrict__
inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
// Named barriers (bar.sync id, n): one per id, made for n threads by the first thread to reach it.
inline std::mutex emu_bar_mu;
inline std::unique_ptr<std::barrier<>> emu_bars[16];
inline void emu_bar_sync(int id, int n) {
  std::barrier<>* b;
  {
    std::lock_guard<std::mutex> g(emu_bar_mu);
    if (!emu_bars[id]) emu_bars[id].reset(new std::barrier<>(n));
    b = emu_bars[id].get();
  }
  b->arrive_and_wait();
}
template <typename T> T emu_shfl(T v, int m) {
  unsigned t = threadIdx.x;
  auto& b = *emu_warp_barriers[t / 32];
  if constexpr (std::is_floating_point_v<T>) emu_fslots[t] = (double)v; else emu_islots[t] = (long long)v;
  b.arrive_and_wait();
  unsigned p = (t & ~31u) | ((t & 31u) ^ (unsigned)m);
  T r = std::is_floating_point_v<T> ? (T)emu_fslots[p] : (T)emu_islots[p];
  b.arrive_and_wait();
  return r;
}
#define __shfl_xor_sync(mask, v, m) emu_shfl(v, m)
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
template <typename T> inline T __ldcg(const T* p) { T v; __atomic_load(p, &v, __ATOMIC_SEQ_CST); return v; }
struct alignas(16) int4 { int x, y, z, w; };
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline long long __double_as_longlong(double d) { long long u; std::memcpy(&u, &d, 8); return u; }
"""

_LAUNCHER = r"""
}  // namespace kern
extern "C" void emu_launch(void** args, int grid, int block) {
  gridDim.x = grid;
  blockDim.x = block;
  std::barrier<> bb(block);
  emu_block_barrier = &bb;
  emu_warp_barriers.clear();
  for (int w = 0; w < (block + 31) / 32; ++w)
    emu_warp_barriers.emplace_back(new std::barrier<>(std::min(32, block - 32 * w)));
  for (auto& b : emu_bars) b.reset();
  for (int b = 0; b < grid; ++b) {
    std::vector<std::thread> ts;
    for (int t = 0; t < block; ++t)
      ts.emplace_back([&, b, t] { blockIdx.x = b; threadIdx.x = t; kern::KERNEL_NAME(CALL_ARGS); });
    for (auto& th : ts) th.join();
  }
}
"""

_DIR = os.path.join(tempfile.gettempdir(), f"thunder-cuda-emulator-{os.getuid()}")


def host_source(src: str, kernel: str | None = None) -> str:
    """The CUDA source as host C++ with an `emu_launch(void** args, int grid, int block)` entry that
    runs `kernel` (the source's first thunder kernel by default)."""
    src = src.replace('asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));',
                      "{ _Float16 x; memcpy(&x, &h, 2); f = (float)x; }")
    src = src.replace('asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));',
                      "{ _Float16 x = (_Float16)f; memcpy(&h, &x, 2); }")
    src = src.replace('extern "C" __global__ void', "__global__ void")
    # Dynamic shared memory: one buffer (blocks run one after another), as large as any device allows.
    src = src.replace("extern __shared__ __align__(16) unsigned char th_smem[];",
                      "alignas(16) inline unsigned char th_smem[256 * 1024];")
    m = re.search(r"__global__ void (?:__launch_bounds__\([^)]*\) )?(" + (re.escape(kernel) if kernel else r"thunder_\w+")
                  + r")\(([^)]*)\)", src)
    if not m:
        raise ValueError("no thunder kernel in the source")
    name, params = m.group(1), [p.strip() for p in m.group(2).split(",") if p.strip()]

    def arg(i, p):
        t = p.rsplit(" ", 1)[0].replace("__restrict__", "")
        t = re.sub(r"\b(u?int(8|16|32|64)_t|th_rng_state)\b", r"kern::\1", t)
        if "*" in t:
            return f"({t})args[{i}]"
        # A parameter passed by value (a random state): read from the tensor's data.
        return f"*({t.replace('const ', '')}*)args[{i}]"

    call = ", ".join(arg(i, p) for i, p in enumerate(params))
    return _SHIM + "namespace kern {\n" + src + _LAUNCHER.replace("CALL_ARGS", call).replace("KERNEL_NAME", name)


def compile_kernel(src: str, kernel: str | None = None) -> str:
    """The path of the emulator library for `src` (compiled once, cached by content)."""
    host = host_source(src, kernel)
    os.makedirs(_DIR, exist_ok=True)
    key = hashlib.sha1(host.encode()).hexdigest()[:20]
    so = os.path.join(_DIR, f"k_{key}.so")
    if not os.path.exists(so):
        cpp = os.path.join(_DIR, f"k_{key}.{os.getpid()}.cpp")
        with open(cpp, "w") as f:
            f.write(host)
        tmp = so + f".{os.getpid()}.tmp"
        r = subprocess.run(["c++", "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-w", "-o", tmp, cpp, "-lpthread"],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"emulator build failed ({cpp}):\n{r.stderr[:4000]}")
        os.replace(tmp, so)
        os.unlink(cpp)
    return so


def available() -> bool:
    try:
        compile_kernel('extern "C" __global__ void __launch_bounds__(32) thunder_kernel(float* __restrict__ out0) '
                       "{ out0[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1); }")
        return True
    except (OSError, RuntimeError):
        return False


def launch(src: str, grid: int, block: int, tensors, timeout: float = 60.0, kernel: str | None = None) -> None:
    """Runs the kernel (`kernel`, or the source's first) over `tensors` (CPU tensors: inputs then
    outputs; outputs in shared memory)."""
    so = compile_kernel(src, kernel)
    ptrs = [t.data_ptr() for t in tensors]
    pid = os.fork()
    if pid == 0:  # the child runs the kernel and leaves without Python's teardown
        try:
            lib = ctypes.CDLL(so)
            arr = (ctypes.c_void_p * len(ptrs))(*ptrs)
            lib.emu_launch(arr, int(grid), int(block))
            os._exit(0)
        except BaseException:
            os._exit(3)
    import time

    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise TimeoutError(f"the emulated kernel did not finish in {timeout} s (a deadlock: a barrier or "
                               "a shuffle that not every thread reaches)")
        time.sleep(0.005)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the emulated kernel failed (exit {os.waitstatus_to_exitcode(status)})")
