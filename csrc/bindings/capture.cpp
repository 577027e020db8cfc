// Capture session: Python <-> Value conversion, recording, and alias tracking.
#include "bindings/capture.h"

#include <mutex>

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "core/error.h"
#include "runtime/objects.h"

namespace thunder::bindings {

using runtime::dtype_object;
using runtime::is_tensor;

namespace {

Device device_of(nb::handle dev) { return Device::parse(nb::cast<std::string>(nb::str(dev))); }

DType dtype_of_obj(nb::handle dt) {
  DType d;
  if (!runtime::dtype_of(dt.ptr(), &d)) {
    throw TypeError("unsupported dtype " + nb::cast<std::string>(nb::repr(dt)));
  }
  return d;
}

}  // namespace

CaptureSession::CaptureSession(nb::object factory, nb::handle proxy_type)
    : factory_(std::move(factory)), proxy_type_(nb::borrow(proxy_type)) {}

TensorRef CaptureSession::input_from_tensor(nb::handle t, const std::string& name) {
  Shape shape;
  for (nb::handle d : t.attr("shape")) shape.push_back(nb::cast<int64_t>(d));
  DType dtype = dtype_of_obj(t.attr("dtype"));
  Device device = device_of(t.attr("device"));
  bool rg = nb::cast<bool>(t.attr("requires_grad"));
  TensorRef ref = builder_.new_tensor(std::move(shape), dtype, device, rg, name);
  inputs_.push_back(ref);
  input_set_.insert(ref.get());
  return ref;
}

nb::object CaptureSession::new_input(nb::handle tensor, const std::string& name, int source_index) {
  TensorRef ref = input_from_tensor(tensor, name);
  // Input proxies carry the real strides, so is_contiguous()/stride() while tracing answer as eager
  // does (contiguity is guarded).
  nb::object obj = factory_(ProxyHandle{ref}, tensor.attr("shape"), tensor.attr("dtype"),
                            tensor.attr("device"), ref->requires_grad(), tensor.attr("stride")());
  py_of_.emplace(ref.get(), obj);
  runtime::InputSource s;
  s.kind = runtime::InputSource::Kind::kTensor;
  s.index = source_index;
  sources_.push_back(std::move(s));
  return obj;
}

void CaptureSession::check_not_stale(const TensorRef& t) const {
  auto it = stale_.find(t.get());
  if (it != stale_.end()) throw NotImplementedError(it->second);
}

const TensorProxy* CaptureSession::root(const TensorProxy* p) const {
  auto it = root_of_.find(p);
  return it == root_of_.end() ? p : it->second;
}

Value CaptureSession::to_value(nb::handle h) {
  PyObject* o = h.ptr();
  if (o == Py_None) return Value();
  if (PyBool_Check(o)) return Value(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) throw ValueError("integer argument does not fit in 64 bits");
    return Value(static_cast<int64_t>(v));
  }
  if (PyFloat_Check(o)) return Value(PyFloat_AS_DOUBLE(o));
  if (PyUnicode_Check(o)) return Value(nb::cast<std::string>(h));
  if (o == Py_Ellipsis) return Value(EllipsisT{});
  if (PyObject_TypeCheck(o, reinterpret_cast<PyTypeObject*>(proxy_type_.ptr()))) {
    nb::object handle = h.attr("_thunder_ref");
    TensorRef ref = nb::cast<ProxyHandle&>(handle).ref;
    check_not_stale(ref);
    return Value(ref);
  }
  if (is_tensor(o)) {
    // A tensor the function closes over (a global, an attribute that is not a parameter or buffer):
    // an input of the trace, passed by reference on every call.
    auto it = constants_.find(o);
    if (it != constants_.end()) return Value(it->second);
    TensorRef ref = input_from_tensor(h, "c" + std::to_string(constants_.size()));
    constants_.emplace(o, ref);
    runtime::InputSource s;
    s.kind = runtime::InputSource::Kind::kConstant;
    s.value = nb::borrow(h);
    sources_.push_back(std::move(s));
    return Value(ref);
  }
  DType dt;
  if (runtime::dtype_of(o, &dt)) return Value(dt);
  if (PySlice_Check(o)) {
    PySliceObject* s = reinterpret_cast<PySliceObject*>(o);
    auto part = [&](PyObject* p) -> std::optional<int64_t> {
      if (p == Py_None) return std::nullopt;
      Value v = to_value(nb::handle(p));
      if (v.is_tensor()) {
        throw NotImplementedError(
            "a slice bound that is a tensor depends on tensor values; use a Python int");
      }
      return v.as_int();
    };
    return Value(Slice{part(s->start), part(s->stop), part(s->step)});
  }
  if (PyTuple_Check(o) || PyList_Check(o)) {
    std::vector<Value> items;
    Py_ssize_t n = PySequence_Size(o);
    items.reserve(n);
    for (Py_ssize_t i = 0; i < n; ++i) items.push_back(to_value(nb::steal(PySequence_GetItem(o, i))));
    return PyList_Check(o) ? Value::list(std::move(items)) : Value::tuple(std::move(items));
  }
  if (PyDict_Check(o)) {
    std::vector<Value> keys, values;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(o, &pos, &k, &v)) {
      keys.push_back(to_value(nb::handle(k)));
      values.push_back(to_value(nb::handle(v)));
    }
    return Value::dict(std::move(keys), std::move(values));
  }
  std::string tname = Py_TYPE(o)->tp_name;
  if (tname == "torch.device") return Value(device_of(h));
  // Anything else travels as an opaque object, printed by its repr when that is a plain name.
  std::string repr = nb::cast<std::string>(nb::repr(h));
  runtime::OwnedObject owned = runtime::owned_object(h);  // released with the last trace holding it
  bool plain = !repr.empty() && repr.find_first_of(" <>()'\"") == std::string::npos;
  return Value(Opaque{owned.handle, plain ? repr : "_object" + std::to_string(owned.handle),
                      owned.owner});
}

