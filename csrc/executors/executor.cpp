// Executor registration and the claiming pass.
#include "executors/executor.h"

#include <algorithm>

#include "core/error.h"
#include "executors/partition.h"

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

// True when `b` is a composite whose decomposition `ex` could fuse but for its copies into its
// inputs (a batch_norm updating its running statistics), that reduces its largest operand (one
// kernel is then worth the torch calls the copies become; instance_norm's running statistics, a
// mean of its rows' statistics, would be kernels of their own), at a size `ex` fuses.
bool fusible_but_copies(const BSymRef& b, const Executor& ex) {
  if (b->sym->kind != SymbolKind::kComposite || b->subsymbols.empty()) return false;
  std::vector<BSymRef> prims = flatten_to_prims(b);
  bool copies = false;
  int64_t largest = 0;
  std::vector<int64_t> reduced;  // the element counts of the reductions' operands
  for (const BSymRef& p : prims) {
    const std::string& n = p->sym->name;
    if (p->sym->is_prim() && n == "copy_") {
      copies = true;
      continue;
    }
    if (!p->sym->is_prim() || !ex.fusion().can_fuse(*p)) return false;
    for (const TensorRef& t : p->input_tensors()) largest = std::max(largest, t->numel());
    if (n == "sum" || n == "var" || n == "amax" || n == "amin" || n == "prod")
      reduced.push_back(p->input_tensors().at(0)->numel());
  }
  const bool one_pass =
      !reduced.empty() && std::all_of(reduced.begin(), reduced.end(),
                                      [&](int64_t k) { return k == largest; });
  const auto& worth = ex.fusion().worth_fusing;
  return copies && one_pass && (!worth || worth(prims));
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
      if (fusible_but_copies(b, *ex)) {  // its primitives claimed one by one: fused, and copies
        for (const BSymRef& s : b->subsymbols) claim_bsym(s, executors, out);
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
