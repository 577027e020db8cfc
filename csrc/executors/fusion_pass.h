// The fusion stage: hands each fusion executor's claimed symbols to it as maximal regions.
//
// `fuse_regions(trace, executors)` runs, for each fusion executor in priority order, partition_regions
// over that executor's claim markers (executors/executor.h, FusionHooks) and replaces each region by
// what the executor's `fuse` returns. A declined region's members are claimed again by the other
// executors in the list (their claims replace the markers).
//
// Requires: a claimed trace (claim_executors). Guarantees: no claim marker of the listed executors
// remains; the result is acyclic and defines every value before use.
//
// Before:                                   After:
//   t0 = fusion.mul(x, y)   # marker           t1 = fusion0(x, y)
//   t1 = fusion.exp(t0)     # marker             # t0 = prims.mul(x, y)
//                                                # t1 = prims.exp(t0)
#pragma once

#include <vector>

#include "executors/executor.h"
#include "ir/trace.h"

namespace thunder {

Trace fuse_regions(const Trace& trace, const std::vector<const Executor*>& executors);

}  // namespace thunder
