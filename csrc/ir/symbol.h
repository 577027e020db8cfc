// Symbols: the operations a trace can contain. A symbol has a name, a Python-style signature its calls
// are bound against, and a meta function. For a primitive the meta function only infers the outputs'
// metadata; for a composite (torch-level) symbol it does so by recording the symbol's decomposition into
// lower-level symbols, which become the bound symbol's sub-symbols.
//
// Symbols are interned for the life of the process: a `const Symbol*` identifies one, compares by
// pointer and is never freed. Built-in symbols are declared in ops/ tables; executors and users add
// their own (opaque torch functions, custom operators) at run time through SymbolTable::add.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/value.h"

namespace thunder {

class Builder;
class BoundArgs;

struct Param {
  std::string name;
  std::optional<Value> default_value;  // none: required
  bool kw_only = false;
  bool varargs = false;  // `*shape`: takes the remaining positionals, or one sequence, as a tuple
};

// A Python-like signature, parsed from text: "input, other, *, alpha=1" or "self, *shape".
// Defaults may be None, True, False, ints, floats, 'strings' or ().
class Signature {
 public:
  Signature() = default;
  static Signature parse(std::string_view text);
  const std::vector<Param>& params() const { return params_; }
  int index_of(std::string_view name) const;  // -1 when absent

  // Binds positional and keyword arguments to the parameters, filling in defaults. Errors name `op`.
  std::vector<Value> bind(std::string_view op, std::vector<Value> args,
                          std::vector<std::pair<std::string, Value>> kwargs) const;

 private:
  std::vector<Param> params_;
};

enum class SymbolKind : uint8_t {
  kPrim,       // a primitive: its meta function records nothing
  kComposite,  // torch-level: its meta function records a decomposition
  kOpaque,     // a torch function thunder has no rule for: metadata comes from torch's meta kernels
  kExecutor,   // an executor's implementation of another symbol (in execution traces)
  kFusion,     // a region claimed by a fusion executor
  kCustom,     // an operator an executor defines (thunder.extend): no decomposition; only an
               // executor that registered an implementation of it can run it
};

enum SymbolTag : uint32_t {
  kTagNone = 0,
  kTagInplace = 1u << 0,    // mutates its first tensor argument
  kTagView = 1u << 1,       // its output may alias its first tensor argument
  kTagRandom = 1u << 2,     // draws from an RNG: never CSE'd
  kTagReduction = 1u << 3,
  kTagShape = 1u << 4,      // a pure shape/layout op
  kTagDontDce = 1u << 5,    // has a side effect: never removed by DCE
  kTagElementwise = 1u << 6,
  kTagCheckOutputs = 1u << 7,  // user-written implementation: the runtime checks its first result
                               // against the outputs the meta function declared
};

using MetaFn = Value (*)(Builder& b, const BoundArgs& args);

struct Symbol {
  int id = -1;
  std::string name;    // "add"
  std::string module;  // printed prefix: "ltorch", "prims", "torch", ...
  SymbolKind kind = SymbolKind::kComposite;
  Signature signature;
  MetaFn meta = nullptr;
  uint32_t tags = kTagNone;
  // Python callables (dotted paths) that are recorded as this symbol during capture.
  std::vector<std::string> torch_names;
  // The dotted path of the torch callable that runs this symbol with its bound arguments, in signature
  // order (kw-only parameters as keywords). Empty when the torch executor needs a helper.
  std::string torch_impl;
  // In-place symbols: the out-of-place twin the functionalization pass rewrites them to.
  const Symbol* functional = nullptr;
  // kOpaque and kExecutor: the bindings' handle of the Python callable that runs it.
  int64_t callable = -1;
  // kExecutor: the symbol this implements, and the name of the executor that runs it.
  const Symbol* implements = nullptr;
  std::string executor;

  bool is_prim() const { return kind == SymbolKind::kPrim; }
  bool has_tag(SymbolTag t) const { return (tags & t) != 0; }
  std::string qualname() const { return module.empty() ? name : module + "." + name; }
};

// The process-wide table of interned symbols.
class SymbolTable {
 public:
  static SymbolTable& instance();
  // Interns a new symbol; the name must be unused within its module. Returns the stable pointer.
  const Symbol* add(Symbol s);
  const Symbol* find(std::string_view module, std::string_view name) const;
  const Symbol* by_id(int id) const;
  std::vector<const Symbol*> all() const;

 private:
  SymbolTable();
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Symbol>> symbols_;
  std::unordered_map<std::string, const Symbol*> by_name_;
};

// The built-in primitives, by name (ops/prims.def).
namespace prims {
#define THUNDER_PRIM(id, sig, meta, tags) const Symbol& id();
#include "ops/prims.def"
#undef THUNDER_PRIM
}  // namespace prims

// A torch-level symbol by name; throws if absent.
const Symbol& ltorch_symbol(std::string_view name);

}  // namespace thunder
