// The min-cut partitioner (Dinic's max-flow over the split-node forward graph) and its application.
#include "autograd/rematerialize.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_rule.h"
#include "ir/builder.h"
#include "transforms/dce.h"
#include "transforms/substitute.h"

namespace thunder::autograd {

namespace {

constexpr int64_t kInf = std::numeric_limits<int64_t>::max() / 4;

class MaxFlow {
 public:
  explicit MaxFlow(int n) : adj_(n), level_(n), iter_(n) {}
  void add_edge(int u, int v, int64_t cap) {
    adj_[u].push_back({v, static_cast<int>(adj_[v].size()), cap});
    adj_[v].push_back({u, static_cast<int>(adj_[u].size()) - 1, 0});
  }
  int64_t run(int s, int t) {
    int64_t flow = 0;
    while (bfs(s, t)) {
      std::fill(iter_.begin(), iter_.end(), 0);
      while (int64_t f = dfs(s, t, kInf)) flow += f;
    }
    return flow;
  }
  // Nodes reachable from s in the residual graph (the source side of a minimum cut).
  std::vector<bool> source_side(int s) const {
    std::vector<bool> seen(adj_.size(), false);
    std::queue<int> q;
    q.push(s);
    seen[s] = true;
    while (!q.empty()) {
      int u = q.front();
      q.pop();
      for (const Edge& e : adj_[u]) {
        if (e.cap > 0 && !seen[e.to]) {
          seen[e.to] = true;
          q.push(e.to);
        }
      }
    }
    return seen;
  }

