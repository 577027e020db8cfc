// Grouping the casts of a program's inputs (autocast's weight casts) into multi-tensor conversions.
//
// Under autocast every linear casts its fp32 weight and bias to bf16 in the forward, and the
// backward casts them again: a GPT-2 step has about 150 such casts, each a kernel launch and a host
// call. The casts that remain torch calls after fusion and read a program input (nothing computed)
// are grouped by device and target dtype into `ltorch.convert_tensors(tensors, dtype)`, one
// multi-tensor copy (torch._foreach_copy_) placed where the group's first cast was. A group holds
// at most `max_bytes` of converted tensors, which bounds how much earlier memory is taken.
//
// Requires: a final execution trace (executors claimed, regions fused). Guarantees: the same values
// under the same output proxies; a group of one cast stays as it was.
//
//   before: t1 = torchex.ltorch_to(w1, torch.bfloat16, ...); t2 = torch.matmul(x, t1)
//           t3 = torchex.ltorch_to(w2, torch.bfloat16, ...); t4 = torch.matmul(t2, t3)
//   after:  (t1, t3) = thunder.executors.torchex.convert_tensors((w1, w2), torch.bfloat16)
//           t2 = torch.matmul(x, t1); t4 = torch.matmul(t2, t3)
#pragma once

#include <cstdint>
#include <vector>

#include "executors/executor.h"
#include "ir/trace.h"

namespace thunder {

Trace group_input_casts(const Trace& trace, const std::vector<const Executor*>& executors,
                        int64_t max_bytes = int64_t{64} << 20);

}  // namespace thunder
