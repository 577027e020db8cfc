// Torch-level creation and conversion ops: arange, linspace, eye, zeros/ones/full/empty (and their
// _like and Tensor.new_ forms), the random tensors rand/randn/randint, and the dtype and device
// conversions (Tensor.to, Tensor.float and friends, type_as, clone, detach).
//
// dtype None means the default float dtype (float32) unless PyTorch infers another one from the
// arguments (integer arange, full with an int or bool fill); device None means the CPU, or the
// input's device for the _like and new_ forms. A conversion that changes nothing returns its input itself,
// which records nothing and keeps PyTorch's aliasing. Ops that cannot be decomposed for the given
// arguments (a device change, a generator, requires_grad=True) are recorded without sub-symbols.
#include <cmath>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ir/printer.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

namespace {

bool differentiable(DType d) { return is_floating(d) || is_complex(d); }

// A device argument: None (the fallback), a torch.device, a string ("cuda:1") or a CUDA index.
Device device_arg(const BoundArgs& a, size_t i, Device fallback) {
  const Value& v = a[i];
  Device d;
  if (v.is_none()) return fallback;
  if (v.is_device()) {
    d = v.as_device();
  } else if (v.is_string()) {
    d = Device::parse(v.as_string());
  } else if (v.is_int() && !v.is_bool()) {
    d = Device{DeviceType::kCUDA, static_cast<int16_t>(v.as_int())};
  } else {
    throw TypeError(a.symbol().name + "(): argument 'device' must be torch.device, not " +
                    v.type_name());
  }
  // Tensors on CUDA always carry an index; "cuda" means the current device.
  if (d.type == DeviceType::kCUDA && d.index < 0) d.index = 0;
  return d;
}

// A size argument (varargs or one sequence), checked for negative extents as PyTorch does.
Shape size_arg(const BoundArgs& a, size_t i) {
  std::vector<int64_t> v = a.ints(i);
  for (int64_t d : v) {
    if (d < 0) {
      std::string s = "[";
      for (size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
      throw Error("Trying to create tensor with negative dimension " + std::to_string(d) + ": " +
                  s + "]");
    }
  }
  return Shape(v.begin(), v.end());
}

// The dtype of a fill value when none is given: bool, int64 or the default float.
DType fill_dtype(const Value& fill) {
  if (fill.is_tensor()) return fill.as_tensor()->dtype();
  return lang::value_dtype(fill, default_float_dtype());
}

void check_number(const BoundArgs& a, size_t i) {
  if (a[i].is_tensor()) {
    throw NotImplementedError(a.symbol().name + "(): a tensor '" +
                              a.symbol().signature.params()[i].name +
                              "' depends on tensor values; pass a Python number");
  }
  if (!a[i].is_number()) {
    throw TypeError(a.symbol().name + "(): argument '" + a.symbol().signature.params()[i].name +
                    "' must be Number, not " + a[i].type_name());
  }
}

// What a creation op produces: the metadata, and whether it can be decomposed (requires_grad=True
// makes a leaf that needs grad, which no primitive produces).
struct Target {
  Shape shape;
  DType dtype;
  Device device;
  bool requires_grad = false;
};

// Reads `*, dtype, layout, device, requires_grad` at `first_kw` (the index of dtype).
Target creation_target(const BoundArgs& a, size_t first_kw, Shape shape, DType default_dtype,
                       Device default_device) {
  Target t;
  t.shape = std::move(shape);
  t.dtype = a.optional_dtype(first_kw).value_or(default_dtype);
  t.device = device_arg(a, first_kw + 2, default_device);
  t.requires_grad = a.bool_(first_kw + 3);
  if (t.requires_grad && !differentiable(t.dtype)) {
    throw Error("Only Tensors of floating point and complex dtype can require gradients");
  }
  return t;
}

// A tensor filled with `fill`, or an undecomposed result when it must require grad.
Value make_full(Builder& b, const Target& t, const Value& fill) {
  if (t.requires_grad) return b.new_tensor(t.shape, t.dtype, t.device, true);
  return lang::full(b, t.shape, fill, t.device, t.dtype);
}

// zeros/ones/empty(*size, dtype=None, layout=None, device=None, requires_grad=False, ...)
template <int kFill>
Value filled_meta(Builder& b, const BoundArgs& a) {
  Target t = creation_target(a, 1, size_arg(a, 0), default_float_dtype(), Device::cpu());
  return make_full(b, t, Value(int64_t{kFill}));
}

// full(size, fill_value, *, dtype=None, ...)
Value full_meta(Builder& b, const BoundArgs& a) {
  check_number(a, 1);
  Target t = creation_target(a, 2, size_arg(a, 0), fill_dtype(a[1]), Device::cpu());
  return make_full(b, t, a[1]);
}

// zeros_like/ones_like/empty_like(input, *, dtype=None, layout=None, device=None, ...)
template <int kFill>
Value filled_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  Target t = creation_target(a, 1, x->shape(), x->dtype(), x->device());
  return make_full(b, t, Value(int64_t{kFill}));
}

// full_like(input, fill_value, *, dtype=None, ...)
Value full_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  check_number(a, 1);
  Target t = creation_target(a, 2, x->shape(), x->dtype(), x->device());
  return make_full(b, t, a[1]);
}

