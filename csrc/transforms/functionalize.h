// Functionalization of in-place operations.
//
// Capture records an in-place torch call (`x.add_(y)`, `x += y`, `x[i] = v`, `relu(x, inplace=True)`) as
// an in-place symbol whose output is a new proxy, and every later use of the mutated tensor already
// refers to that proxy. This pass replaces each in-place bound symbol by its decomposition (the
// out-of-place twin, plus a dtype conversion when needed) and, for every trace input that was mutated,
// appends one `prims.copy_(latest, input)` that writes the final value back, so the caller sees the
// mutation exactly as in eager mode. Requires: a captured trace. Guarantees: no in-place symbol but the
// trailing copy_ write-backs.
//
//   before: t0 = ltorch.add_(x, y); return t0           (x is an input)
//   after:  t0 = ltorch.add(x, y); t1 = prims.copy_(t0, x); return t0
#pragma once

#include "ir/trace.h"

namespace thunder {

Trace functionalize(const Trace& trace);

}  // namespace thunder
