// Greedy segmentation of a region into kernels.
#include "fuser/segment.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace thunder::fuser {

namespace {

bool computes(const BoundSymbol& b) {
  const std::string& n = b.sym->name;
  return !(n == "broadcast_in_dim" || n == "reshape" || n == "transpose" || n == "squeeze" ||
           n == "slice");
}

// The tensors primitives [first, last) read before (or without) defining them, in order.
template <typename It>
std::vector<TensorRef> inputs_of(It first, It last) {
  std::vector<TensorRef> inputs;
  std::unordered_set<const TensorProxy*> defined, seen;
  for (It p = first; p != last; ++p) {
    for (const TensorRef& t : (*p)->input_tensors()) {
      if (!defined.count(t.get()) && seen.insert(t.get()).second) inputs.push_back(t);
    }
    for (const TensorRef& t : (*p)->output_tensors()) defined.insert(t.get());
  }
  return inputs;
}

// The segment of the primitives prims[i] for i in `members` (ascending), without its kernel: its
// inputs, and as outputs the values other primitives after the first member read and region
// outputs.
Segment segment_of(const std::vector<BSymRef>& prims, const std::vector<size_t>& members,
                   const std::unordered_set<const TensorProxy*>& region_out) {
  Segment seg;
  for (size_t i : members) seg.prims.push_back(prims[i]);
  seg.inputs = inputs_of(seg.prims.begin(), seg.prims.end());
  std::unordered_set<const TensorProxy*> read_after;
  size_t m = 0;
  for (size_t i = members.front(); i < prims.size(); ++i) {
    if (m < members.size() && members[m] == i) {
      ++m;
      continue;
    }
    for (const TensorRef& t : prims[i]->input_tensors()) read_after.insert(t.get());
  }
  for (const BSymRef& p : seg.prims) {
    for (const TensorRef& t : p->output_tensors()) {
      if (read_after.count(t.get()) || region_out.count(t.get())) seg.outputs.push_back(t);
    }
  }
  return seg;
}

std::vector<size_t> range(size_t begin, size_t end) {
  std::vector<size_t> r;
  for (size_t i = begin; i < end; ++i) r.push_back(i);
  return r;
}

int64_t numel(const TensorRef& t) {
  int64_t n = 1;
  for (Dim d : t->shape()) n *= d.value();
  return n;
}

// A kernel iterates over the product of its axes. When no tensor of the segment spans all of them
// (values over unrelated axes, e.g. two outputs of different shapes), that product is far more work
// than the segment's tensors hold: such a run is cut instead.
bool domain_fits(const KernelDef& k, const std::vector<BSymRef>& prims) {
  int64_t largest = 1;
  for (const BSymRef& p : prims) {
    for (const TensorRef& t : p->input_tensors()) largest = std::max(largest, numel(t));
    for (const TensorRef& t : p->output_tensors()) largest = std::max(largest, numel(t));
  }
  // Axes no value varies over cost nothing (the layout drops them); an output written over an axis
  // its value does not vary over (a row's sum broadcast to the row's shape on another axis) is
  // written at every index of it, so the axis counts.
  const uint64_t used = used_axes(k);
  int64_t domain = 1;
  for (int a = 0; a < k.num_axes(); ++a) {
    int64_t s = k.sizes[a];
    if (!(used >> a & 1)) continue;
    if (s != 0 && domain > largest / s) return false;
    domain *= s;
  }
  // An empty axis empties the whole domain: the run's other values would never be computed.
  if (domain == 0) {
    for (const TensorRef& t : k.outputs) {
      if (numel(t) > 0) return false;
    }
  }
  return domain <= largest;
}

int64_t nbytes(const TensorRef& t) {
  return numel(t) * static_cast<int64_t>(dtype_size(t->dtype()));
}

bool pointwise_prim(const BoundSymbol& b) {
  const std::string& n = b.sym->name;
  return !(is_reduce_op(n) || n == "var" || n == "take_along_axis");
}

// The primitives of `prims` that `wanted` values depend on, in order.
std::vector<BSymRef> live(const std::vector<BSymRef>& prims,
                          std::unordered_set<const TensorProxy*> wanted) {
  std::vector<bool> keep(prims.size(), false);
  for (size_t i = prims.size(); i-- > 0;) {
    for (const TensorRef& t : prims[i]->output_tensors())
      keep[i] = keep[i] || wanted.count(t.get());
    if (!keep[i]) continue;
    for (const TensorRef& t : prims[i]->input_tensors()) wanted.insert(t.get());
  }
  std::vector<BSymRef> out;
  for (size_t i = 0; i < prims.size(); ++i) {
    if (keep[i]) out.push_back(prims[i]);
  }
  return out;
}

// A kernel that reads a value an earlier kernel of the region computes by elementwise operations
// alone (no reduction) from the region's inputs or outputs (written anyway) recomputes it instead,
// when the inputs that adds are fewer bytes than the value's write and read: layer_norm's backward
// then writes no grad * xhat for its weight gradient's kernel, which recomputes it from grad, x,
// mean and rstd; a bias gradient's kernel reads the bf16 gradient the region returns, not an fp32
// copy.
void recompute_pointwise_inputs(const std::vector<BSymRef>& prims,
                                const std::unordered_set<const TensorProxy*>& region_out,
                                std::vector<Segment>* segs) {
  std::unordered_map<const TensorProxy*, size_t> producer;  // tensor -> index in prims
  std::unordered_map<const BoundSymbol*, size_t> index;
  for (size_t i = 0; i < prims.size(); ++i) {
    index[prims[i].get()] = i;
    for (const TensorRef& t : prims[i]->output_tensors()) producer[t.get()] = i;
  }
  // Readers of each tensor: the segments whose primitives read it without defining it.
  auto readers = [&](const TensorProxy* t) {
    std::vector<size_t> r;
    for (size_t k = 0; k < segs->size(); ++k) {
      for (const TensorRef& in : (*segs)[k].inputs) {
        if (in.get() == t) r.push_back(k);
      }
    }
    return r;
  };
  // Values compared for equality (x == amax(x) in an extremum's backward) are read where computed:
  // recomputed in another kernel, whose vector math may round an ulp differently, no element might
  // equal the maximum.
  std::unordered_set<const TensorProxy*> compared = compared_for_equality(prims);
  // The segment whose primitives define `t`, if any.
  auto defining_segment = [&](const TensorProxy* t) -> Segment* {
    for (Segment& s : *segs) {
      for (const BSymRef& p : s.prims) {
        for (const TensorRef& o : p->output_tensors()) {
          if (o.get() == t) return &s;
        }
      }
    }
    return nullptr;
  };
  // Takes into `seg` the chain of one value it reads, when that pays; false when none does. The
  // chain stops at values far smaller than the one recomputed that a reduction computes (row
  // statistics: group_norm's normalized x in its weight gradient's kernel is recomputed from x and
  // each group's mean and rstd), which the kernels computing them then also write, when they can.
  // Whether a value depends on a reduction (memoized): small values that do not (a weight
  // reshaped and converted) are computed again like the rest of a chain.
  std::unordered_map<const TensorProxy*, bool> reduced_memo;
  std::function<bool(const TensorRef&)> reduced = [&](const TensorRef& a) {
    auto pit = producer.find(a.get());
    if (pit == producer.end()) return false;
    auto m = reduced_memo.find(a.get());
    if (m != reduced_memo.end()) return m->second;
    bool r = !pointwise_prim(*prims[pit->second]);
    for (const TensorRef& i : prims[pit->second]->input_tensors()) r = r || reduced(i);
    return reduced_memo[a.get()] = r;
  };
  auto take_one = [&](Segment& seg) {
    int64_t domain = 1;  // the kernel's iteration space
    for (int64_t n : seg.kernel->sizes) domain *= n;
    for (const TensorRef& t : seg.inputs) {
      auto pit = producer.find(t.get());
      if (pit == producer.end() || compared.count(t.get())) continue;  // a region input; compared
      const int64_t small = numel(t) / 64;
      auto is_leaf = [&](const TensorRef& a) {
        return !producer.count(a.get()) || region_out.count(a.get()) ||
               (numel(a) <= small && a.get() != t.get() && reduced(a));
      };
      // The elementwise chain computing t from region inputs (and small values).
      std::set<size_t> chain;
      std::vector<size_t> stack = {pit->second};
      bool ok = true;
      while (ok && !stack.empty()) {
        size_t i = stack.back();
        stack.pop_back();
        if (!chain.insert(i).second) continue;
        ok = pointwise_prim(*prims[i]) && chain.size() <= 64;
        for (const TensorRef& a : prims[i]->input_tensors()) {
          if (!is_leaf(a)) stack.push_back(producer.at(a.get()));
        }
      }
      if (!ok) continue;
      std::unordered_set<const TensorProxy*> have;
      for (const TensorRef& in : seg.inputs) have.insert(in.get());
      int64_t added = 0;
      std::unordered_set<const TensorProxy*> counted;
      std::vector<TensorRef> computed_leaves;  // small values other kernels compute
      for (size_t i : chain) {
        for (const TensorRef& a : prims[i]->input_tensors()) {
          if (!is_leaf(a) || have.count(a.get()) || !counted.insert(a.get()).second) continue;
          if (producer.count(a.get()) && !region_out.count(a.get())) {
            computed_leaves.push_back(a);  // written and read once: a 64th of t at most
          } else if (numel(a) > small) {   // (a weight or a row statistic adds next to nothing)
            added += nbytes(a);
          }
        }
      }
      std::vector<size_t> rd = readers(t.get());
      bool only_reader = rd.size() == 1 && !region_out.count(t.get());
      // A value broadcast over this kernel (a 64th of its domain at most, from inputs few times
      // its size, by conversions, views and the simplest arithmetic: a rotary table converted to
      // the activations' dtype) costs a kernel of its own more than every reader computing it
      // again from inputs read through the cache.
      bool cheap = true;
      for (size_t i : chain) {
        static const std::unordered_set<std::string> kCheap = {"convert_element_type",
                                                               "broadcast_in_dim",
                                                               "reshape",
                                                               "transpose",
                                                               "squeeze",
                                                               "neg",
                                                               "add",
                                                               "sub",
                                                               "mul"};
        cheap = cheap && kCheap.count(prims[i]->sym->name) != 0;
      }
      const bool broadcast = cheap && numel(t) * 64 <= domain && added <= 4 * nbytes(t);
      if (!broadcast && added > nbytes(t) * (only_reader ? 2 : 1)) continue;
      Segment trial;
      std::set<size_t> members = chain;
      for (const BSymRef& p : seg.prims) members.insert(index.at(p.get()));
      for (size_t i : members) trial.prims.push_back(prims[i]);
      if (trial.prims.size() == seg.prims.size()) continue;  // nothing new: no progress to make
      trial.inputs = inputs_of(trial.prims.begin(), trial.prims.end());
      trial.outputs = seg.outputs;
      trial.kernel = build_kernel(trial.prims, trial.inputs, trial.outputs, nullptr);
      if (!trial.kernel || !domain_fits(*trial.kernel, trial.prims)) continue;
      // The kernels defining the small values write them too.
      std::vector<std::pair<Segment*, Segment>> writers;
      for (const TensorRef& a : computed_leaves) {
        Segment* def = defining_segment(a.get());
        if (def == &seg) continue;  // computed beside the chain
        if (def == nullptr || !def->kernel) {
          ok = false;
          break;
        }
        Segment* target = def;
        for (auto& [s, w] : writers) {
          if (s == def) target = &w;
        }
        if (target == def) {
          writers.emplace_back(def, *def);
          target = &writers.back().second;
        }
        if (std::none_of(target->outputs.begin(), target->outputs.end(),
                         [&](const TensorRef& o) { return o.get() == a.get(); }))
          target->outputs.push_back(a);
      }
      for (auto& [s, w] : writers) {
        if (!ok) break;
        w.kernel = build_kernel(w.prims, w.inputs, w.outputs, nullptr);
        ok = w.kernel.has_value();
      }
      if (!ok) continue;
      for (auto& [s, w] : writers) *s = std::move(w);
      seg = std::move(trial);
      return true;
    }
    return false;
  };
  bool changed = false;
  for (size_t k = 1; k < segs->size(); ++k) {
    // Until nothing more is taken in (a value recomputed makes its neighbours' inputs available).
    while ((*segs)[k].kernel && take_one((*segs)[k])) changed = true;
  }
  if (!changed) return;
  // Values no kernel reads any more are no longer written.
  for (size_t k = 0; k < segs->size(); ++k) {
    Segment& seg = (*segs)[k];
    if (!seg.kernel) continue;
    std::vector<TensorRef> outs;
    for (const TensorRef& t : seg.outputs) {
      std::vector<size_t> rd = readers(t.get());
      bool read = region_out.count(t.get()) != 0;
      for (size_t r : rd) read = read || r != k;
      if (read) outs.push_back(t);
    }
    if (outs.size() == seg.outputs.size()) continue;
    if (outs.empty()) {  // everything it computed is recomputed where it is read
      seg.prims.clear();
      seg.inputs.clear();
      seg.outputs.clear();
      seg.kernel.reset();
      continue;
    }
    // What only the values no longer written needed is no longer computed.
    std::unordered_set<const TensorProxy*> wanted;
    for (const TensorRef& t : outs) wanted.insert(t.get());
    std::vector<BSymRef> kept = live(seg.prims, wanted);
    std::vector<TensorRef> ins = inputs_of(kept.begin(), kept.end());
    auto kernel = build_kernel(kept, ins, outs, nullptr);
    if (!kernel) continue;  // keeps writing them
    seg.prims = std::move(kept);
    seg.inputs = std::move(ins);
    seg.outputs = std::move(outs);
    seg.kernel = std::move(kernel);
  }
  segs->erase(
      std::remove_if(segs->begin(), segs->end(), [](const Segment& s) { return s.prims.empty(); }),
      segs->end());
}

// Which dims a reduction primitive reduces, ignoring size-1 dims: +1 the innermost (a row
// reduction), -1 leading ones only (a column reduction), 0 otherwise (or not a reduction).
int reduction_side(const BoundSymbol& b) {
  const std::string& n = b.sym->name;
  if (!(is_reduce_op(n) || n == "var")) return 0;
  const TensorRef& t = b.args[0].as_tensor();
  std::vector<int64_t> dims = b.args[1].as_int_list();
  const int64_t rank = static_cast<int64_t>(t->shape().size());
  std::vector<bool> red(static_cast<size_t>(rank), false);
  for (int64_t d : dims) red[static_cast<size_t>(d < 0 ? d + rank : d)] = true;
  std::vector<bool> pattern;  // reduced or not, per dim larger than 1
  for (int64_t d = 0; d < rank; ++d) {
    if (t->shape()[static_cast<size_t>(d)].value() != 1)
      pattern.push_back(red[static_cast<size_t>(d)]);
  }
  if (pattern.empty() || std::find(pattern.begin(), pattern.end(), true) == pattern.end()) return 0;
  if (pattern.back()) {
    size_t k = pattern.size();
    while (k > 0 && pattern[k - 1]) --k;
    return std::find(pattern.begin(), pattern.begin() + k, true) == pattern.begin() + k ? 1 : 0;
  }
  size_t k = 0;
  while (k < pattern.size() && pattern[k]) ++k;
  return std::find(pattern.begin() + k, pattern.end(), true) == pattern.end() ? -1 : 0;
}

bool reduces(const BoundSymbol& b) { return is_reduce_op(b.sym->name) || b.sym->name == "var"; }

// A region with row reductions and column reductions: the column reductions (and what is computed
// from them) move to the end, after the row reductions, so that a row kernel can take them as
// reductions over its rows (rms_norm's backward sums its weight gradient before it reduces the
// input gradient's rows). Reductions over other dims (group_norm's weight gradient: over the
// samples and the spatial dims, each group's channels kept) move with them: in their trace order
// they would cut the row kernel short, and each value read across the cut would be written out.
// Moving a primitive later with everything that reads it keeps the order topological.
std::vector<BSymRef> columns_last(std::vector<BSymRef> prims) {
  bool rows = false, columns = false;
  for (const BSymRef& p : prims) {
    int side = reduction_side(*p);
    rows = rows || side > 0;
    columns = columns || (reduces(*p) && side <= 0);
  }
  if (!rows || !columns) return prims;
  std::unordered_set<const TensorProxy*> moved_out;
  std::vector<BSymRef> kept, moved;
  for (const BSymRef& p : prims) {
    bool move = reduces(*p) && reduction_side(*p) <= 0;
    for (const TensorRef& t : p->input_tensors()) move = move || moved_out.count(t.get()) != 0;
    if (move) {
      for (const TensorRef& t : p->output_tensors()) moved_out.insert(t.get());
      moved.push_back(p);
    } else {
      kept.push_back(p);
    }
  }
  kept.insert(kept.end(), moved.begin(), moved.end());
  return kept;
}

// Views each moved to just before the first primitive of the region that reads them (a chain of
// views with it): kernels grow in order, and a view that nothing after it reads soon (q, k and v
// sliced from one projection, v read by torch's views alone) would add an axis no value of the
// run's kernel relates to, cutting the kernel before the work that reads the other views.
// Moving a primitive later, ahead of its readers, keeps the order topological. Views read by
// nothing in the region (its outputs) go last: a kernel leaves views at its end to torch (a view of
// an input returned as it is, not written by a kernel).
std::vector<BSymRef> views_to_readers(const std::vector<BSymRef>& prims) {
  std::unordered_map<const TensorProxy*, size_t> first_reader;
  for (size_t i = prims.size(); i-- > 0;) {
    for (const TensorRef& t : prims[i]->input_tensors()) first_reader[t.get()] = i;
  }
  // Per primitive, the views to emit just before it; a view's place is its earliest reader's (a
  // view moved before a view takes that view's place in turn, resolved from the last one).
  std::vector<size_t> place(prims.size());
  for (size_t i = prims.size(); i-- > 0;) {
    place[i] = i;
    if (computes(*prims[i])) continue;
    size_t at = prims.size();  // read by nothing: after every primitive
    for (const TensorRef& t : prims[i]->output_tensors()) {
      auto r = first_reader.find(t.get());
      if (r != first_reader.end()) at = std::min(at, place[r->second]);
    }
    place[i] = at;
  }
  std::vector<std::vector<size_t>> before(prims.size() + 1);
  for (size_t i = 0; i < prims.size(); ++i) before[place[i]].push_back(i);
  std::vector<BSymRef> out;
  out.reserve(prims.size());
  for (size_t i = 0; i <= prims.size(); ++i) {
    for (size_t j : before[i]) out.push_back(prims[j]);
  }
  return out;
}

// The dims of two shapes of one element count in groups of consecutive dims with equal products,
// as {from_begin, from_end, to_begin, to_end}; empty for a shape with a 0.
std::vector<std::array<size_t, 4>> reshape_groups(const Shape& from, const Shape& to) {
  std::vector<std::array<size_t, 4>> groups;
  for (Dim d : from) {
    if (d.value() == 0) return {};
  }
  size_t i = 0, j = 0;
  while (i < from.size() || j < to.size()) {
    const size_t i0 = i, j0 = j;
    int64_t pf = i < from.size() ? from[i++].value() : 1;
    int64_t pt = j < to.size() ? to[j++].value() : 1;
    while (pf != pt) {
      if (pf < pt && i < from.size()) {
        pf *= from[i++].value();
      } else if (pt < pf && j < to.size()) {
        pt *= to[j++].value();
      } else {
        return {};
      }
    }
    groups.push_back({i0, i, j0, j});
  }
  return groups;
}

// For u a chain of broadcasts (and dtype conversions) of a tensor `producer` does not define: that
// tensor, per dim of u the tensor's dim it comes from (-1: broadcast), and the conversions in the
// order they apply to the tensor; {nullptr, {}, {}} otherwise. A bf16 bias added to a bf16 input is
// converted to float32 before it is broadcast.
struct BroadcastBase {
  TensorRef base;
  std::vector<int> src;
  std::vector<DType> converts;
};
BroadcastBase broadcast_base(const TensorRef& u,
                             const std::unordered_map<const TensorProxy*, BSymRef>& producer) {
  std::vector<int> src(u->shape().size());
  for (size_t d = 0; d < src.size(); ++d) src[d] = static_cast<int>(d);
  std::vector<DType> converts;
  TensorRef cur = u;
  while (producer.count(cur.get())) {
    const BSymRef& pb = producer.at(cur.get());
    if (pb->sym->name == "convert_element_type") {
      converts.insert(converts.begin(), cur->dtype());
      cur = pb->args[0].as_tensor();
      continue;
    }
    if (pb->sym->name != "broadcast_in_dim") return {};
    const TensorRef& v = pb->args[0].as_tensor();
    const std::vector<int64_t> bdims = pb->args[2].as_int_list();
    std::vector<int> of_out(cur->shape().size(), -1);  // dim of cur -> dim of v
    for (size_t d = 0; d < bdims.size(); ++d) {
      if (v->shape()[d].value() != 1) of_out[static_cast<size_t>(bdims[d])] = static_cast<int>(d);
    }
    for (int& d : src) d = d < 0 ? -1 : of_out[static_cast<size_t>(d)];
    cur = v;
  }
  return {cur, src, converts};
}

// The shape and dims of a broadcast's base re-broadcast over `inner` where the broadcast output
// `outer` is `inner` reshaped: the base's dims must cover whole groups of dims (reshape_groups),
// in order. False when they do not, or the shapes do not group.
bool rebroadcast(const Shape& inner, const Shape& outer, const std::vector<int>& src, Shape* vshape,
                 std::vector<int64_t>* vdims) {
  const std::vector<std::array<size_t, 4>> groups = reshape_groups(inner, outer);
  if (groups.empty()) return false;
  int last = -1;
  for (const auto& g : groups) {
    int present = 0, want = 0;
    for (size_t d = g[2]; d < g[3]; ++d) {
      want += outer[d].value() != 1 ? 1 : 0;
      if (src[d] < 0) continue;
      if (src[d] <= last) return false;  // the base's dims out of order
      last = src[d];
      ++present;
    }
    if (present == 0) continue;
    if (present != want) return false;  // broadcast along part of a group
    for (size_t d = g[0]; d < g[1]; ++d) {
      vshape->push_back(inner[d]);
      vdims->push_back(static_cast<int64_t>(d));
    }
  }
  return true;
}

// What the two moves of reshapes below share: primitives appended to `out` whose new tensors take
// fresh names from a hint, and a tensor the primitives do not compute (a region input, or a chain
// of broadcasts of one) over another shape of its elements, made once per shape.
class ShapeMover {
 public:
  ShapeMover(const std::unordered_map<const TensorProxy*, BSymRef>& producer,
             const NameFn& fresh_name, std::string suffix, std::vector<BSymRef>& out)
      : producer_(producer), fresh_name_(fresh_name), suffix_(std::move(suffix)), out_(out) {}

