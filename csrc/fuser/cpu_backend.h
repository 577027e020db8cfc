// The CPU backend: compiles generated C++ with the system compiler into a shared object (cached on
// disk and in memory, see disk_cache.h), loads it with dlopen, and runs kernels over a persistent
// thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace thunder::fuser {

struct CpuBinary {
  void* handle = nullptr;
  int64_t (*items)() = nullptr;
  int64_t (*item_cost)() = nullptr;
  void (*kernel)(int64_t, int64_t, char**) = nullptr;
  // Kernels that reduce over rows: after the parallel loop (null otherwise), and the bytes of
  // scratch memory they need (0 otherwise).
  void (*finish)(char**) = nullptr;
  int64_t scratch_bytes = 0;
  std::string path;
};

// The compiler command ("c++"), found once; empty when no working compiler exists (then `why` says
// why).
const std::string& cpu_compiler(std::string* why = nullptr);

// The flags every CPU kernel compiles with (part of each kernel's cache key).
const std::string& cpu_compile_flags();

// The loaded kernel of `source`: from memory, from disk, or compiled now (concurrent requests for one
// source, in this process or others sharing the disk cache, build it once). Throws Error on a compile
// failure, naming the file that holds the source and the compiler's messages.
std::shared_ptr<CpuBinary> cpu_load(const std::string& source);

// Starts building the kernel of `source` on a background compile thread (one per core), unless it
// is loaded or being built already; a later cpu_load of the same source waits for that build.
void cpu_prefetch(const std::string& source);

// Runs `binary` on `ptrs`, splitting its items over threads when the work is large enough (at least
// ~32K elements per task): on torch's OpenMP thread team when the process has one (so kernels and
// torch operations share the cores instead of competing for them; THUNDER_FUSION_OWN_POOL=1 opts
// out), else on the fuser's own pool.
void cpu_launch(const CpuBinary& binary, char** ptrs);

// Threads the pool uses (default: hardware concurrency; THUNDER_NUM_THREADS overrides).
void set_cpu_threads(int n);
int cpu_threads();

}  // namespace thunder::fuser
