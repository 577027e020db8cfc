// The compilation pipeline, top to bottom: each stage is one pass, and every stage's trace is kept so
// `thunder.last_traces` can show it. THUNDER_DUMP=<stage,stage|all> prints the named stages to stderr.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "executors/executor.h"
#include "ir/trace.h"

namespace thunder {

struct PipelineOptions {
  bool decompose_to_prims = false;  // run primitives instead of torch-level symbols
  bool rematerialize = true;        // training: recompute cheap values instead of saving them
  bool fuse_random = false;         // dropout draws its mask inside fused kernels (stage fuse_random,
                                    // autograd::fusing_random)
};

struct PipelineResult {
  std::vector<Trace> traces;                         // captured, ..., final
  std::vector<std::pair<std::string, double>> times;  // seconds spent per stage
};

PipelineResult run_pipeline(const Trace& captured, const std::vector<const Executor*>& executors,
                            const PipelineOptions& options = {});

// Training: after functionalize/dce/cse, the trace is differentiated (autograd/vjp.h), the saved
// values are chosen (autograd/rematerialize.h) and it is split (autograd/split_forward_backward.h);
// the forward and the backward then each go through the rest of the pipeline.
struct TrainingPipelineResult {
  PipelineResult forward;   // captured, ..., forward, ..., final: returns (output, saved)
  PipelineResult backward;  // backward, ..., final: takes (saved, cotangents), returns input grads
  size_t num_saved = 0;
  std::vector<bool> differentiable_leaves;  // per tensor leaf of the output
};

TrainingPipelineResult run_training_pipeline(const Trace& captured,
                                             const std::vector<const Executor*>& executors,
                                             const PipelineOptions& options = {});

}  // namespace thunder