nb::object CaptureSession::to_python(const Value& v) {
  if (v.is_tensor()) {
    const TensorRef& t = v.as_tensor();
    auto it = py_of_.find(t.get());
    if (it != py_of_.end()) return it->second;
    nb::list shape;
    for (Dim d : t->shape()) shape.append(d.value());
    nb::object obj = factory_(ProxyHandle{t}, nb::tuple(shape), dtype_object(t->dtype()),
                              runtime::device_object(t->device()), t->requires_grad());
    py_of_.emplace(t.get(), obj);
    return obj;
  }
  if (v.is_seq()) {
    const Seq& s = v.as_seq();
    if (s.kind == Seq::Kind::kDict) {
      nb::dict d;
      for (size_t i = 0; i < s.items.size(); ++i) d[to_python(s.keys[i])] = to_python(s.items[i]);
      return d;
    }
    nb::list l;
    for (const Value& item : s.items) l.append(to_python(item));
    if (s.kind == Seq::Kind::kTuple) return nb::tuple(l);
    return l;
  }
  return runtime::constant_object(v);
}

void CaptureSession::after_view(const Value& in, const Value& out) {
  if (!in.is_tensor()) return;
  const TensorProxy* r = root(in.as_tensor().get());
  out.for_each_tensor([&](const TensorRef& t) {
    if (t.get() == r || root_of_.count(t.get())) return;
    root_of_[t.get()] = r;
    members_[r].push_back(t.get());
  });
}

nb::object CaptureSession::after_inplace(nb::handle self_obj, const TensorRef& old, const Value& out) {
  const TensorRef& updated = out.as_tensor();
  const TensorProxy* r = root(old.get());
  std::string line = source_.empty() ? "" : " (at " + source_ + ")";
  if (r != old.get() && input_set_.count(r)) {
    throw NotImplementedError(
        "in-place update of a view of the input '" + r->name() + "'" + line +
        " is not supported by thunder yet; update the input itself, or compute out of place");
  }
  // Every other alias of the mutated memory now holds a value thunder did not compute.
  std::string why = "a tensor was read after an in-place update of a tensor it aliases" + line +
                    "; thunder does not propagate in-place updates between views yet. Apply the "
                    "update before taking the view, or compute out of place";
  if (r != old.get()) stale_[r] = why;
  for (const TensorProxy* m : members_[r]) {
    if (m != old.get()) stale_[m] = why;
  }
  // The Python object now stands for the new version.
  nb::setattr(self_obj, "_thunder_ref", nb::cast(ProxyHandle{updated}));
  py_of_[updated.get()] = nb::borrow(self_obj);
  if (input_set_.count(old.get()) || root_of_.count(old.get()) == 0) {
    // The new version starts a fresh alias family.
  }
  return nb::borrow(self_obj);
}