  // `sym(args)` over `shape`, defining `as`, or a new tensor named after `named`.
  TensorRef emit(const BSymRef& like, const Symbol& sym, std::vector<Value> args,
                 const Shape& shape, const TensorRef& named, TensorRef as = nullptr) {
    if (!as) {
      as = std::make_shared<const TensorProxy>(fresh_name_(named->name() + suffix_), shape,
                                               named->dtype(), named->device(),
                                               named->requires_grad());
    }
    out_.push_back(BoundSymbol::make(&sym, std::move(args), Value(as), {}, like->source));
    return as;
  }

  // Whether `a` can be given over `shape` (its elements reshaped): a region input, or broadcasts of
  // one along whole groups of dims (a bias per channel).
  bool can_move(const TensorRef& a, const Shape& shape) const {
    if (!producer_.count(a.get())) return !reshape_groups(shape, a->shape()).empty();
    const BroadcastBase bb = broadcast_base(a, producer_);
    Shape vshape;
    std::vector<int64_t> vdims;
    return bb.base != nullptr && rebroadcast(shape, a->shape(), bb.src, &vshape, &vdims);
  }

  // p's arguments over `shape`: each tensor's twin (a value already computed over it), else the
  // tensor moved.
  std::vector<Value> args_over(const BSymRef& p,
                               const std::unordered_map<const TensorProxy*, TensorRef>& twin,
                               const Shape& shape) {
    std::vector<Value> args;
    for (const Value& v : p->args) {
      if (!v.is_tensor()) {
        args.push_back(v);
        continue;
      }
      auto tw = twin.find(v.as_tensor().get());
      args.push_back(Value(tw != twin.end() ? tw->second : moved(p, v.as_tensor(), shape)));
    }
    return args;
  }

