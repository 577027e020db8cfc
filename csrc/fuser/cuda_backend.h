// The CUDA backend: libcuda and libnvrtc are opened with dlopen at run time (building thunder needs no
// CUDA). Sources are compiled with NVRTC for the device's architecture (a cubin; PTX for the driver to
// finish when this NVRTC is older than the driver needs), cached on disk with the CPU kernels, loaded
// with cuModuleLoadData and launched with cuLaunchKernel on the stream the caller passes (torch's
// current stream).
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
  CudaLaunch launch;
};

// True when the driver and NVRTC load and a device exists; `why` says what is missing otherwise.
bool cuda_available(std::string* why = nullptr);

// Compiles (or loads from the caches) `source` for `device`. Throws Error on a compile failure with
// the path of the saved source and NVRTC's log.
std::shared_ptr<CudaFunction> cuda_load(const std::string& source, int device, const CudaLaunch& launch);

// Launches with `ptrs` (inputs then outputs) on `stream` (a CUstream).
void cuda_launch(const CudaFunction& f, const Layout& layout, const KernelDef& k, char** ptrs,
                 void* stream);

}  // namespace thunder::fuser
