// The cached call path.
#include "runtime/compiled_function.h"

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "runtime/objects.h"

namespace thunder::runtime {

namespace {
PyObject* training_key() {
  static PyObject* k = PyUnicode_InternFromString("training");
  return k;
}
}  // namespace

CompiledFunction::CompiledFunction(nb::object compile, nb::list param_sources,
                                   nb::list flag_sources, CacheMode mode)
    : compile_(std::move(compile)), mode_(mode) {
  for (nb::handle p : param_sources) {
    nb::tuple t = nb::cast<nb::tuple>(p);
    param_sources_.emplace_back(nb::borrow(t[0]), nb::borrow(t[1]));
  }
  for (nb::handle f : flag_sources) flag_sources_.push_back(nb::borrow(f));
}

namespace {
// The address of the memory a tensor's storage starts at (0 for an empty one).
uintptr_t storage_address(PyObject* t) {
  nb::object storage = nb::steal(PyObject_CallMethod(t, "untyped_storage", nullptr));
  if (!storage) throw nb::python_error();
  nb::object ptr = nb::steal(PyObject_CallMethod(storage.ptr(), "data_ptr", nullptr));
  if (!ptr) throw nb::python_error();
  return static_cast<uintptr_t>(PyLong_AsUnsignedLongLong(ptr.ptr()));
}

// The bytes of its storage a tensor spans, [first, last) (empty for a tensor without elements).
std::pair<int64_t, int64_t> byte_span(PyObject* t) {
  nb::handle h(t);
  int64_t item = nb::cast<int64_t>(h.attr("element_size")());
  int64_t first = nb::cast<int64_t>(h.attr("storage_offset")()) * item, extent = 1;
  nb::tuple shape = nb::borrow<nb::tuple>(h.attr("shape")),
            strides = nb::borrow<nb::tuple>(h.attr("stride")());
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t n = nb::cast<int64_t>(shape[i]);
    if (n == 0) return {first, first};
    extent += (n - 1) * std::abs(nb::cast<int64_t>(strides[i]));
  }
  return {first, first + extent * item};
}
}  // namespace

std::optional<std::pair<int, int>> overlapping_update(const std::vector<PyObject*>& tensors,
                                                      const std::vector<int>& updated, int limit) {
  limit = std::min<int>(limit, static_cast<int>(tensors.size()));
  bool any = false;
  for (int u : updated) any = any || u < limit;
  if (!any) return std::nullopt;
  std::vector<uintptr_t> address(limit);
  for (int i = 0; i < limit; ++i) address[i] = storage_address(tensors[i]);
  for (int u : updated) {
    if (u >= limit || address[u] == 0) continue;
    auto a = byte_span(tensors[u]);
    if (a.first == a.second) continue;
    for (int j = 0; j < limit; ++j) {
      if (j == u || address[j] != address[u]) continue;
      // The same storage: aliased when the spans of bytes overlap.
      auto b = byte_span(tensors[j]);
      if (a.first < b.second && b.first < a.second) return std::make_pair(u, j);
    }
  }
  return std::nullopt;
}

bool CacheEntry::inputs_alias(const std::vector<PyObject*>& tensors) const {
  // Only updated arguments are checked on each call (parameters and buffers a module updates,
  // such as batch norm's running statistics, were checked when the program was traced).
  return overlapping_update(tensors, updated_inputs, arg_tensors).has_value();
}

bool CacheEntry::attributes_match() const {
  for (const SizeGuard& g : size_guards) {
    if (PyDict_Size(g.dict.ptr()) != g.size) return false;
  }
  for (const AttrGuard& g : attr_guards) {
    // A closure's cell (the function reads a variable of an enclosing function), or a dict entry.
    PyObject* v = PyCell_Check(g.dict.ptr()) ? PyCell_GET(g.dict.ptr())
                                             : PyDict_GetItemWithError(g.dict.ptr(), g.key.ptr());
    if (v == g.value.ptr()) continue;
    if (g.identity) return false;
    if (!v) {
      if (PyErr_Occurred()) throw nb::python_error();
      return false;
    }
    if (!same_value(v, g.value.ptr())) return false;
  }
  return true;
}

nb::list CompiledFunction::current_params() const {
  nb::list out;
  for (const auto& [dict, key] : param_sources_) {
    PyObject* v = PyDict_GetItemWithError(dict.ptr(), key.ptr());
    if (!v) {
      if (PyErr_Occurred()) throw nb::python_error();
      throw Error("module parameter or buffer '" + nb::cast<std::string>(nb::str(key)) +
                  "' was removed after thunder.jit");
    }
    out.append(nb::borrow(v));
  }
  return out;
}

