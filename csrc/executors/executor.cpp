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

const Symbol* Executor::claim_marker(const Symbol& like) const {
  std::lock_guard<std::mutex> lock(markers_mu_);
  std::unique_ptr<Symbol>& m = markers_[&like];
  if (!m) {
    m = std::make_unique<Symbol>();
    m->name = like.name;
    m->module = name_;
    m->kind = SymbolKind::kExecutor;
    m->signature = like.signature;
    m->tags = like.tags;
    m->implements = &like;
    m->executor = name_;
  }
  return m.get();
}

namespace {

// True when every primitive at the leaves of `b`'s decomposition is fusible by `ex`.
bool fusible_whole(const BoundSymbol& b, const Executor& ex) {
  if (b.sym->kind == SymbolKind::kOpaque || b.sym->kind == SymbolKind::kExecutor ||
      b.sym->kind == SymbolKind::kFusion) {
    return false;
  }
  if (b.sym->is_prim()) return ex.fusion().can_fuse(b);
  if (b.subsymbols.empty()) return false;
  for (const BSymRef& s : b.subsymbols) {
    if (!fusible_whole(*s, ex)) return false;
  }
  return true;
}

}  // namespace

void claim_bsym(const BSymRef& b, const std::vector<const Executor*>& executors,
                std::vector<BSymRef>& out) {
  if (b->sym->kind == SymbolKind::kOpaque || b->sym->kind == SymbolKind::kExecutor ||
      b->sym->kind == SymbolKind::kFusion) {
    out.push_back(b);
    return;
  }
  for (const Executor* ex : executors) {
    if (ex->is_fusion()) {
      if (fusible_whole(*b, *ex)) {
        out.push_back(BoundSymbol::make(ex->claim_marker(*b->sym), b->args, b->output, {b}, b->source));
        return;
      }
      continue;
    }
    if (const Symbol* impl = ex->claim(*b)) {
      out.push_back(BoundSymbol::make(impl, b->args, b->output, {b}, b->source));
      return;
    }
  }
  if (b->sym->kind == SymbolKind::kComposite && !b->subsymbols.empty()) {
    for (const BSymRef& s : b->subsymbols) claim_bsym(s, executors, out);
    return;
  }
  std::string names;
  for (const Executor* ex : executors) names += (names.empty() ? "" : ", ") + ex->name();
  throw NotImplementedError("no executor can run " + b->sym->qualname() +
                            (b->source.empty() ? "" : " (from " + b->source + ")") +
                            "; executors tried: " + names);
}

Trace claim_executors(const Trace& trace, const std::vector<const Executor*>& executors) {
  std::vector<BSymRef> out;
  for (const BSymRef& b : trace.bsyms) claim_bsym(b, executors, out);
  return trace.with_bsyms(std::move(out), "claim");
}

}  // namespace thunder
