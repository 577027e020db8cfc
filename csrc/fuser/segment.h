// Splitting a fusion region into kernels. The region's primitives (in trace order) are cut greedily
// into segments, each as many primitives as one kernel (kernel.h) computes: a primitive that does
// not join is deferred with what reads it while later ones may still join, and the segment's
// primitives move ahead of the deferred ones, so the segments run in a topological order. Segments
// that compute nothing (only views and broadcasts) and primitives no kernel takes are left to other
// executors.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fuser/kernel.h"

namespace thunder::fuser {

struct Segment {
  std::vector<BSymRef> prims;
  std::vector<TensorRef> inputs;   // read, defined before the segment
  std::vector<TensorRef> outputs;  // defined, read after it or returned by the region
  std::optional<KernelDef> kernel; // nullopt: left to other executors
};

// A name for a new tensor from a hint: one no other tensor of the program has.
using NameFn = std::function<std::string(const std::string&)>;

// `fresh_name(hint)` names the tensors the region's rewriting adds (reshapes of computed values
// moved across element-wise primitives).
std::vector<Segment> segment_region(const std::vector<BSymRef>& prims,
                                    const std::vector<TensorRef>& region_outputs,
                                    const NameFn& fresh_name);

// A string that identifies a kernel's computation exactly (nodes, views, constants, axes, the
// shapes and dtypes of its inputs and outputs, the device): equal signatures compute the same
// function, so one compiled FusedKernel serves both.
std::string kernel_signature(const KernelDef& k);

// True when one of `prims` draws random numbers (uniform_philox): torch would compute them with ~40
// operations over the tensor, so such a region is worth a kernel at any size.
bool draws_random(const std::vector<BSymRef>& prims);

// True when every tensor `prims` read or write is on the CPU and has fewer than `min_numel`
// elements: a region too small for a compiled kernel to pay for its compile. Never for a region
// that draws random numbers (uniform_philox), which torch would compute slowly.
bool cpu_region_below(const std::vector<BSymRef>& prims, int64_t min_numel);

}  // namespace thunder::fuser
