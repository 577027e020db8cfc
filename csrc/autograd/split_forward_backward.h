// Splitting a joint trace into the forward trace and the backward trace the runtime runs.
//
// The forward trace takes the original inputs and returns `(output, saved)`: the user's output and
// a tuple of the values the backward reads (chosen by rematerialize). The backward trace takes the
// saved values followed by the cotangents of the differentiable output leaves, and returns one
// gradient per forward input (None where the input needs none). Requires: a JointTrace (after
// rematerialize when memory matters). Guarantees: both traces are self-contained and printable.
//
//   forward:  def computation(x, w): t0 = ltorch.mul(x, w); t1 = ltorch.sum(t0); return (t1, (x, w))
//   backward: def backward(x, w, grad_t1): ...; return (t3, t4)
#pragma once

#include <vector>

#include "autograd/vjp.h"

namespace thunder::autograd {

struct ForwardBackward {
  Trace forward;
  Trace backward;
  size_t num_saved = 0;
  // For each tensor leaf of the user's output (Value::for_each_tensor order): whether it takes a
  // cotangent (the backward's inputs after the saved values, in this order).
  std::vector<bool> differentiable_leaves;
};

ForwardBackward split_forward_backward(const JointTrace& joint);

}  // namespace thunder::autograd
