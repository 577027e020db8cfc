// Dead-code elimination by one backward liveness sweep.
#include "transforms/dce.h"

#include <unordered_set>

namespace thunder {

namespace {

// Symbols that must run even when nothing reads their outputs: in-place writes, explicit side
// effects, anything that draws from the random generator (at any level of its decomposition, so the
// generator advances as in eager), and opaque calls (thunder cannot know their effects).
bool has_effect(const BoundSymbol& b) {
  if (b.sym->has_tag(kTagDontDce) || b.sym->has_tag(kTagInplace) || b.sym->has_tag(kTagRandom) ||
      b.sym->kind == SymbolKind::kOpaque) {
    return true;
  }
  for (const BSymRef& s : b.subsymbols) {
    if (has_effect(*s)) return true;
  }
  return false;
}

}  // namespace

std::vector<BSymRef> live_bsyms(const std::vector<BSymRef>& bsyms, const Value& roots) {
  std::unordered_set<const TensorProxy*> live;
  roots.for_each_tensor([&](const TensorRef& t) { live.insert(t.get()); });
  std::vector<BSymRef> kept;
  for (auto it = bsyms.rbegin(); it != bsyms.rend(); ++it) {
    const BoundSymbol& b = **it;
    bool keep = has_effect(b);
    if (!keep) {
      b.output.for_each_tensor([&](const TensorRef& t) { keep = keep || live.count(t.get()); });
    }
    if (!keep) continue;
    for (const TensorRef& t : b.input_tensors()) live.insert(t.get());
    kept.push_back(*it);
  }
  return std::vector<BSymRef>(kept.rbegin(), kept.rend());
}

Trace dce(const Trace& trace) {
  return trace.with_bsyms(live_bsyms(trace.bsyms, trace.output), "dce");
}

}  // namespace thunder
