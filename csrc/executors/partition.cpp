// Region partitioning: greedy grouping along data dependences with a cycle check, then a stable
// topological emission of the quotient graph.
#include "executors/partition.h"

#include <algorithm>
#include <cstdint>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "ir/symbol.h"

namespace thunder {

namespace {

// A copy into a tensor (prims.copy_, functionalization's write-back into a buffer or an argument)
// is ordered only with the symbols that read its destination: after those before it (they read the
// old contents), before those after it (the new). Other symbols may be grouped across it: a
// BatchNorm's ReLU joins the kernel that computes the running statistics the copies write back.
// (An executor's claim of a copy has the copy as its one subsymbol.)
bool is_copy(const BoundSymbol& b) {
  const bool copy = b.sym == &prims::copy_() ||
                    (b.subsymbols.size() == 1 && b.subsymbols[0]->sym == &prims::copy_());
  return copy && b.args.size() > 1 && b.args[1].is_tensor();
}

bool is_barrier(const BoundSymbol& b) {
  return !is_copy(b) && (b.sym->has_tag(kTagDontDce) || b.sym->has_tag(kTagInplace));
}

bool is_ordered(const BoundSymbol& b) {
  if (b.sym->kind == SymbolKind::kOpaque || b.sym->has_tag(kTagRandom)) return true;
  for (const BSymRef& s : b.subsymbols) {
    if (is_ordered(*s)) return true;
  }
  return false;
}

}  // namespace

std::vector<BSymRef> flatten_to_prims(const BSymRef& b) {
  if (b->sym->is_prim() || b->subsymbols.empty()) return {b};
  std::vector<BSymRef> out;
  for (const BSymRef& s : b->subsymbols) {
    std::vector<BSymRef> sub = flatten_to_prims(s);
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

namespace {

// Whether every primitive a symbol stands for (a claim marker's, or the primitive itself) converts
// or only views its input (`views`: only views).
bool converts_or_views(const BSymRef& b, bool views = false) {
  for (const BSymRef& p : flatten_to_prims(b)) {
    const std::string& n = p->sym->name;
    const bool view =
        n == "broadcast_in_dim" || n == "reshape" || n == "transpose" || n == "squeeze";
    if (!(view || (!views && n == "convert_element_type"))) return false;
  }
  return true;
}

// A group that reads a value another group computes by conversions and views of small tensors (a
// rotary table converted to the activations' dtype and broadcast over heads, in the backward
// computed beside other work) computes it again itself, from tensors already available outside
// their groups: one kernel and one view fewer for a few kilobytes read through the cache.
// Returns, per group, the symbols it recomputes; `readers` loses the values no longer read.
std::vector<std::vector<size_t>> pull_small_chains(
    const Trace& trace, const std::vector<int>& group,
    const std::vector<std::vector<size_t>>& members,
    const std::unordered_set<const TensorProxy*>& returned,
    std::unordered_map<const TensorProxy*, std::unordered_set<int>>& readers) {
  constexpr size_t kMaxChain = 8;
  std::vector<std::vector<size_t>> pulled(members.size());
  std::unordered_map<const TensorProxy*, size_t> producer;
  for (size_t i = 0; i < trace.bsyms.size(); ++i) {
    for (const TensorRef& t : trace.bsyms[i]->output_tensors()) producer[t.get()] = i;
  }
  // A value another symbol can read as it is: computed outside groups or written by its group.
  auto available = [&](const TensorProxy* t) {
    auto p = producer.find(t);
    if (p == producer.end() || group[p->second] < 0 || returned.count(t)) return true;
    auto r = readers.find(t);
    if (r == readers.end()) return false;
    for (int g : r->second) {
      if (g != group[p->second]) return true;
    }
    return false;
  };
  for (size_t g = 0; g < members.size(); ++g) {
    if (members[g].empty()) continue;
    int64_t largest = 0;
    for (size_t i : members[g]) {
      for (const TensorRef& t : trace.bsyms[i]->output_tensors())
        largest = std::max(largest, t->numel());
    }
    const int64_t small = largest / 64;
    std::vector<const TensorProxy*> inputs;  // in first-read order
    std::unordered_set<const TensorProxy*> seen;
    for (size_t i : members[g]) {
      for (const TensorRef& t : trace.bsyms[i]->input_tensors()) {
        if (seen.insert(t.get()).second) inputs.push_back(t.get());
      }
    }
    std::set<size_t> taken;
    for (const TensorProxy* t : inputs) {
      auto p = producer.find(t);
      if (p == producer.end() || group[p->second] < 0 || group[p->second] == static_cast<int>(g) ||
          returned.count(t))
        continue;
      // Only where its group then need not write it (read by this group and its own alone): a
      // region left to other executors runs what it recomputes itself, the value defined once.
      bool others = false;
      for (int r : readers.at(t))
        others = others || (r != static_cast<int>(g) && r != group[p->second]);
      if (others) continue;
      std::set<size_t> chain;
      std::vector<size_t> stack = {p->second};
      bool ok = true;
      while (ok && !stack.empty()) {
        size_t i = stack.back();
        stack.pop_back();
        if (taken.count(i) || !chain.insert(i).second) continue;
        const BoundSymbol& b = *trace.bsyms[i];
        ok = group[i] >= 0 && converts_or_views(trace.bsyms[i]) && chain.size() <= kMaxChain;
        const bool view = converts_or_views(trace.bsyms[i], true);
        for (const TensorRef& o : b.output_tensors()) ok = ok && (view || o->numel() <= small);
        for (const TensorRef& in : b.input_tensors()) {
          if (!ok || available(in.get())) continue;
          stack.push_back(producer.at(in.get()));
        }
      }
      if (!ok) continue;
      taken.insert(chain.begin(), chain.end());
    }
    if (taken.empty()) continue;
    pulled[g].assign(taken.begin(), taken.end());
    // The values the chains define are read here no more; the tensors they start from are.
    std::unordered_set<const TensorProxy*> defined;
    for (size_t i : taken) {
      for (const TensorRef& o : trace.bsyms[i]->output_tensors()) defined.insert(o.get());
    }
    for (const TensorProxy* t : defined) {
      if (seen.count(t)) readers[t].erase(static_cast<int>(g));
    }
    for (size_t i : taken) {
      for (const TensorRef& in : trace.bsyms[i]->input_tensors()) {
        if (!defined.count(in.get())) readers[in.get()].insert(static_cast<int>(g));
      }
    }
  }
  return pulled;
}

}  // namespace

Trace partition_regions(const Trace& trace, const RegionPredicate& is_fusible,
                        const RegionFuser& fuse) {
  const size_t n = trace.bsyms.size();
  // Dependences: data, barriers, and the order of random/opaque symbols.
  std::unordered_map<const TensorProxy*, size_t> producer;
  // Per copy destination: the symbols that read it so far, and the last copy into it.
  std::unordered_map<const TensorProxy*, std::vector<size_t>> dst_readers;
  std::unordered_map<const TensorProxy*, size_t> last_copy;
  std::vector<std::vector<size_t>> preds(n);
  int64_t last_barrier = -1, last_ordered = -1;
  for (size_t i = 0; i < n; ++i) {
    const BoundSymbol& b = *trace.bsyms[i];
    for (const TensorRef& t : b.input_tensors()) {
      auto it = producer.find(t.get());
      if (it != producer.end()) preds[i].push_back(it->second);
      auto c = last_copy.find(t.get());
      if (c != last_copy.end()) preds[i].push_back(c->second);
      dst_readers[t.get()].push_back(i);
    }
    if (is_copy(b)) {
      const TensorProxy* dst = b.args[1].as_tensor().get();
      for (size_t r : dst_readers[dst]) {
        if (r != i) preds[i].push_back(r);
      }
      last_copy[dst] = i;
    }
    if (is_barrier(b)) {
      for (size_t j = static_cast<size_t>(last_barrier + 1); j < i; ++j) preds[i].push_back(j);
      last_barrier = static_cast<int64_t>(i);
    } else if (last_barrier >= 0) {
      preds[i].push_back(static_cast<size_t>(last_barrier));
    }
    if (is_ordered(b)) {
      if (last_ordered >= 0) preds[i].push_back(static_cast<size_t>(last_ordered));
      last_ordered = static_cast<int64_t>(i);
    }
    std::sort(preds[i].begin(), preds[i].end());
    preds[i].erase(std::unique(preds[i].begin(), preds[i].end()), preds[i].end());
    for (const TensorRef& t : b.output_tensors()) producer[t.get()] = i;
  }

  // Greedy grouping.
  std::vector<int> group(n, -1);
  std::vector<std::vector<size_t>> grouped;  // members per group, while grouping
  std::unordered_map<const TensorProxy*, std::vector<size_t>> readers_so_far;  // grouped readers
  int num_groups = 0;
  std::vector<std::vector<size_t>> succs(n);
  for (size_t x = 0; x < n; ++x) {
    for (size_t p : preds[x]) succs[p].push_back(x);
  }
  std::vector<size_t> seen_at(n, SIZE_MAX);  // creates_cycle's visited marks, by query
  std::vector<size_t> group_seen_at;
  size_t query = 0;
  // Whether node i joining group a (and group b merging into it, when b >= 0) puts the group on a
  // cycle of the graph in which every group is one node: a path out of the group, through symbols
  // outside it and through other groups (each runs as a whole), back into it. The search walks
  // successors from the group; symbols after i cannot lead back to it.
  auto creates_cycle = [&](int a, int b, size_t i) {
    ++query;
    group_seen_at.resize(grouped.size(), SIZE_MAX);
    auto inside = [&](size_t x) {
      return x == i || (group[x] >= 0 && (group[x] == a || group[x] == b));
    };
    std::vector<size_t> stack;
    auto reach = [&](size_t x) {
      if (x <= i && seen_at[x] != query) {
        seen_at[x] = query;
        stack.push_back(x);
      }
    };
    for (int g : {a, b}) {
      if (g < 0) continue;
      for (size_t m : grouped[g]) {
        for (size_t s : succs[m]) {
          if (!inside(s)) reach(s);
        }
      }
    }
    while (!stack.empty()) {
      size_t x = stack.back();
      stack.pop_back();
      for (size_t s : succs[x]) {
        if (s > i) continue;
        if (inside(s)) return true;
        reach(s);
      }
      int h = group[x];
      if (h >= 0 && group_seen_at[h] != query) {  // another group: it runs as a whole
        group_seen_at[h] = query;
        for (size_t m : grouped[h]) reach(m);
      }
    }
    return false;
  };
  auto merge_into = [&](int a, int b) {
    for (size_t m : grouped[b]) group[m] = a;
    grouped[a].insert(grouped[a].end(), grouped[b].begin(), grouped[b].end());
    grouped[b].clear();
  };
  for (size_t i = 0; i < n; ++i) {
    const BoundSymbol& b = *trace.bsyms[i];
    if (is_barrier(b) || !is_fusible(b)) continue;
    // Candidate groups: those of fusible producers, most recent first.
    std::vector<int> candidates;
    for (size_t p : preds[i]) {
      if (group[p] >= 0) candidates.push_back(group[p]);
    }
    std::sort(candidates.rbegin(), candidates.rend());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    auto joinable = [&](int g) { return !creates_cycle(g, -1, i); };
    int chosen = -1;
    for (int g : candidates) {
      if (joinable(g)) {
        chosen = g;
        break;
      }
    }
    if (chosen < 0) {
      // No producer's group takes it: a group that reads one of its inputs does (siblings such as
      // gelu(x) and gelu_backward(g, x) read x once in one kernel), most recent first.
      std::vector<int> siblings;
      for (const TensorRef& t : b.input_tensors()) {
        if (t->numel() < 2) continue;
        auto r = readers_so_far.find(t.get());
        if (r == readers_so_far.end()) continue;
        for (size_t j : r->second) {
          if (group[j] >= 0) siblings.push_back(group[j]);
        }
      }
      std::sort(siblings.rbegin(), siblings.rend());
      siblings.erase(std::unique(siblings.begin(), siblings.end()), siblings.end());
      for (int g : siblings) {
        if (joinable(g)) {
          chosen = g;
          break;
        }
      }
    }
    if (chosen < 0) {
      chosen = num_groups++;
      grouped.emplace_back();
    } else {
      auto try_merge = [&](int g) {
        if (g >= 0 && g != chosen && !grouped[g].empty() && !creates_cycle(chosen, g, i))
          merge_into(chosen, g);
      };
      // The other producers' groups join it where that keeps the program acyclic (two chains that
      // meet, like exp(a) + sin(b), become one region).
      for (int g : candidates) try_merge(g);
      // So do groups that read one of its inputs (a column sum of g beside the kernels reading g
      // and x in layer_norm's backward: one region, where g can be read once).
      for (const TensorRef& t : b.input_tensors()) {
        if (t->numel() < 2) continue;
        auto r = readers_so_far.find(t.get());
        if (r == readers_so_far.end()) continue;
        for (size_t j : r->second) try_merge(group[j]);
      }
    }
    group[i] = chosen;
    grouped[chosen].push_back(i);
    for (const TensorRef& t : b.input_tensors()) readers_so_far[t.get()].push_back(i);
  }

  // Super-nodes: ungrouped symbols and groups. Key = index of the last member.
  std::vector<std::vector<size_t>> members(num_groups);
  for (size_t i = 0; i < n; ++i) {
    if (group[i] >= 0) members[group[i]].push_back(i);
  }
  const size_t num_nodes = n + static_cast<size_t>(num_groups);
  auto node_of = [&](size_t i) { return group[i] >= 0 ? n + static_cast<size_t>(group[i]) : i; };
  std::vector<size_t> key(num_nodes, 0);
  std::vector<bool> exists(num_nodes, false);
  for (size_t i = 0; i < n; ++i) {
    size_t v = node_of(i);
    key[v] = std::max(key[v], i);
    exists[v] = true;
  }
  std::vector<std::unordered_set<size_t>> succ(num_nodes);
  std::vector<size_t> indegree(num_nodes, 0);
  for (size_t i = 0; i < n; ++i) {
    size_t v = node_of(i);
    for (size_t p : preds[i]) {
      size_t u = node_of(p);
      if (u != v && succ[u].insert(v).second) ++indegree[v];
    }
  }

  // Which tensors are read outside each group (or returned).
  std::unordered_set<const TensorProxy*> returned;
  trace.output.for_each_tensor([&](const TensorRef& t) { returned.insert(t.get()); });
  std::unordered_map<const TensorProxy*, std::unordered_set<int>> readers;  // group ids, -1: outside
  for (size_t i = 0; i < n; ++i) {
    for (const TensorRef& t : trace.bsyms[i]->input_tensors()) readers[t.get()].insert(group[i]);
  }
  std::vector<std::vector<size_t>> pulled =
      pull_small_chains(trace, group, members, returned, readers);

  auto build_region = [&](int g) {
    Region r;
    std::unordered_set<const TensorProxy*> defined, seen_in;
    std::vector<size_t> all = pulled[g];  // recomputed here, never its outputs
    all.insert(all.end(), members[g].begin(), members[g].end());
    std::sort(all.begin(), all.end());
    for (size_t i : all) {
      const BSymRef& b = trace.bsyms[i];
      r.bsyms.push_back(b);
      for (const TensorRef& t : b->input_tensors()) {
        if (!defined.count(t.get()) && seen_in.insert(t.get()).second) r.inputs.push_back(t);
      }
      for (const TensorRef& t : b->output_tensors()) defined.insert(t.get());
    }
    for (size_t i : members[g]) {
      for (const TensorRef& t : trace.bsyms[i]->output_tensors()) {
        bool outside = returned.count(t.get()) != 0;
        auto it = readers.find(t.get());
        if (it != readers.end()) {
          for (int rg : it->second) outside = outside || rg != g;
        }
        if (outside) r.outputs.push_back(t);
      }
    }
    return r;
  };

  using Item = std::pair<size_t, size_t>;  // (key, node)
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> ready;
  for (size_t v = 0; v < num_nodes; ++v) {
    if (exists[v] && indegree[v] == 0) ready.push({key[v], v});
  }
  std::vector<BSymRef> out;
  // Tensors defined so far: a region left to other executors runs the small values it recomputes
  // (pull_small_chains: conversions and views) unless an earlier one (their own group, left alike)
  // defined them already.
  std::unordered_set<const TensorProxy*> defined;
  auto emit = [&](const BSymRef& b) {
    const std::vector<TensorRef> outs = b->output_tensors();
    if (!outs.empty() &&
        std::all_of(outs.begin(), outs.end(),
                    [&](const TensorRef& t) { return defined.count(t.get()); }) &&
        converts_or_views(b))
      return;
    for (const TensorRef& t : outs) defined.insert(t.get());
    out.push_back(b);
  };
  while (!ready.empty()) {
    size_t v = ready.top().second;
    ready.pop();
    if (v < n) {
      emit(trace.bsyms[v]);
    } else {
      for (const BSymRef& b : fuse(build_region(static_cast<int>(v - n)))) emit(b);
    }
    for (size_t w : succ[v]) {
      if (--indegree[w] == 0) ready.push({key[w], w});
    }
  }
  return trace.with_bsyms(std::move(out), trace.stage);
}

}  // namespace thunder
