// The CUDA backend: libcuda and libnvrtc are opened with dlopen at run time (building thunder needs no
// CUDA). Sources are compiled with NVRTC for the device's architecture (a cubin; PTX for the driver to
// finish when this NVRTC is older than the driver needs), cached on disk with the CPU kernels, loaded
// with cuModuleLoadData into the device's primary context (the one torch uses) and launched with
// cuLaunchKernel on the stream the caller passes (torch's current stream).
#pragma once

#include <memory>
#include <string>

#include "fuser/cuda_codegen.h"
#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

struct CudaFunction {
  void* module = nullptr;
  void* function = nullptr;
  void* finish = nullptr;   // the kernel combining partial results per column (CudaLaunch)
  void* context = nullptr;  // the device's primary context
  int device = 0;
  int max_grid = 0;  // grid cap (the kernels loop over their work, so any grid >= 1 is correct)
  CudaLaunch launch;
};

// True when the driver and NVRTC load and a device exists; `why` says what is missing otherwise.
bool cuda_available(std::string* why = nullptr);

// Compiles (or loads from the caches) `source` for `device`. Throws Error on a compile failure with
// the path of the saved source and NVRTC's log.
std::shared_ptr<CudaFunction> cuda_load(const std::string& source, int device, const CudaLaunch& launch);

// Starts compiling `source` with NVRTC in the background (one compile per core at a time), unless it
// is loaded, on disk or being compiled already; cuda_load of the same source waits for it. The
// kernels of a program then compile in parallel while the program is being built.
void cuda_prefetch(const std::string& source, int device);

// The dynamic shared memory one block of `device` may use (its opt-in limit; 48 KiB without one).
int cuda_smem_limit(int device);

// True while `stream` (a CUstream of f's device) is being captured into a CUDA graph.
bool cuda_stream_capturing(const CudaFunction& f, void* stream);

// Launches with `ptrs` (inputs then outputs) on `stream` (a CUstream).
void cuda_launch(const CudaFunction& f, const Layout& layout, const KernelDef& k, char** ptrs,
                 void* stream);

// NVRTC alone (no driver or device needed): compiles `source` for compute capability `arch` (90 for
// sm_90) and returns true, or false with NVRTC's log in `log`. `why` says when NVRTC cannot be loaded
// (then the result is false and `log` empty). For tests and tools.
bool nvrtc_compile_check(const std::string& source, int arch, std::string* log, std::string* why = nullptr);

// NVRTC's version as major*1000 + minor*10, 0 when it cannot be loaded.
int nvrtc_version();

}  // namespace thunder::fuser
