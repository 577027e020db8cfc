// Dead-code elimination by one backward liveness sweep.
#include "transforms/dce.h"

#include <unordered_set>

namespace thunder {

Trace dce(const Trace& trace) {
  std::unordered_set<const TensorProxy*> live;
  trace.output.for_each_tensor([&](const TensorRef& t) { live.insert(t.get()); });
  std::vector<BSymRef> kept;
  for (auto it = trace.bsyms.rbegin(); it != trace.bsyms.rend(); ++it) {
    const BoundSymbol& b = **it;
    bool keep = b.sym->has_tag(kTagDontDce) || b.sym->has_tag(kTagInplace);
    if (!keep) {
      b.output.for_each_tensor([&](const TensorRef& t) { keep = keep || live.count(t.get()); });
    }
    if (!keep) continue;
    for (const TensorRef& t : b.input_tensors()) live.insert(t.get());
    kept.push_back(*it);
  }
  return trace.with_bsyms(std::vector<BSymRef>(kept.rbegin(), kept.rend()), "dce");
}

}  // namespace thunder
