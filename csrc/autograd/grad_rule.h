// Gradient rules: how to differentiate one symbol.
//
// A rule is a pair, looked up by symbol:
// - an augmented forward (optional) that emits the symbol's forward computation into the forward
//   trace and returns the residuals its backward needs. Without one, the bound symbol is emitted as
//   it is and the backward reads its arguments and outputs directly. An augmented forward may emit
//   other symbols (layer_norm becomes native_layer_norm, which also returns mean and rstd); the
//   outputs it returns take the place of the original outputs for the rest of the trace.
// - a backward that, given the cotangents of the outputs, emits the backward computation with the
//   Builder and hands each differentiable input its cotangent with put_grad.
//
// Rules exist for every differentiable primitive (grad_rules_prims*.cpp) and for torch-level
// symbols whose decomposed gradient would be wasteful (grad_rules_nn.cpp) or would differ from
// eager's at the edges of their domains (grad_rules_math.cpp). A torch-level symbol with no rule is
// differentiated through its decomposition (see vjp.h).
//
// Contract for rules added at run time (register_grad_rule, thunder.core.transforms.register_grad):
// the backward may only read the bound symbol's arguments, its outputs (as returned by the
// augmented forward) and the residuals; every symbol it emits must have a meta function and an
// executor able to run it; put_grad must receive a tensor of the input's shape (its dtype is
// converted when it differs). A later registration for the same symbol replaces the earlier one.
#pragma once

#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/builder.h"

namespace thunder::autograd {

// What an augmented forward produces.
struct AugmentedForward {
  Value output;                  // replaces the bound symbol's output (same structure)
  std::vector<Value> residuals;  // forward values the backward reads
};

// True while a program that a fusion executor will run is differentiated: an augmented forward may
// then write a composite as the primitives one fused kernel computes together (cross-entropy saves
// its rows' maximum and sum of exponentials instead of the log-probabilities). Set by the training
// pipeline for the thread that runs it.
bool fusing();
// True while fusing() and the fusion executor takes kernels over `t`: on the CPU only tensors of at
// least its min_cpu_numel elements (a region of smaller ones is left to torch, one call per
// operation, where eager's composite kernel is the cheaper choice).
bool fuses(const TensorProxy& t);
// True while fusing() and the program asked for random numbers drawn inside fused kernels
// (`fuse_random=True`): dropout then draws its mask with uniform_philox from a saved [seed, offset]
// and its backward draws the same mask again instead of saving it.
bool fusing_random();
class FusingScope {
 public:
  explicit FusingScope(bool on, bool random = false, int64_t min_cpu_numel = 0);
  ~FusingScope();
  FusingScope(const FusingScope&) = delete;
  FusingScope& operator=(const FusingScope&) = delete;

 private:
  bool previous_, previous_random_;
  int64_t previous_min_cpu_numel_;
};

class ForwardContext {
 public:
  ForwardContext(Builder& b, const BoundSymbol& bsym) : b(b), bsym(bsym), args(*bsym.sym, bsym.args) {}
  Builder& b;  // emits into the forward trace
  const BoundSymbol& bsym;
  BoundArgs args;
  // Emits the bound symbol unchanged (the default forward).
  AugmentedForward emit_unchanged() const;
};

class BackwardContext {
 public:
  BackwardContext(Builder& b, const BoundSymbol& bsym, const Value& output,
                  const std::vector<Value>& residuals,
                  std::unordered_map<const TensorProxy*, TensorRef>& grads,
                  const std::unordered_set<const TensorProxy*>& differentiable)
      : b(b),
        bsym(bsym),
        args(*bsym.sym, bsym.args),
        output(output),
        residuals(residuals),
        grads_(grads),
        diff_(differentiable) {}

  Builder& b;  // emits into the backward trace
  const BoundSymbol& bsym;
  BoundArgs args;
  const Value& output;  // the forward output (after the augmented forward)
  const std::vector<Value>& residuals;

