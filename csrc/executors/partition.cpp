// Region partitioning: greedy grouping along data dependences with a cycle check, then a stable
// topological emission of the quotient graph.
#include "executors/partition.h"

#include <algorithm>
#include <cstdint>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace thunder {

namespace {

class Bitset {
 public:
  explicit Bitset(size_t n = 0) : words_((n + 63) / 64, 0) {}
  void set(size_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
  bool test(size_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
  void merge(const Bitset& o) {
    for (size_t i = 0; i < words_.size(); ++i) words_[i] |= o.words_[i];
  }

 private:
  std::vector<uint64_t> words_;
};

bool is_barrier(const BoundSymbol& b) {
  return b.sym->has_tag(kTagDontDce) || b.sym->has_tag(kTagInplace);
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

Trace partition_regions(const Trace& trace, const RegionPredicate& is_fusible,
                        const RegionFuser& fuse) {
  const size_t n = trace.bsyms.size();
  // Dependences: data, barriers, and the order of random/opaque symbols.
  std::unordered_map<const TensorProxy*, size_t> producer;
  std::vector<std::vector<size_t>> preds(n);
  int64_t last_barrier = -1, last_ordered = -1;
  for (size_t i = 0; i < n; ++i) {
    const BoundSymbol& b = *trace.bsyms[i];
    for (const TensorRef& t : b.input_tensors()) {
      auto it = producer.find(t.get());
      if (it != producer.end()) preds[i].push_back(it->second);
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

  // Greedy grouping. deps[i]: the groups node i depends on, its own included.
  std::vector<int> group(n, -1);
  std::vector<Bitset> deps(n, Bitset(n));
  std::vector<std::vector<size_t>> grouped;  // members per group, while grouping
  std::unordered_map<const TensorProxy*, std::vector<size_t>> readers_so_far;  // grouped readers
  int num_groups = 0;
  // Groups a and b (and node i, which reads both) may become one group when no symbol outside them
  // depends on either and feeds one of them: that path would become a cycle through the merged
  // group.
  auto can_merge = [&](int a, int b, size_t i) {
    auto fed_from_outside = [&](size_t m) {
      for (size_t p : preds[m]) {
        if (group[p] != a && group[p] != b && (deps[p].test(a) || deps[p].test(b))) return true;
      }
      return false;
    };
    for (int g : {a, b}) {
      for (size_t m : grouped[g]) {
        if (fed_from_outside(m)) return false;
      }
    }
    return !fed_from_outside(i);
  };
  auto merge_into = [&](int a, int b, size_t i) {
    for (size_t m : grouped[b]) group[m] = a;
    grouped[a].insert(grouped[a].end(), grouped[b].begin(), grouped[b].end());
    grouped[b].clear();
    for (size_t x = 0; x <= i; ++x) {
      if (deps[x].test(b)) deps[x].set(a);
    }
  };
  for (size_t i = 0; i < n; ++i) {
    for (size_t p : preds[i]) deps[i].merge(deps[p]);
    const BoundSymbol& b = *trace.bsyms[i];
    if (is_barrier(b) || !is_fusible(b)) continue;
    // Candidate groups: those of fusible producers, most recent first.
    std::vector<int> candidates;
    for (size_t p : preds[i]) {
      if (group[p] >= 0) candidates.push_back(group[p]);
    }
    std::sort(candidates.rbegin(), candidates.rend());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    // Node i may join group g unless a predecessor outside g depends on g (a cycle through i).
    auto joinable = [&](int g) {
      for (size_t p : preds[i]) {
        if (group[p] != g && deps[p].test(static_cast<size_t>(g))) return false;
      }
      return true;
    };
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
      // The other producers' groups join it where that keeps the program acyclic (two chains that
      // meet, like exp(a) + sin(b), become one region).
      for (int g : candidates) {
        if (g != chosen && !grouped[g].empty() && can_merge(chosen, g, i)) merge_into(chosen, g, i);
      }
      // So do groups that read one of its inputs (a column sum of g beside the kernels reading g
      // and x in layer_norm's backward: one region, where g can be read once).
      for (const TensorRef& t : b.input_tensors()) {
        if (t->numel() < 2) continue;
        auto r = readers_so_far.find(t.get());
        if (r == readers_so_far.end()) continue;
        for (size_t j : r->second) {
          int g = group[j];
          if (g >= 0 && g != chosen && !grouped[g].empty() && can_merge(chosen, g, i))
            merge_into(chosen, g, i);
        }
      }
    }
    group[i] = chosen;
    grouped[chosen].push_back(i);
    deps[i].set(static_cast<size_t>(chosen));
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

  auto build_region = [&](int g) {
    Region r;
    std::unordered_set<const TensorProxy*> defined, seen_in;
    for (size_t i : members[g]) {
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
  while (!ready.empty()) {
    size_t v = ready.top().second;
    ready.pop();
    if (v < n) {
      out.push_back(trace.bsyms[v]);
    } else {
      std::vector<BSymRef> rep = fuse(build_region(static_cast<int>(v - n)));
      out.insert(out.end(), rep.begin(), rep.end());
    }
    for (size_t w : succ[v]) {
      if (--indegree[w] == 0) ready.push({key[w], w});
    }
  }
  return trace.with_bsyms(std::move(out), trace.stage);
}

}  // namespace thunder
