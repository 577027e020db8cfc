// Type promotion, broadcasting and primitive-calling helpers for decompositions.
#include "ops/lang.h"

#include <algorithm>
#include <unordered_set>

#include "core/error.h"
#include "ir/bound_symbol.h"

namespace thunder::lang {

namespace {

// c10's combine_categories: keeps `higher` unless `lower` is of a higher category.
std::optional<DType> combine(std::optional<DType> higher, std::optional<DType> lower) {
  if (!higher) return lower;
  if (!lower) return higher;
  if (is_complex(*higher)) return higher;
  if (is_complex(*lower)) {
    if (is_floating(*higher)) return to_complex(*higher);
    return lower;
  }
  if (is_floating(*higher)) return higher;
  if (*higher == DType::kBool || is_floating(*lower)) return promote_types(*higher, *lower);
  return higher;
}

void update(std::optional<DType>& slot, DType d) { slot = slot ? promote_types(*slot, d) : d; }

}  // namespace

DType value_dtype(const Value& v, DType default_float) {
  if (v.is_tensor()) return v.as_tensor()->dtype();
  if (v.is_bool()) return DType::kBool;
  if (v.is_int()) return DType::kInt64;
  if (v.is_float()) return default_float;
  throw TypeError("expected a tensor or a number, got " + v.type_name());
}

DType result_type(const std::vector<Value>& operands, DType default_float) {
  std::optional<DType> dim_result, zero_result, wrapped_result;
  for (const Value& v : operands) {
    if (v.is_tensor()) {
      const TensorRef& t = v.as_tensor();
      update(t->rank() == 0 ? zero_result : dim_result, t->dtype());
    } else if (v.is_number()) {
      update(wrapped_result, value_dtype(v, default_float));
    } else if (!v.is_none()) {
      throw TypeError("expected a tensor or a number, got " + v.type_name());
    }
  }
  auto r = combine(dim_result, combine(zero_result, wrapped_result));
  if (!r) throw TypeError("type promotion needs at least one tensor or number");
  return *r;
}

PromotionResult elementwise_promotion(const std::vector<Value>& operands, Promotion kind,
                                      DType default_float) {
  DType t = result_type(operands, default_float);
  auto opmath = [](DType d) { return is_low_precision(d) ? DType::kFloat32 : d; };
  switch (kind) {
    case Promotion::kDefault: return {opmath(t), t};
    case Promotion::kNoOpmath: return {t, t};
    case Promotion::kIntToFloat: {
      DType r = (is_integer(t) || is_bool(t)) ? default_float : t;
      return {opmath(r), r};
    }
    case Promotion::kAlwaysBool: return {opmath(t), DType::kBool};
    case Promotion::kComplexToFloat: return {opmath(t), to_real(t)};
    case Promotion::kBoolToLong: {
      DType r = (is_integer(t) || is_bool(t)) ? DType::kInt64 : t;
      return {opmath(r), r};
    }
  }
  return {t, t};
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())].value();
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())].value();
    if (x != y && x != 1 && y != 1) {
      auto str = [](const Shape& s) {
        std::string r = "[";
        for (size_t k = 0; k < s.size(); ++k) r += (k ? ", " : "") + std::to_string(s[k].value());
        return r + "]";
      };
      throw ValueError("shapes " + str(a) + " and " + str(b) + " cannot be broadcast together");
    }
    out[i] = x == 1 ? y : x;
  }
  return out;
}

int64_t canonical_dim(int64_t dim, int64_t rank) {
  int64_t r = std::max<int64_t>(rank, 1);
  if (dim < -r || dim >= r) {
    throw IndexError("Dimension out of range (expected to be in range of [" + std::to_string(-r) +
                     ", " + std::to_string(r - 1) + "], but got " + std::to_string(dim) + ")");
  }
  return dim < 0 ? dim + r : dim;
}

std::vector<int64_t> canonical_dims(const std::vector<int64_t>& dims, int64_t rank) {
  std::vector<int64_t> out;
  std::unordered_set<int64_t> seen;
  for (int64_t d : dims) {
    int64_t c = canonical_dim(d, rank);
    if (!seen.insert(c).second) {
      throw ValueError("dim " + std::to_string(c) + " appears multiple times in the list of dims");
    }
    out.push_back(c);
  }
  return out;
}

bool requires_grad(const BoundArgs& args) {
  bool rg = false;
  for (const Value& v : args.values()) {
    v.for_each_tensor([&](const TensorRef& t) { rg = rg || t->requires_grad(); });
  }
  return rg;
}

