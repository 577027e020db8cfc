// Executor registration and the claiming pass.
#include "executors/executor.h"

#include "core/error.h"

namespace thunder {

void Executor::register_impl(const Symbol* sym, const Symbol* impl, Checker checker) {
  impls_[sym] = Impl{impl, std::move(checker)};
}

const Symbol* Executor::claim(const BoundSymbol& b) const {
  auto it = impls_.find(b.sym);
  if (it == impls_.end()) return nullptr;
  if (it->second.checker) {
    bool ok;
    try {
      ok = it->second.checker(b);
    } catch (const std::exception& e) {
      throw Error("the checker of executor '" + name_ + "' for " + b.sym->qualname() +
                  " raised: " + e.what());
    }
    if (!ok) return nullptr;
  }
  return it->second.impl;
}

std::vector<const Symbol*> Executor::implemented() const {
  std::vector<const Symbol*> out;
  for (const auto& [sym, impl] : impls_) out.push_back(sym);
  return out;
}

const Symbol* Executor::make_impl_symbol(const Symbol& like, std::string module, std::string name,
                                         int64_t callable) {
  auto s = std::make_unique<Symbol>();
  s->id = -1;
  s->name = std::move(name);
  s->module = std::move(module);
  s->kind = SymbolKind::kExecutor;
  s->signature = like.signature;
  s->tags = like.tags;
  s->callable = callable;
  s->implements = &like;
  s->executor = name_;
  owned_.push_back(std::move(s));
  return owned_.back().get();
}

namespace {

void claim_into(const BSymRef& b, const std::vector<const Executor*>& executors,
                std::vector<BSymRef>& out) {
  if (b->sym->kind == SymbolKind::kOpaque || b->sym->kind == SymbolKind::kExecutor ||
      b->sym->kind == SymbolKind::kFusion) {
    out.push_back(b);
    return;
  }
  for (const Executor* ex : executors) {
    if (const Symbol* impl = ex->claim(*b)) {
      out.push_back(BoundSymbol::make(impl, b->args, b->output, {b}, b->source));
      return;
    }
  }
  if (b->sym->kind == SymbolKind::kComposite && !b->subsymbols.empty()) {
    for (const BSymRef& s : b->subsymbols) claim_into(s, executors, out);
    return;
  }
  std::string names;
  for (const Executor* ex : executors) names += (names.empty() ? "" : ", ") + ex->name();
  throw NotImplementedError("no executor can run " + b->sym->qualname() +
                            (b->source.empty() ? "" : " (from " + b->source + ")") +
                            "; executors tried: " + names);
}

}  // namespace

Trace claim_executors(const Trace& trace, const std::vector<const Executor*>& executors) {
  std::vector<BSymRef> out;
  for (const BSymRef& b : trace.bsyms) claim_into(b, executors, out);
  return trace.with_bsyms(std::move(out), "claim");
}

}  // namespace thunder
