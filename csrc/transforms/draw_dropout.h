// Drawing dropout's masks inside fused kernels (the `fuse_random` compile option).
//
// Each top-level dropout that draws (training=True, 0 < p < 1, not in place) becomes
// lang::philox_dropout on a fresh prims.philox_state, written at the top level of the trace: the
// mask is uniform_philox(state) < 1 - p, a pure function of the state, so a fusion executor draws
// it inside its kernels and a backward can draw it again. The dropout's output proxy is kept. With
// `skip_inputs_requiring_grad` (training), dropouts whose input requires grad are left alone: the
// gradient rule of dropout writes the same and saves the state for the backward. Requires: a
// well-formed trace. Guarantees: the same outputs, with masks from uniform_philox instead of
// torch's generator (a different random stream, still driven by the device's torch generator).
//
//   before: t1 = ltorch.dropout(x, 0.1, True, False)
//   after:  t2 = prims.philox_state(device=cpu)
//           t3 = prims.uniform_philox((4, 8), t2, device=cpu)
//           t4 = ltorch.lt(t3, 0.9); t5 = ltorch.mul(x, 1.1111111111111112)
//           t1 = ltorch.where(t4, t5, 0.0)
#pragma once

#include "ir/trace.h"

namespace thunder {

struct DrawDropoutOptions {
  bool skip_inputs_requiring_grad = false;
};

Trace draw_dropout_in_kernels(const Trace& trace, const DrawDropoutOptions& options = {});

}  // namespace thunder