// Tensor.zero_(input), Tensor.fill_(input, value): value a number or a 0-d tensor.
Value zero_inplace_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return lang::full(b, x->shape(), Value(int64_t{0}), x->device(), x->dtype());
}

Value fill_inplace_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (a[1].is_tensor()) {
    const TensorRef& v = a[1].as_tensor();
    if (!v->shape().empty()) {
      throw ValueError("fill_ only supports 0-dimension value tensor but got tensor with " +
                       std::to_string(v->shape().size()) + " dimensions.");
    }
    return lang::expand_to(b, lang::convert(b, v, x->dtype()), x->shape());
  }
  check_number(a, 1);
  return lang::full(b, x->shape(), a[1], x->device(), x->dtype());
}

// The random in-place fills x.uniform_(from, to), x.normal_(mean, std) and x.bernoulli_(p): the new
// version is a fresh draw of the input's shape and device, made in fp32 for lower-precision floats
// and converted to the input's dtype. A generator cannot be honoured (the primitives draw from the
// default generator), so it is refused rather than ignored.
void reject_generator(const BoundArgs& a, size_t i) {
  if (!a[i].is_none()) {
    throw NotImplementedError(a.symbol().name +
                              ": generator= is not supported; call it outside the jitted function");
  }
}

// The dtype a random fill of an x of dtype `d` draws in: float64 for float64, else float32.
DType draw_dtype(DType d) { return d == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32; }

template <bool kNormal>
Value random_fill_inplace_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  reject_generator(a, 3);
  if (!is_floating(x->dtype())) {
    throw Error(std::string(kNormal ? "\"normal_kernel_cpu\"" : "\"check_uniform_bounds\"") +
                " not implemented for '" + dtype_name(x->dtype()) + "'");
  }
  double p1 = a.number(1), p2 = a.number(2);
  const DType compute = draw_dtype(x->dtype());
  TensorRef r;
  if (kNormal) {
    if (!(p2 >= 0.0))
      throw Error("normal expects std >= 0.0, but found std " + python_repr(Value(p2)));
    r = b.call(prims::randn(), {Value::shape(x->shape())},
               {{"device", Value(x->device())}, {"dtype", Value(compute)}})
            .as_tensor();
    r = lang::call_t(b, prims::add(),
                     {Value(lang::call_t(b, prims::mul(), {Value(r), Value(p2)})), Value(p1)});
  } else {
    if (p1 > p2) {
      throw Error("uniform_ expects to return a [from, to) range, but found from=" +
                  python_repr(Value(p1)) + " > to=" + python_repr(Value(p2)));
    }
    r = lang::uniform(b, x->shape(), p1, p2, x->device(), compute);
  }
  return lang::convert(b, r, x->dtype());
}

