// Layout specialisation: view chains applied to real strides, then axis merging.
#include "fuser/layout.h"

#include <algorithm>
#include <optional>

#include "core/error.h"

namespace thunder::fuser {

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) {
    s[i] = s[i + 1] * std::max<int64_t>(shape[i + 1], 1);
  }
  return s;
}

namespace {

// ATen's computeStride: the strides of a view of (shape, stride) with `newshape`, if one exists.
std::optional<std::vector<int64_t>> view_strides(const std::vector<int64_t>& shape,
                                                 const std::vector<int64_t>& stride,
                                                 const std::vector<int64_t>& newshape) {
  if (shape.empty()) return std::vector<int64_t>(newshape.size(), 1);
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (numel == 0) return contiguous_strides(newshape);
  std::vector<int64_t> newstride(newshape.size(), 1);
  int64_t view_d = static_cast<int64_t>(newshape.size()) - 1;
  int64_t chunk_base_stride = stride.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && stride[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || newshape[view_d] == 1)) {
        newstride[view_d] = view_numel * chunk_base_stride;
        view_numel *= newshape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = stride[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return newstride;
}

// A padded view's bound along one of its dims (AxisMask before the dims lie on axes).
struct DimMask {
  bool on = false;
  int64_t start = 0, step = 1, size = 0;
  bool holds_at(int64_t i) const {
    return !on || (start + step * i >= 0 && start + step * i < size);
  }
};

// A dim of one element leaves the view (squeezed, or broadcast to more): its bound is decided at
// index 0, and a dim in the padding makes the whole load read its fill value.
void drop_mask(const DimMask& m, bool* never) {
  if (!m.holds_at(0)) *never = true;
}

bool apply_view(const ViewOp& op, std::vector<int64_t>& shape, std::vector<int64_t>& stride,
                int64_t& offset, std::vector<DimMask>& masks, bool* never) {
  switch (op.kind) {
    case ViewOp::Kind::kBroadcast: {
      std::vector<int64_t> ns(op.a.size(), 0);
      std::vector<DimMask> nm(op.a.size());
      for (size_t i = 0; i < op.b.size(); ++i) {
        if (shape[i] == op.a[op.b[i]]) {
          ns[op.b[i]] = stride[i];
          nm[op.b[i]] = masks[i];
        } else {
          drop_mask(masks[i], never);
        }
      }
      shape = op.a;
      stride = ns;
      masks = std::move(nm);
      return true;
    }
    case ViewOp::Kind::kPad: {
      for (size_t d = 0; d < shape.size(); ++d) {
        const int64_t lo = op.a[d], hi = op.b[d];
        if (lo == 0 && hi == 0) continue;
        DimMask& m = masks[d];
        if (!m.on) m = DimMask{true, 0, 1, shape[d]};
        m.start -= m.step * lo;
        offset -= lo * stride[d];
        shape[d] += lo + hi;
      }
      return true;
    }
    case ViewOp::Kind::kReshape: {
      bool any = false;
      for (const DimMask& m : masks) any = any || m.on;
      if (any) {
        // Of a padded view only reshapes that add or drop dims of one element: the bounds stay
        // with their dims.
        std::vector<size_t> kept;
        for (size_t d = 0; d < shape.size(); ++d) {
          if (shape[d] != 1) {
            kept.push_back(d);
          } else {
            drop_mask(masks[d], never);
          }
        }
        std::vector<int64_t> ns(op.a.size(), 0);
        std::vector<DimMask> nm(op.a.size());
        size_t k = 0;
        for (size_t d = 0; d < op.a.size(); ++d) {
          if (op.a[d] == 1) continue;
          if (k >= kept.size() || shape[kept[k]] != op.a[d])
            throw Error("internal: a reshape of a padded view");
          ns[d] = stride[kept[k]];
          nm[d] = masks[kept[k]];
          ++k;
        }
        if (k != kept.size()) throw Error("internal: a reshape of a padded view");
        shape = op.a;
        stride = std::move(ns);
        masks = std::move(nm);
        return true;
      }
      auto ns = view_strides(shape, stride, op.a);
      if (!ns) return false;
      shape = op.a;
      stride = *ns;
      masks.assign(shape.size(), DimMask{});
      return true;
    }
    case ViewOp::Kind::kTranspose: {
      std::vector<int64_t> sh, st;
      std::vector<DimMask> nm;
      for (int64_t p : op.a)
        sh.push_back(shape[p]), st.push_back(stride[p]), nm.push_back(masks[p]);
      shape = sh;
      stride = st;
      masks = std::move(nm);
      return true;
    }
    case ViewOp::Kind::kSqueeze: {
      std::vector<int64_t> sh, st;
      std::vector<DimMask> nm;
      for (size_t d = 0; d < shape.size(); ++d) {
        bool drop = false;
        for (int64_t x : op.a) drop = drop || (x < 0 ? x + static_cast<int64_t>(shape.size()) : x) == static_cast<int64_t>(d);
        if (drop) {
          drop_mask(masks[d], never);
        } else {
          sh.push_back(shape[d]), st.push_back(stride[d]), nm.push_back(masks[d]);
        }
      }
      shape = sh;
      stride = st;
      masks = std::move(nm);
      return true;
    }
    case ViewOp::Kind::kSlice: {
      for (size_t d = 0; d < shape.size(); ++d) {
        int64_t start = op.a[d], stop = op.b[d], step = op.c[d];
        offset += start * stride[d];
        shape[d] = stop > start ? (stop - start + step - 1) / step : 0;
        stride[d] *= step;
        if (masks[d].on) {
          masks[d].start += masks[d].step * start;
          masks[d].step *= step;
        }
      }
      return true;
    }
  }
  return false;
}

// Whether `strides` (per kernel axis) walk the axes row-major (each axis inside the ones before it)
// or, over 4 or 5 axes, channels_last (axis 1 innermost, then the last axes in order, then axis 0):
// the orders of eager's cat and constant pad results. Axes of one element or stride 0 are ignored.
bool eager_pad_order(const KernelDef& k, const std::vector<int64_t>& strides) {
  const int n = static_cast<int>(strides.size());
  auto ordered = [&](const std::vector<int>& outer_first) {
    int64_t last = -1;
    for (int a : outer_first) {
      if (k.sizes[a] == 1 || strides[a] == 0) continue;
      if (last >= 0 && strides[a] > last) return false;
      last = strides[a];
    }
    return true;
  };
  std::vector<int> rows(n);
  for (int a = 0; a < n; ++a) rows[a] = a;
  if (ordered(rows)) return true;
  if (n != 4 && n != 5) return false;
  std::vector<int> cl = {0};
  for (int a = 2; a < n; ++a) cl.push_back(a);
  cl.push_back(1);
  return ordered(cl);
}

// Whether axis a lies inside axis b in memory (-1), outside (1), neither is known (0), or the
// loads disagree (2): decided by the loads read without a view (or only padded: a cat's parts)
// that walk both (nonzero strides).
int compare_axes(const KernelDef& k, const std::vector<Access>& loads, int a, int b) {
  if (k.sizes[a] == 1 || k.sizes[b] == 1) return 0;
  int r = 0;
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& n = k.nodes[i];
    const bool as_stored = std::all_of(n.view.begin(), n.view.end(),
                                       [](const ViewOp& v) { return v.kind == ViewOp::Kind::kPad; });
    if (n.op != "load" || !as_stored || loads[i].strides.empty()) continue;
    // A padded load (a cat's part, a constant pad's input) orders the axes only as eager's cat and
    // pad order their results: row-major, or channels_last where the operand is; a transposed
    // part leaves a contiguous cat.
    if (!n.view.empty() && !eager_pad_order(k, loads[i].strides)) continue;
    const int64_t sa = loads[i].strides[a], sb = loads[i].strides[b];
    if (sa == 0 || sb == 0 || sa == sb) continue;
    const int c = sa < sb ? -1 : 1;
    if (r != 0 && r != c) return 2;
    r = c;
  }
  return r;
}

// The kernel's axes innermost first: the last axis innermost unless the loads order two axes the
// other way (an insertion sort that moves an axis inward only past axes it is known to lie
// inside). Where two loads disagree on any two axes (x * y.mT), the kernel's own order: eager's
// result then follows its first operand, which the kernel does not know.
std::vector<int> memory_order(const KernelDef& k, const std::vector<Access>& loads) {
  const int n = k.num_axes();
  std::vector<int> order;
  for (int a = n - 1; a >= 0; --a) order.push_back(a);
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) {
      if (compare_axes(k, loads, a, b) == 2) return order;
    }
  }
  for (int i = 1; i < n; ++i) {
    for (int j = i; j > 0 && compare_axes(k, loads, order[j], order[j - 1]) < 0; --j) {
      std::swap(order[j], order[j - 1]);
    }
  }
  return order;
}

