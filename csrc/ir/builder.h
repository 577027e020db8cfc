// The trace builder: records bound symbols while a program is captured or rewritten. It owns proxy
// naming and the scopes in which a composite's decomposition is recorded. Everything a builder needs
// travels in the builder; there is no ambient "current trace".
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

#include "ir/trace.h"

namespace thunder {

class Builder {
 public:
  Builder() = default;
  // A builder for rewriting `trace`: the names of its proxies are taken, so new proxies get fresh ones.
  explicit Builder(const Trace& trace);

  // A new tensor proxy. `name` empty: a fresh "tN" name; otherwise made unique from `name`.
  TensorRef new_tensor(Shape shape, DType dtype, Device device, bool requires_grad,
                       const std::string& name = {});

  // Binds args to the symbol's signature, runs its meta function (recording a decomposition for
  // composites) and appends the bound symbol to the current scope. Returns the output value.
  Value call(const Symbol& sym, std::vector<Value> args,
             std::vector<std::pair<std::string, Value>> kwargs = {});
  // As call, with arguments already bound (one per parameter).
  Value call_bound(const Symbol& sym, std::vector<Value> bound);
  // Appends an already-built bound symbol to the current scope.
  void append(BSymRef bsym);
  // The bound symbol appended last to the current scope (nullptr when none).
  BSymRef last() const { return scopes_.back().empty() ? nullptr : scopes_.back().back(); }

  // The user's source line recorded on bound symbols appended from now on.
  void set_source(std::string source) { source_ = std::move(source); }
  const std::string& source() const { return source_; }

  // The top-level bound symbols recorded so far (moved out).
  std::vector<BSymRef> take();
  // True while a decomposition is being recorded.
  bool in_decomposition() const { return scopes_.size() > 1; }

  // Reserves a name (trace inputs keep the user's argument names).
  std::string unique_name(const std::string& hint);

 private:
  int counter_ = 0;
  std::unordered_set<std::string> names_;
  std::vector<std::vector<BSymRef>> scopes_{1};
  std::string source_;
};

}  // namespace thunder
