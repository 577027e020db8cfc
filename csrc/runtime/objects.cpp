// The object table and torch object access.
#include "runtime/objects.h"

#include <mutex>
#include <vector>

#include <nanobind/stl/string.h>

#include "core/error.h"

namespace thunder::runtime {

namespace {
std::mutex g_mu;
std::vector<nb::object>& table() {
  static auto* t = new std::vector<nb::object>();  // lives as long as the interpreter
  return *t;
}
}  // namespace

int64_t register_object(nb::handle obj) {
  std::lock_guard<std::mutex> lock(g_mu);
  table().push_back(nb::borrow(obj));
  return static_cast<int64_t>(table().size()) - 1;
}

nb::handle object(int64_t handle) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (handle < 0 || handle >= static_cast<int64_t>(table().size())) {
    throw Error("bad object handle " + std::to_string(handle));
  }
  return table()[handle];
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

bool grad_enabled() {
  PyObject* r = PyObject_CallNoArgs(torch_objects().is_grad_enabled.ptr());
  if (!r) throw nb::python_error();
  bool v = r == Py_True;
  Py_DECREF(r);
  return v;
}

}  // namespace thunder::runtime
