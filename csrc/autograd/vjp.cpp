// The reverse-mode driver: a forward walk that records a tape, then a backward walk over it.
#include "autograd/vjp.h"

#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_rule.h"
#include "core/error.h"
#include "ops/lang.h"
#include "ops/registry.h"
#include "transforms/substitute.h"

namespace thunder::autograd {

namespace {

using ProxySet = std::unordered_set<const TensorProxy*>;

bool differentiable_dtype(DType d) { return is_floating(d) || is_complex(d); }

// A decomposition the backward cannot recompute: it draws random numbers or calls opaque code.
bool must_inline(const BoundSymbol& b) {
  for (const BSymRef& s : b.subsymbols) {
    if (s->sym->has_tag(kTagRandom) || s->sym->kind == SymbolKind::kOpaque || must_inline(*s)) {
      return true;
    }
  }
  return false;
}

bool has_effect(const BoundSymbol& b) {
  return b.sym->has_tag(kTagInplace) || b.sym->has_tag(kTagDontDce);
}

struct TapeEntry {
  const GradRule* rule = nullptr;  // nullptr: differentiate through the decomposition
  BSymRef bsym;                    // as emitted (arguments substituted)
  Value output;                    // the outputs the backward reads (after the augmented forward)
  std::vector<Value> residuals;
};

class Differentiator {
 public:
  explicit Differentiator(Builder& b) : b_(b) {}

  // Emits `bsyms` into `out`, recording what must be differentiated on `tape`. `predefined`: the
  // values already available (recomputing a decomposition in the backward: the composite's outputs).
  void forward(const std::vector<BSymRef>& bsyms, std::vector<BSymRef>& out,
               std::vector<TapeEntry>& tape, bool& grad_on, const ProxySet* predefined) {
    for (const BSymRef& b0 : bsyms) {
      BSymRef bs = substitute(b0, subst_);
      if (bs->sym == &prims::set_grad_enabled()) {
        grad_on = bs->args.at(0).as_bool();
        continue;
      }
      if (bs->sym == checkpoint_region_) {
        in_checkpoint_ = bs->args.at(0).as_bool();
        continue;
      }
      bool recompute = predefined != nullptr;
      if (recompute && has_effect(*bs)) continue;
      bool all_predefined = false;
      if (recompute) {
        all_predefined = true;
        bs->output.for_each_tensor([&](const TensorRef& t) {
          all_predefined = all_predefined && predefined->count(t.get());
        });
      }
      bool reads_diff = false;
      for (const TensorRef& t : bs->input_tensors()) reads_diff = reads_diff || diff_.count(t.get());
      // A leaf's update without history is recorded where grad mode is off (torch.no_grad()), yet
      // what reads it differentiates with respect to the leaf.
      if (!reads_diff || (!grad_on && bs->sym != &prims::leaf_update())) {
        if (!all_predefined) emit(out, bs, predefined);
        continue;
      }
      const GradRule* rule = find_grad_rule(bs->sym);
      if (!rule && bs->sym->kind == SymbolKind::kOpaque && call_missing_rule_hook(*bs)) {
        rule = find_grad_rule(bs->sym);
      }
      if (rule && rule->rewrite_if && rule->rewrite_if(*bs)) {
        ForwardContext ctx(b_, *bs);
        AugmentedForward af = rule->rewrite(ctx);
        std::vector<BSymRef> emitted = b_.take();
        map_outputs(bs->output, af.output);
        forward(emitted, out, tape, grad_on, nullptr);
        continue;
      }
      if (rule && rule->applies && !rule->applies(*bs)) rule = nullptr;
      if (rule && !rule->backward && !rule->rewrites) {  // not differentiable
        if (!all_predefined) emit(out, bs, predefined);
        continue;
      }
      if (rule && rule->rewrites) {
        ForwardContext ctx(b_, *bs);
        AugmentedForward af = rule->augmented_forward(ctx);
        std::vector<BSymRef> emitted = b_.take();
        map_outputs(bs->output, af.output);
        forward(emitted, out, tape, grad_on, nullptr);
        continue;
      }
      if (rule) {
        AugmentedForward af;
        if (rule->augmented_forward) {
          ForwardContext ctx(b_, *bs);
          af = rule->augmented_forward(ctx);
          for (BSymRef& e : b_.take()) emit(out, e, predefined);
          map_outputs(bs->output, af.output);
        } else {
          af.output = bs->output;
          if (!all_predefined) emit(out, bs, predefined);
        }
        mark_differentiable(af.output);
        tape.push_back(TapeEntry{rule, bs, af.output, std::move(af.residuals)});
        continue;
      }
      if (bs->sym->kind == SymbolKind::kComposite && !bs->subsymbols.empty()) {
        if (must_inline(*bs)) {
          forward(bs->subsymbols, out, tape, grad_on, predefined);
          continue;
        }
        if (!all_predefined) emit(out, bs, predefined);
        mark_differentiable(bs->output);
        tape.push_back(TapeEntry{nullptr, bs, bs->output, {}});
        continue;
      }
      std::string what = bs->sym->kind == SymbolKind::kOpaque
                             ? " (an opaque torch function thunder has no rules for)"
                             : "";
      throw NotImplementedError("thunder cannot differentiate " + bs->sym->qualname() + what +
                                ": it has no gradient rule" +
                                (bs->source.empty() ? "" : "\n  in " + bs->source) +
                                "\nRegister one with thunder.core.transforms.register_grad, or "
                                "compute it under torch.no_grad()");
    }
  }

