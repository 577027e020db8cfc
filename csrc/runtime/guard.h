// Guards: the conditions under which a compiled program may run on a call's arguments. A guard is a
// tree mirroring the argument structure; tensors are checked for shape, dtype, device,
// requires_grad and contiguity (and the exact strides of non-contiguous ones when the traced code
// read a layout: `x.stride()`, `x.is_contiguous()`), Python numbers and strings by value, other
// objects by identity. Checking walks the arguments once and collects the tensors the program takes
// as inputs.
#pragma once

#include <nanobind/nanobind.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

namespace thunder::runtime {

namespace nb = nanobind;

// Python floats as a program sees them: -0.0 is not 0.0 (x / s, copysign), and NaN matches NaN.
inline bool same_float(double a, double b) {
  return (a == b && std::signbit(a) == std::signbit(b)) || (std::isnan(a) && std::isnan(b));
}

// A guarded value against its snapshot, as the program would see it: floats by same_float (-0.0 is
// not 0.0, NaN matches NaN), inside tuples and lists too; anything else by ==.
bool same_value(PyObject* v, PyObject* snapshot);

class Guard {
 public:
  // Builds the guard that accepts exactly calls like this one. `params` is a list of tensors
  // (module parameters and buffers), `flags` a list of bools (module training flags), `grad` the
  // grad mode. `autocast` is the autocast state key (0: off). `strides`: the non-contiguous
  // tensors' strides are part of the guard (the program's code branched on a layout, which
  // contiguity alone does not fix).
  static Guard build(nb::handle args, nb::handle kwargs, nb::handle params, nb::handle flags,
                     bool grad, int64_t autocast = 0, bool strides = false);

  // True when the call matches; appends the tensors of args, kwargs and params, in order, to
  // `tensors`. `default_dtype` is torch.get_default_dtype() now (the program's creation ops and
  // Python floats took the one of the first call).
  bool check(PyObject* args, PyObject* kwargs, PyObject* const* params, size_t num_params,
             const std::vector<bool>& flags, bool grad, int64_t autocast, PyObject* default_dtype,
             std::vector<PyObject*>& tensors) const;
  // Collects the tensors without checking ("same input" caching).
  void collect(PyObject* args, PyObject* kwargs, PyObject* const* params, size_t num_params,
               std::vector<PyObject*>& tensors) const;

  // A readable description (for cache-miss diagnostics).
  std::string describe() const;

  struct Node {
    enum class Kind : uint8_t { kTensor, kInt, kFloat, kBool, kStr, kNone, kTuple, kList, kDict, kIdentity };
    Kind kind = Kind::kNone;
    // Tensors.
    std::vector<int64_t> shape;
    PyObject* dtype = nullptr;  // borrowed: dtypes are immortal singletons
    int device = -1;            // get_device(): -1 for CPU
    bool requires_grad = false;
    bool contiguous = true;
    std::vector<int64_t> strides;  // non-empty: the strides must match exactly
    // Scalars and identity.
    int64_t i = 0;
    double f = 0;
    nb::object obj;  // kStr: the string; kIdentity: the object; kDict: keys tuple
    std::vector<Node> items;
  };

 private:
  static Node build_node(nb::handle obj, bool strides);
  static bool check_node(PyObject* obj, const Node& n, std::vector<PyObject*>& tensors);
  static void collect_node(PyObject* obj, const Node& n, std::vector<PyObject*>& tensors);
  Node args_;
  Node kwargs_;
  std::vector<Node> params_;
  std::vector<bool> flags_;
  bool grad_ = true;
  int64_t autocast_ = 0;
  PyObject* default_dtype_ = nullptr;  // borrowed: dtypes are immortal singletons
};

}  // namespace thunder::runtime