  // `a` over `shape` (can_move holds): a reshape of the input, or the broadcast redone over it.
  TensorRef moved(const BSymRef& like, const TensorRef& a, const Shape& shape) {
    const std::pair<const TensorProxy*, Shape> key = {a.get(), shape};
    auto it = made_.find(key);
    if (it != made_.end()) return it->second;
    TensorRef m;
    if (!producer_.count(a.get())) {
      m = emit(like, prims::reshape(), {Value(a), Value::shape(shape)}, shape, a);
    } else {
      const BroadcastBase bb = broadcast_base(a, producer_);
      Shape vshape;
      std::vector<int64_t> vdims;
      rebroadcast(shape, a->shape(), bb.src, &vshape, &vdims);
      TensorRef v =
          emit(like, prims::reshape(), {Value(bb.base), Value::shape(vshape)}, vshape, bb.base);
      for (DType d : bb.converts) {
        TensorRef c = std::make_shared<const TensorProxy>(fresh_name_(v->name()), vshape, d,
                                                          v->device(), v->requires_grad());
        v = emit(like, prims::convert_element_type(), {Value(v), Value(d)}, vshape, v, c);
      }
      m = emit(like, prims::broadcast_in_dim(), {Value(v), Value::shape(shape), Value::ints(vdims)},
               shape, a);
    }
    return made_[key] = m;
  }