// The channels_last (4 dims) or channels_last_3d (5 dims) strides of a shape; empty for other
// ranks.
std::vector<int64_t> channels_last_strides(const std::vector<int64_t>& shape) {
  if (shape.size() != 4 && shape.size() != 5) return {};
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  strides[1] = s;
  s *= std::max<int64_t>(shape[1], 1);
  for (size_t d = shape.size(); d-- > 2;) {
    strides[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  strides[0] = s;
  return strides;
}

// Dense strides of an output of `shape` whose dims lie on `dims` (axis or -1), its dims ordered as
// their axes are in `order` (innermost first); dims on no axis (size 1) keep their place.
std::vector<int64_t> dense_strides(const std::vector<int64_t>& shape, const std::vector<int>& dims,
                                   const std::vector<int>& order) {
  const size_t r = shape.size();
  std::vector<int> rank(order.size());
  for (size_t i = 0; i < order.size(); ++i) rank[order[i]] = static_cast<int>(i);
  std::vector<size_t> inner;  // the output's dims, innermost first
  for (size_t d = r; d-- > 0;) inner.push_back(d);
  auto before = [&](size_t d0, size_t d1) {  // d0 known to lie inside d1
    const int a0 = d0 < dims.size() ? dims[d0] : -1, a1 = d1 < dims.size() ? dims[d1] : -1;
    return a0 >= 0 && a1 >= 0 && shape[d0] != 1 && shape[d1] != 1 && rank[a0] < rank[a1];
  };
  for (size_t i = 1; i < r; ++i) {
    for (size_t j = i; j > 0 && before(inner[j], inner[j - 1]); --j)
      std::swap(inner[j], inner[j - 1]);
  }
  std::vector<int64_t> strides(r, 1);
  int64_t s = 1;
  for (size_t d : inner) {
    strides[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

}  // namespace

std::string Layout::key() const {
  std::string k;
  auto add = [&](int64_t v) { k += std::to_string(v) + ","; };
  for (const Access& a : loads) {
    for (int64_t s : a.strides) add(s);
    add(a.offset);
    if (a.never) k += "never";
    for (const AxisMask& m : a.masks) {
      k += "m";
      for (int64_t v : {int64_t{m.axis}, m.start, m.step, m.size}) add(v);
    }
    k += ";";
  }
  // Loads read alike by two layouts may still be written differently (a transposed pair of inputs
  // merges to the same single axis as a contiguous pair, their outputs are transposed).
  for (const std::vector<int64_t>& st : out_strides) {
    k += "|";
    for (int64_t s : st) add(s);
  }
  return k;
}

bool specialize(const KernelDef& k, const std::vector<TensorMeta>& inputs, Layout* out,
                int* bad_input) {
  const int n = k.num_axes();
  std::vector<Access> loads(k.nodes.size());
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& node = k.nodes[i];
    if (node.op == "iota") {  // indexes like a contiguous 1-D tensor
      Access a;
      a.strides.assign(n, 0);
      if (!node.dims.empty() && node.dims[0] >= 0) a.strides[node.dims[0]] = 1;
      loads[i] = std::move(a);
      continue;
    }
    if (node.op == "rand") {  // indexes like a contiguous tensor of its shape
      Access a;
      a.strides.assign(n, 0);
      std::vector<int64_t> cs = contiguous_strides(node.view_shape);
      for (size_t d = 0; d < node.dims.size(); ++d) {
        if (node.dims[d] >= 0) a.strides[node.dims[d]] += cs[d];
      }
      loads[i] = std::move(a);
      continue;
    }
    if (node.op != "load") continue;
    const TensorMeta& m = inputs.at(node.input);
    std::vector<int64_t> shape = m.shape, stride = m.strides;
    std::vector<DimMask> masks(shape.size());
    int64_t offset = 0;
    bool never = false;
    for (const ViewOp& op : node.view) {
      if (!apply_view(op, shape, stride, offset, masks, &never)) {
        if (bad_input) *bad_input = node.input;
        return false;
      }
    }
    Access a;
    a.strides.assign(n, 0);
    a.offset = offset;
    for (size_t d = 0; d < node.dims.size(); ++d) {
      const int axis = node.dims[d];
      if (axis >= 0) a.strides[axis] += stride[d];
      const DimMask& dm = masks[d];
      if (!dm.on) continue;
      // Bounds that every index of the axis meets are dropped; an axis of one index decides it.
      const int64_t last = (axis >= 0 ? k.sizes[axis] : 1) - 1;
      const bool first_in = dm.holds_at(0), last_in = dm.holds_at(std::max<int64_t>(last, 0));
      if (axis < 0 || last <= 0) {
        if (!first_in) never = true;
      } else if (!(first_in && last_in)) {
        a.masks.push_back({axis, dm.start, dm.step, dm.size});
      }
    }
    a.never = never;
    if (never) a.masks.clear();
    loads[i] = std::move(a);
  }
  const std::vector<int> order = memory_order(k, loads);
  std::vector<Access> stores;
  std::vector<std::vector<int64_t>> out_strides;
  for (size_t o = 0; o < k.outputs.size(); ++o) {
    std::vector<int64_t> shape;
    const bool own_shape = o >= k.output_shapes.size() || k.output_shapes[o].empty();
    if (!own_shape) {
      shape = k.output_shapes[o];
    } else {
      for (Dim d : k.outputs[o]->shape()) shape.push_back(d.value());
    }
    std::vector<int64_t> cs = contiguous_strides(shape);
    if (own_shape && !k.contiguous_outputs) cs = dense_strides(shape, k.output_dims[o], order);
    const KernelDef::OutputPart* part = k.part(o);
    if (part) {
      if (k.tensor_of(o) != o) {
        cs = out_strides[k.tensor_of(o)];  // a cat's later part: stored into its first's tensor
      } else if (cs != channels_last_strides(shape)) {
        // As eager's cat: contiguous unless its parts are channels_last.
        cs = contiguous_strides(shape);
      }
    }
    Access a;
    a.strides.assign(n, 0);
    for (size_t d = 0; d < k.output_dims[o].size(); ++d) {
      if (k.output_dims[o][d] >= 0) a.strides[k.output_dims[o][d]] = cs[d];
    }
    if (part) a.offset = part->start * cs[static_cast<size_t>(part->dim)];
    stores.push_back(std::move(a));
    if (!own_shape) {  // split dims: the output is contiguous in its own shape
      std::vector<int64_t> own;
      for (Dim d : k.outputs[o]->shape()) own.push_back(d.value());
      cs = contiguous_strides(own);
    }
    out_strides.push_back(std::move(cs));
  }
  // Merge: drop size-1 axes, then join neighbours of one group walked contiguously by every access.
  // A pointwise kernel's axes in memory order (outermost first), so that its innermost axis is the
  // one its accesses walk contiguously (a channels_last tensor's channels); other kernels keep
  // their kept and reduced axes apart, in the kernel's order.
  std::vector<int> axes;
  if (k.kind == KernelDef::Kind::kPointwise) {
    axes.assign(order.rbegin(), order.rend());
  } else {
    for (int a = 0; a < n; ++a) axes.push_back(a);
  }
  std::vector<int> keep;
  bool any_zero = false;
  for (int a = 0; a < n; ++a) any_zero = any_zero || k.sizes[a] == 0;
  for (int a : axes) {
    if (k.sizes[a] != 1 || any_zero) keep.push_back(a);
  }
  auto is_red = [&](int a) { return (k.reduced >> a & 1) != 0; };
  std::vector<std::vector<int>> groups;  // each: original axes merged into one
  for (int a : keep) {
    if (!groups.empty()) {
      int prev = groups.back().back();
      bool ok = is_red(prev) == is_red(a);
      auto check = [&](const Access& acc) {
        if (acc.strides.empty()) return;
        if (acc.strides[prev] != acc.strides[a] * k.sizes[a]) ok = false;
        for (const AxisMask& m : acc.masks) ok = ok && m.axis != prev && m.axis != a;
      };
      for (const Access& acc : loads) check(acc);
      for (const Access& acc : stores) check(acc);
      if (ok) {
        groups.back().push_back(a);
        continue;
      }
    }
    groups.push_back({a});
  }
  Layout L;
  for (const auto& g : groups) {
    int64_t size = 1;
    for (int a : g) size *= k.sizes[a];
    if (is_red(g.front())) L.reduced |= uint64_t{1} << L.sizes.size();
    if (g.front() < k.group_axes) L.group_axes |= uint64_t{1} << L.sizes.size();
    L.sizes.push_back(size);
  }
  auto merge = [&](const Access& acc) {
    Access m;
    m.offset = acc.offset;
    m.never = acc.never;
    for (const auto& g : groups) m.strides.push_back(acc.strides[g.back()]);
    for (const AxisMask& mask : acc.masks) {  // a masked axis is a group of its own
      for (size_t j = 0; j < groups.size(); ++j) {
        if (groups[j].size() == 1 && groups[j][0] == mask.axis) {
          AxisMask mm = mask;
          mm.axis = static_cast<int>(j);
          m.masks.push_back(mm);
        }
      }
    }
    return m;
  };
  for (const Access& acc : loads) L.loads.push_back(acc.strides.empty() ? Access{} : merge(acc));
  for (const Access& acc : stores) L.stores.push_back(merge(acc));
  L.out_strides = std::move(out_strides);
  int outer = 0;
  for (size_t a = 0; a < L.sizes.size(); ++a) {
    bool red = (L.reduced >> a & 1) != 0;
    bool outer_red = k.kind == KernelDef::Kind::kOuter;
    if (red == outer_red) ++outer;
  }
  L.num_outer = k.kind == KernelDef::Kind::kPointwise ? static_cast<int>(L.sizes.size()) : outer;
  *out = std::move(L);
  return true;
}

std::vector<TensorMeta> contiguous_metas(const KernelDef& k) {
  std::vector<TensorMeta> metas;
  for (const TensorRef& t : k.inputs) {
    TensorMeta m;
    for (Dim d : t->shape()) m.shape.push_back(d.value());
    m.strides = contiguous_strides(m.shape);
    metas.push_back(std::move(m));
  }
  return metas;
}

bool contiguous_layout(const KernelDef& k, Layout* out) {
  return specialize(k, contiguous_metas(k), out, nullptr);
}

std::vector<uint64_t> varying_axes(const KernelDef& k, const Layout& layout) {
  const int n = static_cast<int>(layout.sizes.size());
  std::vector<uint64_t> m(k.nodes.size(), 0);
  for (size_t id = 0; id < k.nodes.size(); ++id) {  // nodes are in topological order
    const KNode& node = k.nodes[id];
    if (node.op == "load" || node.op == "iota" || node.op == "rand") {
      for (int a = 0; a < n; ++a) {
        if (layout.loads[id].strides[a] != 0) m[id] |= uint64_t{1} << a;
      }
      for (const AxisMask& mask : layout.loads[id].masks) m[id] |= uint64_t{1} << mask.axis;
    } else if (node.op == "const") {
      m[id] = 0;
    } else if (node.over_rows) {
      // A value per column, per group of rows, or a scalar.
      m[id] = (node.axes & k.reduced) != 0 ? layout.reduced : layout.group_axes;
    } else if (is_reduce_op(node.op)) {
      // A column reduction's result lives per column (its accumulators), whatever its operand
      // varies over: a column sum of a broadcast scalar is still read at its column.
      const uint64_t all = n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
      m[id] = (k.kind == KernelDef::Kind::kOuter ? all : m[node.args[0]]) & ~layout.reduced;
    } else if (node.op == "gather") {
      m[id] = (m[node.args[0]] & ~layout.reduced) | m[node.args[1]];
    } else {
      for (int a : node.args) m[id] |= m[a];
    }
  }
  return m;
}

uint64_t store_axes(const Layout& layout, size_t o) {
  uint64_t m = 0;
  for (size_t a = 0; a < layout.sizes.size(); ++a) {
    if (layout.stores[o].strides[a] != 0) m |= uint64_t{1} << a;
  }
  return m;
}

}  // namespace thunder::fuser
