// The thunder._core extension module: symbols, traces, passes, executors, capture and the runtime.
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "autograd/vjp.h"
#include "bindings/autograd.h"
#include "bindings/capture.h"
#include "bindings/extend.h"
#include "bindings/fuser.h"
#include "core/error.h"
#include "executors/cuda_graphs.h"
#include "executors/executor.h"
#include "executors/pipeline.h"
#include "ir/printer.h"
#include "ops/registry.h"
#include "runtime/compiled_function.h"
#include "runtime/objects.h"
#include "transforms/cse.h"
#include "transforms/dce.h"
#include "transforms/decompose.h"
#include "transforms/functionalize.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace thunder {
namespace {

using bindings::CaptureSession;
using bindings::ProxyHandle;
using runtime::CacheEntry;
using runtime::CompiledFunction;
using runtime::Guard;
using runtime::InputSource;
using runtime::Program;

struct PyTrace {
  std::shared_ptr<const Trace> t;
};

nb::object arg_to_python(const Value& v) {
  if (v.is_tensor()) return nb::cast(ProxyHandle{v.as_tensor()});
  if (v.is_seq()) {
    const Seq& s = v.as_seq();
    if (s.kind == Seq::Kind::kDict) {
      nb::dict d;
      for (size_t i = 0; i < s.items.size(); ++i) d[runtime::constant_object(s.keys[i])] = arg_to_python(s.items[i]);
      return d;
    }
    nb::list l;
    for (const Value& i : s.items) l.append(arg_to_python(i));
    if (s.kind == Seq::Kind::kTuple) return nb::tuple(l);
    return l;
  }
  return runtime::constant_object(v);
}

nb::dict bsym_dict(const BoundSymbol& b) {
  nb::dict d;
  d["name"] = b.sym->qualname();
  d["symbol"] = b.sym->name;
  d["module"] = b.sym->module;
  d["source"] = b.source;
  d["executor"] = b.sym->kind == SymbolKind::kOpaque ? std::string("torch") : b.sym->executor;
  d["opaque"] = b.sym->kind == SymbolKind::kOpaque;
  nb::list args;
  for (const Value& a : b.args) args.append(arg_to_python(a));
  d["args"] = args;
  d["output"] = arg_to_python(b.output);
  nb::list subs;
  for (const BSymRef& s : b.subsymbols) subs.append(bsym_dict(*s));
  d["subsymbols"] = subs;
  return d;
}

}  // namespace
}  // namespace thunder

