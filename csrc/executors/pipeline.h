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
};

struct PipelineResult {
  std::vector<Trace> traces;                         // captured, ..., final
  std::vector<std::pair<std::string, double>> times;  // seconds spent per stage
};

PipelineResult run_pipeline(const Trace& captured, const std::vector<const Executor*>& executors,
                            const PipelineOptions& options = {});

}  // namespace thunder
