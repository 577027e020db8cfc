// The CPU code generator: a kernel and its layout as a C++ translation unit with simple loops the
// compiler vectorises (`#pragma omp simd`, vector math from libmvec), exporting
//   extern "C" int64_t thunder_items();                    // independent work items
//   extern "C" int64_t thunder_item_cost();                // elements touched per item
//   extern "C" void thunder_kernel(int64_t begin, int64_t end, char** ptrs);
// `ptrs` holds the inputs' data pointers, then the outputs'. Items are rows (row reductions), column
// blocks (column reductions) or blocks of elements (pointwise); the host runs item ranges in parallel.
#pragma once

#include <string>

#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

std::string cpu_source(const KernelDef& k, const Layout& layout);

}  // namespace thunder::fuser