 private:
  const std::unordered_map<const TensorProxy*, BSymRef>& producer_;
  const NameFn& fresh_name_;
  std::string suffix_;
  std::vector<BSymRef>& out_;
  std::map<std::pair<const TensorProxy*, Shape>, TensorRef> made_;  // (tensor, shape) -> moved
};

// Reshapes of computed values move past the element-wise primitives that read them: a kernel takes
// a reshape of an input as indexing, never one of a computed value, so `silu(group_norm(x))` (the
// norm computed over (n, groups, channels / groups, spatial), its result reshaped to (n, c, h, w))
// would start a kernel at the silu. In program order, y = reshape(t) gives y the twin t; an
// element-wise z = f(y, u, ...) whose operands have twins of one shape, or can be moved to that
// shape (ShapeMover::can_move), becomes z' = f(t, u', ...) over the twins' shape and
// z = reshape(z'), and z has the twin z'. Reshapes nothing reads any more are dropped afterwards
// (`live`); whatever cannot be moved stays.
std::vector<BSymRef> sink_reshapes(const std::vector<BSymRef>& prims, const NameFn& fresh_name) {
  std::unordered_map<const TensorProxy*, BSymRef> producer;
  std::unordered_map<const TensorProxy*, TensorRef> twin;
  std::vector<BSymRef> out;
  ShapeMover mover(producer, fresh_name, "_g", out);
  for (const BSymRef& p : prims) {
    for (const TensorRef& o : p->output_tensors()) producer[o.get()] = p;
    const std::string& op = p->sym->name;
    if (op == "reshape") {
      const TensorRef& t = p->args[0].as_tensor();
      const TensorRef y = p->output_tensors()[0];
      auto pt = producer.find(t.get());
      if (pt != producer.end() && computes(*pt->second) &&
          !reshape_groups(t->shape(), y->shape()).empty())
        twin[y.get()] = t;
      out.push_back(p);
      continue;
    }
    const std::vector<TensorRef> ins = p->input_tensors();
    const std::vector<TensorRef> outs = p->output_tensors();
    const TensorRef* first = nullptr;  // an operand with a twin
    for (const TensorRef& a : ins) {
      if (twin.count(a.get())) first = &a;
    }
    if (!is_elementwise_op(op) || first == nullptr || outs.size() != 1) {
      out.push_back(p);
      continue;
    }
    const TensorRef& z = outs[0];
    const Shape& inner = twin.at(first->get())->shape();
    bool ok = true;
    for (const TensorRef& a : ins) {
      auto tw = twin.find(a.get());
      ok = ok && a->shape() == z->shape() &&
           (tw != twin.end() ? tw->second->shape() == inner : mover.can_move(a, inner));
    }
    if (!ok) {
      out.push_back(p);
      continue;
    }
    TensorRef z1 = mover.emit(p, *p->sym, mover.args_over(p, twin, inner), inner, z);
    mover.emit(p, prims::reshape(), {Value(z1), Value::shape(z->shape())}, z->shape(), z, z);
    producer[z.get()] = out.back();  // z is a reshape now: no twin for a reshape of it
    twin[z.get()] = z1;
  }
  return out;
}

// Reshapes of computed values move ahead of the element-wise primitives that compute them: for
// y = reshape(t) with t computed element-wise from region inputs (and broadcasts of them along
// whole groups of dims), t's primitives are computed again over y's shape from their inputs
// reshaped, the last of them defining y. group_norm's backward reshapes the gradient of what
// follows the norm (silu's backward) to the groups' shape; `group_norm(x * 2)` reshapes x * 2. The
// originals stay where something else reads them.
std::vector<BSymRef> hoist_reshapes(const std::vector<BSymRef>& prims, const NameFn& fresh_name) {
  std::unordered_map<const TensorProxy*, BSymRef> producer;
  for (const BSymRef& p : prims) {
    for (const TensorRef& o : p->output_tensors()) producer[o.get()] = p;
  }
  std::vector<BSymRef> out;
  ShapeMover mover(producer, fresh_name, "_h", out);
  // The shape each value is computed again over (at most one), and the reshape outputs that are
  // those values: value -> y.
  std::unordered_map<const TensorProxy*, Shape> target;
  std::unordered_map<const TensorProxy*, TensorRef> root;
  std::unordered_set<const BoundSymbol*> dropped;  // reshapes replaced
  // Whether v can be computed over `shape`, marking its cone in `cone` (values found not to be, in
  // `failed`: each value is explored once per reshape).
  std::unordered_set<const TensorProxy*> failed;
  // Reshapes read on the way whose input is already over the shape wanted: the input is their
  // value there (group_norm's output computed again over the groups, reshaped for the silu's
  // backward that follows, whose gradient is reshaped back to the groups).
  std::unordered_map<const TensorProxy*, TensorRef> undone;
  std::function<bool(const TensorRef&, const Shape&, std::vector<const TensorProxy*>&, int)>
      hoistable = [&](const TensorRef& v, const Shape& shape, std::vector<const TensorProxy*>& cone,
                      int depth) {
        auto pit = producer.find(v.get());
        if (pit == producer.end() || pit->second->sym->name == "broadcast_in_dim")
          return mover.can_move(v, shape);
        if (pit->second->sym->name == "reshape") {
          const TensorRef& u = pit->second->args[0].as_tensor();
          if (u->shape() != shape) return false;
          undone[v.get()] = u;
          return true;
        }
        auto tt = target.find(v.get());
        if (tt != target.end()) return tt->second == shape;
        if (std::find(cone.begin(), cone.end(), v.get()) != cone.end()) return true;
        if (failed.count(v.get())) return false;
        const BoundSymbol& p = *pit->second;
        if (reshape_groups(shape, v->shape()).empty() || !is_elementwise_op(p.sym->name) ||
            p.output_tensors().size() != 1 || depth > 32)
          return false;
        for (const TensorRef& a : p.input_tensors()) {
          if (a->shape() != v->shape() || !hoistable(a, shape, cone, depth + 1)) {
            failed.insert(v.get());
            return false;
          }
        }
        cone.push_back(v.get());
        return true;
      };
  // Further reshapes of a value already computed over their shape: each defined by the value's
  // primitive computed once more over it (the backward's input gradient and the group_norm output
  // it computes again both reshape x + temb to the groups).
  std::unordered_map<const TensorProxy*, std::vector<TensorRef>> more_roots;
  for (const BSymRef& r : prims) {
    if (r->sym->name != "reshape") continue;
    const TensorRef& t = r->args[0].as_tensor();
    const TensorRef y = r->output_tensors()[0];
    auto pt = producer.find(t.get());
    auto tt = target.find(t.get());
    if (tt != target.end() && tt->second == y->shape()) {
      more_roots[t.get()].push_back(y);
      dropped.insert(r.get());
      continue;
    }
    if (pt == producer.end() || !is_elementwise_op(pt->second->sym->name) || root.count(t.get()) ||
        tt != target.end())
      continue;
    std::vector<const TensorProxy*> cone;
    failed.clear();
    if (!hoistable(t, y->shape(), cone, 0)) continue;
    for (const TensorProxy* c : cone) target[c] = y->shape();
    root[t.get()] = y;
    dropped.insert(r.get());
  }
  if (root.empty()) return prims;
  std::unordered_map<const TensorProxy*, TensorRef> twin = undone;
  for (const BSymRef& p : prims) {
    if (dropped.count(p.get())) continue;
    out.push_back(p);
    const std::vector<TensorRef> outs = p->output_tensors();
    if (outs.size() != 1 || !target.count(outs[0].get())) continue;
    const TensorRef& v = outs[0];
    const Shape& shape = target.at(v.get());
    auto rt = root.find(v.get());
    twin[v.get()] = mover.emit(p, *p->sym, mover.args_over(p, twin, shape), shape, v,
                               rt == root.end() ? nullptr : rt->second);
    auto more = more_roots.find(v.get());
    if (more == more_roots.end()) continue;
    for (const TensorRef& y : more->second)
      mover.emit(p, *p->sym, mover.args_over(p, twin, shape), shape, v, y);
  }
  return out;
}

// A cat of reshapes that each merge one group of dims of their values (one shape) into the cat's
// dim (q, k and v's gradients, [B, T, H, D] each, joined as [B, T, 3 * H * D]) becomes a cat of the
// values along a new dim where the group starts ([B, T, 1, H, D] each: size-1 dims, which a kernel
// indexes), reshaped to the cat's shape (merging dims a kernel writes in order: a view): the parts
// are then computed where the cat is written, instead of each written, copied into its reshape and
// copied again by the cat.
// The reshapes merging the new dims back are recorded in `merges`: each runs as torch's view of the
// cat, never inside a later kernel (which would write the cat again as its own output).
std::vector<BSymRef> cat_before_reshapes(const std::vector<BSymRef>& prims,
                                         const NameFn& fresh_name,
                                         std::unordered_set<const BoundSymbol*>* merges) {
  std::unordered_map<const TensorProxy*, BSymRef> producer;
  std::vector<BSymRef> out;
  ShapeMover mover(producer, fresh_name, "_c", out);
  for (const BSymRef& p : prims) {
    for (const TensorRef& o : p->output_tensors()) producer[o.get()] = p;
    if (p->sym != &prims::cat() || !p->args[0].is_seq() || p->args[0].items().size() < 2) {
      out.push_back(p);
      continue;
    }
    const TensorRef z = p->output_tensors()[0];
    const int64_t rank = static_cast<int64_t>(z->shape().size());
    const int64_t dim = p->args[1].as_int() < 0 ? p->args[1].as_int() + rank : p->args[1].as_int();
    std::vector<TensorRef> values;
    bool ok = true;
    for (const Value& v : p->args[0].items()) {
      auto pr = v.is_tensor() ? producer.find(v.as_tensor().get()) : producer.end();
      ok = ok && pr != producer.end() && pr->second->sym == &prims::reshape();
      if (!ok) break;
      values.push_back(pr->second->args[0].as_tensor());
      ok = values.back()->shape() == values[0]->shape() &&
           v.as_tensor()->shape() == p->args[0].items()[0].as_tensor()->shape();
    }
    // The group of the values' dims that the parts' cat dim (alone) is.
    size_t start = 0;
    bool found = false;
    if (ok) {
      for (const auto& g :
           reshape_groups(values[0]->shape(), p->args[0].items()[0].as_tensor()->shape())) {
        if (g[2] == static_cast<size_t>(dim) && g[3] == g[2] + 1 && g[1] - g[0] >= 2) {
          start = g[0];
          found = true;
        }
      }
    }
    if (!found) {
      out.push_back(p);
      continue;
    }
    Shape one = values[0]->shape(), joined = values[0]->shape();
    one.insert(one.begin() + static_cast<std::ptrdiff_t>(start), Dim(1));
    joined.insert(joined.begin() + static_cast<std::ptrdiff_t>(start),
                  Dim(static_cast<int64_t>(values.size())));
    std::vector<Value> parts;
    for (const TensorRef& x : values)
      parts.push_back(
          Value(mover.emit(p, prims::reshape(), {Value(x), Value::shape(one)}, one, x)));
    TensorRef w =
        mover.emit(p, prims::cat(),
                   {Value::list(std::move(parts)), Value(static_cast<int64_t>(start))}, joined, z);
    mover.emit(p, prims::reshape(), {Value(w), Value::shape(z->shape())}, z->shape(), z, z);
    producer[z.get()] = out.back();
    merges->insert(out.back().get());
  }
  return out;
}

}  // namespace

