// The fuser's kernel IR: a fused region of primitives as an expression DAG over one iteration
// domain.
//
// Every value of a kernel is a function of a point of the *domain* (a list of axes with sizes). A
// value varies over a subset of the axes and is the same along the others (broadcast); broadcasts,
// transposes and squeezes of a value therefore cost nothing (they only relabel which of the value's
// dims lie on which axis). Loads read region inputs through a view (a chain of view primitives
// applied to the input's real strides when the kernel is specialised at call time: slices and
// reshapes of inputs are indexing). Reductions remove axes: a kernel reduces one set of axes
// (`reduced`), and its schedule follows from where those axes lie:
//   kPointwise: nothing is reduced; every output varies over every axis.
//   kInner:     reduced axes are innermost; per row (point of the kept axes) the kernel makes
//               passes over the row: pass k computes the reductions that need k-1 earlier ones
//               (softmax: max, then sum of exp, then the output), row-level values between passes.
//   kOuter:     reduced axes are outermost (bias gradients): per column, accumulate over rows.
// A row kernel may also reduce a row-level value over all its rows (KNode::over_rows).
// Compute happens in float for bf16/fp16/fp32 values (double for fp64, the integer type for
// integers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/bound_symbol.h"

namespace thunder::fuser {

// One view primitive applied to a load's source tensor.
// kPad widens dims by a = low and b = high padding (per dim, >= 0): positions outside the source
// read the load's fill value (KNode::fvalue / ivalue) instead of memory. Only slices, transposes
// and broadcasts that add dims follow a pad in a chain, and only pointwise kernels read padded
// loads (fused cat and constant pad).
struct ViewOp {
  enum class Kind : uint8_t { kBroadcast, kReshape, kTranspose, kSlice, kSqueeze, kPad } kind;
  std::vector<int64_t> a, b, c;  // broadcast: shape, dims; reshape: shape; transpose: perm;
                                 // slice: start, stop, step; squeeze: dims; pad: low, high
};

struct KNode {
  std::string op;  // "load", "const", a primitive's name ("add", "exp", ...), "sum"/"amax"/"amin"/
                   // "prod" (reductions), "gather" (take_along_axis along a reduced axis), "iota"
                   // (an integer index along one axis: ivalue + step * index), "rand"
                   // (uniform_philox: the stream of the random state `input` at the element's
                   // index in `view_shape`)
  DType dtype = DType::kFloat32;  // the value's dtype (compute happens in its compute type)
  std::vector<int> args;          // operand nodes
  // load
  int input = -1;                 // index into KernelDef::inputs
  std::vector<ViewOp> view;       // applied to the input's (shape, strides, offset)
  std::vector<int64_t> view_shape;  // the shape after `view`
  std::vector<int> dims;  // per dim of the loaded view (iota: of its one dim): its axis, or -1
  // const; a load with a kPad view: its fill value
  double fvalue = 0;
  int64_t ivalue = 0;
  bool is_float_const = false;
  double number() const { return is_float_const ? fvalue : static_cast<double>(ivalue); }  // const
  int64_t step = 0;  // iota
  // gather: the reduced axis indexed by args[1]
  int gather_axis = -1;
  // A reduction over every kept axis of a row kernel (kInner), in the same kernel: of a row-level
  // value, to a scalar (cross-entropy's mean of the rows' losses; CUDA: blocks combine their rows,
  // the last block to finish combines the blocks; CPU: rows leave their values in scratch memory,
  // combined in row order after the parallel loop), or of a value over the row, to a value per
  // column (layer_norm's weight and bias gradients beside its input gradient; CUDA: each thread
  // accumulates the columns it computes over its rows, a block's row groups combine theirs, and a
  // second kernel combines the blocks' partials per column; CPU: blocks of kColumnRowsBlock rows
  // leave partials, combined in order after the parallel loop). Values computed from it do not vary
  // over the rows. A kernel has reductions over rows of one of the two kinds.
  bool over_rows = false;
  uint64_t axes = 0;  // bitmask of the axes the value varies over
};

struct KernelDef {
  enum class Kind : uint8_t { kPointwise, kInner, kOuter };
  Kind kind = Kind::kPointwise;
  std::vector<int64_t> sizes;  // per axis; kInner: kept axes then reduced; kOuter: reduced then kept
  uint64_t reduced = 0;        // bitmask of reduced axes
  // kInner: the leading axes whose points a reduction over rows keeps; its values are per group of
  // rows (the rows a point of these axes holds, consecutive). 0: reductions over rows reduce every
  // row (to scalars or to columns).
  int group_axes = 0;
  std::vector<KNode> nodes;    // topological order
  std::vector<TensorRef> inputs;   // region inputs read by loads
  std::vector<TensorRef> outputs;  // values the kernel writes (their own shape)
  std::vector<int> output_nodes;   // node per output
  std::vector<std::vector<int>> output_dims;  // per output dim: its axis or -1
  // Per output: the shape `output_dims` indexes, when a split of the domain (a full or long-row
  // reduction's rows) split one of its dims in two; empty: the output's own shape.
  std::vector<std::vector<int64_t>> output_shapes;
  // Outputs written in parts: a cat that no operation of the kernel reads, of parts of one size
  // along its dim (SwiGLU's two halves' gradients), is written where its parts are computed, over
  // the parts' axes, each part stored `start` indexes along `dim` into the cat's tensor (its
  // output_dims index that tensor's shape). The first part is the cat's output (allocated and
  // returned); the others follow every other output, `of` naming the output whose tensor they
  // write into (no tensor of their own, neither allocated nor returned). Empty: no such output.
  struct OutputPart {
    int of = -1;
    int dim = -1;  // -1: a whole output
    int64_t start = 0;
  };
  std::vector<OutputPart> output_parts;
  Device device;
  // Outputs contiguous whatever the inputs' memory order, as eager gives them: the region copies a
  // tensor to its own dtype (contiguous()), or it reduces rows over their last dims (softmax,
  // layer_norm). Otherwise outputs follow the order of the inputs' strides (Layout::out_strides),
  // as eager's element-wise operations and batch_norm do.
  bool contiguous_outputs = false;

