// Rematerialization: choosing what the forward saves for the backward, and what the backward
// recomputes instead.
//
// The backward of a JointTrace reads forward values. Saving all of them costs memory; recomputing
// cheap ones (elementwise and shape operations, directly or through their decomposition) from other
// saved values costs a little time. `plan_rematerialization` solves this as one minimum cut over
// the forward graph, as AOTAutograd's min-cut partitioner does: each forward value is an edge of
// capacity = its size in bytes (trace inputs and values the forward returns anyway cost nothing);
// values made by operations that must not be recomputed (reductions, matrix products, random draws,
// opaque calls, symbols without a decomposition) hang off the source, except an output with a
// RecomputeRecipe (grad_rule.h), which hangs off its symbol's inputs and other outputs; values the
// backward reads lead to the sink. The cut is the set of saved values; everything between the cut
// and the backward is recomputed at the start of the backward, right before its first use. A value
// a library call of the backward reads (a matmul, an attention backward), directly or through
// views, is saved when the activations it is computed from are read by no fused part of the
// backward: the backward holds it in memory anyway, and computing it again would take a kernel of
// its own.
//
// `rematerialize` applies the plan. Requires: a JointTrace from vjp. Guarantees: the backward reads
// only the saved values and the cotangents; the forward is unchanged.
//
//   before: forward: t0 = ltorch.linear(x, w); t1 = ltorch.gelu(t0); t2 = ltorch.mul(t1, t1)
//           backward reads t0 (gelu's backward) and t1 (mul's backward)
//   after:  saved: t0; backward starts with t1 = ltorch.gelu(t0)
//   (with t2 = ltorch.linear(t1, w2), the weight gradient's matmul reads t1: still computed again,
//   in the kernel of gelu's backward, which reads t0 anyway)
#pragma once

#include <unordered_set>
#include <vector>

#include "autograd/vjp.h"

namespace thunder::autograd {

struct RematOptions {
  bool enabled = true;  // false: save every forward value the backward reads
};

struct RematPlan {
  std::vector<TensorRef> saved;       // forward values the forward returns for the backward
  std::vector<BSymRef> recomputed;    // forward bound symbols the backward runs again
  std::vector<TensorRef> by_recipe;   // forward values the backward computes by their recipe
};

RematPlan plan_rematerialization(const JointTrace& joint, const RematOptions& options = {});
JointTrace rematerialize(const JointTrace& joint, const RematOptions& options = {});

// The trace inputs the forward writes into (prims.copy_ write-backs, at any depth of a
// decomposition, such as batch_norm's running statistics).
std::unordered_set<const TensorProxy*> mutated_inputs(const Trace& forward);

// True when `b` is cheap to run again: elementwise and shape primitives, or a composite whose
// decomposition has only those, with no random draw or side effect.
bool is_recomputable(const BoundSymbol& b);

}  // namespace thunder::autograd