Value call(Builder& b, const Symbol& sym, std::vector<Value> args) {
  return b.call(sym, std::move(args));
}

TensorRef call_t(Builder& b, const Symbol& sym, std::vector<Value> args) {
  Value v = b.call(sym, std::move(args));
  if (!v.is_tensor()) throw Error(sym.qualname() + " did not return a tensor");
  return v.as_tensor();
}

Value philox_dropout(Builder& b, const Value& x, const Value& state, double p) {
  const TensorRef& t = x.as_tensor();
  Value u = b.call(prims::uniform_philox(), {Value::shape(t->shape()), state},
                   {{"device", Value(t->device())}});
  Value keep = b.call(ltorch_symbol("lt"), {u, Value(1.0 - p)});
  Value scaled = b.call(ltorch_symbol("mul"), {x, Value(1.0 / (1.0 - p))});
  return b.call(ltorch_symbol("where"), {keep, scaled, Value(0.0)});
}

TensorRef convert(Builder& b, const TensorRef& t, DType dtype) {
  if (t->dtype() == dtype) return t;
  return call_t(b, prims::convert_element_type(), {Value(t), Value(dtype)});
}

Value convert_value(Builder& b, const Value& v, DType dtype) {
  if (v.is_tensor()) return convert(b, v.as_tensor(), dtype);
  if (!v.is_number()) return v;
  switch (dtype_kind(dtype)) {
    case DTypeKind::kBool: return Value(v.as_double() != 0.0);
    case DTypeKind::kInt: return v.is_float() ? Value(static_cast<int64_t>(v.as_double())) : Value(v.as_int());
    case DTypeKind::kFloat:
    case DTypeKind::kComplex: return Value(v.as_double());
  }
  return v;
}

Value to_compute(Builder& b, const Value& v, const PromotionResult& p) {
  if (v.is_tensor() && p.compute != p.result && is_low_precision(p.result)) {
    const DType d = v.as_tensor()->dtype();
    if (is_bool(d) || is_integer(d))
      return convert(b, convert(b, v.as_tensor(), p.result), p.compute);
  }
  return convert_value(b, v, p.compute);
}

TensorRef expand_to(Builder& b, const TensorRef& t, const Shape& shape) {
  if (t->shape() == shape) return t;
  int64_t offset = static_cast<int64_t>(shape.size()) - t->rank();
  if (offset < 0) throw ValueError("cannot expand " + t->type_string() + " to a lower rank");
  std::vector<int64_t> bdims;
  for (int64_t i = 0; i < t->rank(); ++i) bdims.push_back(i + offset);
  std::vector<int64_t> s;
  for (Dim d : shape) s.push_back(d.value());
  return call_t(b, prims::broadcast_in_dim(), {Value(t), Value::ints(s), Value::ints(bdims)});
}

TensorRef reshape(Builder& b, const TensorRef& t, const Shape& shape) {
  if (t->shape() == shape) return t;
  return call_t(b, prims::reshape(), {Value(t), Value::shape(shape)});
}

TensorRef slice_dim(Builder& b, const TensorRef& t, int64_t dim, int64_t start, int64_t stop,
                    int64_t step) {
  std::vector<int64_t> lo(t->rank(), 0), hi = dims_of(t->shape()), st(t->rank(), 1);
  lo[dim] = start;
  hi[dim] = std::max(start, stop);
  st[dim] = step;
  return call_t(b, prims::slice(), {Value(t), Value::ints(lo), Value::ints(hi), Value::ints(st)});
}

TensorRef transpose(Builder& b, const TensorRef& t, const std::vector<int64_t>& perm) {
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity = identity && perm[i] == static_cast<int64_t>(i);
  if (identity) return t;
  return call_t(b, prims::transpose(), {Value(t), Value::ints(perm)});
}

TensorRef unsqueeze(Builder& b, const TensorRef& t, const std::vector<int64_t>& dims) {
  if (dims.empty()) return t;
  int64_t out_rank = t->rank() + static_cast<int64_t>(dims.size());
  std::vector<int64_t> cd = canonical_dims(dims, out_rank);
  std::unordered_set<int64_t> inserted(cd.begin(), cd.end());
  std::vector<int64_t> shape, bdims;
  int64_t src = 0;
  for (int64_t i = 0; i < out_rank; ++i) {
    if (inserted.count(i)) {
      shape.push_back(1);
    } else {
      shape.push_back(t->shape()[src++].value());
      bdims.push_back(i);
    }
  }
  return call_t(b, prims::broadcast_in_dim(), {Value(t), Value::ints(shape), Value::ints(bdims)});
}

