// Grouping a program's casts into multi-tensor conversions.
//
// Under autocast every linear casts its fp32 weight and bias to bf16 in the forward, the backward
// casts them again, and each weight's bf16 gradient is cast back to fp32: a GPT-2 step has about
// 200 such casts, each a kernel launch and a host call. Casts that remain torch calls after fusion
// are grouped by device and target dtype into `ltorch.convert_tensors(tensors, dtype)`, one
// multi-tensor copy (torch._foreach_copy_):
// - casts of program inputs (nothing computed), placed where the group's first cast was;
// - casts whose results nothing reads (only returned: the gradients), placed where the last was.
// A group holds at most `max_bytes` of converted tensors, which bounds how much memory is taken
// earlier (or released later) than before.
//
// Requires: a final execution trace (executors claimed, regions fused). Guarantees: the same values
// under the same output proxies; a group of one cast stays as it was.
//
//   before: t1 = torchex.ltorch_to(w1, torch.bfloat16, ...); t2 = torch.matmul(x, t1)
//           t3 = torchex.ltorch_to(w2, torch.bfloat16, ...); t4 = torch.matmul(t2, t3)
//   after:  (t1, t3) = torchex.convert_tensors((w1, w2), torch.bfloat16)
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
