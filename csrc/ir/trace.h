// A trace is a program: named inputs, an ordered list of bound symbols, and an output value.
//
// Semantics, written once:
// - Evaluation order is list order. A proxy is defined once, by a trace input or by the output of one
//   bound symbol, before any use.
// - Traces are functional except for symbols tagged kTagInplace (which mutate their first tensor argument;
//   only `prims.copy_` survives functionalization) and kTagDontDce ones. A captured in-place torch call is
//   recorded as an in-place symbol whose output is a new proxy for the updated tensor; the
//   functionalization pass turns it into its out-of-place twin plus a final `copy_` into the trace
//   input that was mutated.
// - Views: an op tagged kTagView may return an alias of its input. Capture refuses in-place updates it
//   cannot express functionally (an in-place update of a view whose base is used again).
// - RNG: symbols tagged kTagRandom draw from torch's default generator in program order when run by the
//   torch executor, so a traced program consumes the generator exactly as eager does.
// - Dtype promotion and broadcasting follow PyTorch (ops/lang.h); primitives take operands of one dtype
//   and one shape, and composites insert the conversions and broadcasts explicitly.
#pragma once

#include <string>
#include <vector>

#include "ir/bound_symbol.h"

namespace thunder {

struct Trace {
  std::string name = "computation";
  std::vector<TensorRef> inputs;
  std::vector<BSymRef> bsyms;
  Value output;
  std::string stage;  // "captured", "functionalized", "dce", ... "final"

  // Python source of the trace (ir/printer.cpp).
  std::string python(bool include_subsymbols = true) const;
  Trace with_bsyms(std::vector<BSymRef> bsyms, std::string stage) const;
};

}  // namespace thunder
