// Partitioning a trace into fusible regions: the pass every fusion executor builds on.
//
// `partition_regions(trace, is_fusible, fuse)` groups the top-level bound symbols for which
// `is_fusible` holds into maximal regions and asks `fuse` for the bound symbols that replace each one.
//
// Requires: a trace in evaluation order (every proxy defined before use).
// Guarantees:
// - Regions are convex: no path leaves a region and comes back into it, so replacing each region by
//   one symbol keeps the program acyclic. A region grows along data dependences (a fusible symbol joins
//   the region of one of its producers when that creates no cycle); independent chains are separate
//   regions (a fuser that wants horizontal fusion merges them itself).
// - Symbols with side effects (kTagDontDce, kTagInplace: a grad-mode switch, an in-place op) are
//   barriers: no region spans one. A `copy_` into a tensor (functionalization's write-back into a
//   buffer or an argument) is ordered only with the symbols that read its destination: after the
//   earlier ones, before the later ones. Random and opaque symbols keep their relative order.
// - Region.inputs are the tensors members read that are defined outside the region (trace inputs or
//   other symbols' outputs), in first-use order; Region.outputs are the tensors members define that
//   are read after the region or returned by the trace, in definition order.
// - The result lists the replacements in a topological order that keeps the original order wherever
//   dependences allow; a region sits where its last member was.
// - `fuse` may return the members unchanged (declining), several symbols (splitting the region), or
//   one fusion symbol. What it returns must define every region output from the region inputs.
//
// Before (is_fusible = elementwise prims):   After (fuse wraps the region in `fusion0`):
//   t0 = prims.mul(x, y)                        t1 = fusion0(x, y)
//   t1 = prims.exp(t0)                          t2 = torch.matmul(t1, w)
//   t2 = torch.matmul(t1, w)
#pragma once

#include <functional>
#include <vector>

#include "ir/trace.h"

namespace thunder {

struct Region {
  std::vector<BSymRef> bsyms;      // members, in trace order
  std::vector<TensorRef> inputs;   // read by members, defined outside, first-use order
  std::vector<TensorRef> outputs;  // defined by members, read outside or returned
};

using RegionPredicate = std::function<bool(const BoundSymbol&)>;
using RegionFuser = std::function<std::vector<BSymRef>(const Region&)>;

Trace partition_regions(const Trace& trace, const RegionPredicate& is_fusible,
                        const RegionFuser& fuse);

// The primitives at the leaves of `b`'s decomposition, in order (`b` itself when it is a primitive or
// has no decomposition).
std::vector<BSymRef> flatten_to_prims(const BSymRef& b);

}  // namespace thunder
