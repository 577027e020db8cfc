// The fusion stage over claim markers.
#include "executors/fusion_pass.h"

#include <string>
#include <unordered_set>

#include "core/error.h"

namespace thunder {

namespace {

// Every tensor name of `bsyms` and their decompositions.
void collect_names(const std::vector<BSymRef>& bsyms, std::unordered_set<std::string>& names) {
  for (const BSymRef& b : bsyms) {
    for (const TensorRef& t : b->input_tensors()) names.insert(t->name());
    for (const TensorRef& t : b->output_tensors()) names.insert(t->name());
    collect_names(b->subsymbols, names);
  }
}

}  // namespace

Trace fuse_regions(const Trace& trace, const std::vector<const Executor*>& executors) {
  Trace t = trace;
  for (const Executor* ex : executors) {
    if (!ex->is_fusion()) continue;
    std::vector<const Executor*> others;
    for (const Executor* o : executors) {
      if (o != ex) others.push_back(o);
    }
    auto reclaim = [&](const Region& r) {
      std::vector<BSymRef> out;
      for (const BSymRef& m : r.bsyms) claim_bsym(m->subsymbols.at(0), others, out);
      return out;
    };
    FusionContext ctx;
    // The trace's names, collected at the first request (most regions add no tensor).
    std::unordered_set<std::string> names;
    bool collected = false;
    ctx.fresh_name = [&](const std::string& hint) {
      if (!collected) {
        for (const TensorRef& in : t.inputs) names.insert(in->name());
        collect_names(t.bsyms, names);
        collected = true;
      }
      std::string name = hint;
      for (int i = 1; !names.insert(name).second; ++i) name = hint + "_" + std::to_string(i);
      return name;
    };
    ctx.claim = [&](const BSymRef& b) {
      std::vector<BSymRef> out;
      claim_bsym(b, others, out);
      return out;
    };
    t = partition_regions(
        t, [&](const BoundSymbol& b) { return ex->is_claim_marker(b); },
        [&](const Region& r) -> std::vector<BSymRef> {
          std::optional<std::vector<BSymRef>> fused = ex->fusion().fuse(r, ctx);
          if (!fused) return reclaim(r);
          return std::move(*fused);
        });
  }
  return t;
}

}  // namespace thunder
