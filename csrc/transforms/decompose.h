// Decomposition to primitives.
//
// Replaces every composite bound symbol by its sub-symbols, recursively, so only primitives (and opaque
// symbols, which have no decomposition) remain. Used to check decompositions against eager, and by
// executors that run primitives. Requires: composites record complete decompositions. Guarantees: the
// same output value, computed by primitives.
//
//   before: t0 = ltorch.add(x, 2)   (with sub-symbol t0 = prims.add(x, 2))
//   after:  t0 = prims.add(x, 2)
#pragma once

#include "ir/trace.h"

namespace thunder {

Trace decompose(const Trace& trace);

}  // namespace thunder