std::vector<Segment> segment_region(const std::vector<BSymRef>& all_prims,
                                    const std::vector<TensorRef>& region_outputs,
                                    const NameFn& fresh_name) {
  std::unordered_set<const TensorProxy*> region_out;
  for (const TensorRef& t : region_outputs) region_out.insert(t.get());
  // Primitives whose results nothing reads (left by decompositions, e.g. the slice a setitem
  // decomposes through) are dropped: they would only add their axes to a kernel's domain.
  // A value defined twice (a composite's decomposition beside the same primitive recomputed on its
  // own, as a backward may hold) is computed once: its first definition.
  std::unordered_set<const BoundSymbol*> merges;
  std::vector<BSymRef> prims = columns_last(views_to_readers(
      live(cat_before_reshapes(
               sink_reshapes(hoist_reshapes(first_definitions(all_prims), fresh_name), fresh_name),
               fresh_name, &merges),
           region_out)));
  std::vector<Segment> out;
  static const bool debug = std::getenv("THUNDER_FUSION_DEBUG") != nullptr;
  auto try_build = [&](const std::vector<size_t>& members, Segment* seg) {
    *seg = segment_of(prims, members, region_out);
    std::string why;
    seg->kernel = build_kernel(seg->prims, seg->inputs, seg->outputs, &why);
    if (!seg->kernel && debug) {
      std::fprintf(stderr, "[thunder.fusion] %s does not join the kernel: %s\n",
                   seg->prims.back()->sym->qualname().c_str(), why.c_str());
    }
    return seg->kernel.has_value();
  };
  // How far a kernel looks past a primitive that does not join it for later ones that may (ones
  // that read nothing the skipped primitives compute): failed builds, and primitives scanned.
  constexpr int kMaxMisses = 16;
  constexpr size_t kMaxScan = 64;
  size_t begin = 0;
  while (begin < prims.size()) {
    if (merges.count(prims[begin].get())) {  // a view of a cat: torch's
      out.push_back(segment_of(prims, {begin}, region_out));
      begin += 1;
      continue;
    }
    // Grow while one kernel computes the run. A primitive that does not join is deferred, with
    // everything that reads it; later independent primitives may still join (rms_norm's backward:
    // the input-gradient rows join the rstd rows past the weight gradient's column sum). The
    // kernel's primitives then move ahead of the deferred ones, which keeps the order topological.
    Segment best;
    std::vector<size_t> members;
    std::unordered_set<const TensorProxy*> deferred_out;
    // Broadcasts and views that do not join alone (their new dims are not yet related to the
    // kernel's: a weight broadcast to the rows of a kernel that sums over them), tried again with
    // each later primitive that reads them.
    std::vector<size_t> pending;
    std::unordered_set<const TensorProxy*> pending_out;
    size_t scanned = begin;
    int misses = 0;
    for (size_t e = begin; e < prims.size(); ++e) {
      bool blocked = false, reads_pending = false;
      for (const TensorRef& t : prims[e]->input_tensors()) {
        blocked = blocked || deferred_out.count(t.get()) != 0;
        reads_pending = reads_pending || pending_out.count(t.get()) != 0;
      }
      scanned = e + 1;
      if (!blocked) {
        std::vector<size_t> trial = members;
        if (reads_pending) {
          trial.insert(trial.end(), pending.begin(), pending.end());
          std::sort(trial.begin(), trial.end());
        }
        trial.push_back(e);
        Segment s;
        if (try_build(trial, &s)) {
          best = std::move(s);
          members = std::move(trial);
          if (reads_pending) {
            pending.clear();
            pending_out.clear();
          }
          continue;
        }
        ++misses;
        if (!computes(*prims[e]) && !members.empty() && !reads_pending) {
          pending.push_back(e);
          for (const TensorRef& t : prims[e]->output_tensors()) pending_out.insert(t.get());
          continue;
        }
      }
      if (members.empty() || misses > kMaxMisses || scanned - begin - members.size() > kMaxScan)
        break;
      for (const TensorRef& t : prims[e]->output_tensors()) deferred_out.insert(t.get());
    }
    if (members.empty()) {
      out.push_back(segment_of(prims, {begin}, region_out));
      begin += 1;
      continue;
    }
    {
      // The kernel's primitives first, then the deferred ones, in their order.
      std::vector<BSymRef> order;
      std::unordered_set<size_t> in_kernel(members.begin(), members.end());
      for (size_t i : members) order.push_back(prims[i]);
      for (size_t i = begin; i < scanned; ++i) {
        if (!in_kernel.count(i)) order.push_back(prims[i]);
      }
      std::copy(order.begin(), order.end(), prims.begin() + begin);
    }
    size_t end = begin + members.size();
    // A run whose values lie over unrelated axes (a broadcast not yet joined to the rest, two outputs
    // of different shapes) is shortened until its kernel's domain is that of its largest tensor.
    while (!domain_fits(*best.kernel, best.prims)) {
      if (debug) {
        std::fprintf(stderr, "[thunder.fusion] cut before %s: the kernel's domain is larger than any of "
                     "its tensors\n", prims[end - 1]->sym->qualname().c_str());
      }
      Segment s;
      if (end == begin + 1 || !try_build(range(begin, end - 1), &s)) {
        best.kernel.reset();
        break;
      }
      best = std::move(s);
      --end;
    }
    // Views and broadcasts at the end of a segment are left to the next one (where they are free
    // indexing) instead of being written out.
    while (best.kernel && end > begin + 1 && !computes(*prims[end - 1])) {
      Segment s;
      if (!try_build(range(begin, end - 1), &s)) break;
      best = std::move(s);
      --end;
    }
    // A kernel that would only move data (views, cats, pads) is left to torch's copies, except a
    // cat of transposed parts: torch copies such parts one strided copy each (attention's q, k and
    // v gradients, [B, H, T, D], joined as [B, T, 3, H, D]), where the kernel writes the cat at
    // once.
    bool any_compute = false, cat = false, transposed = false;
    for (const BSymRef& b : best.prims) {
      const std::string& n = b->sym->name;
      any_compute = any_compute || (computes(*b) && n != "cat" && n != "pad");
      cat = cat || n == "cat";
      transposed = transposed || n == "transpose";
    }
    if ((!any_compute && !(cat && transposed)) || best.outputs.empty()) best.kernel.reset();
    out.push_back(std::move(best));
    begin = end;
  }
  recompute_pointwise_inputs(prims, region_out, &out);
  return out;
}

