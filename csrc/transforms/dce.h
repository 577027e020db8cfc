// Dead-code elimination.
//
// Removes bound symbols none of whose outputs reach the trace output or a kept bound symbol. Symbols
// with an effect are always kept: tagged kTagDontDce or kTagInplace (prims.copy_ write-backs), random
// (tagged kTagRandom at any level of their decomposition: the generator advances as in eager), and
// opaque calls. Sub-symbols are left as
// they are (they document the kept symbol). Requires: a well-formed trace. Guarantees: the same output,
// computed by a subsequence of the bound symbols.
//
//   before: t0 = ltorch.add(x, y); t1 = ltorch.mul(x, y); return t0
//   after:  t0 = ltorch.add(x, y); return t0
#pragma once

#include "ir/trace.h"

namespace thunder {

Trace dce(const Trace& trace);

// The bound symbols of `bsyms` (in program order) that compute a tensor of `roots`, or one a kept
// symbol reads, or that have an effect: what dce keeps.
std::vector<BSymRef> live_bsyms(const std::vector<BSymRef>& bsyms, const Value& roots);

}  // namespace thunder
