// The fusion stage over claim markers.
#include "executors/fusion_pass.h"

#include "core/error.h"

namespace thunder {

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
