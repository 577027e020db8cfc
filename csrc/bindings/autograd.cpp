// A gradient rule made of two Python callables that run at run time:
//
//   augmented_forward(*args, **kwargs) -> (output, residuals)   in the forward program
//   backward(*residuals, *output_cotangents) -> one gradient per tensor argument, in the backward
//
// While tracing, the residuals' metadata come from `residual_meta(spec)`, a Python function given
// the arguments (tensors described as ("tensor", shape, dtype, device)) that returns a list of
// (shape, dtype) per residual; thunder.core.transforms computes it by running augmented_forward on
// meta tensors. The forward and backward symbols print as thunder_grad.<op>_augmented_forward and
// thunder_grad.<op>_backward.
#include "bindings/autograd.h"

#include <cctype>

#include <nanobind/stl/string.h>

#include "autograd/grad_rule.h"
#include "core/error.h"
#include "ops/lang.h"
#include "runtime/objects.h"
#include "runtime/program.h"

namespace nb = nanobind;

namespace thunder::bindings {

namespace {

const Symbol* executor_symbol(const std::string& name, Signature sig, nb::handle fn) {
  Symbol s;
  s.module = "thunder_grad";
  s.name = name;
  for (char& c : s.name) {  // an identifier ("sinc.default" -> "sinc_default")
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  const std::string base = s.name;
  for (int i = 1; SymbolTable::instance().find(s.module, s.name); ++i) {
    s.name = base + "_" + std::to_string(i);
  }
  s.kind = SymbolKind::kExecutor;
  s.signature = std::move(sig);
  s.callable = runtime::register_object(fn);
  s.executor = "torch";
  return SymbolTable::instance().add(std::move(s));
}

nb::object describe(const Value& v) {
  if (v.is_tensor()) {
    const TensorRef& t = v.as_tensor();
    nb::list shape;
    for (Dim d : t->shape()) shape.append(d.value());
    return nb::make_tuple("tensor", nb::tuple(shape), runtime::dtype_object(t->dtype()),
                          t->device().str());
  }
  if (v.is_seq() && v.as_seq().kind == Seq::Kind::kDict) {
    const Seq& s = v.as_seq();
    nb::dict d;
    for (size_t i = 0; i < s.items.size(); ++i) d[describe(s.keys[i])[1]] = describe(s.items[i]);
    return nb::make_tuple("dict", d);
  }
  if (v.is_seq()) {
    nb::list l;
    for (const Value& i : v.items()) l.append(describe(i));
    return nb::make_tuple("seq", l);
  }
  if (v.is_opaque()) return nb::make_tuple("value", nb::borrow(runtime::object(v.as_opaque().handle)));
  try {
    return nb::make_tuple("value", runtime::constant_object(v));
  } catch (...) {
    return nb::make_tuple("value", nb::none());
  }
}

// Emits the call of a Python backward, `bwd(mask, *residuals, *cotangents)`, returning one gradient
// (or None) per differentiated tensor: the tensor arguments, or with `flat` every tensor occurrence in
// the arguments (nested sequences and dicts included, in order). The mask says which need one.
void emit_python_backward(const Symbol* bwd, autograd::BackwardContext& c, bool flat) {
  std::vector<TensorRef> wrt;
  for (const Value& a : c.bsym.args) {
    if (flat) {
      a.for_each_tensor([&](const TensorRef& t) { wrt.push_back(t); });
    } else if (a.is_tensor()) {
      wrt.push_back(a.as_tensor());
    }
  }
  std::vector<Value> mask, args, outs;
  std::vector<std::pair<TensorRef, TensorRef>> grads;
  for (const TensorRef& t : wrt) {
    bool needs = c.needs(Value(t));
    mask.push_back(Value(needs));
    if (!needs) {
      outs.push_back(Value());
      continue;
    }
    TensorRef g = c.b.new_tensor(t->shape(), t->dtype(), t->device(), false);
    outs.push_back(Value(g));
    grads.emplace_back(t, g);
  }
  args.push_back(Value::tuple(mask));
  for (const Value& r : c.residuals) args.push_back(r);
  size_t n = 0;
  c.output.for_each_tensor([&](const TensorRef&) { ++n; });
  for (size_t i = 0; i < n; ++i) args.push_back(Value(c.grad_out_or_zeros(i)));
  c.b.append(BoundSymbol::make(bwd, {Value::tuple(std::move(args))}, Value::tuple(outs), {},
                               c.bsym.source));
  for (auto& [t, g] : grads) c.put_grad(t, g);
}

}  // namespace

void bind_autograd(nb::module_& m) {
  m.def(
      "register_python_grad",
      [](const Symbol* sym, nb::object augmented_forward, nb::object backward,
         nb::object residual_meta, bool flat, bool forward_mask) {
        // forward_mask (an opaque torch function, called as fn(args, kwargs)): its augmented
        // forward also takes, per tensor anywhere in its arguments in order, whether it requires
        // grad, so torch's autograd records only those (a buffer its function updates in place,
        // such as instance_norm's running statistics, must not require grad).
        const Symbol* fwd = executor_symbol(
            sym->name + "_augmented_forward",
            forward_mask ? Signature::parse("args, kwargs, requires_grad") : sym->signature,
            augmented_forward);
        const Symbol* bwd =
            executor_symbol(sym->name + "_backward", Signature::parse("args"), backward);
        autograd::GradRule rule;
        rule.augmented_forward = [fwd, residual_meta, forward_mask](autograd::ForwardContext& c) {
          nb::gil_scoped_acquire gil;
          nb::list spec;
          for (const Value& a : c.bsym.args) spec.append(describe(a));
          nb::object metas = residual_meta(spec);
          Device device = Device::cpu();
          for (const TensorRef& t : c.bsym.input_tensors()) {
            device = t->device();
            break;
          }
          std::vector<Value> residuals;
          for (nb::handle h : metas) {
            nb::tuple t = nb::cast<nb::tuple>(h);
            Shape shape;
            for (nb::handle d : t[0]) shape.push_back(Dim(nb::cast<int64_t>(d)));
            DType dt;
            if (!runtime::dtype_of(t[1].ptr(), &dt))
              throw TypeError("residual_meta: expected a dtype");
            residuals.push_back(Value(c.b.new_tensor(shape, dt, device, false)));
          }
          Value out = map_tensors(c.bsym.output, [&](const TensorRef& t) -> Value {
            return Value(c.b.new_tensor(t->shape(), t->dtype(), t->device(), t->requires_grad()));
          });
          std::vector<Value> args = c.bsym.args;
          if (forward_mask) {
            std::vector<Value> mask;
            for (const Value& a : c.bsym.args) {
              a.for_each_tensor(
                  [&](const TensorRef& t) { mask.push_back(Value(t->requires_grad())); });
            }
            args.push_back(Value::tuple(std::move(mask)));
          }
          c.b.append(BoundSymbol::make(fwd, std::move(args),
                                       Value::tuple({out, Value::tuple(residuals)}), {},
                                       c.bsym.source));
          return autograd::AugmentedForward{out, residuals};
        };
        rule.backward = [bwd, flat](autograd::BackwardContext& c) {
          emit_python_backward(bwd, c, flat);
        };
        autograd::register_grad_rule(sym, std::move(rule));
      },
      nb::arg("symbol"), nb::arg("augmented_forward"), nb::arg("backward"),
      nb::arg("residual_meta"), nb::arg("flat") = false, nb::arg("forward_mask") = false);

  m.def("register_nondifferentiable",
        [](const Symbol* sym) { autograd::register_nondifferentiable(sym); }, nb::arg("symbol"));

  // hook(symbol, fn, spec) -> bool: called when differentiation reaches an opaque torch function `fn`
  // with no gradient rule (spec: its arguments, described as for residual_meta); it may register a
  // rule (with flat=True) and return True.
  m.def("set_missing_grad_hook", [](nb::object hook) {
    static auto* held = new nb::object();  // lives as long as the process (the hook is a module function)
    *held = hook;
    autograd::set_missing_rule_hook([](const BoundSymbol& bsym) {
      nb::gil_scoped_acquire gil;
      const Symbol* sym = bsym.sym;
      if (!held->is_valid() || held->is_none() || sym->callable < 0) return false;
      nb::list spec;
      for (const Value& a : bsym.args) spec.append(describe(a));
      return nb::cast<bool>((*held)(nb::cast(sym, nb::rv_policy::reference),
                                    nb::borrow(runtime::object(sym->callable)), spec));
    });
  }, nb::arg("hook"));
}

}  // namespace thunder::bindings
