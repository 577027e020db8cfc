// Values of the trace IR: tensor proxies (symbolic stand-ins for tensors) and the constants that appear
// as arguments (numbers, strings, dtypes, devices, slices, nested sequences).
//
// Proxies are immutable and shared: a bound symbol names its inputs and outputs by pointer, and two uses
// of the same value are the same pointer. A proxy's name is unique within the trace that created it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/device.h"
#include "core/dim.h"
#include "core/dtype.h"

namespace thunder {

class TensorProxy {
 public:
  TensorProxy(std::string name, Shape shape, DType dtype, Device device, bool requires_grad)
      : name_(std::move(name)),
        shape_(std::move(shape)),
        dtype_(dtype),
        device_(device),
        requires_grad_(requires_grad) {}

  const std::string& name() const { return name_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const { return thunder::numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool requires_grad() const { return requires_grad_; }
  // "cpu f32[4, 2048]"
  std::string type_string() const;

 private:
  std::string name_;
  Shape shape_;
  DType dtype_;
  Device device_;
  bool requires_grad_;
};

using TensorRef = std::shared_ptr<const TensorProxy>;

struct NoneT {
  bool operator==(const NoneT&) const = default;
};
struct EllipsisT {
  bool operator==(const EllipsisT&) const = default;
};
struct Slice {
  std::optional<int64_t> start, stop, step;
  bool operator==(const Slice&) const = default;
};
// A Python object the core carries without interpreting it (a memory_format, a generator, a module
// passed to an opaque op...). `handle` indexes the bindings' object table; `repr` is how it prints.
// `owner`, when set, keeps the table entry alive: the entry is released when the last Value
// holding it goes away (runtime/objects.h, owned_object).
struct Opaque {
  int64_t handle = -1;
  std::string repr;
  std::shared_ptr<const void> owner;
  bool operator==(const Opaque& o) const { return handle == o.handle; }
};

struct Seq;
using SeqPtr = std::shared_ptr<const Seq>;

class Value {
 public:
  using Variant = std::variant<NoneT, bool, int64_t, double, std::string, DType, Device, Slice,
                               EllipsisT, SeqPtr, TensorRef, Opaque>;

  Value() : v_(NoneT{}) {}
  Value(NoneT) : v_(NoneT{}) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(static_cast<int64_t>(v)) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(DType d) : v_(d) {}
  Value(Device d) : v_(d) {}
  Value(Slice s) : v_(s) {}
  Value(EllipsisT e) : v_(e) {}
  Value(SeqPtr s) : v_(std::move(s)) {}
  Value(TensorRef t) : v_(std::move(t)) {}
  Value(Opaque o) : v_(std::move(o)) {}

  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value dict(std::vector<Value> keys, std::vector<Value> values);
  static Value ints(const std::vector<int64_t>& xs);  // a tuple of ints
  static Value shape(const Shape& s);                 // a tuple of ints

  const Variant& variant() const { return v_; }
  bool is_none() const { return std::holds_alternative<NoneT>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_bool() || is_int() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_dtype() const { return std::holds_alternative<DType>(v_); }
  bool is_device() const { return std::holds_alternative<Device>(v_); }
  bool is_slice() const { return std::holds_alternative<Slice>(v_); }
  bool is_ellipsis() const { return std::holds_alternative<EllipsisT>(v_); }
  bool is_seq() const { return std::holds_alternative<SeqPtr>(v_); }
  bool is_tensor() const { return std::holds_alternative<TensorRef>(v_); }
  bool is_opaque() const { return std::holds_alternative<Opaque>(v_); }

  bool as_bool() const;        // bool only
  int64_t as_int() const;      // int or bool
  double as_double() const;    // any number
  const std::string& as_string() const;
  DType as_dtype() const;
  Device as_device() const;
  const Slice& as_slice() const;
  const Seq& as_seq() const;
  const TensorRef& as_tensor() const;
  const Opaque& as_opaque() const;
  // A sequence of ints (list or tuple), or a single int promoted to a one-element vector.
  std::vector<int64_t> as_int_list() const;
  // The items of a list or tuple.
  const std::vector<Value>& items() const;

  // Visits every tensor proxy inside this value (recursing into sequences).
  template <typename F>
  void for_each_tensor(F&& f) const;

  // Structural equality (proxies compare by identity).
  bool operator==(const Value& o) const;

  // Type name for error messages ("int", "Tensor", "tuple", ...).
  std::string type_name() const;

 private:
  Variant v_;
};

struct Seq {
  enum class Kind : uint8_t { kList, kTuple, kDict };
  Kind kind = Kind::kTuple;
  std::vector<Value> items;  // the values (for a dict, in key order)
  std::vector<Value> keys;   // dict keys; empty otherwise
};

template <typename F>
void Value::for_each_tensor(F&& f) const {
  if (is_tensor()) {
    f(as_tensor());
  } else if (is_seq()) {
    for (const Value& v : as_seq().items) v.for_each_tensor(f);
  }
}

// Rebuilds `v` with every tensor proxy replaced by `f(proxy)` (a Value).
template <typename F>
Value map_tensors(const Value& v, F&& f) {
  if (v.is_tensor()) return f(v.as_tensor());
  if (!v.is_seq()) return v;
  const Seq& s = v.as_seq();
  auto out = std::make_shared<Seq>();
  out->kind = s.kind;
  out->keys = s.keys;
  out->items.reserve(s.items.size());
  for (const Value& item : s.items) out->items.push_back(map_tensors(item, f));
  return Value(SeqPtr(std::move(out)));
}

}  // namespace thunder