// x.bernoulli_(p=0.5): 1 where a uniform draw falls below p (a number, or a tensor broadcast to x).
Value bernoulli_inplace_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  reject_generator(a, 2);
  const DType compute = draw_dtype(x->dtype());
  Value p = a[1];
  if (p.is_tensor()) {
    TensorRef pt = p.as_tensor();
    if (!is_floating(pt->dtype())) {
      throw Error(std::string("expected probabilities tensor to have floating type, got ") +
                  dtype_name(pt->dtype()));
    }
    p = Value(lang::expand_to(b, lang::convert(b, pt, compute), x->shape()));
  } else {
    double pv = a.number(1);
    if (!(pv >= 0.0 && pv <= 1.0)) {
      throw Error("bernoulli_ expects p to be in [0, 1], but got p=" + python_repr(Value(pv)));
    }
  }
  TensorRef u = lang::uniform(b, x->shape(), 0.0, 1.0, x->device(), compute);
  return lang::convert(b, lang::call_t(b, prims::lt(), {Value(u), p}), x->dtype());
}

// Tensor.new_zeros/new_ones/new_empty(input, *size, dtype=None, ...)
template <int kFill>
Value new_filled_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  Target t = creation_target(a, 2, size_arg(a, 1), x->dtype(), x->device());
  return make_full(b, t, Value(int64_t{kFill}));
}

// Tensor.new_full(input, size, fill_value, *, dtype=None, ...)
Value new_full_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  check_number(a, 2);
  Target t = creation_target(a, 3, size_arg(a, 1), x->dtype(), x->device());
  return make_full(b, t, a[2]);
}

// arange(start=0, end=None, step=1, *, dtype=None, ...): arange(end) when end is None. The dtype is
// int64 unless a bound or the step is a float.
Value arange_meta(Builder& b, const BoundArgs& a) {
  for (size_t i = 0; i < 3; ++i) {
    if (!a[i].is_none()) check_number(a, i);
  }
  Value start = a[0], end = a[1], step = a[2];
  if (end.is_none()) {
    end = start;
    start = Value(int64_t{0});
  }
  bool any_float = start.is_float() || end.is_float() || step.is_float();
  DType dtype = a.optional_dtype(3).value_or(any_float ? default_float_dtype() : DType::kInt64);
  if (is_bool(dtype)) throw NotImplementedError("\"arange_cpu\" not implemented for 'Bool'");
  double s = start.as_double(), e = end.as_double(), st = step.as_double();
  if (st == 0) throw Error("step must be nonzero");
  if (!std::isfinite(s) || !std::isfinite(e)) {
    throw Error("unsupported range: " + std::to_string(s) + " -> " + std::to_string(e));
  }
  if ((st > 0 && e < s) || (st < 0 && e > s)) {
    throw Error("upper bound and lower bound inconsistent with step sign");
  }
  int64_t length = static_cast<int64_t>(std::ceil((e - s) / st));
  Target t = creation_target(a, 3, {length}, dtype, Device::cpu());
  if (t.requires_grad) return b.new_tensor(t.shape, t.dtype, t.device, true);
  return b.call(prims::iota(), {Value(length)},
                {{"start", start}, {"step", step}, {"device", Value(t.device)},
                 {"dtype", Value(dtype)}});
}

TensorRef iota(Builder& b, int64_t n, const Value& start, const Value& step, Device device,
               DType dtype) {
  return b
      .call(prims::iota(), {Value(n)},
            {{"start", start}, {"step", step}, {"device", Value(device)}, {"dtype", Value(dtype)}})
      .as_tensor();
}

