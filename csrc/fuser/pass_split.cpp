// A reduction kernel run as one kernel per pass (see pass_split.h).
#include "fuser/pass_split.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace thunder::fuser {

namespace {

bool row_level(const KernelDef& k, const KNode& n) { return (n.axes & k.reduced) == 0; }

// Whether output o is written over the reduced axes (full size, even a row-level value broadcast
// out).
bool writes_over_rows(const KernelDef& k, size_t o) {
  for (int a : k.output_dims[o]) {
    if (a >= 0 && (k.reduced >> a & 1)) return true;
  }
  return false;
}

// A row-level value later kernels load: its tensor (a new one of the kept axes' sizes, or the
// output it is) and, per dim of that tensor, its axis of the row kernel or -1.
struct Intermediate {
  int node = -1;
  TensorRef ref;
  std::vector<int> dims;
  int output = -1;
};

// Builds the nodes of one kernel of the split: those the requested nodes need, over `k`'s axes
// renumbered by `axis_of` (old axis -> new axis); a row-level value of an earlier pass is loaded
// from its intermediate instead of computed.
class Extract {
 public:
  Extract(const KernelDef& k, const std::vector<int>& need, const std::vector<int>& axis_of,
          const std::vector<Intermediate>& inter)
      : k_(k), need_(need), axis_of_(axis_of), inter_(inter), map_(k.nodes.size(), -1) {}

  int mapped(int id) const { return map_[id]; }

  // `load_below`: row-level nodes available from a pass below this one (read from their
  // intermediates).
  int node(int id, int load_below) {
    if (map_[id] >= 0) return map_[id];
    const KNode& n = k_.nodes[id];
    KNode out;
    if (need_[id] >= 1 && need_[id] < load_below && row_level(k_, n)) {
      size_t j = 0;
      while (j < inter_.size() && inter_[j].node != id) ++j;
      if (j == inter_.size()) throw Error("internal: a pass reads a value no earlier pass kept");
      out.op = "load";
      out.dtype = n.dtype;
      out.input = input(-1 - static_cast<int>(j));
      for (Dim d : inter_[j].ref->shape()) out.view_shape.push_back(d.value());
      for (int a : inter_[j].dims) out.dims.push_back(a < 0 ? -1 : axis_of_[a]);
    } else {
      out = n;
      out.args.clear();
      for (int a : n.args) out.args.push_back(node(a, load_below));
      if (n.op == "load" || n.op == "rand") out.input = input(n.input);
      for (int& d : out.dims) d = d < 0 ? -1 : axis_of_[d];
      out.over_rows = false;
    }
    out.axes = 0;
    if (out.op == "load" || out.op == "iota" || out.op == "rand") {
      for (int d : out.dims) {
        if (d >= 0) out.axes |= uint64_t{1} << d;
      }
    } else {
      for (int a = 0; a < k_.num_axes(); ++a) {
        if (n.axes >> a & 1) out.axes |= uint64_t{1} << axis_of_[a];
      }
    }
    nodes_.push_back(std::move(out));
    map_[id] = static_cast<int>(nodes_.size()) - 1;
    return map_[id];
  }

  // A kernel input: the row kernel's input `src` (>= 0) or intermediate -1 - src.
  int input(int src) {
    auto it = std::find(sources_.begin(), sources_.end(), src);
    if (it != sources_.end()) return static_cast<int>(it - sources_.begin());
    sources_.push_back(src);
    return static_cast<int>(sources_.size()) - 1;
  }

  std::vector<KNode> nodes_;
  std::vector<int> sources_;

 private:
  const KernelDef& k_;
  const std::vector<int>& need_;  // available_from(k_)
  const std::vector<int>& axis_of_;
  const std::vector<Intermediate>& inter_;
  std::vector<int> map_;
};

}  // namespace

