// Specialising a kernel to the strides of the tensors it is called with: every load and store becomes
// a constant stride per axis, and adjacent axes that every access walks contiguously are merged. The
// result is what the code generators read; the kernel source is a pure function of (KernelDef, Layout).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuser/kernel.h"

namespace thunder::fuser {

struct TensorMeta {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
};

// A padded load's bound along one axis: the load reads memory where 0 <= start + step * i < size
// (i the index along `axis`), its fill value elsewhere.
struct AxisMask {
  int axis = -1;
  int64_t start = 0, step = 1, size = 0;
  bool operator==(const AxisMask&) const = default;
};

struct Access {
  std::vector<int64_t> strides;  // per (merged) axis, in elements
  int64_t offset = 0;            // in elements, from the tensor's data pointer
  // Padded loads: the bounds (at most one per axis; masked axes are never merged), and whether
  // the load reads no memory at all (a size-1 dim that lies in the padding).
  std::vector<AxisMask> masks;
  bool never = false;
  bool masked() const { return never || !masks.empty(); }
};

struct Layout {
  std::vector<int64_t> sizes;  // merged axes
  uint64_t reduced = 0;        // merged reduced axes
  uint64_t group_axes = 0;     // merged axes holding KernelDef::group_axes
  int num_outer = 0;           // kInner: kept axes first; kOuter: reduced axes first
  std::vector<Access> loads;   // per node (empty for non-loads)
  std::vector<Access> stores;  // per kernel output
  // Per kernel output, per dim of its shape: the strides it is allocated with. Dense, in the
  // memory order of the inputs read without a view (as eager orders an element-wise result's
  // dims by its operands' strides: a channels_last input gives channels_last outputs);
  // contiguous where the inputs suggest no other order or KernelDef::contiguous_outputs.
  std::vector<std::vector<int64_t>> out_strides;
  // A signature of the strides, for caching one compiled variant per layout.
  std::string key() const;
};

// The layout of `k` for inputs with these shapes and strides. Returns false (and the index of the
// offending input in `bad_input`) when a reshape in a load's view cannot be expressed with the input's
// strides; calling again with that input made contiguous succeeds.
bool specialize(const KernelDef& k, const std::vector<TensorMeta>& inputs, Layout* out,
                int* bad_input);

// The kernel's inputs as contiguous tensors of their own shapes.
std::vector<TensorMeta> contiguous_metas(const KernelDef& k);
// The layout of `k` for contiguous inputs of the kernel's own shapes (the layout most calls use).
bool contiguous_layout(const KernelDef& k, Layout* out);

// Per node of `k`, the mask of the layout's axes its value varies over (a load or iota: its nonzero
// strides; a reduction drops the reduced axes; anything else: the union of its operands').
std::vector<uint64_t> varying_axes(const KernelDef& k, const Layout& layout);
// The axes output `o` extends over (its nonzero store strides).
uint64_t store_axes(const Layout& layout, size_t o);

// Contiguous strides of a shape.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

}  // namespace thunder::fuser
