// Capture support: converts between Python objects and trace values while a program is recorded, and
// keeps the aliasing state that makes in-place capture safe.
//
// The Python front end runs the user's function under a TorchFunctionMode with proxy tensors (torch
// tensor subclasses that hold a ProxyHandle). Every torch call is passed here: arguments are converted
// to Values (proxies by handle, other tensors become constant inputs, Python numbers constants), the
// symbol is recorded through the Builder, and outputs come back as proxy tensors.
//
// Aliasing: a proxy produced by a view op shares its "root" with its input. An in-place op on a proxy
// makes a new version: the Python object is re-pointed at the new proxy, and every other proxy sharing
// the root becomes stale. Reading a stale proxy later is an error (thunder would otherwise compute with
// the value from before the mutation), as is an in-place update through a view of a function input.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/builder.h"
#include "runtime/compiled_function.h"

namespace thunder::bindings {

namespace nb = nanobind;

struct ProxyHandle {
  TensorRef ref;
};

class CaptureSession {
 public:
  // `factory(handle, shape, dtype, device, requires_grad)` makes the Python proxy tensor.
  CaptureSession(nb::object factory, nb::handle proxy_type);

  // A trace input for a real tensor (an argument leaf or parameter, in call order).
  nb::object new_input(nb::handle tensor, const std::string& name, int source_index);
  nb::object record(const Symbol* sym, nb::handle args, nb::handle kwargs, const std::string& source);
  nb::object record_opaque(nb::handle fn, const std::string& module, const std::string& name,
                           nb::handle args, nb::handle kwargs, nb::handle meta_out,
                           const std::string& source);
  // Finishes the trace with `output` (any nest of proxies and constants).
  Trace finish(nb::handle output);
  std::vector<runtime::InputSource> sources() const { return sources_; }
  std::vector<std::string> opaque_names() const { return opaque_names_; }

  Value to_value(nb::handle h);
  nb::object to_python(const Value& v);

 private:
  TensorRef input_from_tensor(nb::handle tensor, const std::string& name);
  void check_not_stale(const TensorRef& t) const;
  const TensorProxy* root(const TensorProxy* p) const;
  void after_view(const Value& in, const Value& out);
  nb::object after_inplace(nb::handle self_obj, const TensorRef& old, const Value& out);

  Builder builder_;
  nb::object factory_;
  nb::object proxy_type_;
  std::vector<TensorRef> inputs_;
  std::vector<runtime::InputSource> sources_;
  std::unordered_map<const TensorProxy*, nb::object> py_of_;
  std::unordered_map<PyObject*, TensorRef> constants_;  // closed-over tensors by identity
  std::unordered_map<const TensorProxy*, const TensorProxy*> root_of_;
  std::unordered_map<const TensorProxy*, std::vector<const TensorProxy*>> members_;
  std::unordered_map<const TensorProxy*, std::string> stale_;  // proxy -> why
  std::unordered_set<const TensorProxy*> input_set_;
  std::vector<std::string> opaque_names_;
  std::string source_;
};

// The opaque symbol for a Python callable (created on first use, then reused).
const Symbol* opaque_symbol(nb::handle fn, const std::string& module, const std::string& name);

}  // namespace thunder::bindings