// linspace(start, end, steps, *, dtype=None, ...), computed as PyTorch's kernel does: the first
// half counts up from start, the second half down from end.
Value linspace_meta(Builder& b, const BoundArgs& a) {
  check_number(a, 0);
  check_number(a, 1);
  int64_t steps = a.int_(2);
  if (steps < 0) throw Error("linspace(): number of steps must be non-negative");
  Target t = creation_target(a, 3, {steps}, default_float_dtype(), Device::cpu());
  if (t.requires_grad) return b.new_tensor(t.shape, t.dtype, t.device, true);
  if (steps <= 1) return lang::full(b, t.shape, a[0], t.device, t.dtype);
  // Integral results are computed in float64, floating ones in their opmath type.
  DType compute = is_floating(t.dtype) ? (is_low_precision(t.dtype) ? DType::kFloat32 : t.dtype)
                                       : DType::kFloat64;
  double s = a[0].as_double(), e = a[1].as_double();
  double step = (e - s) / static_cast<double>(steps - 1);
  if (compute == DType::kFloat32) {
    float sf = static_cast<float>(s), ef = static_cast<float>(e);
    step = static_cast<double>((ef - sf) / static_cast<float>(steps - 1));
  }
  Device dev = t.device;
  TensorRef idx = iota(b, steps, Value(int64_t{0}), Value(int64_t{1}), dev, DType::kInt64);
  TensorRef ridx = iota(b, steps, Value(steps - 1), Value(int64_t{-1}), dev, compute);
  TensorRef fidx = lang::convert(b, idx, compute);
  TensorRef up = lang::call_t(b, prims::mul(), {Value(fidx), Value(step)});
  up = lang::call_t(b, prims::add(), {Value(up), Value(s)});
  TensorRef down = lang::call_t(b, prims::mul(), {Value(ridx), Value(step)});
  down = lang::call_t(b, prims::sub(), {Value(e), Value(down)});
  TensorRef first_half = lang::call_t(b, prims::lt(), {Value(idx), Value(steps / 2)});
  TensorRef r = lang::call_t(b, prims::where(), {Value(first_half), Value(up), Value(down)});
  return lang::convert(b, r, t.dtype);
}

// eye(n, m=None, *, dtype=None, ...): iota(n)[:, None] == iota(m)[None, :].
Value eye_meta(Builder& b, const BoundArgs& a) {
  int64_t n = a.int_(0);
  int64_t m = a[1].is_none() ? n : a.int_(1);
  if (n < 0) throw Error("n must be greater or equal to 0, got " + std::to_string(n));
  if (m < 0) throw Error("m must be greater or equal to 0, got " + std::to_string(m));
  Target t = creation_target(a, 2, {n, m}, default_float_dtype(), Device::cpu());
  if (t.requires_grad) return b.new_tensor(t.shape, t.dtype, t.device, true);
  Value one(int64_t{1}), zero(int64_t{0});
  TensorRef rows = iota(b, n, zero, one, t.device, DType::kInt64);
  TensorRef cols = iota(b, m, zero, one, t.device, DType::kInt64);
  rows = lang::call_t(b, prims::broadcast_in_dim(),
                      {Value(rows), Value::ints({n, m}), Value::ints({0})});
  cols = lang::call_t(b, prims::broadcast_in_dim(),
                      {Value(cols), Value::ints({n, m}), Value::ints({1})});
  TensorRef eq = lang::call_t(b, prims::eq(), {Value(rows), Value(cols)});
  return lang::convert(b, eq, t.dtype);
}

// A random tensor: uniform on [0, 1) or standard normal. A generator makes it undecomposable (the
// primitives draw from the default generator).
template <bool kNormal>
Value random_tensor(Builder& b, const Target& t, bool has_generator) {
  if (!is_floating(t.dtype) && !is_complex(t.dtype)) {
    throw Error(std::string(kNormal ? "\"normal_kernel_cpu\"" : "\"check_uniform_bounds\"") +
                " not implemented for '" + dtype_name(t.dtype) + "'");
  }
  if (t.requires_grad || has_generator) {
    return b.new_tensor(t.shape, t.dtype, t.device, t.requires_grad);
  }
  std::vector<std::pair<std::string, Value>> kw = {{"device", Value(t.device)},
                                                   {"dtype", Value(t.dtype)}};
  if (kNormal) return b.call(prims::randn(), {Value::shape(t.shape)}, std::move(kw));
  return b.call(prims::uniform(), {Value::shape(t.shape), Value(0.0), Value(1.0)}, std::move(kw));
}

// rand/randn(*size, generator=None, dtype=None, ...)
template <bool kNormal>
Value rand_meta(Builder& b, const BoundArgs& a) {
  Target t = creation_target(a, 2, size_arg(a, 0), default_float_dtype(), Device::cpu());
  return random_tensor<kNormal>(b, t, !a[1].is_none());
}

// rand_like/randn_like(input, *, dtype=None, ...)
template <bool kNormal>
Value rand_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  Target t = creation_target(a, 1, x->shape(), x->dtype(), x->device());
  return random_tensor<kNormal>(b, t, false);
}

