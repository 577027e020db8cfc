// Recording bound symbols, with decompositions recorded in nested scopes.
#include "ir/builder.h"

#include <functional>

#include "core/error.h"

namespace thunder {

Builder::Builder(const Trace& trace) {
  std::function<void(const BoundSymbol&)> visit = [&](const BoundSymbol& b) {
    b.output.for_each_tensor([&](const TensorRef& t) { names_.insert(t->name()); });
    for (const BSymRef& s : b.subsymbols) visit(*s);
  };
  for (const TensorRef& t : trace.inputs) names_.insert(t->name());
  for (const BSymRef& b : trace.bsyms) visit(*b);
}

std::string Builder::unique_name(const std::string& hint) {
  if (hint.empty()) {
    std::string name = "t" + std::to_string(counter_++);
    while (!names_.insert(name).second) name = "t" + std::to_string(counter_++);
    return name;
  }
  std::string name = hint;
  for (int i = 1; !names_.insert(name).second; ++i) name = hint + "_" + std::to_string(i);
  return name;
}

TensorRef Builder::new_tensor(Shape shape, DType dtype, Device device, bool requires_grad,
                              const std::string& name) {
  for (Dim d : shape) {
    if (d.value() < 0) throw ValueError("negative dimension " + std::to_string(d.value()));
  }
  return std::make_shared<TensorProxy>(unique_name(name), std::move(shape), dtype, device,
                                       requires_grad);
}

Value Builder::call(const Symbol& sym, std::vector<Value> args,
                    std::vector<std::pair<std::string, Value>> kwargs) {
  return call_bound(sym, sym.signature.bind(sym.qualname(), std::move(args), std::move(kwargs)));
}

Value Builder::call_bound(const Symbol& sym, std::vector<Value> bound) {
  if (!sym.meta) throw NotImplementedError(sym.qualname() + " has no meta function");
  if (sym.kind != SymbolKind::kComposite) {
    Value out = sym.meta(*this, BoundArgs(sym, bound));
    append(BoundSymbol::make(&sym, std::move(bound), out, {}, source_));
    return out;
  }
  scopes_.emplace_back();
  Value out;
  try {
    out = sym.meta(*this, BoundArgs(sym, bound));
  } catch (...) {
    scopes_.pop_back();
    throw;
  }
  std::vector<BSymRef> subs = std::move(scopes_.back());
  scopes_.pop_back();
  // A composite that returns one of its own tensor arguments is an alias (x.float() of a float
  // tensor, x.contiguous() ...): nothing is computed, so nothing is recorded.
  if (out.is_tensor()) {
    for (const Value& a : bound) {
      if (a.is_tensor() && a.as_tensor() == out.as_tensor()) return out;
    }
  }
  append(BoundSymbol::make(&sym, std::move(bound), out, std::move(subs), source_));
  return out;
}

void Builder::append(BSymRef bsym) { scopes_.back().push_back(std::move(bsym)); }

std::vector<BSymRef> Builder::take() {
  std::vector<BSymRef> out = std::move(scopes_.front());
  scopes_.front().clear();
  return out;
}

}  // namespace thunder
