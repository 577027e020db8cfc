// The output-checking wrapper of user-written implementations.
#include "runtime/output_check.h"

#include <nanobind/stl/string.h>

#include <atomic>

#include "core/error.h"
#include "ir/printer.h"
#include "runtime/objects.h"

namespace nb = nanobind;

namespace thunder::runtime {

namespace {

std::string py_type_name(nb::handle h) { return Py_TYPE(h.ptr())->tp_name; }

std::string text(nb::handle h) { return nb::cast<std::string>(nb::str(h)); }

std::string describe(nb::handle h) {
  if (!is_tensor(h.ptr())) return "a " + py_type_name(h);
  std::string shape;
  for (nb::handle d : h.attr("shape")) shape += (shape.empty() ? "" : ", ") + text(d);
  return "a tensor of shape (" + shape + "), dtype " + text(nb::object(h.attr("dtype"))) +
         ", device " + text(nb::object(h.attr("device")));
}

std::string declared(const TensorRef& t) {
  std::string shape;
  for (Dim d : t->shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(d.value());
  return "a tensor of shape (" + shape + "), dtype torch." + std::string(dtype_name(t->dtype())) +
         ", device " + t->device().str();
}

class OutputCheck {
 public:
  OutputCheck(nb::object fn, Value expected, std::string op)
      : fn_(std::move(fn)), expected_(std::move(expected)), op_(std::move(op)) {}

  nb::object call(nb::args args, nb::kwargs kwargs) {
    nb::object r = fn_(*args, **kwargs);
    bool full = !checked_.exchange(true);
    check(expected_, r, "its result", full);
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& got, const std::string& want) {
    checked_ = false;
    throw Error(op_ + ": " + where + " is " + got + ", but its meta function declared " + want +
                "; make the meta function describe what the implementation returns");
  }

  void check(const Value& want, nb::handle got, const std::string& where, bool full) {
    if (want.is_tensor()) {
      const TensorRef& t = want.as_tensor();
      if (!is_tensor(got.ptr())) fail(where, "a " + py_type_name(got), declared(t));
      if (!full) return;
      nb::object shape = got.attr("shape");
      bool same = nb::len(shape) == t->shape().size();
      if (same) {
        size_t i = 0;
        for (nb::handle d : shape) same = same && nb::cast<int64_t>(d) == t->shape()[i++].value();
      }
      DType dt;
      same = same && dtype_of(got.attr("dtype").ptr(), &dt) && dt == t->dtype();
      std::string want_type = t->device().str();
      want_type = want_type.substr(0, want_type.find(':'));
      same = same && nb::cast<std::string>(got.attr("device").attr("type")) == want_type;
      if (!same) fail(where, describe(got), declared(t));
      return;
    }
    if (!want.is_seq() || want.as_seq().kind == Seq::Kind::kDict) return;
    bool has = false;
    want.for_each_tensor([&](const TensorRef&) { has = true; });
    if (!has) return;
    const Seq& s = want.as_seq();
    if (!PyTuple_Check(got.ptr()) && !PyList_Check(got.ptr())) {
      fail(where, "a " + py_type_name(got), std::to_string(s.items.size()) + " values");
    }
    if (nb::len(got) != s.items.size()) {
      fail(where, std::to_string(nb::len(got)) + " values", std::to_string(s.items.size()));
    }
    for (size_t i = 0; i < s.items.size(); ++i) {
      check(s.items[i], got[i], where + "[" + std::to_string(i) + "]", full);
    }
  }

  nb::object fn_;
  Value expected_;
  std::string op_;
  std::atomic<bool> checked_{false};
};

}  // namespace

nb::object checked_callable(nb::object fn, const Value& expected, std::string op) {
  return nb::cast(new OutputCheck(std::move(fn), expected, std::move(op)), nb::rv_policy::take_ownership);
}

void bind_output_check(nb::module_& m) {
  nb::class_<OutputCheck>(m, "_OutputCheck").def("__call__", &OutputCheck::call);
}

}  // namespace thunder::runtime
