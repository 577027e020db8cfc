// A row kernel run as one kernel per pass, for inputs whose rows lie across memory.
//
// A row kernel (KernelDef::Kind::kInner) computes each row's reductions and outputs in passes over
// the row. That schedule reads a row's elements one after another, which is what the memory holds
// when the reduced axes are innermost. A channels_last batch_norm reduces over (N, H, W) of an
// (N, C, H, W) tensor whose C is innermost in memory: each row (a channel) is read C elements
// apart, so every load takes a sector for one element. Eager runs such a reduction as columns.
// Split, the row kernel becomes one column kernel (kOuter: rows of the reduced axes, a column per
// kept point, read along memory) per pass, each computing that pass's reductions and the row-level
// values later passes read (written to small intermediate tensors, loaded by the later kernels),
// then one pointwise kernel for the outputs that vary over the row. Each pass reads the input once,
// as the row kernel's passes do when a row does not fit on chip. A column kernel whose reductions
// need others (batch_norm over few spatial points) always runs this way.
#pragma once

#include <optional>
#include <vector>

#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

struct PassSplit {
  std::vector<KernelDef> kernels;  // in launch order
  // Per kernel, per input: the row kernel's input index (>= 0), or -1 - j for intermediate j.
  std::vector<std::vector<int>> sources;
  // Per kernel, per output: the row kernel's output index (>= 0), or -1 - j for intermediate j.
  std::vector<std::vector<int>> sinks;
  int intermediates = 0;
  // Per intermediate: the row kernel's output it is (its pass's kernel stores it there), or -1.
  std::vector<int> inter_output;
};

// The kernels of `k`'s passes; nullopt where `k` has no reduction or is a row kernel with what only
// the row schedule computes (reductions over rows, gathers, split rows).
std::optional<PassSplit> split_passes(const KernelDef& k);

// True for a column kernel (kOuter) that one accumulation pass cannot compute: a reduction needs
// another, or an output over the reduced axes needs a reduction. It runs by passes.
bool needs_passes(const KernelDef& k);

// True when `layout` (of row kernel `k`) reads its rows across memory: the rows' largest input
// walks a kept axis with stride 1 and none of the reduced axes with stride 1.
bool rows_across_memory(const KernelDef& k, const Layout& layout);

}  // namespace thunder::fuser
