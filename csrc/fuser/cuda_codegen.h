// The CUDA code generator: a kernel and its layout as CUDA C++ for NVRTC, with the launch shape.
// Compute happens in fp32 for bf16/fp16/fp32 (double for fp64, the integer type for integers); the
// index type is 32-bit unless an element count or offset reaches 2^31 (less a margin). Every
// schedule's chunk code is emitted twice, with 16-byte vector accesses along the contiguous axis
// (when every access's strides, offsets and the axis size allow it) and with scalar accesses; the
// kernel takes the vector path when the pointers are aligned.
//   kPointwise: grid-stride loop; each thread loads 4 chunks before computing and storing them; a
//   1-D
//               kernel's tail runs scalar; broadcast (stride 0) and strided inputs are scalar
//               loads.
//   kInner:     a warp per row for rows of at most 128 chunks (8 rows per block), else a block of
//               128..1024 threads per row; rows of up to 512 threads keep the loads that several
//               passes read in registers, longer rows (1024 threads) in dynamic shared memory when
//               the row fits the device's limit (one block per multiprocessor; the vector path
//               copies the whole row there with cp.async before the first pass), else (two blocks
//               per multiprocessor) they re-read them through L2. Pass k accumulates per thread,
//               then reduces by warp shuffles and one shared-memory round; row-level values (and
//               reciprocals of divisors) once per row. Sums over the rows per column (layer_norm's
//               weight gradient): each thread accumulates its columns over its rows, a block of 512
//               threads runs several rows at once (warps, or row groups on named barriers) and
//               combines its groups' sums; a second kernel combines the blocks' partials per
//               column. The grid is then capped at the blocks the device runs at once.
//   kOuter:     a block covers up to 32 column chunks with the rest of its 512 or 1024 threads on
//   row
//               groups; each thread accumulates its columns over its rows, then a shared-memory
//               reduction over the row groups and the column outputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

struct CudaLaunch {
  // The kernel's entry point: thunder_<schedule>_<its main operations>, so that profiles tell the
  // kernels apart (the same definition gets the same name).
  std::string name = "thunder_kernel";
  int64_t grid = 1;
  int block = 128;
  int shared_bytes = 0;
  std::vector<bool> by_value;  // per input: passed by value (a random state), not as a pointer
  // Bytes of device memory the kernel takes after its outputs (0: no such parameter), of which the
  // first `counter_bytes` are counters: zero when the kernel starts, and left at zero by it when it
  // ends. The rest (partial results) needs no initial value. Kernels on one stream can share one
  // buffer whose counters stay zero between kernels.
  int64_t workspace_bytes = 0;
  int64_t counter_bytes = 0;
  // Reductions over rows per column: the kernel leaves a partial per block and column in the
  // workspace (after 16 bytes holding the number of blocks), and a second kernel of the source,
  // `finish_name` (the same parameters), launched after it with finish_grid x finish_block threads,
  // combines them per column in block order. The first kernel's grid is capped at the blocks the
  // device runs at once (`resident_grid`), so the partials stay few.
  std::string finish_name;
  int64_t finish_grid = 0;
  int finish_block = 0;
  bool resident_grid = false;
  // The kernel needs exactly `grid` blocks (blocks are assigned to groups of rows by their index):
  // the launch does not cap it.
  bool exact_grid = false;
};

// Source exporting `extern "C" __global__ void <launch->name>(...)` with the pointers as individual
// parameters (inputs then outputs).
// `smem_limit`: the dynamic shared memory a block may use (rows of 1024 threads keep the loads
// several passes read there when they fit).
constexpr int kDefaultSmemLimit = 48 * 1024;
std::string cuda_source(const KernelDef& k, const Layout& layout, CudaLaunch* launch = nullptr,
                        int smem_limit = kDefaultSmemLimit);

}  // namespace thunder::fuser
