// Recursive inlining of decompositions.
#include "transforms/decompose.h"

#include "core/error.h"

namespace thunder {

namespace {
void inline_into(const BSymRef& b, std::vector<BSymRef>& out) {
  if (b->sym->kind != SymbolKind::kComposite) {
    out.push_back(b);
    return;
  }
  if (b->subsymbols.empty()) {
    throw NotImplementedError(b->sym->qualname() +
                              " has no decomposition into primitives for these arguments");
  }
  for (const BSymRef& s : b->subsymbols) inline_into(s, out);
}
}  // namespace

Trace decompose(const Trace& trace) {
  std::vector<BSymRef> out;
  for (const BSymRef& b : trace.bsyms) inline_into(b, out);
  return trace.with_bsyms(std::move(out), "decompose");
}

}  // namespace thunder
