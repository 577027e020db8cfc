// A bound symbol is one line of a trace: a symbol applied to arguments, producing an output value.
// A composite's bound symbol keeps its decomposition as sub-symbols, so one trace holds the program at
// the torch level and at the level of primitives. Bound symbols are immutable: passes build new ones.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/symbol.h"
#include "ir/value.h"

namespace thunder {

struct BoundSymbol;
using BSymRef = std::shared_ptr<const BoundSymbol>;

struct BoundSymbol {
  const Symbol* sym = nullptr;
  std::vector<Value> args;  // one per signature parameter, defaults filled in
  Value output;
  std::vector<BSymRef> subsymbols;
  std::string source;  // "file.py:12" of the user's line that recorded it, when known

  static BSymRef make(const Symbol* sym, std::vector<Value> args, Value output,
                      std::vector<BSymRef> subsymbols = {}, std::string source = {});

  // Tensor proxies read (arguments) and written (outputs), in order, without duplicates.
  std::vector<TensorRef> input_tensors() const;
  std::vector<TensorRef> output_tensors() const;
};

// The tensors `bsyms` (in program order) compare with another tensor for equality (eq, ne), and
// what those are views of (through symbols that only change shape): an extremum's backward compares
// x with max(x), so x must keep the bits the maximum was taken from, not be recomputed elsewhere.
std::unordered_set<const TensorProxy*> compared_for_equality(const std::vector<BSymRef>& bsyms);

// Whether `b` only views or reshapes its first tensor argument: a shape primitive, or a composite
// of only those.
bool shape_only(const BoundSymbol& b);

// `bsyms` (in program order) without those whose outputs were all defined before: flattened, a
// composite recomputed beside one of its own primitives recomputed alone (clamp's backward holds
// clamp and maximum(x, lo)) defines that value twice; the first definition stays.
std::vector<BSymRef> first_definitions(const std::vector<BSymRef>& bsyms);

// Typed access to a bound symbol's arguments, used by meta functions and passes.
class BoundArgs {
 public:
  BoundArgs(const Symbol& sym, const std::vector<Value>& values) : sym_(sym), values_(values) {}
  const Symbol& symbol() const { return sym_; }
  size_t size() const { return values_.size(); }
  const Value& operator[](size_t i) const { return values_[i]; }
  const std::vector<Value>& values() const { return values_; }
  // Argument i as a tensor; a TypeError naming the op and parameter otherwise.
  const TensorRef& tensor(size_t i) const;
  int64_t int_(size_t i) const;
  double number(size_t i) const;
  bool bool_(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;
  std::optional<DType> optional_dtype(size_t i) const;

 private:
  [[noreturn]] void bad(size_t i, const char* expected) const;
  const Symbol& sym_;
  const std::vector<Value>& values_;
};

}  // namespace thunder
