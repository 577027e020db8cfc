// Common-subexpression elimination.
//
// Two bound symbols with the same symbol and structurally equal arguments (after earlier replacements)
// compute the same value; the later one is dropped and its outputs are replaced by the earlier one's
// everywhere after it (sub-symbols included). Symbols tagged kTagRandom, kTagInplace or kTagDontDce, and
// opaque symbols, are never merged. Guarantees: the same output value, with no duplicate pure computation.
//
//   before: t0 = ltorch.exp(x); t1 = ltorch.exp(x); t2 = ltorch.add(t0, t1); return t2
//   after:  t0 = ltorch.exp(x); t2 = ltorch.add(t0, t0); return t2
#pragma once

#include "ir/trace.h"

namespace thunder {

Trace cse(const Trace& trace);

}  // namespace thunder
