// Capture session: Python <-> Value conversion, recording, and alias tracking.
#include "bindings/capture.h"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <mutex>

#include "core/error.h"
#include "ops/registry.h"
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
  if (rg) {
    if (nb::cast<bool>(t.attr("is_leaf"))) {
      grad_leaf_inputs_.insert(ref.get());
    } else {
      grad_nonleaf_inputs_.insert(ref.get());
    }
  }
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
  if (PyIndex_Check(o) && nb::len(nb::getattr(h, "shape", nb::tuple())) == 0) {
    // An integer scalar of another library (numpy.int64): as Python's int.
    nb::object i = nb::steal(PyNumber_Index(o));
    if (i) return to_value(i);
    PyErr_Clear();
  }
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

namespace {

// True for indices that make getitem copy (advanced indexing: tensors or sequences).
bool advanced_index(const Value& v) {
  if (v.is_tensor()) return true;
  if (!v.is_seq()) return false;
  if (v.as_seq().kind == Seq::Kind::kList) return true;
  for (const Value& i : v.items()) {
    if (i.is_tensor() || i.is_seq()) return true;
  }
  return false;
}

// Reshapes: views only where the input's layout allows (a copy in eager otherwise).
// Views only when the input's layout allows (otherwise eager copies): reshapes, and contiguous()
// (the tensor itself when it is contiguous, a copy when not).
bool reshape_like(const Symbol& s) {
  return s.module == "ltorch" &&
         (s.name == "reshape" || s.name == "flatten" || s.name == "reshape_as" ||
          s.name == "unflatten" || s.name == "contiguous");
}

int64_t norm_dim(int64_t d, size_t rank) { return d < 0 ? d + static_cast<int64_t>(rank) : d; }

const Symbol& ltorch_symbol(const char* name) {
  const Symbol* s = SymbolTable::instance().find("ltorch", name);
  if (!s) throw Error(std::string("internal: no symbol ltorch.") + name);
  return *s;
}

// (slice(None),) * dim + (last,)
Value index_at(int64_t dim, Value last) {
  std::vector<Value> items(static_cast<size_t>(dim), Value(Slice{}));
  items.push_back(std::move(last));
  return Value::tuple(std::move(items));
}

}  // namespace

void CaptureSession::after_view(const Value& in, const Value& out, const BSymRef& bsym) {
  if (!in.is_tensor()) return;
  // Advanced indexing copies in eager: its result aliases nothing.
  if (bsym && bsym->sym->name == "getitem" && bsym->args.size() > 1 && advanced_index(bsym->args[1])) {
    return;
  }
  // A reshape of a tensor whose layout does not allow a view copies in eager: no alias either (so a
  // reshape recorded as a view always has an inverse).
  if (bsym && reshape_like(*bsym->sym) && !contiguous(in.as_tensor().get())) return;
  const TensorProxy* r = root(in.as_tensor().get());
  ref_of_[in.as_tensor().get()] = in.as_tensor();
  int index = 0;
  bool multi = out.is_seq();
  out.for_each_tensor([&](const TensorRef& t) {
    int k = index++;
    if (t.get() == r || root_of_.count(t.get())) return;
    root_of_[t.get()] = r;
    members_[r].push_back(t.get());
    ref_of_[t.get()] = t;
    if (bsym)
      view_def_[t.get()] =
          ViewDef{in.as_tensor().get(), bsym, multi ? k : -1, runtime::grad_enabled()};
  });
}

bool CaptureSession::contiguous(const TensorProxy* p) {
  auto it = py_of_.find(p);
  if (it == py_of_.end()) return false;
  nb::object strides = nb::getattr(it->second, "_thunder_strides", nb::none());
  if (strides.is_none()) strides = it->second.attr("stride")();
  int64_t expect = 1;
  const Shape& shape = p->shape();
  std::vector<int64_t> s;
  for (nb::handle h : strides) s.push_back(nb::cast<int64_t>(h));
  if (s.size() != shape.size()) return false;
  for (size_t i = shape.size(); i-- > 0;) {
    int64_t n = shape[i].value();
    if (n != 1 && s[i] != expect) return false;
    expect *= n;
  }
  return true;
}

