// The object table and torch object access.
#include "runtime/objects.h"

#include <mutex>
#include <vector>

#include <nanobind/stl/string.h>

#include "core/error.h"

namespace thunder::runtime {

namespace {

// Entries are owned references (nullptr: a free slot, listed in free_slots()). The table lives as
// long as the interpreter; the mutex guards it against the fuser's background threads.
std::mutex g_mu;
std::vector<PyObject*>& table() {
  static auto* t = new std::vector<PyObject*>();
  return *t;
}
std::vector<int64_t>& free_slots() {
  static auto* f = new std::vector<int64_t>();
  return *f;
}
size_t g_live = 0;

int64_t insert(nb::handle obj) {
  std::lock_guard<std::mutex> lock(g_mu);
  PyObject* o = obj.inc_ref().ptr();
  ++g_live;
  if (!free_slots().empty()) {
    int64_t h = free_slots().back();
    free_slots().pop_back();
    table()[h] = o;
    return h;
  }
  table().push_back(o);
  return static_cast<int64_t>(table().size()) - 1;
}

// Frees slot `h`; the reference is dropped under the GIL, outside the table's lock (a thread holding
// the GIL may be waiting for the lock). After the interpreter has finalised, the object is leaked.
void release(int64_t h) {
  PyObject* o = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    o = table()[h];
    table()[h] = nullptr;
    free_slots().push_back(h);
    --g_live;
  }
#if PY_VERSION_HEX >= 0x030D0000
  bool finalizing = Py_IsFinalizing();
#else
  bool finalizing = _Py_IsFinalizing();
#endif
  if (!o || !Py_IsInitialized() || finalizing) return;
  PyGILState_STATE gil = PyGILState_Ensure();
  Py_DECREF(o);
  PyGILState_Release(gil);
}

}  // namespace

int64_t register_object(nb::handle obj) { return insert(obj); }

OwnedObject owned_object(nb::handle obj) {
  int64_t h = insert(obj);
  // The owner is an empty shared object whose deleter frees the slot.
  std::shared_ptr<const void> owner(nullptr, [h](const void*) { release(h); });
  return OwnedObject{h, std::move(owner)};
}

nb::handle object(int64_t handle) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (handle < 0 || handle >= static_cast<int64_t>(table().size()) || !table()[handle]) {
    throw Error("bad object handle " + std::to_string(handle));
  }
  return table()[handle];
}

size_t live_objects() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_live;
}

TorchObjects& torch_objects() {
  static auto* t = new TorchObjects();
  return *t;
}

bool is_tensor(PyObject* obj) {
  PyObject* tt = torch_objects().tensor_type.ptr();
  return tt && PyObject_TypeCheck(obj, reinterpret_cast<PyTypeObject*>(tt));
}

bool dtype_of(PyObject* obj, DType* out) {
  auto& t = torch_objects();
  for (int i = 0; i < kNumDTypes; ++i) {
    if (t.dtypes[i].ptr() == obj) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

nb::object dtype_object(DType d) { return torch_objects().dtypes[static_cast<int>(d)]; }

nb::object device_object(Device d) { return torch_objects().device_ctor(d.str()); }

int64_t autocast_state() {
  TorchObjects& t = torch_objects();
  if (!t.autocast_any_enabled.is_valid()) return 0;
  PyObject* r = PyObject_CallNoArgs(t.autocast_any_enabled.ptr());
  if (!r) throw nb::python_error();
  bool any = r == Py_True;
  Py_DECREF(r);
  if (!any) return 0;
  return nb::cast<int64_t>(t.autocast_state_key());
}

PyObject* default_dtype() {
  const TorchObjects& t = torch_objects();
  if (!t.get_default_dtype.is_valid()) return nullptr;
  PyObject* r = PyObject_CallNoArgs(t.get_default_dtype.ptr());
  if (!r) throw nb::python_error();
  Py_DECREF(r);  // dtypes are immortal singletons held by torch
  return r;
}

bool grad_enabled() {
  PyObject* r = PyObject_CallNoArgs(torch_objects().is_grad_enabled.ptr());
  if (!r) throw nb::python_error();
  bool v = r == Py_True;
  Py_DECREF(r);
  return v;
}

}  // namespace thunder::runtime