nb::object CaptureSession::record(const Symbol* sym, nb::handle args, nb::handle kwargs,
                                  const std::string& source) {
  source_ = source;
  builder_.set_source(source);
  std::vector<Value> pos;
  for (nb::handle a : args) pos.push_back(to_value(a));
  std::vector<std::pair<std::string, Value>> kw;
  if (kwargs.ptr() && kwargs.ptr() != Py_None) {
    for (auto [k, v] : nb::borrow<nb::dict>(kwargs)) kw.emplace_back(nb::cast<std::string>(k), to_value(v));
  }
  Value first = pos.empty() ? Value() : pos.front();
  Value out = builder_.call(*sym, std::move(pos), std::move(kw));
  if (sym->has_tag(kTagInplace)) {
    nb::handle self_obj = nb::borrow<nb::tuple>(args)[0];
    return after_inplace(self_obj, first.as_tensor(), out);
  }
  if (sym->has_tag(kTagView)) after_view(first, out);
  return to_python(out);
}

const Symbol* opaque_symbol(nb::handle fn, const std::string& module, const std::string& name) {
  static std::mutex mu;
  static auto* by_fn = new std::unordered_map<PyObject*, const Symbol*>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = by_fn->find(fn.ptr());
  if (it != by_fn->end()) return it->second;
  Symbol s;
  s.name = name;
  s.module = module;
  s.kind = SymbolKind::kOpaque;
  s.signature = Signature::parse("args, kwargs");
  s.callable = runtime::register_object(fn);
  std::string base = name;
  for (int i = 1; SymbolTable::instance().find(module, s.name); ++i) s.name = base + "_" + std::to_string(i);
  const Symbol* p = SymbolTable::instance().add(std::move(s));
  by_fn->emplace(fn.ptr(), p);
  return p;
}

nb::object CaptureSession::record_opaque(nb::handle fn, const std::string& module,
                                         const std::string& name, nb::handle args,
                                         nb::handle kwargs, nb::handle meta_out,
                                         const std::string& source) {
  source_ = source;
  const Symbol* sym = opaque_symbol(fn, module, name);
  Value pos = to_value(nb::tuple(nb::borrow(args)));
  Value kw = to_value(kwargs.ptr() && kwargs.ptr() != Py_None ? nb::borrow(kwargs) : nb::dict());
  Device device = Device::cpu();
  bool rg = false;
  bool found = false;
  for (const Value* v : {&pos, &kw}) {
    v->for_each_tensor([&](const TensorRef& t) {
      if (!found) device = t->device();
      found = true;
      rg = rg || t->requires_grad();
    });
  }
  // Outputs: metadata from torch's meta kernels, the device of the inputs.
  std::function<Value(nb::handle)> out_of = [&](nb::handle m) -> Value {
    if (is_tensor(m.ptr())) {
      Shape shape;
      for (nb::handle d : m.attr("shape")) shape.push_back(nb::cast<int64_t>(d));
      DType dt = dtype_of_obj(m.attr("dtype"));
      return Value(builder_.new_tensor(std::move(shape), dt, device,
                                       rg && (is_floating(dt) || is_complex(dt))));
    }
    if (PyTuple_Check(m.ptr()) || PyList_Check(m.ptr())) {
      std::vector<Value> items;
      for (nb::handle item : m) items.push_back(out_of(item));
      return PyList_Check(m.ptr()) ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    return to_value(m);
  };
  Value out = out_of(meta_out);
  builder_.append(BoundSymbol::make(sym, {pos, kw}, out, {}, source));
  opaque_names_.push_back(sym->qualname());
  // An output torch makes as a view (diagonal, as_strided, ...) aliases the first tensor argument, so
  // in-place updates through it are tracked (or refused) like those through thunder's own views.
  nb::object meta_first = nb::borrow(meta_out);
  if (PyTuple_Check(meta_out.ptr()) || PyList_Check(meta_out.ptr())) {
    meta_first = nb::len(meta_out) ? nb::borrow(meta_out[0]) : nb::none();
  }
  if (is_tensor(meta_first.ptr()) && nb::cast<bool>(meta_first.attr("_is_view")())) {
    Value first_in;
    pos.for_each_tensor([&](const TensorRef& t) {
      if (!first_in.is_tensor()) first_in = Value(t);
    });
    after_view(first_in, out);
  }
  return to_python(out);
}

Trace CaptureSession::finish(nb::handle output) {
  Trace t;
  t.output = to_value(output);
  t.inputs = inputs_;
  t.bsyms = builder_.take();
  t.stage = "captured";
  return t;
}

}  // namespace thunder::bindings