std::optional<Value> CaptureSession::scatter_into_parent(const ViewDef& def, const TensorRef& parent,
                                                         const TensorRef& updated) {
  const BoundSymbol& b = *def.bsym;
  const std::string& name = b.sym->name;
  const size_t rank = parent->shape().size();
  auto arg = [&](size_t i) -> const Value& { return b.args.at(i); };
  auto setitem = [&](Value indices) {
    return builder_.call(ltorch_symbol("setitem"), {Value(parent), std::move(indices), Value(updated)});
  };
  if (name == "getitem") return setitem(arg(1));
  if (name == "select") return setitem(index_at(norm_dim(arg(1).as_int(), rank), arg(2)));
  if (name == "narrow") {
    int64_t dim = norm_dim(arg(1).as_int(), rank);
    int64_t start = arg(2).as_int();
    if (start < 0) start += parent->shape()[dim].value();
    return setitem(index_at(dim, Value(Slice{start, start + arg(3).as_int(), std::nullopt})));
  }
  if (name == "split" || name == "chunk" || name == "tensor_split" || name == "unbind") {
    if (def.output_index < 0 || !b.output.is_seq()) return std::nullopt;
    int64_t dim = norm_dim(name == "unbind" ? arg(1).as_int() : arg(2).as_int(), rank);
    if (name == "unbind") return setitem(index_at(dim, Value(static_cast<int64_t>(def.output_index))));
    int64_t offset = 0;
    const auto& outs = b.output.items();
    for (int k = 0; k < def.output_index; ++k) offset += outs[k].as_tensor()->shape()[dim].value();
    int64_t len = outs[def.output_index].as_tensor()->shape()[dim].value();
    return setitem(index_at(dim, Value(Slice{offset, offset + len, std::nullopt})));
  }
  if (name == "transpose" || name == "swapaxes" || name == "swapdims") {
    return builder_.call(ltorch_symbol("transpose"), {Value(updated), arg(1), arg(2)});
  }
  if (name == "t") {
    if (rank < 2) return Value(updated);
    return builder_.call(ltorch_symbol("transpose"), {Value(updated), Value(int64_t{0}), Value(int64_t{1})});
  }
  if (name == "permute") {
    std::vector<int64_t> dims = arg(1).as_int_list();
    if (dims.size() != rank) return std::nullopt;
    std::vector<int64_t> inv(rank);
    for (size_t i = 0; i < rank; ++i) inv[norm_dim(dims[i], rank)] = static_cast<int64_t>(i);
    return builder_.call(ltorch_symbol("permute"), {Value(updated), Value::ints(inv)});
  }
  if (name == "movedim" || name == "moveaxis") {
    return builder_.call(ltorch_symbol("movedim"), {Value(updated), arg(2), arg(1)});
  }
  if (name == "view" || name == "squeeze" || name == "unsqueeze" || name == "view_as" ||
      reshape_like(*b.sym)) {
    return builder_.call(ltorch_symbol("reshape"), {Value(updated), Value::shape(parent->shape())});
  }
  if (name == "detach") return Value(updated);
  return std::nullopt;
}

bool CaptureSession::invertible(const ViewDef& def) {
  static const std::unordered_set<std::string> kNames = {
      "getitem", "select", "narrow", "split", "chunk", "tensor_split", "unbind", "transpose",
      "swapaxes", "swapdims", "t", "permute", "movedim", "moveaxis", "view", "squeeze",
      "unsqueeze", "view_as", "detach"};
  const Symbol& s = *def.bsym->sym;
  return reshape_like(s) || (s.module == "ltorch" && kNames.count(s.name));
}

