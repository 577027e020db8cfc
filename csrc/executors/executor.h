// Executors and the claiming pass (execution planning).
//
// An executor declares which symbols it implements, each with an optional checker on the bound symbol
// (dtypes, devices, argument values). Claiming walks the trace: each bound symbol goes to the first
// executor, in priority order, that implements it and whose checker accepts it; it is rewritten to the
// executor's implementation symbol with the original kept as its sub-symbol. A composite that no executor
// claims is replaced by its decomposition, which is claimed in turn; a primitive no executor claims is an
// error naming it. Opaque symbols carry their own callable and stay as they are.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/trace.h"

namespace thunder {

using Checker = std::function<bool(const BoundSymbol&)>;

class Executor {
 public:
  explicit Executor(std::string name) : name_(std::move(name)) {}
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  const std::string& name() const { return name_; }

  // Registers `impl` (a kExecutor symbol made by make_impl_symbol) as this executor's implementation
  // of `sym`. A later registration replaces an earlier one.
  void register_impl(const Symbol* sym, const Symbol* impl, Checker checker = nullptr);
  bool implements(const Symbol* sym) const { return impls_.count(sym) != 0; }
  // The implementation symbol when this executor can run `b`, else nullptr. Checker exceptions
  // propagate with the executor's and op's names.
  const Symbol* claim(const BoundSymbol& b) const;
  std::vector<const Symbol*> implemented() const;

  // A new kExecutor symbol printed as `module.name`, running `callable` (a bindings handle), with the
  // signature of `like`.
  const Symbol* make_impl_symbol(const Symbol& like, std::string module, std::string name,
                                 int64_t callable);

 private:
  struct Impl {
    const Symbol* impl;
    Checker checker;
  };
  std::string name_;
  std::unordered_map<const Symbol*, Impl> impls_;
  std::vector<std::unique_ptr<Symbol>> owned_;
};

Trace claim_executors(const Trace& trace, const std::vector<const Executor*>& executors);

}  // namespace thunder