nb::list CompiledFunction::current_flags() const {
  nb::list out;
  for (const nb::object& d : flag_sources_) {
    PyObject* v = PyDict_GetItemWithError(d.ptr(), training_key());
    out.append(nb::bool_(v == Py_True));
  }
  return out;
}

nb::object CompiledFunction::run_entry(CacheEntry& e, const std::vector<PyObject*>& tensors,
                                       int64_t autocast) {
  PyObject* stack[128];
  std::vector<PyObject*> big;
  size_t n = e.sources.size();
  PyObject** inputs = stack;
  if (n > 128) {
    big.resize(n);
    inputs = big.data();
  }
  for (size_t i = 0; i < n; ++i) {
    const InputSource& s = e.sources[i];
    if (s.kind == InputSource::Kind::kTensor) {
      if (s.index >= static_cast<int>(tensors.size())) throw Error("internal: input index out of range");
      inputs[i] = tensors[s.index];
    } else {
      inputs[i] = s.value.ptr();
    }
  }
  ++e.calls;
  if (!autocast) return e.program->run(inputs, n);
  // The program's casts are explicit (recorded while tracing under autocast): autocast is off
  // while it runs, so torch applies none of its own on top.
  nb::object ctx = torch_objects().autocast_disabled();
  ctx.attr("__enter__")();
  nb::object out;
  try {
    out = e.program->run(inputs, n);
  } catch (...) {
    ctx.attr("__exit__")(nb::none(), nb::none(), nb::none());
    throw;
  }
  ctx.attr("__exit__")(nb::none(), nb::none(), nb::none());
  return out;
}

namespace {
thread_local int g_tracing_depth = 0;  // functions this thread is tracing now
}  // namespace

void set_tracing_depth(int depth) { g_tracing_depth = depth; }

nb::object CompiledFunction::call(nb::args args, nb::kwargs kwargs) {
  // Called while another function is traced: the wrapped function is traced inline, so the outer
  // program differentiates through it (its own program would run as an opaque autograd Function
  // under no_grad, and the gradient through it would be lost).
  if (g_tracing_depth > 0) return compile_.attr("inline")(args, kwargs);
  PyObject* kw = PyDict_GET_SIZE(kwargs.ptr()) ? kwargs.ptr() : nullptr;
  // Parameters and flags as they are now.
  PyObject* pstack[256];
  std::vector<PyObject*> pbig;
  size_t np = param_sources_.size();
  PyObject** params = pstack;
  if (np > 256) {
    pbig.resize(np);
    params = pbig.data();
  }
  for (size_t i = 0; i < np; ++i) {
    PyObject* v = PyDict_GetItemWithError(param_sources_[i].first.ptr(), param_sources_[i].second.ptr());
    if (!v) {
      if (PyErr_Occurred()) throw nb::python_error();
      throw Error("module parameter or buffer '" +
                  nb::cast<std::string>(nb::str(param_sources_[i].second)) +
                  "' was removed after thunder.jit");
    }
    params[i] = v;
  }
  std::vector<bool> flags(flag_sources_.size());
  for (size_t i = 0; i < flag_sources_.size(); ++i) {
    flags[i] = PyDict_GetItemWithError(flag_sources_[i].ptr(), training_key()) == Py_True;
  }
  bool grad = grad_enabled();
  int64_t autocast = autocast_state();
  PyObject* ddtype = default_dtype();
  std::vector<PyObject*> tensors;
  tensors.reserve(8 + np);

  if (mode_ == CacheMode::kSameInput && !entries_.empty()) {
    CacheEntry& e = *entries_.front();
    e.guard.collect(args.ptr(), kw, params, np, tensors);
    ++hits_;
    last_ = entries_.front();
    return run_entry(e, tensors, autocast);
  }
  if (mode_ != CacheMode::kNoCaching) {
    for (auto& e : entries_) {
      tensors.clear();
      if (e->guard.check(args.ptr(), kw, params, np, flags, grad, autocast, ddtype, tensors) &&
          e->attributes_match() && !e->inputs_alias(tensors)) {
        ++hits_;
        last_ = e;
        return run_entry(*e, tensors, autocast);
      }
    }
  }
  ++misses_;
  nb::object made = compile_(args, kwargs);
  auto entry = nb::cast<std::shared_ptr<CacheEntry>>(made);
  if (mode_ != CacheMode::kNoCaching) entries_.push_back(entry);
  last_ = entry;
  tensors.clear();
  if (!entry->guard.check(args.ptr(), kw, params, np, flags, grad, autocast, ddtype, tensors)) {
    throw Error("internal: a freshly compiled entry's guard rejects the call it was compiled for");
  }
  return run_entry(*entry, tensors, autocast);
}

}  // namespace thunder::runtime