std::string kernel_signature(const KernelDef& k) {
  std::ostringstream os;
  auto ints = [&](const std::vector<int64_t>& v) {
    os << '[';
    for (int64_t x : v) os << x << ',';
    os << ']';
  };
  auto tensors = [&](const std::vector<TensorRef>& ts) {
    for (const TensorRef& t : ts) {
      os << dtype_short_name(t->dtype()) << '(';
      for (Dim d : t->shape()) os << d.value() << ',';
      os << ')';
    }
    os << ';';
  };
  os << static_cast<int>(k.kind) << ' ' << k.reduced << ' ' << static_cast<int>(k.device.type) << ':'
     << k.device.index << ' ';
  ints(k.sizes);
  tensors(k.inputs);
  tensors(k.outputs);
  for (const KNode& n : k.nodes) {
    char f[40];
    std::snprintf(f, sizeof(f), "%a", n.fvalue);
    os << '\n'
       << n.op << ' ' << dtype_short_name(n.dtype) << ' ' << n.input << ' ' << f << ' ' << n.ivalue
       << ' ' << n.is_float_const << ' ' << n.step << ' ' << n.gather_axis << ' ' << n.axes << ' '
       << n.over_rows << " a";
    for (int a : n.args) os << a << ',';
    os << " d";
    for (int d : n.dims) os << d << ',';
    os << " s";
    ints(n.view_shape);
    for (const ViewOp& v : n.view) {
      os << " v" << static_cast<int>(v.kind);
      ints(v.a);
      ints(v.b);
      ints(v.c);
    }
  }
  os << "\ng" << k.group_axes << "\no";
  for (size_t o = 0; o < k.output_nodes.size(); ++o) {
    os << k.output_nodes[o] << ':';
    for (int d : k.output_dims[o]) os << d << ',';
    if (o < k.output_shapes.size()) ints(k.output_shapes[o]);
    if (o < k.output_parts.size())
      os << 'p' << k.output_parts[o].of << ',' << k.output_parts[o].dim << ','
         << k.output_parts[o].start;
    os << ' ';
  }
  return os.str();
}

bool draws_random(const std::vector<BSymRef>& prims) {
  for (const BSymRef& p : prims) {
    if (p->sym->name == "uniform_philox") return true;
  }
  return false;
}

bool cpu_region_below(const std::vector<BSymRef>& prims, int64_t min_numel) {
  if (min_numel <= 0 || draws_random(prims)) return false;
  bool below = true;
  auto check = [&](const TensorRef& t) {
    if (t->device().type != DeviceType::kCPU) {
      below = false;
      return;
    }
    int64_t n = 1;
    for (Dim d : t->shape()) n *= d.value();
    if (n >= min_numel) below = false;
  };
  for (const BSymRef& p : prims) {
    for (const TensorRef& t : p->input_tensors()) check(t);
    for (const TensorRef& t : p->output_tensors()) check(t);
    if (!below) return false;
  }
  return true;
}

}  // namespace thunder::fuser