  int num_axes() const { return static_cast<int>(sizes.size()); }
  // Output `o`'s part of a cat written in parts, or nullptr for a whole output.
  const OutputPart* part(size_t o) const {
    return o < output_parts.size() && output_parts[o].dim >= 0 ? &output_parts[o] : nullptr;
  }
  // The output whose tensor output `o` is stored into (o itself, or a cat's first part).
  size_t tensor_of(size_t o) const {
    return o < output_parts.size() && output_parts[o].of >= 0
               ? static_cast<size_t>(output_parts[o].of)
               : o;
  }
  // The outputs that are tensors of their own (allocated, returned, passed to the kernel): the
  // first ones.
  size_t tensor_outputs() const {
    size_t n = 0;
    for (size_t o = 0; o < outputs.size(); ++o) n += tensor_of(o) == o ? 1 : 0;
    return n;
  }
  // A readable dump for tests and error messages.
  std::string str() const;
};

// True for the reduction ops of the kernel IR (sum, amax, amin, prod).
bool is_reduce_op(const std::string& op);
// True for the element-wise primitives a kernel computes (unary and binary math, comparisons,
// where, conversions).
bool is_elementwise_op(const std::string& op);

// The widest row (elements) whose columns a row kernel reduces over its rows.
constexpr int64_t kMaxColumnsOverRows = 16384;
// Rows per work item of a CPU row kernel with reductions over rows per column: each item leaves
// its partial per column, combined in item order (the same result on any number of threads).
constexpr int64_t kColumnRowsBlock = 32;

// For every node, the pass from which its value is available: 0 for values computed from inputs
// alone, k for values that need a reduction computed in pass k (a reduction whose operand is available
// from pass k-1 is computed in pass k).
std::vector<int> available_from(const KernelDef& k);

// Per node: a reduction over rows (KNode::over_rows) or a value computed from one (a scalar).
std::vector<bool> over_rows_values(const std::vector<KNode>& nodes);

// The reductions over rows of `k`, in node order.
std::vector<int> over_rows_reductions(const KernelDef& k);

// True when `k`'s reductions over rows reduce to values per column (not to scalars).
bool columns_over_rows(const KernelDef& k);

// The axes something of `k` lies on: reduced axes, the axes values vary over, the axes of loads'
// and outputs' dims, gathers' axes.
uint64_t used_axes(const KernelDef& k);

// The groups of rows `k`'s reductions over rows reduce each (KernelDef::group_axes): the points of
// its group axes; 1 when they reduce over every row.
int64_t over_rows_groups(const KernelDef& k);

// True when input `i` is host data: a random state ([seed, offset], int64 on the CPU) that CUDA
// kernels take by value.
bool host_input(const KernelDef& k, size_t i);

// True for a load whose view pads (ViewOp::Kind::kPad).
bool padded_load(const KNode& n);

// True when the primitive can be part of a fused kernel (dtypes, argument kinds).
bool prim_fusible(const BoundSymbol& b);

// Builds the kernel of `prims` (a topologically ordered list of primitives) reading `inputs` and
// writing `outputs`. nullopt (with the reason in `why`) when one kernel cannot compute them: axes
// that do not line up, two different reduced sets, a view of a computed value that is not indexing,
// an output that does not vary over every kept axis.
std::optional<KernelDef> build_kernel(const std::vector<BSymRef>& prims,
                                      const std::vector<TensorRef>& inputs,
                                      const std::vector<TensorRef>& outputs,
                                      std::string* why = nullptr);

}  // namespace thunder::fuser