// randint(low=0, high, size, *, generator=None, dtype=None, ...): randint(high, size) binds high to
// `low` and size to `high`. Recorded without a decomposition (no integer RNG primitive).
Value randint_meta(Builder& b, const BoundArgs& a) {
  Value low = a[0], high = a[1], size = a[2];
  if (size.is_none()) {
    size = high;
    high = low;
    low = Value(int64_t{0});
  }
  if (!low.is_int() || !high.is_int()) {
    throw TypeError("randint(): low and high must be ints, got " + low.type_name() + " and " +
                    high.type_name());
  }
  if (!size.is_seq()) throw TypeError("randint(): argument 'size' must be tuple of ints");
  if (low.as_int() >= high.as_int()) {
    throw Error("random_ expects 'from' to be less than 'to', but got from=" +
                std::to_string(low.as_int()) + " >= to=" + std::to_string(high.as_int()));
  }
  std::vector<int64_t> dims = size.as_int_list();
  for (int64_t d : dims) {
    if (d < 0) throw Error("Trying to create tensor with negative dimension " + std::to_string(d));
  }
  Target t = creation_target(a, 4, Shape(dims.begin(), dims.end()), DType::kInt64, Device::cpu());
  return b.new_tensor(t.shape, t.dtype, t.device, t.requires_grad);
}

// x converted to `dtype` on `device`: x itself when nothing changes and no copy is asked for; no
// decomposition when the device changes (there is no transfer primitive).
Value convert_to(Builder& b, const TensorRef& x, DType dtype, Device device, bool copy) {
  bool same_device = device.type == x->device().type &&
                     (device.index < 0 || device.index == x->device().index);
  if (!same_device) {
    return b.new_tensor(x->shape(), dtype, device, x->requires_grad() && differentiable(dtype));
  }
  if (dtype == x->dtype() && !copy) return x;
  return lang::call_t(b, prims::convert_element_type(), {Value(x), Value(dtype)});
}

// Tensor.to(input, dtype_or_device=None, dtype=None, non_blocking=False, copy=False, *,
// device=None, memory_format=None) covers to(dtype, non_blocking, copy), to(device, dtype,
// non_blocking, copy) and to(other, non_blocking, copy): after a dtype or a tensor the positionals
// shift by one.
Value to_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const Value& first = a[1];
  DType dtype = x->dtype();
  Device device = x->device();
  bool copy = a.bool_(4);
  if (first.is_dtype() || first.is_tensor()) {
    if (a[2].is_bool()) {
      copy = copy || a.bool_(3);  // to(dtype, non_blocking, copy)
    } else if (!a[2].is_none()) {
      throw TypeError("to() received an invalid combination of arguments: got " +
                      first.type_name() + " and " + a[2].type_name());
    }
    if (first.is_dtype()) {
      dtype = first.as_dtype();
    } else {
      dtype = first.as_tensor()->dtype();
      device = first.as_tensor()->device();
    }
    if (!a[5].is_none()) {
      throw TypeError("to() received an invalid combination of arguments: 'device' given twice");
    }
  } else {
    device = device_arg(a, 1, device);
    if (!first.is_none() && !a[5].is_none()) {
      throw TypeError("to() got multiple values for argument 'device'");
    }
    device = device_arg(a, 5, device);
    dtype = a.optional_dtype(2).value_or(dtype);
  }
  return convert_to(b, x, dtype, device, copy);
}

// Tensor.float() and friends: a conversion that returns the input when it already has the dtype.
template <DType D>
Value cast_meta(Builder& b, const BoundArgs& a) {
  return lang::convert(b, a.tensor(0), D);
}

// Tensor.type_as(input, other)
Value type_as_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& other = a.tensor(1);
  return convert_to(b, a.tensor(0), other->dtype(), a.tensor(0)->device(), false);
}

