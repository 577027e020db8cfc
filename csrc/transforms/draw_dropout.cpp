// Dropout written as uniform_philox draws (see draw_dropout.h).
#include "transforms/draw_dropout.h"

#include <vector>

#include "ir/builder.h"
#include "ops/lang.h"
#include "transforms/substitute.h"

namespace thunder {

namespace {

// The drop probability of a dropout that draws, or 0.
double drawing_p(const BoundSymbol& s, bool skip_inputs_requiring_grad) {
  if (s.sym->name != "dropout" || s.sym->kind != SymbolKind::kComposite || s.args.size() != 4 ||
      !s.args[0].is_tensor() || !s.output.is_tensor()) {
    return 0.0;
  }
  if (skip_inputs_requiring_grad && s.args[0].as_tensor()->requires_grad()) return 0.0;
  if (!s.args[2].is_bool() || !s.args[2].as_bool() || !s.args[3].is_bool() || s.args[3].as_bool()) {
    return 0.0;
  }
  double p = BoundArgs(*s.sym, s.args).number(1);
  return p > 0.0 && p < 1.0 ? p : 0.0;
}

}  // namespace

Trace draw_dropout_in_kernels(const Trace& t, const DrawDropoutOptions& options) {
  Builder b(t);
  std::vector<BSymRef> out;
  bool changed = false;
  for (const BSymRef& s : t.bsyms) {
    double p = drawing_p(*s, options.skip_inputs_requiring_grad);
    if (p == 0.0) {
      out.push_back(s);
      continue;
    }
    b.set_source(s->source);
    Value state =
        b.call(prims::philox_state(), {}, {{"device", Value(s->args[0].as_tensor()->device())}});
    Value r = lang::philox_dropout(b, s->args[0], state, p);
    std::vector<BSymRef> added = b.take();
    // The last operation defines the dropout's own output.
    added.back() = substitute(added.back(), ProxyMap{{r.as_tensor().get(), s->output.as_tensor()}});
    out.insert(out.end(), added.begin(), added.end());
    changed = true;
  }
  return changed ? t.with_bsyms(std::move(out), t.stage) : t;
}

}  // namespace thunder
