// Python bindings of thunder.extend: operators with Python meta functions, checked implementations
// with Python checkers, fusion executors whose `can_fuse` and `fuse` are Python methods (on the C++
// region partitioner), and read-only views of bound symbols and regions for them.
#pragma once

#include <nanobind/nanobind.h>

namespace thunder::bindings {

void bind_extend(nanobind::module_& m);

}  // namespace thunder::bindings
