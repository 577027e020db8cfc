// Built-in symbol registration.
#include "ops/registry.h"

#include <mutex>

#include "core/error.h"
#include "ir/builder.h"
#include "ops/lang.h"

namespace thunder {

void register_ops(SymbolTable& table, const std::vector<OpDef>& defs) {
  for (const OpDef& d : defs) {
    Symbol s;
    s.name = d.name;
    s.module = "ltorch";
    s.kind = SymbolKind::kComposite;
    s.signature = Signature::parse(d.signature);
    s.meta = d.meta ? d.meta : (d.inplace_of ? meta_inplace : nullptr);
    s.tags = d.tags | (d.inplace_of ? kTagInplace : 0u);
    s.torch_names = d.torch_names;
    s.torch_impl = !d.torch_impl.empty() ? d.torch_impl
                   : d.torch_names.empty() ? std::string()
                                           : d.torch_names[0];
    if (d.inplace_of) {
      s.functional = table.find("ltorch", d.inplace_of);
      if (!s.functional) {
        throw Error(std::string("in-place op ") + d.name + " names unknown op " + d.inplace_of);
      }
    }
    table.add(std::move(s));
  }
}

void ensure_builtin_ops() {
  static std::once_flag once;
  std::call_once(once, [] {
    SymbolTable& t = SymbolTable::instance();
    register_prims(t);
    register_creation_ops(t);
    register_elementwise_ops(t);
    register_shape_ops(t);
    register_reduction_ops(t);
    register_nn_ops(t);
    register_grad_ops(t);
  });
}

const Symbol& ltorch_symbol(std::string_view name) {
  ensure_builtin_ops();
  const Symbol* s = SymbolTable::instance().find("ltorch", name);
  if (!s) throw Error("no torch-level symbol named '" + std::string(name) + "'");
  return *s;
}

Value meta_inplace(Builder& b, const BoundArgs& a) {
  const Symbol& fn = *a.symbol().functional;
  const TensorRef& self = a.tensor(0);
  Value out = b.call_bound(fn, a.values());
  if (!out.is_tensor()) throw TypeError(a.symbol().qualname() + ": expected a tensor result");
  TensorRef r = out.as_tensor();
  if (r->shape() != self->shape()) {
    // RuntimeError, as eager raises (a TypeError would make Python's `x *= y` fall back to x * y).
    throw Error(a.symbol().qualname() + ": the result of shape " + r->type_string() +
                " cannot be written into " + self->type_string() +
                " in place (in-place ops cannot broadcast their first argument)");
  }
  if (r->dtype() != self->dtype()) {
    if (dtype_kind(r->dtype()) > dtype_kind(self->dtype())) {
      throw Error(std::string("result type ") + dtype_name(r->dtype()) +
                  " can't be cast to the desired output type " + dtype_name(self->dtype()) +
                  " (in " + a.symbol().qualname() + ")");
    }
    r = lang::convert(b, r, self->dtype());
  }
  if (r == self) {
    // The functional op returned its input (a no-op): the in-place op still makes a new version.
    r = lang::call_t(b, prims::convert_element_type(), {Value(self), Value(self->dtype())});
  }
  return r;
}

}  // namespace thunder
