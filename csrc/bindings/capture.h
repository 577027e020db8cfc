// Capture support: converts between Python objects and trace values while a program is recorded, and
// keeps the aliasing state that makes in-place capture safe.
//
// The Python front end runs the user's function under a TorchFunctionMode with proxy tensors (torch
// tensor subclasses that hold a ProxyHandle). Every torch call is passed here: arguments are converted
// to Values (proxies by handle, other tensors become constant inputs, Python numbers constants), the
// symbol is recorded through the Builder, and outputs come back as proxy tensors.
//
// Aliasing: a proxy produced by a view op shares its "root" with its input. An in-place op on a proxy
// makes a new version: the Python object is re-pointed at the new proxy. An in-place update through a
// view is propagated: the new value is scattered back through the chain of views into the root
// (setitem for indexing, select, narrow and split outputs; the inverse permutation for transposes;
// a reshape back for reshapes of contiguous tensors), the root's update is recorded as a copy_ (so a
// function input gets its write-back), and every other view of the root is recomputed from the new
// root. Where a view in the chain has no inverse (expand, diagonal, opaque views), the other aliases
// become stale instead: reading one is an error, as is such an update through a view of an input.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <optional>
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
  // The indices (in input order) of the inputs updated in place.
  std::vector<int> updated_inputs() const;
  // Whether the trace reads this tensor as a constant (a tensor attribute or global it closed
  // over).
  bool holds_constant(nb::handle tensor) const { return constants_.count(tensor.ptr()) != 0; }

  Value to_value(nb::handle h);
  nb::object to_python(const Value& v);

 private:
  TensorRef input_from_tensor(nb::handle tensor, const std::string& name);
  void check_not_stale(const TensorRef& t) const;
  const TensorProxy* root(const TensorProxy* p) const;
  void after_view(const Value& in, const Value& out, const BSymRef& bsym = nullptr);
  nb::object after_inplace(nb::handle self_obj, const TensorRef& old, const Value& out);
  // How a view was made from its parent: the view bound symbol and, for multi-output views, which
  // output it is.
  struct ViewDef {
    const TensorProxy* parent = nullptr;
    BSymRef bsym;
    int output_index = -1;
    bool grad = true;  // the grad mode it was taken in (its replays are recorded in it)
  };
  // The parent's new value when the view `def` of it gets `updated` (nullopt: no inverse).
  std::optional<Value> scatter_into_parent(const ViewDef& def, const TensorRef& parent,
                                           const TensorRef& updated);
  // The view `def` replayed on a new parent.
  std::optional<TensorRef> replay_view(const ViewDef& def, const TensorRef& parent);
  // Propagates an in-place update of view `old` (now `updated`) to its root and the root's other
  // views. False when some view in the chain has no inverse.
  bool propagate_view_update(const TensorProxy* old, const TensorRef& updated);
  void repoint(const TensorProxy* from, const TensorRef& to);
  // Recomputes every view of root `r` from its new version `nr` (views without an inverse go stale).
  void refresh_views(const TensorProxy* r, const TensorRef& nr);
  // The next version of a leaf input that requires grad, updated to `value` without history
  // (prims.leaf_update: what reads it differentiates with respect to the leaf).
  TensorRef leaf_update(const TensorRef& leaf, const TensorRef& value);
  // True when `view` reaches its root through a detach (.detach(), .data).
  bool detached(const TensorProxy* view) const;
  bool invertible(const ViewDef& def);
  // Why a stale alias cannot be read (with the current source line).
  std::string stale_reason() const;
  // " (at <the user's line>)" for the call being recorded, or "".
  std::string at_source() const;
  // Whether the proxy's layout (as eager would have it) is contiguous.
  bool contiguous(const TensorProxy* p);

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
  std::unordered_map<const TensorProxy*, ViewDef> view_def_;
  std::unordered_map<const TensorProxy*, TensorRef> ref_of_;  // proxy -> owning reference
  std::unordered_set<const TensorProxy*> input_set_;
  // The inputs that are leaves requiring grad, and their later versions (prims.leaf_update).
  std::unordered_set<const TensorProxy*> grad_leaf_inputs_;
  // The inputs that require grad and are not leaves (an update of one with grad on warns).
  std::unordered_set<const TensorProxy*> grad_nonleaf_inputs_;
  std::unordered_set<const TensorProxy*> warned_nonleaf_;  // warned once each
  std::vector<std::string> opaque_names_;
  std::unordered_set<const TensorProxy*> updated_;  // inputs updated in place
  std::string source_;
};

// The opaque symbol for a Python callable (created on first use, then reused).
const Symbol* opaque_symbol(nb::handle fn, const std::string& module, const std::string& name);

}  // namespace thunder::bindings
