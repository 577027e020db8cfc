// Reverse-mode differentiation of a trace: the joint forward + backward program.
//
// `vjp` walks the trace in order and emits the forward computation; every bound symbol that reads a
// differentiable value (a floating-point trace input that requires grad, or a value computed from
// one while grad mode is on) is differentiated:
// - with its rule (grad_rule.h) when it has one: the augmented forward goes to the forward, the
//   backward is emitted later, in reverse order;
// - a torch-level symbol without a rule keeps its single forward call, and its backward recomputes
//   the parts of its decomposition the gradient needs from the symbol's inputs, then differentiates
//   the decomposition (recursively, so nested torch-level rules still apply). A decomposition that
//   draws random numbers or calls an opaque function is inlined into the forward instead, so the
//   backward reads the values the forward drew;
// - anything else (an opaque torch function, a primitive without a rule) is an error naming the op
//   and the user's line.
// `torch.no_grad()` regions inside the trace (prims.set_grad_enabled) are not differentiated, and the
// grad-mode switches themselves are dropped (the forward runs with grad mode off). The values computed
// between ltorch.checkpoint_region(True) and ltorch.checkpoint_region(False) (a
// torch.utils.checkpoint call) are listed in `checkpointed`, and the markers are dropped.
//
// The result is a JointTrace: the forward (the original inputs; its output is the original output),
// the backward bound symbols (which read forward values and the cotangents), one cotangent proxy per
// differentiable output tensor leaf, and the gradient of every trace input. Requires: a functional
// trace (after functionalize). Guarantees: backward symbols are ordinary symbols an executor can
// claim; each proxy is defined once across forward and backward.
//
//   before: t0 = ltorch.exp(x); t1 = ltorch.sum(t0); return t1
//   after:  forward:  t0 = ltorch.exp(x); t1 = ltorch.sum(t0); return t1
//           backward (inputs t0, grad_t1):
//                     t2 = prims.broadcast_in_dim(grad_t1, (4,), ()); t3 = prims.mul(t2, t0)
//           input grads: (t3,)
#pragma once

#include <vector>

#include "ir/trace.h"

namespace thunder::autograd {

struct JointTrace {
  Trace forward;
  std::vector<BSymRef> backward;
  // The tensor leaves of forward.output (Value::for_each_tensor order) and, for each, its cotangent
  // (a backward input) or nullptr when the leaf is not differentiable.
  std::vector<TensorRef> output_leaves;
  std::vector<TensorRef> cotangents;
  // One per forward input: its gradient (a tensor defined by the backward, a cotangent, or None).
  std::vector<Value> input_grads;
  // Forward values computed inside torch.utils.checkpoint regions: the backward recomputes them.
  std::vector<TensorRef> checkpointed;
};

struct VjpOptions {};

JointTrace vjp(const Trace& trace, const VjpOptions& options = {});

// True when some trace input requires grad, i.e. when `vjp` has something to differentiate.
bool needs_grad(const Trace& trace);

}  // namespace thunder::autograd