  void backward(std::vector<TapeEntry>& tape, std::vector<BSymRef>& out) {
    for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
      TapeEntry& e = *it;
      // Outputs replaced by an augmented forward while recomputing: the cotangent flowed into the
      // original value.
      std::vector<TensorRef> orig, now;
      e.bsym->output.for_each_tensor([&](const TensorRef& t) { orig.push_back(t); });
      e.output.for_each_tensor([&](const TensorRef& t) { now.push_back(t); });
      for (size_t i = 0; i < orig.size() && i < now.size(); ++i) {
        if (orig[i] != now[i] && !grads_.count(now[i].get()) && grads_.count(orig[i].get())) {
          grads_[now[i].get()] = grads_[orig[i].get()];
        }
      }
      bool any = false;
      for (const TensorRef& t : now) any = any || grads_.count(t.get());
      if (!any) continue;
      if (e.rule) {
        BackwardContext ctx(b_, *e.bsym, e.output, e.residuals, grads_, diff_);
        e.rule->backward(ctx);
        for (BSymRef& s : b_.take()) out.push_back(std::move(s));
        continue;
      }
      ProxySet predefined;
      for (const TensorRef& t : now) predefined.insert(t.get());
      for (const TensorRef& t : e.bsym->input_tensors()) predefined.insert(t.get());
      std::vector<TapeEntry> sub;
      bool grad_on = true;
      forward(e.bsym->subsymbols, out, sub, grad_on, &predefined);
      backward(sub, out);
    }
  }

  // Appends a forward bound symbol; inside a checkpoint region its outputs are recomputed in the
  // backward rather than saved.
  void emit(std::vector<BSymRef>& out, BSymRef b, const ProxySet* predefined) {
    if (in_checkpoint_ && !predefined) {
      b->output.for_each_tensor([&](const TensorRef& t) { checkpointed_.push_back(t); });
    }
    out.push_back(std::move(b));
  }
  const std::vector<TensorRef>& checkpointed() const { return checkpointed_; }

  void mark_differentiable(const Value& v) {
    v.for_each_tensor([&](const TensorRef& t) {
      if (differentiable_dtype(t->dtype())) diff_.insert(t.get());
    });
  }
  void mark_input(const TensorRef& t) {
    if (t->requires_grad() && differentiable_dtype(t->dtype())) diff_.insert(t.get());
  }
  bool is_differentiable(const TensorRef& t) const { return diff_.count(t.get()) != 0; }

  Value substituted(const Value& v) const { return substitute(v, subst_); }

  std::unordered_map<const TensorProxy*, TensorRef>& grads() { return grads_; }
  const ProxySet& diff() const { return diff_; }

 private:
  void map_outputs(const Value& before, const Value& after) {
    std::vector<TensorRef> a, c;
    before.for_each_tensor([&](const TensorRef& t) { a.push_back(t); });
    after.for_each_tensor([&](const TensorRef& t) { c.push_back(t); });
    if (a.size() != c.size()) throw Error("internal: an augmented forward changed the outputs");
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] == c[i]) continue;
      subst_[a[i].get()] = c[i];
      // Keep the map transitive: a value earlier replaced by a[i] is now replaced by c[i].
      for (auto& [from, to] : subst_) {
        if (to == a[i]) to = c[i];
      }
    }
  }

  Builder& b_;
  const Symbol* checkpoint_region_ = &ltorch_symbol("checkpoint_region");
  bool in_checkpoint_ = false;
  std::vector<TensorRef> checkpointed_;
  ProxySet diff_;
  std::unordered_map<const TensorProxy*, TensorRef> grads_;
  ProxyMap subst_;
};

}  // namespace

bool needs_grad(const Trace& trace) {
  for (const TensorRef& t : trace.inputs) {
    if (t->requires_grad() && differentiable_dtype(t->dtype())) return true;
  }
  return false;
}

JointTrace vjp(const Trace& trace, const VjpOptions&) {
  Builder b(trace);
  Differentiator d(b);
  for (const TensorRef& t : trace.inputs) d.mark_input(t);
  std::vector<BSymRef> fwd;
  std::vector<TapeEntry> tape;
  bool grad_on = true;
  d.forward(trace.bsyms, fwd, tape, grad_on, nullptr);

  JointTrace j;
  j.forward = trace.with_bsyms(std::move(fwd), "forward");
  j.checkpointed = d.checkpointed();
  j.forward.output = d.substituted(trace.output);
  // One cotangent per differentiable output leaf; a value returned twice accumulates both.
  j.forward.output.for_each_tensor([&](const TensorRef& t) {
    j.output_leaves.push_back(t);
    if (!d.is_differentiable(t)) {
      j.cotangents.push_back(nullptr);
      return;
    }
    TensorRef ct = b.new_tensor(t->shape(), t->dtype(), t->device(), false, "grad_" + t->name());
    j.cotangents.push_back(ct);
    auto& grads = d.grads();
    auto it = grads.find(t.get());
    if (it == grads.end()) {
      grads[t.get()] = ct;
    } else {
      it->second = lang::call_t(b, prims::add(), {Value(it->second), Value(ct)});
    }
  });
  std::vector<BSymRef> bwd = b.take();
  d.backward(tape, bwd);
  j.backward = std::move(bwd);
  for (const TensorRef& t : trace.inputs) {
    auto it = d.grads().find(t.get());
    bool wanted = d.is_differentiable(t);
    j.input_grads.push_back(wanted && it != d.grads().end() ? Value(it->second) : Value());
  }
  return j;
}

}  // namespace thunder::autograd