// Tensor.type(dtype, non_blocking=False): a torch.dtype or a CPU tensor type name.
Value type_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const Value& t = a[1];
  if (t.is_none()) {
    throw NotImplementedError(
        "Tensor.type() without a dtype returns a string, which is unsupported");
  }
  if (t.is_dtype()) return convert_to(b, x, t.as_dtype(), x->device(), false);
  if (!t.is_string()) throw TypeError("type(): argument 'dtype' must be torch.dtype or str");
  static const std::pair<const char*, DType> kNames[] = {
      {"torch.FloatTensor", DType::kFloat32}, {"torch.DoubleTensor", DType::kFloat64},
      {"torch.HalfTensor", DType::kFloat16},  {"torch.BFloat16Tensor", DType::kBFloat16},
      {"torch.ByteTensor", DType::kUInt8},    {"torch.CharTensor", DType::kInt8},
      {"torch.ShortTensor", DType::kInt16},   {"torch.IntTensor", DType::kInt32},
      {"torch.LongTensor", DType::kInt64},    {"torch.BoolTensor", DType::kBool},
  };
  for (const auto& [name, dtype] : kNames) {
    if (t.as_string() == name) return convert_to(b, x, dtype, Device::cpu(), false);
  }
  throw NotImplementedError("Tensor.type(): unsupported type name '" + t.as_string() + "'");
}

// clone(input, *, memory_format=None): always a new tensor.
Value clone_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return lang::call_t(b, prims::convert_element_type(), {Value(x), Value(x->dtype())});
}

// detach(input): the input itself when it does not require grad; otherwise a new tensor that does
// not, recorded as a conversion to the same dtype (an identity a fused kernel absorbs) whose output
// is that tensor. The torch executor calls torch.detach (an alias).
Value detach_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!x->requires_grad()) return x;
  TensorRef out = b.new_tensor(x->shape(), x->dtype(), x->device(), false);
  b.append(BoundSymbol::make(&prims::convert_element_type(), {Value(x), Value(x->dtype())},
                             Value(out), {}));
  return out;
}

constexpr const char* kFactoryKw =
    "dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False";

std::string sig(const std::string& head, const std::string& tail = kFactoryKw) {
  return head + tail;
}

}  // namespace