NB_MODULE(_core, m) {
  using namespace thunder;
  ensure_builtin_ops();
  nb::set_leak_warnings(false);

  nb::exception<Error>(m, "ThunderError", PyExc_RuntimeError);
  // A ValueError that is also a RuntimeError: eager raises RuntimeError for most of what the core
  // reports as bad values (shapes that do not broadcast, reshape sizes), and code that catches
  // either keeps working.
  static PyObject* value_error = [] {
    PyObject* bases = PyTuple_Pack(2, PyExc_ValueError, PyExc_RuntimeError);
    PyObject* t = PyErr_NewExceptionWithDoc(
        "thunder._core.ThunderValueError",
        "A bad value (a shape, a size, an argument); a ValueError and a RuntimeError.", bases,
        nullptr);
    Py_DECREF(bases);
    return t;
  }();
  m.attr("ThunderValueError") = nb::borrow(value_error);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const ValueError& e) {
      PyErr_SetString(value_error, e.what());
    } catch (const IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    }
  });

  m.def("set_torch_objects", [](nb::object tensor_type, nb::list dtypes, nb::object device_ctor,
                                nb::object is_grad_enabled, nb::object get_default_dtype) {
    auto& t = runtime::torch_objects();
    t.tensor_type = tensor_type;
    for (nb::handle pair : dtypes) {
      nb::tuple p = nb::cast<nb::tuple>(pair);
      auto d = dtype_from_name(nb::cast<std::string>(p[0]));
      if (d) t.dtypes[static_cast<int>(*d)] = nb::borrow(p[1]);
    }
    t.device_ctor = device_ctor;
    t.is_grad_enabled = is_grad_enabled;
    t.get_default_dtype = get_default_dtype;
  });
  m.def(
      "_set_default_float_dtype",
      [](nb::handle dtype) {
        DType d;
        if (!runtime::dtype_of(dtype.ptr(), &d)) throw TypeError("expected a torch.dtype");
        set_default_float_dtype(d);
      },
      "The default dtype (torch.get_default_dtype()) the rules use while this thread traces.");
  m.def("set_autocast_hooks", [](nb::object any_enabled, nb::object state_key, nb::object disabled) {
    auto& t = runtime::torch_objects();
    t.autocast_any_enabled = any_enabled;
    t.autocast_state_key = state_key;
    t.autocast_disabled = disabled;
  });
  m.def("autocast_state", &runtime::autocast_state);

  nb::class_<Symbol>(m, "Symbol")
      .def_ro("name", &Symbol::name)
      .def_ro("module", &Symbol::module)
      .def_prop_ro("qualname", &Symbol::qualname)
      .def_ro("torch_names", &Symbol::torch_names)
      .def_ro("torch_impl", &Symbol::torch_impl)
      .def_prop_ro("is_prim", &Symbol::is_prim)
      .def_prop_ro("is_inplace", [](const Symbol& s) { return s.has_tag(kTagInplace); })
      .def_prop_ro("is_view", [](const Symbol& s) { return s.has_tag(kTagView); })
      .def_prop_ro("is_opaque", [](const Symbol& s) { return s.kind == SymbolKind::kOpaque; })
      .def_prop_ro("signature", [](const Symbol& s) {
        std::string r;
        bool kw = false;
        for (const Param& p : s.signature.params()) {
          if (!r.empty()) r += ", ";
          if (p.varargs) {
            r += "*";
            kw = true;
          } else if (p.kw_only && !kw) {
            r += "*, ";
            kw = true;
          }
          r += p.name;
          if (p.default_value) r += "=" + python_repr(*p.default_value);
        }
        return r;
      })
      .def("__repr__", [](const Symbol& s) { return "<Symbol " + s.qualname() + ">"; });

  m.def("symbols", [] {
    std::vector<const Symbol*> out;
    for (const Symbol* s : SymbolTable::instance().all()) {
      if (s->kind == SymbolKind::kPrim || s->kind == SymbolKind::kComposite) out.push_back(s);
    }
    return out;
  }, nb::rv_policy::reference);
  m.def("find_symbol", [](const std::string& module, const std::string& name) {
    return SymbolTable::instance().find(module, name);
  }, nb::rv_policy::reference);

  nb::class_<ProxyHandle>(m, "ProxyHandle")
      .def_prop_ro("name", [](const ProxyHandle& p) { return p.ref->name(); })
      .def_prop_ro("shape", [](const ProxyHandle& p) {
        std::vector<int64_t> s;
        for (Dim d : p.ref->shape()) s.push_back(d.value());
        return nb::tuple(nb::cast(s));
      })
      .def_prop_ro("dtype", [](const ProxyHandle& p) { return runtime::dtype_object(p.ref->dtype()); })
      .def_prop_ro("device", [](const ProxyHandle& p) { return p.ref->device().str(); })
      .def_prop_ro("requires_grad", [](const ProxyHandle& p) { return p.ref->requires_grad(); })
      .def("__repr__", [](const ProxyHandle& p) { return "<proxy " + p.ref->name() + ": " + p.ref->type_string() + ">"; });

  nb::class_<PyTrace>(m, "Trace")
      .def("python", [](const PyTrace& t, bool subsymbols) { return t.t->python(subsymbols); },
           "include_subsymbols"_a = true)
      .def("__str__", [](const PyTrace& t) { return t.t->python(true); })
      .def("__repr__", [](const PyTrace& t) { return t.t->python(true); })
      .def_prop_ro("stage", [](const PyTrace& t) { return t.t->stage; })
      .def_prop_ro("name", [](const PyTrace& t) { return t.t->name; })
      .def_prop_ro("bound_symbols", [](const PyTrace& t) {
        nb::list l;
        for (const BSymRef& b : t.t->bsyms) l.append(bsym_dict(*b));
        return l;
      })
      .def_prop_ro("fusion_callables", [](const PyTrace& t) {
        nb::list l;  // the callables of the trace's fusion symbols, in order
        for (const BSymRef& b : t.t->bsyms) {
          if (b->sym->kind == SymbolKind::kFusion && b->sym->callable >= 0) {
            l.append(nb::borrow(runtime::object(b->sym->callable)));
          }
        }
        return l;
      })
      .def_prop_ro("input_names", [](const PyTrace& t) {
        std::vector<std::string> out;
        for (const TensorRef& i : t.t->inputs) out.push_back(i->name());
        return out;
      });

  auto pass = [](Trace (*fn)(const Trace&)) {
    return [fn](const PyTrace& t) { return PyTrace{std::make_shared<Trace>(fn(*t.t))}; };
  };
  m.def("dce", pass(dce));
  m.def("cse", pass(cse));
  m.def("functionalize", pass(functionalize));
  m.def("decompose", pass(decompose));

  nb::class_<Executor>(m, "Executor")
      .def(nb::init<std::string>())
      .def_prop_ro("name", &Executor::name)
      .def("register_impl",
           [](Executor& ex, const Symbol* sym, const std::string& module, const std::string& name,
              nb::object fn, nb::object checker) {
             const Symbol* impl = ex.make_impl_symbol(*sym, module, name, runtime::register_object(fn));
             Checker c;
             if (!checker.is_none()) {
               c = [checker](const BoundSymbol& b) {
                 nb::gil_scoped_acquire gil;
                 nb::list args;
                 for (const Value& a : b.args) args.append(arg_to_python(a));
                 return nb::cast<bool>(checker(*nb::tuple(args)));
               };
             }
             ex.register_impl(sym, impl, std::move(c));
           },
           "symbol"_a, "module"_a, "name"_a, "fn"_a, "checker"_a = nb::none())
      .def("implements", &Executor::implements)
      .def("implemented", &Executor::implemented, nb::rv_policy::reference);

  m.def(
      "plan_cuda_graph",
      [](const PyTrace& t) {
        CudaGraphPlan p = plan_cuda_graph(*t.t);
        nb::dict d;
        d["blocker"] = p.blocker;
        d["device"] = p.device;
        d["written_inputs"] = nb::cast(p.written_inputs);
        return d;
      },
      "trace"_a,
      "Whether a final trace can be replayed as a CUDA graph: {'blocker': why not (empty when it "
      "can), 'device': its CUDA device, 'written_inputs': inputs it writes in place}.");

  m.def("run_pipeline",
        [](const PyTrace& t, std::vector<const Executor*> executors, bool decompose,
           bool fuse_random) {
          PipelineOptions opts;
          opts.decompose_to_prims = decompose;
          opts.fuse_random = fuse_random;
          PipelineResult r = run_pipeline(*t.t, executors, opts);
          std::vector<PyTrace> traces;
          for (Trace& tr : r.traces) traces.push_back(PyTrace{std::make_shared<Trace>(std::move(tr))});
          return std::make_pair(traces, r.times);
        },
        "trace"_a, "executors"_a, "decompose_to_prims"_a = false, "fuse_random"_a = false);

  nb::class_<CaptureSession>(m, "CaptureSession")
      .def(nb::init<nb::object, nb::handle>())
      .def("new_input", &CaptureSession::new_input)
      .def("record", &CaptureSession::record)
      .def("record_opaque", &CaptureSession::record_opaque)
      .def(
          "finish",
          [](CaptureSession& s, nb::handle out) {
            return PyTrace{std::make_shared<Trace>(s.finish(out))};
          },
          nb::arg("out").none())
      .def("opaque_names", &CaptureSession::opaque_names)
      .def("updated_inputs", &CaptureSession::updated_inputs)
      .def("holds_constant", &CaptureSession::holds_constant);

  m.def("needs_grad", [](const PyTrace& t) { return autograd::needs_grad(*t.t); });
  m.def("run_training_pipeline",
        [](const PyTrace& t, std::vector<const Executor*> executors, bool decompose,
           bool rematerialize, bool fuse_random) {
          PipelineOptions opts;
          opts.decompose_to_prims = decompose;
          opts.rematerialize = rematerialize;
          opts.fuse_random = fuse_random;
          TrainingPipelineResult r = run_training_pipeline(*t.t, executors, opts);
          auto wrap = [](PipelineResult& p) {
            std::vector<PyTrace> traces;
            for (Trace& tr : p.traces) traces.push_back(PyTrace{std::make_shared<Trace>(std::move(tr))});
            return std::make_pair(traces, p.times);
          };
          nb::dict d;
          d["forward"] = nb::cast(wrap(r.forward));
          d["backward"] = nb::cast(wrap(r.backward));
          d["num_saved"] = r.num_saved;
          d["differentiable_leaves"] = nb::cast(r.differentiable_leaves);
          return d;
        },
        "trace"_a, "executors"_a, "decompose_to_prims"_a = false, "rematerialize"_a = true,
        "fuse_random"_a = false);
  // A program of one instruction that calls `runner(*inputs)` and returns what it returns: the
  // entry point of a training cache entry (the torch.autograd.Function bridge) behind the same
  // guards and input gathering as any program.
  m.def("runner_program", [](const PyTrace& forward, nb::object runner) {
    static const Symbol* call_sym = [] {
      Symbol s;
      s.name = "run_autograd_function";
      s.module = "thunder";
      s.kind = SymbolKind::kExecutor;
      s.signature = Signature::parse("runner, inputs");
      s.callable = runtime::register_object(
          nb::cpp_function([](nb::handle runner, nb::tuple inputs) { return runner(*inputs); }));
      s.executor = "torch";
      return SymbolTable::instance().add(std::move(s));
    }();
    Trace t;
    t.name = "autograd_entry";
    t.inputs = forward.t->inputs;
    std::vector<Value> ins(t.inputs.begin(), t.inputs.end());
    auto out = std::make_shared<TensorProxy>("result", Shape{}, DType::kFloat32, Device::cpu(), false);
    runtime::OwnedObject owned = runtime::owned_object(runner);  // freed with the trace below
    Opaque r{owned.handle, "runner", owned.owner};
    t.bsyms.push_back(
        BoundSymbol::make(call_sym, {Value(r), Value::tuple(std::move(ins))}, Value(TensorRef(out))));
    t.output = Value(TensorRef(out));
    return Program::build(t);
  });

  bindings::bind_autograd(m);

  nb::class_<Program>(m, "Program")
      .def_static("build", [](const PyTrace& t) { return Program::build(*t.t); })
      .def("__call__", [](const Program& p, nb::args args) {
        std::vector<PyObject*> v;
        v.reserve(args.size());
        for (nb::handle h : args) v.push_back(h.ptr());
        return p.run(v.data(), v.size());
      })
      .def("run_consuming", &Program::run_consuming, "inputs"_a,
           "Runs on the list's items, taking them out of the list (each is freed after its last use "
           "when nothing else refers to it).")
      .def_prop_ro("num_instructions", &Program::num_instructions);
  m.def("set_program_profiling", &runtime::set_program_profiling, "on"_a,
        "Sums each program instruction's host time by symbol while on (a debug aid).");
  m.def(
      "program_profile",
      [](bool reset) {
        nb::dict d;
        for (const auto& [name, t] : runtime::program_profile(reset)) {
          d[nb::str(name.c_str())] = nb::make_tuple(t.calls, t.seconds);
        }
        return d;
      },
      "reset"_a = false,
      "{symbol name: (calls, seconds)} of the instructions timed while profiling was on.");
  m.def("live_objects", &runtime::live_objects,
        "The number of Python objects the core's object table holds (a debug counter).");

  nb::class_<Guard>(m, "Guard")
      .def_static("build", &Guard::build, nb::arg("args"), nb::arg("kwargs"), nb::arg("params"),
                  nb::arg("flags"), nb::arg("grad"), nb::arg("autocast") = 0,
                  nb::arg("strides") = false)
      .def("describe", &Guard::describe);
  m.def(
      "same_guard_value",
      [](nb::handle v, nb::handle snapshot) {
        return runtime::same_value(v.ptr(), snapshot.ptr());
      },
      nb::arg("value").none(), nb::arg("snapshot").none(),
      "Whether a guarded value equals its snapshot as the cache compares them.");

  nb::class_<CacheEntry>(m, "CacheEntry")
      .def(
          "__init__",
          [](CacheEntry* e, const Guard& g, std::shared_ptr<Program> p, CaptureSession& session,
             nb::object info, nb::list attrs) {
            new (e) CacheEntry();
            e->guard = g;
            e->program = std::move(p);
            e->sources = session.sources();
            e->info = std::move(info);
            for (nb::handle a : attrs) {
              nb::tuple t = nb::cast<nb::tuple>(a);
              if (t.size() == 2) {  // (dict, size)
                if (!PyDict_Check(t[0].ptr()))
                  throw TypeError("CacheEntry: a size guard needs a dict");
                e->size_guards.push_back({nb::borrow(t[0]), nb::cast<Py_ssize_t>(t[1])});
              } else {
                // (dict or cell, key, value[, True for the same object rather than an equal one])
                e->attr_guards.push_back({nb::borrow(t[0]), nb::borrow(t[1]), nb::borrow(t[2]),
                                          t.size() > 3 && nb::cast<bool>(t[3])});
              }
            }
          },
          "guard"_a, "program"_a, "session"_a, "info"_a, "attributes"_a = nb::list())
      .def_prop_ro("info", [](const CacheEntry& e) { return e.info; })
      .def_prop_ro("calls", [](const CacheEntry& e) { return e.calls; })
      .def_rw("updated_inputs", &CacheEntry::updated_inputs)
      .def_rw("arg_tensors", &CacheEntry::arg_tensors);

  bindings::bind_fuser(m);
  bindings::bind_extend(m);

  m.def("_set_tracing_depth", &runtime::set_tracing_depth, "depth"_a);
  m.def(
      "overlapping_update",
      [](nb::list tensors, const std::vector<int>& updated) -> nb::object {
        std::vector<PyObject*> ts;
        for (nb::handle t : tensors) ts.push_back(t.ptr());
        auto pair = runtime::overlapping_update(ts, updated, static_cast<int>(ts.size()));
        if (!pair) return nb::none();
        return nb::make_tuple(pair->first, pair->second);
      },
      "tensors"_a, "updated"_a,
      "The first (updated, other) pair of indices of tensors that overlap in memory, or None.");
  nb::class_<CompiledFunction>(m, "CompiledFunction", nb::dynamic_attr())
      .def("__init__", [](CompiledFunction* f, nb::object compile, nb::list params, nb::list flags,
                          int mode) {
        new (f) CompiledFunction(std::move(compile), std::move(params), std::move(flags),
                                 static_cast<runtime::CacheMode>(mode));
      })
      .def("__call__", &CompiledFunction::call)
      .def("current_params", &CompiledFunction::current_params)
      .def("current_flags", &CompiledFunction::current_flags)
      .def_prop_ro("cache_hits", &CompiledFunction::hits)
      .def_prop_ro("cache_misses", &CompiledFunction::misses)
      .def_prop_ro("entries", &CompiledFunction::entries)
      .def_prop_ro("last_entry", &CompiledFunction::last_entry)
      .def("clear_cache", &CompiledFunction::clear);
}