std::optional<TensorRef> CaptureSession::replay_view(const ViewDef& def, const TensorRef& parent) {
  std::vector<Value> args = def.bsym->args;
  args.at(0) = Value(parent);
  Value out = builder_.call_bound(*def.bsym->sym, std::move(args));
  after_view(Value(parent), out, builder_.last());
  if (def.output_index >= 0) {
    if (!out.is_seq() || def.output_index >= static_cast<int>(out.items().size())) return std::nullopt;
    out = out.items()[def.output_index];
  }
  if (!out.is_tensor()) return std::nullopt;
  return out.as_tensor();
}

void CaptureSession::repoint(const TensorProxy* from, const TensorRef& to) {
  // A tensor the function closes over (a global, a plain tensor attribute) is read through
  // constants_: later reads see the new version.
  for (auto& [obj, ref] : constants_) {
    if (ref.get() == from) ref = to;
  }
  auto it = py_of_.find(from);
  if (it == py_of_.end()) return;
  nb::object obj = it->second;
  nb::setattr(obj, "_thunder_ref", nb::cast(ProxyHandle{to}));
  py_of_[to.get()] = obj;
}

bool CaptureSession::propagate_view_update(const TensorProxy* old, const TensorRef& updated) {
  const TensorProxy* r = root(old);
  std::vector<const TensorProxy*> chain{old};
  while (chain.back() != r) {
    auto it = view_def_.find(chain.back());
    if (it == view_def_.end() || !invertible(it->second)) return false;
    chain.push_back(it->second.parent);
  }
  if (!ref_of_.count(r)) return false;
  // Scatter the new value up the chain into the root.
  TensorRef value = updated;
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    std::optional<Value> v = scatter_into_parent(view_def_.at(chain[i]), ref_of_.at(chain[i + 1]), value);
    if (!v || !v->is_tensor()) throw Error("internal: a view's inverse did not produce a tensor");
    value = v->as_tensor();
  }
  // The root's update, recorded as an in-place copy (functionalization writes an input back).
  TensorRef root_ref = ref_of_.at(r);
  Value new_root = builder_.call(ltorch_symbol("copy_"), {Value(root_ref), Value(value)});
  TensorRef nr = new_root.as_tensor();
  if (grad_leaf_inputs_.count(r)) nr = leaf_update(root_ref, nr);
  repoint(r, nr);
  refresh_views(r, nr);
  return true;
}

void CaptureSession::refresh_views(const TensorProxy* r, const TensorRef& nr) {
  ref_of_[nr.get()] = nr;
  // Every view of the root, recomputed from the new root (in creation order: parents first).
  std::unordered_map<const TensorProxy*, TensorRef> fresh{{r, nr}};
  std::vector<const TensorProxy*> members = members_[r];
  // Each view is replayed in the grad mode it was taken in (a view taken before a leaf's update
  // under no_grad still differentiates with respect to the leaf), then the mode is put back.
  const bool mode = runtime::grad_enabled();
  bool recorded = mode;
  for (const TensorProxy* m : members) {
    std::optional<TensorRef> now;
    auto d = view_def_.find(m);
    if (d != view_def_.end()) {
      auto p = fresh.find(d->second.parent);
      if (p != fresh.end()) {
        if (d->second.grad != recorded) {
          recorded = d->second.grad;
          builder_.call(prims::set_grad_enabled(), {Value(recorded)});
        }
        now = replay_view(d->second, p->second);
      }
    }
    if (!now) {
      stale_[m] = stale_reason();
      continue;
    }
    fresh[m] = *now;
    repoint(m, *now);
  }
  if (recorded != mode) builder_.call(prims::set_grad_enabled(), {Value(mode)});
}

std::vector<int> CaptureSession::updated_inputs() const {
  std::vector<int> out;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (updated_.count(inputs_[i].get())) out.push_back(static_cast<int>(i));
  }
  return out;
}

TensorRef CaptureSession::leaf_update(const TensorRef& leaf, const TensorRef& value) {
  TensorRef next = builder_.call(prims::leaf_update(), {Value(leaf), Value(value)}).as_tensor();
  grad_leaf_inputs_.insert(next.get());  // the same leaf, for its later updates
  return next;
}