  // The cotangent accumulated for a forward value, or nullptr when none flows into it.
  TensorRef grad(const TensorRef& t) const;
  // The cotangent of the single tensor output (nullptr when none).
  TensorRef grad_out() const;
  // The cotangent of output tensor i (outputs in for_each_tensor order), or zeros when none flows.
  TensorRef grad_out_or_zeros(size_t i) const;
  // True when argument i is a tensor that needs a gradient.
  bool needs(size_t i) const;
  bool needs(const Value& v) const;
  // Accumulates `g` into argument i's (or tensor t's) cotangent; ignored when it needs none.
  void put_grad(size_t i, const TensorRef& g);
  void put_grad(const TensorRef& t, const TensorRef& g);

 private:
  std::unordered_map<const TensorProxy*, TensorRef>& grads_;
  const std::unordered_set<const TensorProxy*>& diff_;
};

using AugmentedForwardFn = std::function<AugmentedForward(ForwardContext&)>;
using BackwardFn = std::function<void(BackwardContext&)>;

struct GradRule {
  AugmentedForwardFn augmented_forward;  // empty: emit the bound symbol unchanged
  BackwardFn backward;                   // empty: the symbol is not differentiable (no cotangents)
  // Rewrite rules: the augmented forward records torch-level symbols that are then differentiated
  // with their own rules (cross_entropy -> log_softmax + nll_loss). `backward` is unused.
  bool rewrites = false;
  // When set and false for a bound symbol, the rule does not apply to it (the symbol is then
  // differentiated through its decomposition).
  std::function<bool(const BoundSymbol&)> applies;
  // When set and true for a bound symbol, `rewrite` records it as other torch-level symbols, which
  // are then differentiated with their own rules (before `applies` is consulted).
  std::function<bool(const BoundSymbol&)> rewrite_if;
  AugmentedForwardFn rewrite;
};

// The rule of `sym`, or nullptr. Built-in rules are registered on first use.
const GradRule* find_grad_rule(const Symbol* sym);
// Registers (or replaces) the rule of `sym`. Thread-safe.
void register_grad_rule(const Symbol* sym, GradRule rule);
// Marks `sym` as having no gradient: its outputs never carry cotangents.
void register_nondifferentiable(const Symbol* sym);

// One output of a symbol that is not recomputable as a whole (it reduces), computed again
// element-wise from the symbol's inputs and its other outputs: group_norm's normalized output from
// the input, the saved statistics, the weight and the bias. The rematerialization may then save
// the small statistics instead of the output. `recompute` emits the operations into the builder
// (for the bound symbol given) and returns the value, equal to the symbol's output bit for bit.
struct RecomputeRecipe {
  size_t output = 0;  // the output's index (Value::for_each_tensor order)
  std::function<TensorRef(Builder&, const BoundSymbol&)> recompute;
};
// The recipe of `sym`, or nullptr.
const RecomputeRecipe* find_recompute_recipe(const Symbol* sym);
void register_recompute_recipe(const Symbol* sym, RecomputeRecipe recipe);
// Called when differentiation reaches an opaque symbol (a torch function thunder has no rules for)
// that has no rule; true when it registered one (the Python layer registers one that asks torch's
// own autograd for the gradient).
using MissingRuleHook = std::function<bool(const BoundSymbol&)>;
void set_missing_rule_hook(MissingRuleHook hook);
bool call_missing_rule_hook(const BoundSymbol& bsym);

namespace detail {
// Sums `t` down to `shape` (undoing broadcasting: leading dims, and dims of size 1 in `shape`).
TensorRef sum_to_shape(Builder& b, const TensorRef& t, const Shape& shape);

// Per-family registration of the built-in rules.
void register_elementwise_grad_rules();
void register_structural_grad_rules();
void register_nn_grad_rules();
void register_math_grad_rules();
}  // namespace detail

}  // namespace thunder::autograd
