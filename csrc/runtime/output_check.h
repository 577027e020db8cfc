// Checking a user-written implementation's results against what its meta function declared.
//
// `checked_callable(fn, expected, op)` wraps `fn` (the Python callable of a kTagCheckOutputs
// symbol) so that its results are compared with the bound symbol's output `expected`: a tensor where a
// tensor was declared (on every call), then, on the first call, the same number of values, shapes,
// dtypes and device types. A mismatch is a ThunderError naming the op and both sides, raised at the
// first run of the program rather than as a failure somewhere downstream.
#pragma once

#include <nanobind/nanobind.h>

#include <string>

#include "ir/value.h"

namespace thunder::runtime {

nanobind::object checked_callable(nanobind::object fn, const Value& expected, std::string op);
void bind_output_check(nanobind::module_& m);

}  // namespace thunder::runtime
