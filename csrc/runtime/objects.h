// The table of Python objects the core refers to by handle (the callables that implement symbols, and
// objects carried through traces as Opaque values), plus the torch objects the runtime needs.
#pragma once

#include <nanobind/nanobind.h>

#include <cstdint>
#include <memory>

#include "core/device.h"
#include "core/dtype.h"

namespace thunder::runtime {

namespace nb = nanobind;

// A table entry that lives as long as the process (the callables of symbols).
int64_t register_object(nb::handle obj);
// A table entry released when the returned owner (and every copy of it) is gone: for objects a
// trace carries (Opaque values hold the owner), so they die with the traces and programs of a
// cache entry instead of staying in the table.
struct OwnedObject {
  int64_t handle;
  std::shared_ptr<const void> owner;
};
OwnedObject owned_object(nb::handle obj);
nb::handle object(int64_t handle);
// The number of objects the table holds now (a debug counter: thunder._core.live_objects()).
size_t live_objects();

// Torch objects, set once when the Python package initialises.
struct TorchObjects {
  nb::object tensor_type;             // torch.Tensor
  nb::object dtypes[kNumDTypes];      // torch.float32 ...
  nb::object device_ctor;             // torch.device
  nb::object is_grad_enabled;         // torch.is_grad_enabled
  nb::object get_default_dtype;       // torch.get_default_dtype
  // Autocast (thunder.core.autocast): any_enabled() -> bool, cheap; state_key() -> int, nonzero,
  // naming the enabled device types and their dtypes; disabled() -> a context manager that turns
  // autocast off while a program runs (the program's casts are explicit).
  nb::object autocast_any_enabled;
  nb::object autocast_state_key;
  nb::object autocast_disabled;
};
TorchObjects& torch_objects();
bool is_tensor(PyObject* obj);
// DType of a torch.dtype object; false when `obj` is not one.
bool dtype_of(PyObject* obj, DType* out);
nb::object dtype_object(DType d);
nb::object device_object(Device d);
bool grad_enabled();
// torch.get_default_dtype() (a borrowed dtype singleton); nullptr before set_torch_objects.
PyObject* default_dtype();
// 0 when autocast is off everywhere, else a key of its state (thunder.core.autocast.state_key()).
int64_t autocast_state();

}  // namespace thunder::runtime
