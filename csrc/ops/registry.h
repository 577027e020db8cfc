// Registration of the built-in symbols: the primitives (prims.def) and the torch-level composites,
// declared per op family as tables of OpDef in ops/<family>.cpp.
#pragma once

#include <string>
#include <vector>

#include "ir/symbol.h"

namespace thunder {

struct OpDef {
  const char* name;
  const char* signature;  // the torch function's own signature, so the torch executor can call it
  MetaFn meta;            // records the decomposition; nullptr for in-place ops (see inplace_of)
  std::vector<std::string> torch_names;  // python callables recorded as this op
  std::string torch_impl = {};           // callable that runs it; empty: torch_names[0]
  uint32_t tags = kTagNone;
  const char* inplace_of = nullptr;  // in-place ops: the name of the out-of-place op
};

void register_ops(SymbolTable& table, const std::vector<OpDef>& defs);

// Registers every built-in symbol once (idempotent, thread-safe).
void ensure_builtin_ops();

// Per-family registration (each in its own file).
void register_prims(SymbolTable& table);
void register_elementwise_ops(SymbolTable& table);
void register_shape_ops(SymbolTable& table);
void register_reduction_ops(SymbolTable& table);
void register_nn_ops(SymbolTable& table);
void register_creation_ops(SymbolTable& table);
// Backward kernels and the forward kernels they pair with, emitted by gradient rules (grad_ops.cpp).
void register_grad_ops(SymbolTable& table);

// The generic meta function of in-place ops: runs the out-of-place twin and converts the result back
// to the mutated tensor's dtype (refusing what PyTorch refuses: a result that cannot be cast, or a
// shape change).
Value meta_inplace(Builder& b, const BoundArgs& args);

}  // namespace thunder
