// The gradient-rule table and the contexts rules are written against.
#include "autograd/grad_rule.h"

#include <mutex>

#include "core/error.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder::autograd {

namespace {

struct RuleTable {
  std::mutex mu;
  std::unordered_map<const Symbol*, GradRule> rules;
  std::unordered_map<const Symbol*, RecomputeRecipe> recipes;
};

RuleTable& table() {
  static RuleTable* t = new RuleTable();  // never destroyed: rules outlive every trace
  return *t;
}

void ensure_builtin_rules() {
  static std::once_flag once;
  std::call_once(once, [] {
    ensure_builtin_ops();
    detail::register_elementwise_grad_rules();
    detail::register_structural_grad_rules();
    detail::register_nn_grad_rules();
    detail::register_math_grad_rules();
  });
}

}  // namespace

const GradRule* find_grad_rule(const Symbol* sym) {
  ensure_builtin_rules();
  RuleTable& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.rules.find(sym);
  return it == t.rules.end() ? nullptr : &it->second;
}

void register_grad_rule(const Symbol* sym, GradRule rule) {
  RuleTable& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.rules[sym] = std::move(rule);
}

void register_nondifferentiable(const Symbol* sym) { register_grad_rule(sym, GradRule{}); }

const RecomputeRecipe* find_recompute_recipe(const Symbol* sym) {
  ensure_builtin_rules();
  RuleTable& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.recipes.find(sym);
  return it == t.recipes.end() ? nullptr : &it->second;
}

void register_recompute_recipe(const Symbol* sym, RecomputeRecipe recipe) {
  RuleTable& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.recipes[sym] = std::move(recipe);
}

namespace {
MissingRuleHook& missing_rule_hook() {
  static auto* hook = new MissingRuleHook();
  return *hook;
}
}  // namespace

void set_missing_rule_hook(MissingRuleHook hook) { missing_rule_hook() = std::move(hook); }

bool call_missing_rule_hook(const BoundSymbol& bsym) {
  const MissingRuleHook& hook = missing_rule_hook();
  return hook && hook(bsym) && find_grad_rule(bsym.sym) != nullptr;
}

namespace {
thread_local bool g_fusing = false;
thread_local bool g_fusing_random = false;
thread_local int64_t g_min_cpu_numel = 0;
}  // namespace

bool fusing() { return g_fusing; }
bool fusing_random() { return g_fusing_random; }
bool fuses(const TensorProxy& t) {
  return g_fusing && (t.device().type != DeviceType::kCPU || t.numel() >= g_min_cpu_numel);
}
FusingScope::FusingScope(bool on, bool random, int64_t min_cpu_numel)
    : previous_(g_fusing),
      previous_random_(g_fusing_random),
      previous_min_cpu_numel_(g_min_cpu_numel) {
  g_fusing = on;
  g_fusing_random = on && random;
  g_min_cpu_numel = min_cpu_numel;
}
FusingScope::~FusingScope() {
  g_fusing = previous_;
  g_fusing_random = previous_random_;
  g_min_cpu_numel = previous_min_cpu_numel_;
}

AugmentedForward ForwardContext::emit_unchanged() const {
  b.append(BoundSymbol::make(bsym.sym, bsym.args, bsym.output, bsym.subsymbols, bsym.source));
  return AugmentedForward{bsym.output, {}};
}

TensorRef BackwardContext::grad(const TensorRef& t) const {
  if (!t) return nullptr;
  auto it = grads_.find(t.get());
  return it == grads_.end() ? nullptr : it->second;
}

TensorRef BackwardContext::grad_out() const {
  if (!output.is_tensor()) throw Error("internal: " + bsym.sym->qualname() + " has several outputs");
  return grad(output.as_tensor());
}

TensorRef BackwardContext::grad_out_or_zeros(size_t i) const {
  size_t k = 0;
  TensorRef found;
  output.for_each_tensor([&](const TensorRef& t) {
    if (k++ == i) found = t;
  });
  if (!found) throw Error("internal: " + bsym.sym->qualname() + " has no output " + std::to_string(i));
  if (TensorRef g = grad(found)) return g;
  return lang::full(b, found->shape(), Value(0.0), found->device(), found->dtype());
}

bool BackwardContext::needs(const Value& v) const {
  return v.is_tensor() && diff_.count(v.as_tensor().get()) != 0;
}

bool BackwardContext::needs(size_t i) const { return i < args.size() && needs(args[i]); }

void BackwardContext::put_grad(size_t i, const TensorRef& g) {
  if (needs(i)) put_grad(args[i].as_tensor(), g);
}

void BackwardContext::put_grad(const TensorRef& t, const TensorRef& g0) {
  if (!t || !g0 || !diff_.count(t.get())) return;
  TensorRef g = g0;
  if (g->shape() != t->shape()) {
    throw Error("internal: the gradient rule of " + bsym.sym->qualname() + " produced " +
                g->type_string() + " for " + t->name() + " of " + t->type_string());
  }
  if (g->dtype() != t->dtype()) g = lang::convert(b, g, t->dtype());
  auto it = grads_.find(t.get());
  if (it == grads_.end()) {
    grads_[t.get()] = g;
  } else {
    it->second = lang::call_t(b, prims::add(), {Value(it->second), Value(g)});
  }
}

}  // namespace thunder::autograd
