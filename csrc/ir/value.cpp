// Value accessors and structural equality.
#include "ir/value.h"

#include "core/error.h"

namespace thunder {

std::string TensorProxy::type_string() const {
  std::string s = device_.str() + " " + dtype_short_name(dtype_) + "[";
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape_[i].value());
  }
  return s + "]";
}

namespace {
Value make_seq(Seq::Kind kind, std::vector<Value> items, std::vector<Value> keys = {}) {
  auto s = std::make_shared<Seq>();
  s->kind = kind;
  s->items = std::move(items);
  s->keys = std::move(keys);
  return Value(SeqPtr(std::move(s)));
}
}  // namespace

Value Value::list(std::vector<Value> items) { return make_seq(Seq::Kind::kList, std::move(items)); }
Value Value::tuple(std::vector<Value> items) {
  return make_seq(Seq::Kind::kTuple, std::move(items));
}
Value Value::dict(std::vector<Value> keys, std::vector<Value> values) {
  return make_seq(Seq::Kind::kDict, std::move(values), std::move(keys));
}
Value Value::ints(const std::vector<int64_t>& xs) {
  std::vector<Value> items(xs.begin(), xs.end());
  return tuple(std::move(items));
}
Value Value::shape(const Shape& s) {
  std::vector<Value> items;
  items.reserve(s.size());
  for (Dim d : s) items.emplace_back(d.value());
  return tuple(std::move(items));
}

std::string Value::type_name() const {
  switch (v_.index()) {
    case 0: return "None";
    case 1: return "bool";
    case 2: return "int";
    case 3: return "float";
    case 4: return "str";
    case 5: return "torch.dtype";
    case 6: return "torch.device";
    case 7: return "slice";
    case 8: return "ellipsis";
    case 9: {
      auto k = as_seq().kind;
      return k == Seq::Kind::kList ? "list" : k == Seq::Kind::kTuple ? "tuple" : "dict";
    }
    case 10: return "Tensor";
    case 11: return "object";
  }
  return "?";
}

#define THUNDER_VALUE_GET(T, what)                                                             \
  if (auto p = std::get_if<T>(&v_)) return *p;                                               \
  throw TypeError(std::string("expected ") + what + ", got " + type_name())

bool Value::as_bool() const { THUNDER_VALUE_GET(bool, "a bool"); }
int64_t Value::as_int() const {
  if (auto b = std::get_if<bool>(&v_)) return *b ? 1 : 0;
  THUNDER_VALUE_GET(int64_t, "an int");
}
double Value::as_double() const {
  if (auto b = std::get_if<bool>(&v_)) return *b ? 1.0 : 0.0;
  if (auto i = std::get_if<int64_t>(&v_)) return static_cast<double>(*i);
  THUNDER_VALUE_GET(double, "a number");
}
const std::string& Value::as_string() const { THUNDER_VALUE_GET(std::string, "a string"); }
DType Value::as_dtype() const { THUNDER_VALUE_GET(DType, "a dtype"); }
Device Value::as_device() const {
  if (auto s = std::get_if<std::string>(&v_)) return Device::parse(*s);
  THUNDER_VALUE_GET(Device, "a device");
}
const Slice& Value::as_slice() const { THUNDER_VALUE_GET(Slice, "a slice"); }
const TensorRef& Value::as_tensor() const { THUNDER_VALUE_GET(TensorRef, "a tensor"); }
const Opaque& Value::as_opaque() const { THUNDER_VALUE_GET(Opaque, "an object"); }
const Seq& Value::as_seq() const {
  if (auto p = std::get_if<SeqPtr>(&v_)) return **p;
  throw TypeError("expected a sequence, got " + type_name());
}
#undef THUNDER_VALUE_GET

const std::vector<Value>& Value::items() const {
  const Seq& s = as_seq();
  if (s.kind == Seq::Kind::kDict) throw TypeError("expected a list or tuple, got dict");
  return s.items;
}

std::vector<int64_t> Value::as_int_list() const {
  if (is_int()) return {as_int()};
  std::vector<int64_t> out;
  for (const Value& v : items()) {
    if (!v.is_int() && !v.is_bool()) {
      throw TypeError("expected a sequence of ints, found an element of type " + v.type_name());
    }
    out.push_back(v.as_int());
  }
  return out;
}

bool Value::operator==(const Value& o) const {
  if (v_.index() != o.v_.index()) return false;
  if (is_seq()) {
    const Seq& a = as_seq();
    const Seq& b = o.as_seq();
    return a.kind == b.kind && a.items == b.items && a.keys == b.keys;
  }
  if (is_float()) {
    double a = as_double(), b = o.as_double();
    return a == b || (a != a && b != b);  // NaN constants are equal to themselves
  }
  return v_ == o.v_;
}

}  // namespace thunder