 private:
  struct Edge {
    int to, rev;
    int64_t cap;
  };
  bool bfs(int s, int t) {
    std::fill(level_.begin(), level_.end(), -1);
    std::queue<int> q;
    level_[s] = 0;
    q.push(s);
    while (!q.empty()) {
      int u = q.front();
      q.pop();
      for (const Edge& e : adj_[u]) {
        if (e.cap > 0 && level_[e.to] < 0) {
          level_[e.to] = level_[u] + 1;
          q.push(e.to);
        }
      }
    }
    return level_[t] >= 0;
  }
  int64_t dfs(int u, int t, int64_t f) {
    if (u == t) return f;
    for (int& i = iter_[u]; i < static_cast<int>(adj_[u].size()); ++i) {
      Edge& e = adj_[u][i];
      if (e.cap > 0 && level_[u] < level_[e.to]) {
        int64_t d = dfs(e.to, t, std::min(f, e.cap));
        if (d > 0) {
          e.cap -= d;
          adj_[e.to][e.rev].cap += d;
          return d;
        }
      }
    }
    return 0;
  }
  std::vector<std::vector<Edge>> adj_;
  std::vector<int> level_, iter_;
};

bool forbidden(const BoundSymbol& b) {
  return b.sym->has_tag(kTagRandom) || b.sym->has_tag(kTagInplace) ||
         b.sym->has_tag(kTagDontDce) || b.sym->kind == SymbolKind::kOpaque ||
         b.sym->kind == SymbolKind::kExecutor || b.sym->kind == SymbolKind::kFusion;
}

int64_t bytes(const TensorRef& t) { return std::max<int64_t>(t->numel(), 1) * dtype_size(t->dtype()); }

struct ForwardIndex {
  std::unordered_map<const TensorProxy*, BSymRef> producer;
  std::unordered_set<const TensorProxy*> inputs;
};

ForwardIndex index_forward(const Trace& fwd) {
  ForwardIndex ix;
  for (const TensorRef& t : fwd.inputs) ix.inputs.insert(t.get());
  for (const BSymRef& b : fwd.bsyms) {
    b->output.for_each_tensor([&](const TensorRef& t) { ix.producer.emplace(t.get(), b); });
  }
  return ix;
}

// Forward values the backward reads, in first-read order.
std::vector<TensorRef> backward_reads(const JointTrace& j, const ForwardIndex& ix) {
  std::unordered_set<const TensorProxy*> defined, seen;
  for (const TensorRef& c : j.cotangents) {
    if (c) defined.insert(c.get());
  }
  std::vector<TensorRef> out;
  auto read = [&](const TensorRef& t) {
    if (defined.count(t.get()) || seen.count(t.get())) return;
    if (!ix.producer.count(t.get()) && !ix.inputs.count(t.get())) return;
    seen.insert(t.get());
    out.push_back(t);
  };
  for (const BSymRef& b : j.backward) {
    for (const TensorRef& t : b->input_tensors()) read(t);
    b->output.for_each_tensor([&](const TensorRef& t) { defined.insert(t.get()); });
  }
  for (const Value& g : j.input_grads) g.for_each_tensor(read);
  return out;
}

// Whether `b` hands its tensor arguments to a library kernel (a matrix product, a convolution, an
// attention, a gather or scatter by index), which reads them from memory: opaque and executor
// calls, symbols without a decomposition, and composites with such a primitive inside.
bool library_call(const BoundSymbol& b) {
  if (b.sym->kind == SymbolKind::kOpaque || b.sym->kind == SymbolKind::kExecutor) return true;
  if (b.sym->is_prim()) {
    const std::string& n = b.sym->name;
    return n == "matmul" || n == "linear" || n == "take" || n == "index_put" || n == "scatter_add";
  }
  if (b.subsymbols.empty()) return true;
  for (const BSymRef& s : b.subsymbols) {
    if (library_call(*s)) return true;
  }
  return false;
}

// Forward values the backward reads in a call no fused kernel computes (a matrix product, an
// attention backward), directly or through views, that computing again would take a kernel of its
// own: the backward holds each of them in memory whatever the plan, and a kernel computing it
// again would read its operands and write it, besides a launch. Such values are saved, as
// AOTAutograd's partitioner does for values "materialized in the backward" (the rotated q and k
// attention's backward reads). Where a fused backward kernel reads the activations the value is
// computed from anyway (gelu's input, for gelu's backward), computing it there costs only its
// write, and the memory saved is worth it: such a value (gelu's output the next linear's weight
// gradient multiplies) is still computed again, as is a value of the trace's inputs alone (a
// weight's bf16 copy under autocast, which would otherwise hold a copy of the parameter).
std::unordered_set<const TensorProxy*> materialized_in_backward(const JointTrace& j,
                                                                const ForwardIndex& ix) {
  std::unordered_map<const TensorProxy*, const TensorProxy*> base;  // a backward view -> its value
  auto root = [&](const TensorRef& t) {
    auto it = base.find(t.get());
    return it == base.end() ? t.get() : it->second;
  };
  // The backward's live symbols only (the joint trace may hold gradients nothing reads, which dce
  // removes later).
  std::unordered_set<const TensorProxy*> library_read, fused_read;
  for (const BSymRef& b : live_bsyms(j.backward, Value::list(j.input_grads))) {
    std::vector<TensorRef> ins = b->input_tensors();
    if (shape_only(*b) && !ins.empty()) {
      const TensorProxy* r = root(ins[0]);
      b->output.for_each_tensor([&](const TensorRef& o) { base[o.get()] = r; });
      continue;
    }
    if (library_call(*b)) {
      for (const TensorRef& t : ins) library_read.insert(root(t));
      continue;
    }
    // A fused kernel reading a forward view (SwiGLU's halves) reads the value it is a view of.
    for (const TensorRef& t : ins) {
      const TensorProxy* r = root(t);
      for (auto p = ix.producer.find(r); p != ix.producer.end() && shape_only(*p->second);
           p = ix.producer.find(r)) {
        std::vector<TensorRef> pin = p->second->input_tensors();
        if (pin.empty()) break;
        r = pin[0].get();
      }
      fused_read.insert(r);
    }
  }
  std::unordered_set<const TensorProxy*> out;
  for (const TensorProxy* v : library_read) {
    // The activations v is computed from through cheap operations (the leaves of its cone).
    std::vector<const TensorProxy*> stack = {v}, leaves;
    std::unordered_set<const TensorProxy*> seen = {v};
    while (!stack.empty() && seen.size() < 256) {
      const TensorProxy* t = stack.back();
      stack.pop_back();
      auto p = ix.producer.find(t);
      if (p == ix.producer.end()) continue;  // a trace input
      if (t != v && !is_recomputable(*p->second)) {
        leaves.push_back(t);
        continue;
      }
      for (const TensorRef& i : p->second->input_tensors()) {
        if (seen.insert(i.get()).second) stack.push_back(i.get());
      }
    }
    const bool joins = std::any_of(leaves.begin(), leaves.end(),
                                   [&](const TensorProxy* l) { return fused_read.count(l) > 0; });
    if (ix.producer.count(v) && !leaves.empty() && !joins) out.insert(v);
  }
  return out;
}

void collect_mutated(const BoundSymbol& b, const std::unordered_set<const TensorProxy*>& inputs,
                     std::unordered_set<const TensorProxy*>& out) {
  if (b.sym->has_tag(kTagInplace) && !b.args.empty()) {
    // prims.copy_(copy_from, copy_to) and in-place ops mutate their last / first tensor argument.
    const Value& dst = b.sym == &prims::copy_() ? b.args.at(1) : b.args.at(0);
    if (dst.is_tensor() && inputs.count(dst.as_tensor().get())) out.insert(dst.as_tensor().get());
  }
  for (const BSymRef& s : b.subsymbols) collect_mutated(*s, inputs, out);
}

}  // namespace

std::unordered_set<const TensorProxy*> mutated_inputs(const Trace& forward) {
  std::unordered_set<const TensorProxy*> inputs, out;
  for (const TensorRef& t : forward.inputs) inputs.insert(t.get());
  for (const BSymRef& b : forward.bsyms) collect_mutated(*b, inputs, out);
  return out;
}

bool is_recomputable(const BoundSymbol& b) {
  if (forbidden(b)) return false;
  if (b.sym->kind == SymbolKind::kPrim) {
    return b.sym->has_tag(kTagElementwise) || b.sym->has_tag(kTagShape);
  }
  if (b.subsymbols.empty()) return false;
  for (const BSymRef& s : b.subsymbols) {
    if (!is_recomputable(*s)) return false;
  }
  return true;
}

// Recomputing a value pays where a fused kernel computes it again as it reads it, or where saving
// it would hold much memory. A small value no fused kernel takes is saved: computed again, it would
// cost the backward a torch call for a few kilobytes.
constexpr int64_t kSmallValueNumel = 4096;
bool worth_recomputing(const BoundSymbol& b) {
  bool worth = false;
  b.output.for_each_tensor(
      [&](const TensorRef& t) { worth = worth || fuses(*t) || t->numel() >= kSmallValueNumel; });
  return worth;
}

RematPlan plan_rematerialization(const JointTrace& j, const RematOptions& options) {
  ForwardIndex ix = index_forward(j.forward);
  std::vector<TensorRef> needed = backward_reads(j, ix);
  RematPlan plan;
  // Values computed inside a checkpoint region are never saved: their producers run again.
  std::unordered_set<const TensorProxy*> checkpointed;
  for (const TensorRef& t : j.checkpointed) checkpointed.insert(t.get());
  // Values the backward compares with their maximum keep the forward's bits: saved, never
  // recomputed (in another kernel an ulp apart, no element might equal the maximum).
  std::unordered_set<const TensorProxy*> compared = compared_for_equality(j.backward);
  std::unordered_set<const TensorProxy*> materialized;
  if (options.enabled) materialized = materialized_in_backward(j, ix);
  auto recomputable = [&](const BoundSymbol& b) {
    bool exact = false, held = false;
    b.output.for_each_tensor([&](const TensorRef& t) {
      exact = exact || compared.count(t.get());
      held = held || materialized.count(t.get());
    });
    if (exact) return false;
    if (options.enabled && !held && is_recomputable(b) && worth_recomputing(b)) return true;
    if (forbidden(b)) return false;
    bool inside = false;
    b.output.for_each_tensor([&](const TensorRef& t) { inside = inside || checkpointed.count(t.get()); });
    return inside;
  };
  if (!options.enabled && checkpointed.empty()) {
    plan.saved = needed;
    return plan;
  }
  // Node ids: every forward value (inputs and bound-symbol outputs) gets an in and an out node.
  std::unordered_map<const TensorProxy*, int> id;
  std::vector<TensorRef> values;
  auto node = [&](const TensorRef& t) {
    auto [it, fresh] = id.emplace(t.get(), static_cast<int>(values.size()));
    if (fresh) values.push_back(t);
    return it->second;
  };
  for (const TensorRef& t : j.forward.inputs) node(t);
  for (const BSymRef& b : j.forward.bsyms) b->output.for_each_tensor(node);
  int n = static_cast<int>(values.size());
  int source = 2 * n, sink = 2 * n + 1;
  MaxFlow g(2 * n + 2);
  // Inputs the forward mutates are not free: the backward would need a copy of their old value.
  std::unordered_set<const TensorProxy*> mutated = mutated_inputs(j.forward);
  std::unordered_set<const TensorProxy*> free_values;  // kept alive anyway: returned by the forward
  j.forward.output.for_each_tensor([&](const TensorRef& t) { free_values.insert(t.get()); });
  // Ties between cuts of equal size go to the values nearer the backward (fewer recomputations):
  // a value's cost is its size, scaled, minus its depth in a chain of cheap operations.
  constexpr int64_t kScale = 64;
  std::unordered_map<const TensorProxy*, int64_t> depth;
  for (const BSymRef& b : j.forward.bsyms) {
    int64_t d = 0;
    if (is_recomputable(*b)) {
      for (const TensorRef& i : b->input_tensors()) {
        auto it = depth.find(i.get());
        d = std::max(d, (it == depth.end() ? 0 : it->second) + 1);
      }
    }
    b->output.for_each_tensor([&](const TensorRef& t) { depth[t.get()] = d; });
  }
  for (int v = 0; v < n; ++v) {
    const TensorRef& t = values[v];
    bool is_input = ix.inputs.count(t.get()) != 0;
    auto dit = depth.find(t.get());
    int64_t dep = std::min<int64_t>(dit == depth.end() ? 0 : dit->second, kScale - 1);
    bool free = (is_input && !mutated.count(t.get())) || free_values.count(t.get());
    int64_t w = free ? 0 : bytes(t) * kScale + (kScale - 1 - dep);
    if (checkpointed.count(t.get()) && !is_input && !free_values.count(t.get())) {
      auto p = ix.producer.find(t.get());
      if (p != ix.producer.end() && !forbidden(*p->second)) w = kInf;
    }
    g.add_edge(2 * v, 2 * v + 1, w);
    if (is_input) g.add_edge(source, 2 * v, kInf);
  }
  // A value the backward may compute by its producer's recipe: it reads the producer's inputs and
  // its other outputs.
  auto recipe_reads = [&](const TensorRef& t) -> std::optional<std::vector<TensorRef>> {
    auto it = ix.producer.find(t.get());
    if (it == ix.producer.end() || recomputable(*it->second)) return std::nullopt;
    const BoundSymbol& b = *it->second;
    // Only for fused kernels: the recipe is a chain of primitives, which a fused backward kernel
    // computes where it reads them, and the torch executor would run one by one.
    const RecomputeRecipe* r = options.enabled && fuses(*t) && !materialized.count(t.get())
                                   ? find_recompute_recipe(b.sym)
                                   : nullptr;
    std::vector<TensorRef> outs = b.output_tensors();
    if (r == nullptr || r->output >= outs.size() || outs[r->output] != t) return std::nullopt;
    std::vector<TensorRef> reads = b.input_tensors();
    for (const TensorRef& o : outs) {
      if (o != t) reads.push_back(o);
    }
    return reads;
  };
  for (const BSymRef& b : j.forward.bsyms) {
    bool cheap = recomputable(*b);
    std::vector<TensorRef> ins = b->input_tensors();
    b->output.for_each_tensor([&](const TensorRef& o) {
      int ov = id.at(o.get());
      std::optional<std::vector<TensorRef>> reads;
      if (!cheap && !(reads = recipe_reads(o))) {
        g.add_edge(source, 2 * ov, kInf);
        return;
      }
      for (const TensorRef& i : reads ? *reads : ins) {
        auto it = id.find(i.get());
        if (it != id.end()) g.add_edge(2 * it->second + 1, 2 * ov, kInf);
      }
    });
  }
  for (const TensorRef& t : needed) g.add_edge(2 * id.at(t.get()) + 1, sink, kInf);
  g.run(source, sink);
  std::vector<bool> side = g.source_side(source);
  std::unordered_set<const TensorProxy*> saved;
  for (int v = 0; v < n; ++v) {
    if (side[2 * v] && !side[2 * v + 1]) saved.insert(values[v].get());
  }
  // What the backward recomputes: the producers between the cut and the values it reads.
  std::unordered_set<const TensorProxy*> visited;
  std::unordered_set<const BoundSymbol*> chosen;
  std::unordered_set<const TensorProxy*> used;        // the saved values something actually reads
  std::unordered_set<const TensorProxy*> by_recipe;
  std::function<void(const TensorRef&)> need = [&](const TensorRef& t) {
    if (saved.count(t.get())) {
      used.insert(t.get());
      return;
    }
    if (!visited.insert(t.get()).second) return;
    if (std::optional<std::vector<TensorRef>> reads = recipe_reads(t)) {
      by_recipe.insert(t.get());
      for (const TensorRef& i : *reads) need(i);
      return;
    }
    auto it = ix.producer.find(t.get());
    if (it == ix.producer.end() || !recomputable(*it->second)) {
      saved.insert(t.get());  // an input, or a value that cannot be recomputed: save it
      used.insert(t.get());
      return;
    }
    chosen.insert(it->second.get());
    for (const TensorRef& i : it->second->input_tensors()) need(i);
  };
  for (const TensorRef& t : needed) need(t);
  // Saved values in forward order (inputs first), recomputed symbols in forward order.
  for (const TensorRef& t : j.forward.inputs) {
    if (used.count(t.get())) plan.saved.push_back(t);
  }
  for (const BSymRef& b : j.forward.bsyms) {
    b->output.for_each_tensor([&](const TensorRef& t) {
      if (used.count(t.get())) plan.saved.push_back(t);
      if (by_recipe.count(t.get())) plan.by_recipe.push_back(t);
    });
    if (chosen.count(b.get())) plan.recomputed.push_back(b);
  }
  return plan;
}

JointTrace rematerialize(const JointTrace& j, const RematOptions& options) {
  RematPlan plan = plan_rematerialization(j, options);
  if (plan.recomputed.empty() && plan.by_recipe.empty()) return j;
  ForwardIndex ix = index_forward(j.forward);
  std::unordered_set<const BoundSymbol*> pending;
  for (const BSymRef& b : plan.recomputed) pending.insert(b.get());
  std::unordered_set<const TensorProxy*> recipes_pending;
  for (const TensorRef& t : plan.by_recipe) recipes_pending.insert(t.get());
  // New names for the recipes' values: none of the forward's or the backward's.
  std::optional<Builder> names;
  if (!plan.by_recipe.empty()) {
    Trace all;
    all.inputs = j.forward.inputs;
    all.bsyms = j.forward.bsyms;
    all.bsyms.insert(all.bsyms.end(), j.backward.begin(), j.backward.end());
    names.emplace(all);
  }
  std::vector<BSymRef> out;
  std::function<void(const TensorRef&)> ensure = [&](const TensorRef& t) {
    auto it = ix.producer.find(t.get());
    if (it == ix.producer.end()) return;
    if (recipes_pending.erase(t.get())) {
      const BoundSymbol& b = *it->second;
      // (Its other outputs are saved: the symbol is not recomputable.)
      for (const TensorRef& i : b.input_tensors()) ensure(i);
      TensorRef made = find_recompute_recipe(b.sym)->recompute(*names, b);
      ProxyMap as_t{{made.get(), t}};  // the recipe's last value is the forward's
      for (const BSymRef& s : names->take()) out.push_back(substitute(s, as_t));
      return;
    }
    if (!pending.count(it->second.get())) return;
    pending.erase(it->second.get());
    for (const TensorRef& i : it->second->input_tensors()) ensure(i);
    out.push_back(it->second);
  };
  for (const BSymRef& b : j.backward) {
    for (const TensorRef& t : b->input_tensors()) ensure(t);
    out.push_back(b);
  }
  for (const Value& g : j.input_grads) g.for_each_tensor(ensure);
  JointTrace r = j;
  r.backward = std::move(out);
  return r;
}

}  // namespace thunder::autograd
