// thunder.extend's bindings: custom operators, implementations and Python fusion executors.
#include "bindings/extend.h"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <deque>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "bindings/capture.h"
#include "core/error.h"
#include "executors/custom_op.h"
#include "executors/executor.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "runtime/objects.h"
#include "runtime/program.h"
#include "runtime/output_check.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace thunder::bindings {

namespace {

// A bound symbol as Python sees it in checkers and fusion executors (read-only).
struct BoundSymbolView {
  BSymRef b;
};

// A region handed to a Python fusion executor: its members already claimed by the other executors
// (so each is a call of a torch function, or of another executor's implementation).
struct RegionView {
  std::vector<BSymRef> members;
  std::vector<TensorRef> inputs;
  std::vector<TensorRef> outputs;
  Value output() const {
    if (outputs.size() == 1) return Value(outputs[0]);
    return Value::tuple(std::vector<Value>(outputs.begin(), outputs.end()));
  }
  // The region as a Python function `name(*inputs)` returning its outputs.
  std::string source(const std::string& name) const {
    Trace t;
    t.name = name;
    t.inputs = inputs;
    t.bsyms = members;
    t.output = output();
    t.stage = "region";
    return t.python(false);
  }
};

nb::object to_python(const Value& v) {
  if (v.is_tensor()) return nb::cast(ProxyHandle{v.as_tensor()});
  if (v.is_seq()) {
    const Seq& s = v.as_seq();
    if (s.kind == Seq::Kind::kDict) {
      nb::dict d;
      for (size_t i = 0; i < s.items.size(); ++i) d[runtime::constant_object(s.keys[i])] = to_python(s.items[i]);
      return d;
    }
    nb::list l;
    for (const Value& i : s.items) l.append(to_python(i));
    if (s.kind == Seq::Kind::kTuple) return nb::tuple(l);
    return l;
  }
  return runtime::constant_object(v);
}

nb::list args_to_python(const std::vector<Value>& values) {
  nb::list l;
  for (const Value& v : values) l.append(to_python(v));
  return l;
}

std::mutex g_mu;
std::unordered_map<const Symbol*, nb::object>& python_metas() {
  static auto* m = new std::unordered_map<const Symbol*, nb::object>();
  return *m;
}

DType dtype_or_throw(nb::handle dt, const std::string& op) {
  DType d;
  if (!runtime::dtype_of(dt.ptr(), &d)) {
    throw TypeError(op + ": the meta function returned a tensor of unsupported dtype " +
                    nb::cast<std::string>(nb::repr(dt)));
  }
  return d;
}

// The outputs a Python meta function described, as new proxies. Tensors on the meta device take the
// device of the first tensor argument; an output requires grad when an argument does and it is
// floating point.
Value meta_result(Builder& b, nb::handle r, const BoundArgs& a) {
  const std::string op = a.symbol().qualname();
  Device device = Device::cpu();
  bool found = false, rg = false;
  for (const Value& v : a.values()) {
    v.for_each_tensor([&](const TensorRef& t) {
      if (!found) device = t->device();
      found = true;
      rg = rg || t->requires_grad();
    });
  }
  std::function<Value(nb::handle)> conv = [&](nb::handle h) -> Value {
    PyObject* o = h.ptr();
    if (runtime::is_tensor(o)) {
      Shape shape;
      nb::object shp = h.attr("shape");
      for (nb::handle d : shp) shape.push_back(nb::cast<int64_t>(d));
      DType dt = dtype_or_throw(h.attr("dtype"), op);
      nb::object dev_obj = h.attr("device");
      Device dev = Device::parse(nb::cast<std::string>(nb::str(nb::handle(dev_obj))));
      if (dev.type == DeviceType::kMeta) dev = device;
      return Value(b.new_tensor(std::move(shape), dt, dev, rg && (is_floating(dt) || is_complex(dt))));
    }
    if (PyTuple_Check(o) || PyList_Check(o)) {
      std::vector<Value> items;
      for (nb::handle i : h) items.push_back(conv(i));
      return PyList_Check(o) ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    if (o == Py_None) return Value();
    if (PyBool_Check(o)) return Value(o == Py_True);
    if (PyLong_Check(o)) return Value(nb::cast<int64_t>(h));
    if (PyFloat_Check(o)) return Value(nb::cast<double>(h));
    throw TypeError(op + ": the meta function returned " + std::string(Py_TYPE(o)->tp_name) +
                    "; it must return tensors (meta tensors will do), numbers, None, or tuples or "
                    "lists of them");
  };
  return conv(r);
}

Value python_meta(Builder& b, const BoundArgs& a) {
  nb::object meta;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = python_metas().find(&a.symbol());
    if (it == python_metas().end()) throw Error(a.symbol().qualname() + " has no meta function yet");
    meta = it->second;
  }
  nb::object r = meta(args_to_python(a.values()));
  return meta_result(b, r, a);
}

Checker python_checker(nb::object checker) {
  if (checker.is_none()) return nullptr;
  return [checker](const BoundSymbol& b) {
    nb::gil_scoped_acquire gil;
    try {
      nb::object r = checker(args_to_python(b.args));
      return PyObject_IsTrue(r.ptr()) == 1;
    } catch (nb::python_error& e) {
      // The exception's type and message; the claim pass adds the executor's and op's names.
      std::string what = nb::cast<std::string>(nb::str(e.type().attr("__name__"))) + ": " +
                         nb::cast<std::string>(nb::str(e.value()));
      throw Error(what);
    }
  };
}

std::deque<std::unique_ptr<Executor>>& fusion_executors() {
  static auto* e = new std::deque<std::unique_ptr<Executor>>();
  return *e;
}
std::deque<std::unique_ptr<Symbol>>& fusion_symbols() {
  static auto* s = new std::deque<std::unique_ptr<Symbol>>();
  return *s;
}

std::string kind_name(SymbolKind k) {
  switch (k) {
    case SymbolKind::kPrim: return "prim";
    case SymbolKind::kComposite: return "composite";
    case SymbolKind::kOpaque: return "opaque";
    case SymbolKind::kExecutor: return "executor";
    case SymbolKind::kFusion: return "fusion";
    case SymbolKind::kCustom: return "custom";
  }
  return "unknown";
}

std::vector<std::string> tag_names(uint32_t tags) {
  static const std::pair<SymbolTag, const char*> kNames[] = {
      {kTagInplace, "inplace"},         {kTagView, "view"},         {kTagRandom, "random"},
      {kTagReduction, "reduction"},     {kTagShape, "shape"},       {kTagDontDce, "dont_dce"},
      {kTagElementwise, "elementwise"}, {kTagCheckOutputs, "check_outputs"}};
  std::vector<std::string> out;
  for (const auto& [t, n] : kNames) {
    if (tags & t) out.push_back(n);
  }
  return out;
}

}  // namespace