TensorRef full(Builder& b, const Shape& shape, const Value& fill, Device device, DType dtype) {
  std::vector<Value> args = {Value::shape(shape), convert_value(b, fill, dtype)};
  return b.call(prims::full(), std::move(args), {{"device", Value(device)}, {"dtype", Value(dtype)}})
      .as_tensor();
}

TensorRef uniform(Builder& b, const Shape& shape, double lo, double hi, Device device,
                  DType dtype) {
  return b
      .call(prims::uniform(), {Value::shape(shape), Value(lo), Value(hi)},
            {{"device", Value(device)}, {"dtype", Value(dtype)}})
      .as_tensor();
}

Value unary(Builder& b, const Symbol& prim, const Value& a, Promotion kind) {
  if (!a.is_tensor()) throw TypeError(prim.name + "(): argument 'input' must be a Tensor, not " + a.type_name());
  PromotionResult p = elementwise_promotion({a}, kind);
  TensorRef x = convert(b, a.as_tensor(), p.compute);
  TensorRef r = call_t(b, prim, {Value(x)});
  return convert(b, r, p.result);
}

Value binary(Builder& b, const Symbol& prim, const Value& a, const Value& c, Promotion kind) {
  if (!a.is_tensor() && !c.is_tensor()) {
    throw TypeError(prim.name + "(): expected at least one tensor operand, got " + a.type_name() +
                    " and " + c.type_name());
  }
  PromotionResult p = elementwise_promotion({a, c}, kind);
  DType compute = kind == Promotion::kAlwaysBool ? result_type({a, c}) : p.compute;
  Shape shape;
  if (a.is_tensor()) shape = a.as_tensor()->shape();
  if (c.is_tensor()) shape = a.is_tensor() ? broadcast_shapes(shape, c.as_tensor()->shape()) : c.as_tensor()->shape();
  auto prep = [&](const Value& v) -> Value {
    Value w = kind == Promotion::kAlwaysBool ? convert_value(b, v, compute) : to_compute(b, v, p);
    if (w.is_tensor()) {
      const TensorRef& t = w.as_tensor();
      // A zero-dim tensor on another device (a CPU scalar with a CUDA tensor) broadcasts like a number.
      w = expand_to(b, t, shape);
    }
    return w;
  };
  Value x = prep(a), y = prep(c);
  TensorRef r = call_t(b, prim, {x, y});
  return convert(b, r, p.result);
}

TensorRef keep_dims(Builder& b, const TensorRef& reduced, const Shape& original,
                    const std::vector<int64_t>& dims) {
  std::unordered_set<int64_t> red(dims.begin(), dims.end());
  std::vector<int64_t> shape, bdims;
  int64_t src = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(original.size()); ++i) {
    if (red.count(i)) {
      shape.push_back(1);
    } else {
      shape.push_back(reduced->shape()[src++].value());
      bdims.push_back(i);
    }
  }
  return call_t(b, prims::broadcast_in_dim(),
                {Value(reduced), Value::ints(shape), Value::ints(bdims)});
}

TensorRef reduce(Builder& b, const Symbol& prim, const TensorRef& a,
                 const std::vector<int64_t>& dims_in, bool keepdim, std::optional<DType> dtype) {
  std::vector<int64_t> dims;
  if (dims_in.empty()) {
    for (int64_t i = 0; i < a->rank(); ++i) dims.push_back(i);
  } else {
    dims = canonical_dims(dims_in, a->rank());
  }
  TensorRef x = a;
  DType result = dtype ? *dtype : a->dtype();
  if (!dtype && (&prim == &prims::sum() || &prim == &prims::prod()) &&
      (is_integer(a->dtype()) || is_bool(a->dtype()))) {
    result = DType::kInt64;
  }
  DType compute = is_low_precision(result) ? DType::kFloat32 : result;
  x = convert(b, x, compute);
  TensorRef r = call_t(b, prim, {Value(x), Value::ints(dims)});
  r = convert(b, r, result);
  if (keepdim) r = keep_dims(b, r, a->shape(), dims);
  return r;
}

std::string ints_str(const std::vector<int64_t>& v) {
  std::string r = "[";
  for (size_t i = 0; i < v.size(); ++i) r += (i ? ", " : "") + std::to_string(v[i]);
  return r + "]";
}

std::vector<int64_t> dims_of(const Shape& s) {
  std::vector<int64_t> v;
  for (Dim d : s) v.push_back(d.value());
  return v;
}

}  // namespace thunder::lang
