// Python bindings of thunder's fusion executor: its construction (the fusion hooks that turn regions
// into FusedKernel callables), availability checks, the kernel cache's counters and the thread count.
#pragma once

#include <nanobind/nanobind.h>

namespace thunder::bindings {

void bind_fuser(nanobind::module_& m);

}  // namespace thunder::bindings