void register_creation_ops(SymbolTable& table) {
  // Signatures, parsed by register_ops.
  const std::string kSize = sig("*size, ");
  const std::string kSizeEmpty =
      sig("*size, ", std::string(kFactoryKw) + ", memory_format=None");
  const std::string kFull = sig("size, fill_value, *, ");
  const std::string kLike =
      "input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None";
  const std::string kFullLike =
      "input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, "
      "memory_format=None";
  const std::string kNewSize = sig("input, *size, ");
  const std::string kNewFull = sig("input, size, fill_value, *, ");
  const std::string kArange = sig("start=0, end=None, step=1, *, ");
  const std::string kLinspace = sig("start, end, steps, *, ");
  const std::string kEye = sig("n, m=None, *, ");
  const std::string kRand = sig("*size, generator=None, ");
  const std::string kRandint = sig("low, high=None, size=None, *, generator=None, ");

  std::vector<OpDef> defs = {
      {"zeros", kSize.c_str(), filled_meta<0>, {"torch.zeros"}},
      {"ones", kSize.c_str(), filled_meta<1>, {"torch.ones"}},
      {"empty", kSizeEmpty.c_str(), filled_meta<0>, {"torch.empty"}},
      {"full", kFull.c_str(), full_meta, {"torch.full"}},
      {"zeros_like", kLike.c_str(), filled_like_meta<0>, {"torch.zeros_like"}},
      {"ones_like", kLike.c_str(), filled_like_meta<1>, {"torch.ones_like"}},
      {"empty_like", kLike.c_str(), filled_like_meta<0>, {"torch.empty_like"}},
      {"full_like", kFullLike.c_str(), full_like_meta, {"torch.full_like"}},
      {"new_zeros", kNewSize.c_str(), new_filled_meta<0>, {"torch.Tensor.new_zeros"}},
      {"new_ones", kNewSize.c_str(), new_filled_meta<1>, {"torch.Tensor.new_ones"}},
      {"new_empty", kNewSize.c_str(), new_filled_meta<0>, {"torch.Tensor.new_empty"}},
      {"new_full", kNewFull.c_str(), new_full_meta, {"torch.Tensor.new_full"}},
      {"arange", kArange.c_str(), arange_meta, {"torch.arange"},
       "thunder.executors.torchex.ltorch_arange"},
      {"linspace", kLinspace.c_str(), linspace_meta, {"torch.linspace"}},
      {"eye", kEye.c_str(), eye_meta, {"torch.eye"}, "thunder.executors.torchex.ltorch_eye"},
      {"rand", kRand.c_str(), rand_meta<false>, {"torch.rand"}, {}, kTagRandom},
      {"randn", kRand.c_str(), rand_meta<true>, {"torch.randn"}, {}, kTagRandom},
      {"rand_like", kLike.c_str(), rand_like_meta<false>, {"torch.rand_like"}, {}, kTagRandom},
      {"randn_like", kLike.c_str(), rand_like_meta<true>, {"torch.randn_like"}, {}, kTagRandom},
      {"randint", kRandint.c_str(), randint_meta, {"torch.randint"},
       "thunder.executors.torchex.ltorch_randint", kTagRandom},
      // Conversions.
      {"to",
       "input, dtype_or_device=None, dtype=None, non_blocking=False, copy=False, *, device=None, "
       "memory_format=None",
       to_meta, {"torch.Tensor.to"}, "thunder.executors.torchex.ltorch_to"},
      {"float", "input, *, memory_format=None", cast_meta<DType::kFloat32>, {"torch.Tensor.float"}},
      {"double", "input, *, memory_format=None", cast_meta<DType::kFloat64>,
       {"torch.Tensor.double"}},
      {"half", "input, *, memory_format=None", cast_meta<DType::kFloat16>, {"torch.Tensor.half"}},
      {"bfloat16", "input, *, memory_format=None", cast_meta<DType::kBFloat16>,
       {"torch.Tensor.bfloat16"}},
      {"int", "input, *, memory_format=None", cast_meta<DType::kInt32>, {"torch.Tensor.int"}},
      {"long", "input, *, memory_format=None", cast_meta<DType::kInt64>, {"torch.Tensor.long"}},
      {"short", "input, *, memory_format=None", cast_meta<DType::kInt16>, {"torch.Tensor.short"}},
      {"char", "input, *, memory_format=None", cast_meta<DType::kInt8>, {"torch.Tensor.char"}},
      {"byte", "input, *, memory_format=None", cast_meta<DType::kUInt8>, {"torch.Tensor.byte"}},
      {"bool", "input, *, memory_format=None", cast_meta<DType::kBool>, {"torch.Tensor.bool"}},
      {"type_as", "input, other", type_as_meta, {"torch.Tensor.type_as"}},
      {"type", "input, dtype=None, non_blocking=False", type_meta, {"torch.Tensor.type"}},
      {"clone", "input, *, memory_format=None", clone_meta, {"torch.clone", "torch.Tensor.clone"}},
      {"detach", "input", detach_meta, {"torch.detach", "torch.Tensor.detach"}, {}, kTagView},
  };
  register_ops(table, defs);
  // In-place fills: the new version is a filled tensor of the input's shape, dtype and device.
  std::vector<OpDef> inplace = {
      {"zero_", "input", zero_inplace_meta, {"torch.Tensor.zero_", "torch.zero_"}, {}, kTagInplace},
      {"fill_",
       "input, value",
       fill_inplace_meta,
       {"torch.Tensor.fill_", "torch.fill_"},
       {},
       kTagInplace},
      {"uniform_",
       "input, from=0.0, to=1.0, *, generator=None",
       random_fill_inplace_meta<false>,
       {"torch.Tensor.uniform_"},
       {},
       kTagInplace | kTagRandom},
      {"normal_",
       "input, mean=0.0, std=1.0, *, generator=None",
       random_fill_inplace_meta<true>,
       {"torch.Tensor.normal_"},
       {},
       kTagInplace | kTagRandom},
      {"bernoulli_",
       "input, p=0.5, *, generator=None",
       bernoulli_inplace_meta,
       {"torch.Tensor.bernoulli_"},
       {},
       kTagInplace | kTagRandom},
  };
  register_ops(table, inplace);
}

}  // namespace thunder
