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
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "executors/partition.h"
#include "ir/trace.h"

namespace thunder {

using Checker = std::function<bool(const BoundSymbol&)>;

// A fusion executor takes regions instead of single symbols. While claiming, it takes a bound symbol
// whose whole decomposition consists of primitives `can_fuse` accepts, wrapping it in a claim marker
// (a kExecutor symbol without a callable whose only sub-symbol is the claimed one). The fusion stage
// (executors/fusion_pass.h) partitions the markers into regions and calls `fuse` on each; `fuse`
// returns the symbols replacing the region, or nullopt to decline it, in which case every member is
// claimed again by the other executors.
struct FusionContext {
  int next_index = 0;  // numbers the fusion symbols of one trace: fusion0, fusion1, ...
  // Claims a bound symbol (a claimed symbol or a primitive of its decomposition) with the other
  // executors, for the parts of a region a fusion executor leaves to them.
  std::function<std::vector<BSymRef>(const BSymRef&)> claim;
  // A name for a new tensor no other tensor of the trace has: `hint`, or `hint` with a suffix.
  std::function<std::string(const std::string&)> fresh_name;
};
struct FusionHooks {
  std::function<bool(const BoundSymbol&)> can_fuse;
  std::function<std::optional<std::vector<BSymRef>>(const Region&, FusionContext&)> fuse;
  // Whether it fuses anything on devices of this type (unset: every type).
  std::function<bool(DeviceType)> runs_on;
  // Whether a region of these primitives is worth its kernels (unset: always); false for one it
  // would leave to torch whole (a CPU region of tiny tensors).
  std::function<bool(const std::vector<BSymRef>&)> worth_fusing;
  // A CPU region whose tensors all have fewer elements is left to torch (what worth_fusing decides
  // for a region; gradient rules read it per tensor, before there are regions).
  int64_t min_cpu_numel = 0;
};

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

  // Fusion executors (see FusionHooks).
  void set_fusion(FusionHooks hooks) { fusion_ = std::move(hooks); }
  bool is_fusion() const { return static_cast<bool>(fusion_.fuse); }
  const FusionHooks& fusion() const { return fusion_; }
  // The claim marker of this fusion executor for `like` (made once per symbol).
  const Symbol* claim_marker(const Symbol& like) const;
  // True when `b` is one of this executor's claim markers.
  bool is_claim_marker(const BoundSymbol& b) const {
    return b.sym->kind == SymbolKind::kExecutor && b.sym->callable < 0 && b.sym->executor == name_;
  }

 private:
  FusionHooks fusion_;
  mutable std::mutex markers_mu_;
  mutable std::unordered_map<const Symbol*, std::unique_ptr<Symbol>> markers_;
  struct Impl {
    const Symbol* impl;
    Checker checker;
  };
  std::string name_;
  std::unordered_map<const Symbol*, Impl> impls_;
  std::vector<std::unique_ptr<Symbol>> owned_;
};

Trace claim_executors(const Trace& trace, const std::vector<const Executor*>& executors);
// Claims one bound symbol (as claim_executors does), appending the result to `out`.
void claim_bsym(const BSymRef& b, const std::vector<const Executor*>& executors,
                std::vector<BSymRef>& out);

}  // namespace thunder