bool CaptureSession::detached(const TensorProxy* view) const {
  const TensorProxy* r = root(view);
  for (const TensorProxy* p = view; p != r;) {
    auto it = view_def_.find(p);
    if (it == view_def_.end()) return false;
    if (it->second.bsym && it->second.bsym->sym->name == "detach") return true;
    p = it->second.parent;
  }
  return false;
}

std::string CaptureSession::at_source() const {
  return source_.empty() ? "" : " (at " + source_ + ")";
}

std::string CaptureSession::stale_reason() const {
  return "a tensor was read after an in-place update of a tensor it aliases" + at_source() +
         ", and thunder cannot recompute it from the updated tensor (a view between them has no "
         "inverse, such as expand or diagonal). Take the view after the update, or compute out of "
         "place";
}

nb::object CaptureSession::after_inplace(nb::handle self_obj, const TensorRef& old, const Value& out) {
  const TensorRef& updated = out.as_tensor();
  const TensorProxy* r = root(old.get());
  if (input_set_.count(r)) updated_.insert(r);
  if (grad_nonleaf_inputs_.count(r) && runtime::grad_enabled() &&
      warned_nonleaf_.insert(r).second) {
    // Eager makes the update part of the tensor's history; the program writes the new values back
    // into the caller's tensor without it. The function's own results are right; what the caller
    // computes from that tensor afterwards would differentiate without the update.
    std::string msg =
        "thunder.jit: the input '" + r->name() + "'" + at_source() +
        " requires grad, is computed from other tensors (not a leaf) and is updated in "
        "place: the caller's tensor gets the new values, but not the update in its "
        "gradient history, so gradients through later uses of it by the caller would "
        "differ from eager's. Update a copy (x = x.clone()) if the caller uses it again";
    if (PyErr_WarnEx(PyExc_UserWarning, msg.c_str(), 1) < 0) throw nb::python_error();
  }
  const bool grad_leaf = grad_leaf_inputs_.count(r) > 0;
  if (grad_leaf) {
    // With grad on, eager refuses to update such a leaf, or a view of it that is not detached.
    if (runtime::grad_enabled() && (r == old.get() || !detached(old.get()))) {
      throw Error(std::string(r == old.get() ? "a leaf Variable" : "a view of a leaf Variable") +
                  " that requires grad is being used in an in-place operation (the input '" +
                  r->name() + "')" + at_source() +
                  ". Update it under torch.no_grad(), or through .data or .detach()");
    }
  }
  if (r != old.get()) {
    if (propagate_view_update(old.get(), updated)) return nb::borrow(self_obj);
    // A view between `old` and its root has no inverse: the other aliases go stale.
    if (input_set_.count(r)) {
      throw NotImplementedError(
          "in-place update of a view of the input '" + r->name() + "'" + at_source() +
          " through a view without an inverse (such as expand or diagonal) is not supported by "
          "thunder yet; update the input itself, or compute out of place");
    }
    std::string why = stale_reason();
    stale_[r] = why;
    for (const TensorProxy* m : members_[r]) {
      if (m != old.get()) stale_[m] = why;
    }
  }
  // The Python object now stands for the new version (a closed-over tensor: through constants_).
  TensorRef now = grad_leaf && r == old.get() ? leaf_update(old, updated) : updated;
  if (PyObject_TypeCheck(self_obj.ptr(), reinterpret_cast<PyTypeObject*>(proxy_type_.ptr()))) {
    nb::setattr(self_obj, "_thunder_ref", nb::cast(ProxyHandle{now}));
    py_of_[now.get()] = nb::borrow(self_obj);
  } else {
    repoint(old.get(), now);
  }
  // The viewed tensor itself was updated: its views are recomputed from the new version.
  auto views = members_.find(r);
  if (r == old.get() && views != members_.end() && !views->second.empty()) refresh_views(r, now);
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
  if (sym->has_tag(kTagView)) after_view(first, out, builder_.last());
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
