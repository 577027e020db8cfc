// The CUDA code generator: a kernel and its layout as CUDA C++ for NVRTC, with the launch shape.
//   kPointwise: grid-stride loop, 128-bit vector loads/stores along the contiguous axis when every
//               access allows it, 64-bit indices only when the tensors need them.
//   kInner:     one block per row (a warp per row for short rows); each thread keeps its slice of the
//               row's loads in registers when it fits (re-reading through L2 otherwise); reductions by
//               warp shuffles and one shared-memory round.
//   kOuter:     a block of 32 columns x 8 row groups; each thread accumulates its column over its rows,
//               then a shared-memory reduction over the row groups.
#pragma once

#include <cstdint>
#include <string>

#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

struct CudaLaunch {
  int64_t grid = 1;
  int block = 128;
  int shared_bytes = 0;
};

// Source exporting `extern "C" __global__ void thunder_kernel(char** ptrs)`... with the pointers as
// individual parameters (inputs then outputs).
std::string cuda_source(const KernelDef& k, const Layout& layout, CudaLaunch* launch = nullptr);

}  // namespace thunder::fuser
