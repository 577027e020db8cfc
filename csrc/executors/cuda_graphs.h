// Whether a final program can be replayed as a CUDA graph (the `cuda_graphs` compile option).
//
// A CUDA graph records the kernels one run of a program launches, with their arguments, and replays
// exactly those: host work (CPU tensors, values read on the host) happens only while capturing. So
// a program is replayable when all of its work is CUDA work on one device and nothing in it reads
// state on the host that must change between runs. The runtime (thunder/core/cudagraphs.py)
// captures, checks input addresses and replays; this plan is what it may rely on.
#pragma once

#include <string>
#include <vector>

#include "ir/trace.h"

namespace thunder {

struct CudaGraphPlan {
  // Empty when the program can be captured; otherwise why not, naming the operation (and the
  // user's line where known).
  std::string blocker;
  // The CUDA device the program runs on (-1 when blocked).
  int device = -1;
  // Inputs the program writes in place (prims.copy_ into an input): a replay must write them at
  // their own address, so they are never copied into a graph-owned buffer.
  std::vector<int> written_inputs;
};

CudaGraphPlan plan_cuda_graph(const Trace& trace);

}  // namespace thunder