bool needs_passes(const KernelDef& k) {
  if (k.kind != KernelDef::Kind::kOuter) return false;
  const std::vector<int> need = available_from(k);
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    if (is_reduce_op(k.nodes[i].op) && need[i] > 1) return true;
  }
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    if (writes_over_rows(k, o) && need[k.output_nodes[o]] > 0) return true;
  }
  return false;
}

std::optional<PassSplit> split_passes(const KernelDef& k) {
  if (k.kind == KernelDef::Kind::kPointwise || k.group_axes != 0) return std::nullopt;
  for (const KNode& n : k.nodes) {
    if (n.over_rows || n.op == "gather") return std::nullopt;
  }
  for (const auto& s : k.output_shapes) {
    if (!s.empty()) return std::nullopt;
  }
  const int na = k.num_axes();
  const std::vector<int> need = available_from(k);
  int passes = 0;
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    if (is_reduce_op(k.nodes[i].op)) passes = std::max(passes, need[i]);
  }
  if (passes == 0) return std::nullopt;
  // Per node: its users.
  std::vector<std::vector<int>> users(k.nodes.size());
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    for (int a : k.nodes[i].args) users[a].push_back(static_cast<int>(i));
  }
  // Outputs written over the reduced axes (full size, even a row-level value broadcast out) come
  // from the pointwise kernel; the others (row-level) from their pass's column kernel.
  // Per node: whether an output writes it over the rows, and the first output that does not.
  std::vector<bool> over_row(k.outputs.size(), false);
  for (size_t o = 0; o < k.outputs.size(); ++o) over_row[o] = writes_over_rows(k, o);
  std::vector<bool> full_output(k.nodes.size(), false);
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    if (over_row[o]) full_output[k.output_nodes[o]] = true;
  }
  std::vector<int> output_of(k.nodes.size(), -1);
  for (size_t o = 0; o < k.output_nodes.size(); ++o) {
    if (!over_row[o] && output_of[k.output_nodes[o]] < 0)
      output_of[k.output_nodes[o]] = static_cast<int>(o);
  }
  // The intermediates: row-level values of a pass that a later pass, a value over the row or a
  // reduction reads.
  std::vector<Intermediate> inter;
  Shape kept_shape;
  std::vector<int> kept_axes;
  for (int a = 0; a < na; ++a) {
    if (!(k.reduced >> a & 1)) kept_shape.push_back(Dim(k.sizes[a])), kept_axes.push_back(a);
  }
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& n = k.nodes[i];
    if (need[i] < 1 || !row_level(k, n) || n.op == "const") continue;
    bool crosses = full_output[i];  // a row-level value written out at full size
    for (int u : users[i]) {
      const KNode& un = k.nodes[u];
      crosses = crosses || need[u] > need[i] || !row_level(k, un) || is_reduce_op(un.op);
    }
    if (!crosses) continue;
    Intermediate m;
    m.node = static_cast<int>(i);
    m.output = output_of[i];
    if (m.output >= 0) {  // the output itself, as its pass's kernel stores it
      m.ref = k.outputs[m.output];
      m.dims = k.output_dims[m.output];
    } else {
      m.ref =
          std::make_shared<TensorProxy>("pass" + std::to_string(need[i]) + "_" + std::to_string(i),
                                        kept_shape, n.dtype, k.device, false);
      m.dims = kept_axes;
    }
    inter.push_back(std::move(m));
  }
  // Column kernels: the reduced axes first, then the kept ones, each in the row kernel's order.
  std::vector<int> col_axis(na), same(na);
  {
    int next = 0;
    for (int a = 0; a < na; ++a) {
      if (k.reduced >> a & 1) col_axis[a] = next++;
    }
    for (int a : kept_axes) col_axis[a] = next++;
    for (int a = 0; a < na; ++a) same[a] = a;
  }
  PassSplit split;
  split.intermediates = static_cast<int>(inter.size());
  for (const Intermediate& m : inter) split.inter_output.push_back(m.output);
  // Builds the kernel of `outs` (node, sink: an output index or -1 - intermediate), computed by
  // `ex` already.
  auto finish = [&](Extract& ex, KernelDef::Kind kind, const std::vector<int>& axis_of,
                    const std::vector<std::pair<int, int>>& outs) {
    KernelDef d;
    d.kind = kind;
    d.sizes.assign(na, 1);
    for (int a = 0; a < na; ++a) {
      d.sizes[axis_of[a]] = k.sizes[a];
      if (kind == KernelDef::Kind::kOuter && (k.reduced >> a & 1))
        d.reduced |= uint64_t{1} << axis_of[a];
    }
    std::vector<int> sinks;
    for (auto [node, sink] : outs) {
      d.output_nodes.push_back(ex.mapped(node));
      sinks.push_back(sink);
      const bool is_output = sink >= 0;
      d.outputs.push_back(is_output ? k.outputs[sink] : inter[-1 - sink].ref);
      std::vector<int> dims;
      for (int a : is_output ? k.output_dims[sink] : inter[-1 - sink].dims)
        dims.push_back(a < 0 ? -1 : axis_of[a]);
      d.output_dims.push_back(std::move(dims));
    }
    d.nodes = std::move(ex.nodes_);
    for (int s : ex.sources_) d.inputs.push_back(s >= 0 ? k.inputs[s] : inter[-1 - s].ref);
    d.device = k.device;
    d.contiguous_outputs = k.contiguous_outputs;
    split.kernels.push_back(std::move(d));
    split.sources.push_back(ex.sources_);
    split.sinks.push_back(std::move(sinks));
  };
  // Pass p's column kernel: its intermediates and the row-level outputs available from it (those
  // that need no reduction go with the first pass). An intermediate that is an output is stored as
  // that output.
  for (int p = 1; p <= passes; ++p) {
    Extract ex(k, need, col_axis, inter);
    std::vector<std::pair<int, int>> outs;
    for (size_t o = 0; o < k.outputs.size(); ++o) {
      const int n = k.output_nodes[o];
      if (!over_row[o] && std::max(need[n], 1) == p) outs.push_back({n, static_cast<int>(o)});
    }
    for (size_t j = 0; j < inter.size(); ++j) {
      if (need[inter[j].node] == p && inter[j].output < 0)
        outs.push_back({inter[j].node, -1 - static_cast<int>(j)});
    }
    if (outs.empty()) continue;
    for (auto [node, sink] : outs) ex.node(node, p);
    finish(ex, KernelDef::Kind::kOuter, col_axis, outs);
  }
  // The outputs over the row: one pointwise kernel.
  Extract ex(k, need, same, inter);
  std::vector<std::pair<int, int>> outs;
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    if (over_row[o]) outs.push_back({k.output_nodes[o], static_cast<int>(o)});
  }
  for (auto [node, sink] : outs) ex.node(node, passes + 1);
  if (!outs.empty()) finish(ex, KernelDef::Kind::kPointwise, same, outs);
  return split;
}

bool rows_across_memory(const KernelDef& k, const Layout& layout) {
  if (k.kind != KernelDef::Kind::kInner) return false;
  int best = -1;
  int64_t best_numel = -1;
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& n = k.nodes[i];
    if (n.op != "load" || layout.loads[i].strides.empty()) continue;
    bool over_row = false;
    for (size_t a = 0; a < layout.sizes.size(); ++a) {
      over_row = over_row || ((layout.reduced >> a & 1) && layout.loads[i].strides[a] != 0);
    }
    if (!over_row) continue;
    int64_t numel = k.inputs[n.input]->numel();
    if (numel > best_numel) best = static_cast<int>(i), best_numel = numel;
  }
  if (best < 0) return false;
  bool kept_unit = false, reduced_unit = false;
  for (size_t a = 0; a < layout.sizes.size(); ++a) {
    if (layout.sizes[a] == 1 || layout.loads[best].strides[a] != 1) continue;
    ((layout.reduced >> a & 1) ? reduced_unit : kept_unit) = true;
  }
  return kept_unit && !reduced_unit;
}

}  // namespace thunder::fuser