void bind_extend(nb::module_& m) {
  runtime::bind_output_check(m);

  // (name, kw_only, varargs, has_default, default) per parameter.
  m.def("symbol_params", [](const Symbol* s) {
    nb::list out;
    for (const Param& p : s->signature.params()) {
      nb::object d = p.default_value ? runtime::constant_object(*p.default_value) : nb::none();
      out.append(nb::make_tuple(p.name, p.kw_only, p.varargs, p.default_value.has_value(), d));
    }
    return out;
  });
  m.def("symbol_kind", [](const Symbol* s) { return kind_name(s->kind); });
  m.def("symbol_tags", [](const Symbol* s) { return tag_names(s->tags); });

  nb::class_<BoundSymbolView>(m, "BoundSymbol")
      .def_prop_ro("sym", [](const BoundSymbolView& v) { return v.b->sym; }, nb::rv_policy::reference)
      .def_prop_ro("args", [](const BoundSymbolView& v) { return args_to_python(v.b->args); })
      .def_prop_ro("output", [](const BoundSymbolView& v) { return to_python(v.b->output); })
      .def_prop_ro("subsymbols", [](const BoundSymbolView& v) {
        nb::list l;
        for (const BSymRef& s : v.b->subsymbols) l.append(BoundSymbolView{s});
        return l;
      })
      .def_prop_ro("source", [](const BoundSymbolView& v) { return v.b->source; })
      .def_prop_ro("executor", [](const BoundSymbolView& v) { return v.b->sym->executor; })
      .def_prop_ro("callable", [](const BoundSymbolView& v) -> nb::object {
        if (v.b->sym->callable < 0) return nb::none();
        return nb::borrow(runtime::object(v.b->sym->callable));
      })
      .def("__repr__", [](const BoundSymbolView& v) { return "<BoundSymbol " + v.b->sym->qualname() + ">"; });

  nb::class_<RegionView>(m, "Region")
      .def_prop_ro("bound_symbols", [](const RegionView& r) {
        nb::list l;
        for (const BSymRef& s : r.members) l.append(BoundSymbolView{s});
        return l;
      })
      .def_prop_ro("inputs", [](const RegionView& r) {
        nb::list l;
        for (const TensorRef& t : r.inputs) l.append(ProxyHandle{t});
        return l;
      })
      .def_prop_ro("outputs", [](const RegionView& r) {
        nb::list l;
        for (const TensorRef& t : r.outputs) l.append(ProxyHandle{t});
        return l;
      })
      .def("source", &RegionView::source, "name"_a);

  // An operator `executor.name` with a Python meta function (`meta(bound_args)`, tensors as proxy
  // handles) or the meta of `like`, implemented on `ex` by `fn`.
  // `module` (default: the executor's name) is the prefix the operator prints with.
  m.def("register_operator",
        [](Executor& ex, const std::string& name, const std::string& signature, nb::object meta,
           const Symbol* like, nb::object fn, const std::string& module_prefix) {
          const std::string module = module_prefix.empty() ? ex.name() : module_prefix;
          const Symbol* op;
          if (like) {
            op = make_custom_op_like(module, name, *like);
          } else {
            op = make_custom_op(module, name, Signature::parse(signature), python_meta);
            if (!meta.is_none()) {
              std::lock_guard<std::mutex> lock(g_mu);
              python_metas()[op] = meta;
            }
          }
          const Symbol* impl =
              make_checked_impl(*op, ex.name(), module, name, runtime::register_object(fn));
          ex.register_impl(op, impl, nullptr);
          return op;
        },
        "executor"_a, "name"_a, "signature"_a, "meta"_a.none(), "like"_a.none(), "fn"_a,
        "module"_a = "", nb::rv_policy::reference);

  // printer(bound_symbol, lhs, args, kwargs) -> str prints the calls of `op` (and of the executor
  // symbols implementing it); lhs is '' when the call has no outputs to name, args a list and kwargs
  // a dict of printed argument texts. None removes it.
  m.def("set_python_printer", [](const Symbol* op, nb::object printer) {
    if (printer.is_none()) {
      set_custom_printer(op, nullptr);
      return;
    }
    set_custom_printer(op, [printer, op](const BoundSymbol& b, const std::string& lhs,
                                         const std::vector<std::string>& args,
                                         const std::vector<std::pair<std::string, std::string>>& kw) {
      nb::gil_scoped_acquire gil;
      nb::list a;
      for (const std::string& s : args) a.append(nb::str(s.c_str(), s.size()));
      nb::dict k;
      for (const auto& [name, text] : kw) k[nb::str(name.c_str())] = nb::str(text.c_str(), text.size());
      try {
        nb::object r = printer(BoundSymbolView{std::make_shared<BoundSymbol>(b)}, lhs, a, k);
        if (!nb::isinstance<nb::str>(r)) {
          throw TypeError("the python_printer of " + op->qualname() + " must return a string");
        }
        return nb::cast<std::string>(r);
      } catch (nb::python_error& e) {
        throw Error("the python_printer of " + op->qualname() + " raised " +
                    nb::cast<std::string>(nb::str(e.type().attr("__name__"))) + ": " +
                    nb::cast<std::string>(nb::str(e.value())));
      }
    });
  }, "op"_a, "printer"_a.none());

  // Prints `import_statement` in traces whose calls are prefixed with `module`.
  m.def("register_module_import", &register_module_import, "module"_a, "import_statement"_a);

  // Sets (or replaces) the Python meta function of an operator made by register_operator.
  m.def("set_python_meta", [](const Symbol* op, nb::object meta) {
    if (op->meta != python_meta) throw ValueError(op->qualname() + " has no Python meta function");
    std::lock_guard<std::mutex> lock(g_mu);
    python_metas()[op] = std::move(meta);
  });

  // `ex` runs `symbol` with `fn` (printed as `module.name`) where `checker(bound_args)` accepts it.
  m.def("register_implementation",
        [](Executor& ex, const Symbol* symbol, const std::string& module, const std::string& name,
           nb::object fn, nb::object checker) {
          const Symbol* impl =
              make_checked_impl(*symbol, ex.name(), module, name, runtime::register_object(fn));
          ex.register_impl(symbol, impl, python_checker(std::move(checker)));
        },
        "executor"_a, "symbol"_a, "module"_a, "name"_a, "fn"_a, "checker"_a.none());

  // A fusion executor whose hooks are Python callables: `can_fuse(bound_symbol) -> bool` for the
  // primitives of a decomposition, and `fuse(region, index) -> (name, callable) | None`.
  m.def("make_python_fusion_executor",
        [](const std::string& name, nb::object can_fuse, nb::object fuse) {
          auto ex = std::make_unique<Executor>(name);
          FusionHooks hooks;
          hooks.can_fuse = [can_fuse](const BoundSymbol& b) {
            nb::gil_scoped_acquire gil;
            nb::object r = can_fuse(BoundSymbolView{std::make_shared<BoundSymbol>(b)});
            return PyObject_IsTrue(r.ptr()) == 1;
          };
          hooks.fuse = [name, fuse](const Region& r, FusionContext& ctx)
              -> std::optional<std::vector<BSymRef>> {
            RegionView view;
            for (const BSymRef& marker : r.bsyms) {
              std::vector<BSymRef> c = ctx.claim(marker->subsymbols.at(0));
              view.members.insert(view.members.end(), c.begin(), c.end());
            }
            view.inputs = r.inputs;
            view.outputs = r.outputs;
            if (view.outputs.empty()) return std::nullopt;
            nb::gil_scoped_acquire gil;
            nb::object res = fuse(view, ctx.next_index);
            if (res.is_none()) return view.members;
            auto [sym_name, callable] = nb::cast<std::pair<std::string, nb::object>>(res);
            ++ctx.next_index;
            auto s = std::make_unique<Symbol>();
            s->name = sym_name;
            s->kind = SymbolKind::kFusion;
            std::string sig;
            for (size_t i = 0; i < view.inputs.size(); ++i) sig += (i ? ", a" : "a") + std::to_string(i);
            s->signature = Signature::parse(sig);
            s->callable = runtime::register_object(callable);
            s->executor = name;
            const Symbol* sym = s.get();
            {
              std::lock_guard<std::mutex> lock(g_mu);
              fusion_symbols().push_back(std::move(s));
            }
            std::vector<Value> args(view.inputs.begin(), view.inputs.end());
            return std::vector<BSymRef>{
                BoundSymbol::make(sym, std::move(args), view.output(), view.members)};
          };
          ex->set_fusion(std::move(hooks));
          std::lock_guard<std::mutex> lock(g_mu);
          fusion_executors().push_back(std::move(ex));
          return fusion_executors().back().get();
        },
        "name"_a, "can_fuse"_a, "fuse"_a, nb::rv_policy::reference);
}

}  // namespace thunder::bindings
