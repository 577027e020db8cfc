// Torch-level elementwise ops: arithmetic, comparisons, math functions, where, clamp and their in-place
// variants. Each decomposes into a primitive plus the promotions and broadcasts PyTorch applies.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ops/lang.h"
#include "ops/nn_common.h"
#include "ops/registry.h"

namespace thunder {

namespace {

using detail::nn::bin;
using detail::nn::cmp;
using detail::nn::finite_max;
using detail::nn::torch_type_name;
using detail::nn::un;
using lang::Promotion;
Value select(Builder& b, const Value& c, const Value& x, const Value& y) {
  return b.call_bound(ltorch_symbol("where"), {c, x, y});
}

template <const Symbol& (*P)(), Promotion K>
Value unary_op(Builder& b, const BoundArgs& a) {
  return lang::unary(b, P(), a[0], K);
}

template <const Symbol& (*P)(), Promotion K>
Value binary_op(Builder& b, const BoundArgs& a) {
  return lang::binary(b, P(), a[0], a[1], K);
}

// Eager refuses `-` with a bool tensor (an inverted mask is ~ or logical_not, a difference of two
// masks ^ or logical_xor).
void check_sub_operands(const Value& x, const Value& y) {
  auto is_bool_tensor = [](const Value& v) {
    return v.is_tensor() && is_bool(v.as_tensor()->dtype());
  };
  if (is_bool_tensor(x) && is_bool_tensor(y)) {
    throw Error(
        "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
        "`logical_xor()` operator instead.");
  }
  if (is_bool_tensor(x) || is_bool_tensor(y)) {
    throw Error(
        "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to "
        "invert a mask, use the `~` or `logical_not()` operator instead.");
  }
}

// x + alpha * y (P = sub: x - alpha * y) as eager computes it: both operands in their common dtype
// first, alpha converted to it (a product in y's own dtype would wrap or round before the
// promotion), with eager's checks of alpha against that dtype.
Value scaled_binary(Builder& b, const Symbol& prim, const Value& x, const Value& y,
                    const Value& alpha, const std::string& name) {
  if (alpha.is_int() && alpha.as_int() == 1)
    return lang::binary(b, prim, x, y, Promotion::kDefault);
  if (!alpha.is_number()) throw TypeError(name + ": alpha must be a number");
  const auto p = lang::elementwise_promotion({x, y}, Promotion::kDefault);
  if (alpha.is_bool() && !is_bool(p.result)) {
    throw Error("Boolean alpha only supported for Boolean results.");
  }
  if (alpha.is_float() && (is_bool(p.result) || is_integer(p.result))) {
    throw Error("For integral input tensors, argument alpha must not be a floating point number.");
  }
  if (is_bool(p.result)) {  // x or (alpha and y)
    return alpha.as_int() != 0 ? lang::binary(b, prim, x, y, Promotion::kDefault)
                               : lang::convert_value(b, x, p.result);
  }
  Value ys = lang::binary(b, prims::mul(), lang::to_compute(b, y, p),
                          lang::convert_value(b, alpha, p.compute), Promotion::kDefault);
  Value r = lang::binary(b, prim, lang::to_compute(b, x, p), ys, Promotion::kDefault);
  return lang::convert_value(b, r, p.result);
}

template <const Symbol& (*P)()>
Value add_like(Builder& b, const BoundArgs& a) {
  if (&P() == &prims::sub()) check_sub_operands(a[0], a[1]);
  return scaled_binary(b, P(), a[0], a[1], a[2], a.symbol().qualname());
}

Value rsub_meta(Builder& b, const BoundArgs& a) {
  check_sub_operands(a[0], a[1]);
  return scaled_binary(b, prims::sub(), a[1], a[0], a[2], "rsub");
}

// Floating floor division as eager's (Python's): from the remainder m = fmod(x, y), the quotient
// (x - m) / y less one where m's sign differs from y's, then rounded to the nearest integer below;
// a zero quotient keeps the sign of x / y, a zero divisor gives x / y. So 7 // -inf is -1 (floor of
// the quotient would give -0) and inf // 3 is NaN. Computed in the compute dtype, rounded once.
Value floor_divide_floating(Builder& b, const Value& xv, const Value& yv) {
  const auto p = lang::elementwise_promotion({xv, yv}, Promotion::kDefault);
  Value x = lang::to_compute(b, xv, p), y = lang::to_compute(b, yv, p);
  Value quotient = bin(b, prims::div(), x, y);
  Value m = bin(b, prims::fmod(), x, y);
  Value d = bin(b, prims::div(), bin(b, prims::sub(), x, m), y);
  Value y_neg =
      y.is_tensor() ? Value(cmp(b, prims::lt(), y, Value(0.0))) : Value(y.as_double() < 0);
  Value fix = cmp(b, prims::bitwise_and(), cmp(b, prims::ne(), m, Value(0.0)),
                  cmp(b, prims::ne(), y_neg, cmp(b, prims::lt(), m, Value(0.0))));
  d = select(b, fix, bin(b, prims::sub(), d, Value(1.0)), d);
  Value fl = lang::unary(b, prims::floor(), d, Promotion::kNoOpmath);
  fl = select(b, cmp(b, prims::gt(), bin(b, prims::sub(), d, fl), Value(0.5)),
              bin(b, prims::add(), fl, Value(1.0)), fl);
  // d is 0 only where |x| < |y| (or x is 0): x / y is finite there, and times 0 keeps its sign.
  Value r =
      select(b, cmp(b, prims::ne(), d, Value(0.0)), fl, bin(b, prims::mul(), quotient, Value(0.0)));
  if (y.is_tensor()) {
    r = select(b, cmp(b, prims::eq(), y, Value(0.0)), quotient, r);
  } else if (y.as_double() == 0.0) {
    r = quotient;
  }
  return lang::convert_value(b, r, p.result);
}

Value div_meta(Builder& b, const BoundArgs& a) {
  const Value& mode = a[2];
  if (mode.is_none()) return lang::binary(b, prims::div(), a[0], a[1], Promotion::kIntToFloat);
  const std::string& m = mode.as_string();
  if (m == "trunc") {
    Value q = lang::binary(b, prims::div(), a[0], a[1], Promotion::kDefault);
    const TensorRef& t = q.as_tensor();
    if (is_integer(t->dtype())) return q;  // integer division already truncates
    return lang::unary(b, prims::trunc(), q, Promotion::kDefault);
  }
  if (m == "floor") {
    DType dt = lang::result_type({a[0], a[1]});
    if (is_integer(dt)) {
      // floor(a / b) for integers: truncated quotient minus one where the signs differ and the
      // division is inexact.
      Value q = lang::binary(b, prims::div(), a[0], a[1], Promotion::kDefault);
      Value r = lang::binary(b, prims::fmod(), a[0], a[1], Promotion::kDefault);
      Value rnz = lang::binary(b, prims::ne(), r, Value(int64_t{0}), Promotion::kAlwaysBool);
      Value rneg = lang::binary(b, prims::lt(), r, Value(int64_t{0}), Promotion::kAlwaysBool);
      // A number divisor's sign is known here (x // 3 has no tensor to compare).
      Value bneg = a[1].is_tensor() ? lang::binary(b, prims::lt(), a[1], Value(int64_t{0}),
                                                   Promotion::kAlwaysBool)
                                    : Value(a[1].as_double() < 0);
      Value differ = lang::binary(b, prims::ne(), rneg, bneg, Promotion::kAlwaysBool);
      Value fix = lang::binary(b, prims::bitwise_and(), rnz, differ, Promotion::kDefault);
      Value fix_i = lang::convert_value(b, fix, q.as_tensor()->dtype());
      return lang::binary(b, prims::sub(), q, fix_i, Promotion::kDefault);
    }
    return floor_divide_floating(b, a[0], a[1]);
  }
  throw ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '" +
                   m + "'");
}

Value floor_divide_meta(Builder& b, const BoundArgs& a) {
  std::vector<Value> args = {a[0], a[1], Value("floor")};
  return b.call_bound(ltorch_symbol("div"), std::move(args));
}

// floor, ceil, round and trunc: integers unchanged (a copy), bool refused as eager.
template <const Symbol& (*P)()>
Value rounding_meta(Builder& b, const BoundArgs& a) {
  if (is_bool(a.tensor(0)->dtype())) {
    throw NotImplementedError(a.symbol().name + ": not implemented for 'Bool'");
  }
  return lang::unary(b, P(), a[0], Promotion::kDefault);
}

// round with decimals as eager's: nearbyint(x * 10^d) / 10^d, or nearbyint(x / 10^-d) * 10^-d for
// d < 0, in the compute dtype.
Value round_meta(Builder& b, const BoundArgs& a) {
  const int64_t d = a[1].is_none() ? 0 : a[1].as_int();
  if (d == 0) return rounding_meta<prims::round>(b, a);
  const DType dt = a.tensor(0)->dtype();
  if (!is_floating(dt)) {
    throw NotImplementedError(std::string("round: not implemented for '") + dtype_name(dt) +
                              "' with decimals");
  }
  const auto p = lang::elementwise_promotion({a[0]}, Promotion::kDefault);
  Value x = lang::convert_value(b, a[0], p.compute);
  const Value ten(std::pow(10.0, static_cast<double>(d > 0 ? d : -d)));
  Value r = d > 0 ? bin(b, prims::div(), un(b, prims::round(), bin(b, prims::mul(), x, ten)), ten)
                  : bin(b, prims::mul(), un(b, prims::round(), bin(b, prims::div(), x, ten)), ten);
  return lang::convert_value(b, r, p.result);
}

Value sigmoid_meta(Builder& b, const BoundArgs& a) {
  // 1 / (1 + exp(-x)), computed in the promoted float type.
  lang::PromotionResult p = lang::elementwise_promotion({a[0]}, Promotion::kIntToFloat);
  TensorRef x = lang::convert(b, a.tensor(0), p.compute);
  TensorRef n = lang::call_t(b, prims::neg(), {Value(x)});
  TensorRef e = lang::call_t(b, prims::exp(), {Value(n)});
  TensorRef d = lang::call_t(b, prims::add(), {Value(e), Value(1.0)});
  TensorRef r = lang::call_t(b, prims::reciprocal(), {Value(d)});
  return lang::convert(b, r, p.result);
}

Value square_meta(Builder& b, const BoundArgs& a) {
  return lang::binary(b, prims::mul(), a[0], a[0], Promotion::kDefault);
}

Value isnan_meta(Builder& b, const BoundArgs& a) {
  return lang::binary(b, prims::ne(), a[0], a[0], Promotion::kAlwaysBool);
}

Value isinf_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!is_floating(x->dtype())) {
    return lang::full(b, x->shape(), Value(false), x->device(), DType::kBool);
  }
  Value fin = lang::unary(b, prims::isfinite(), a[0], Promotion::kAlwaysBool);
  Value nan = lang::binary(b, prims::ne(), a[0], a[0], Promotion::kAlwaysBool);
  Value either = lang::binary(b, prims::bitwise_or(), fin, nan, Promotion::kDefault);
  return lang::unary(b, prims::bitwise_not(), either, Promotion::kDefault);
}

Value logical_not_meta(Builder& b, const BoundArgs& a) {
  return lang::binary(b, prims::eq(), a[0], Value(false), Promotion::kAlwaysBool);
}

template <const Symbol& (*P)()>
Value logical_binary(Builder& b, const BoundArgs& a) {
  Value x = lang::binary(b, prims::ne(), a[0], Value(false), Promotion::kAlwaysBool);
  Value y = lang::binary(b, prims::ne(), a[1], Value(false), Promotion::kAlwaysBool);
  return lang::binary(b, P(), x, y, Promotion::kDefault);
}

Value where_meta(Builder& b, const BoundArgs& a) {
  const Value& cond = a[0];
  if (!cond.is_tensor()) throw TypeError("where(): argument 'condition' must be a Tensor");
  if (cond.as_tensor()->dtype() != DType::kBool) {
    throw TypeError(std::string("where expected condition to be a boolean tensor, but got a ") +
                    "tensor with dtype " + dtype_name(cond.as_tensor()->dtype()));
  }
  DType dt = lang::result_type({a[1], a[2]});
  Shape shape = cond.as_tensor()->shape();
  for (size_t i = 1; i < 3; ++i) {
    if (a[i].is_tensor()) shape = lang::broadcast_shapes(shape, a[i].as_tensor()->shape());
  }
  TensorRef c = lang::expand_to(b, cond.as_tensor(), shape);
  auto prep = [&](const Value& v) -> Value {
    Value w = lang::convert_value(b, v, dt);
    if (w.is_tensor()) w = lang::expand_to(b, w.as_tensor(), shape);
    return w;
  };
  Value x = prep(a[1]), y = prep(a[2]);
  if (!x.is_tensor() && !y.is_tensor()) {
    x = lang::full(b, shape, x, cond.as_tensor()->device(), dt);
  }
  return lang::call(b, prims::where(), {Value(c), x, y});
}

Value clamp_meta(Builder& b, const BoundArgs& a) {
  Value x = a[0];
  const Value& lo = a[1];
  const Value& hi = a[2];
  if (lo.is_none() && hi.is_none()) {
    throw ValueError("torch.clamp: At least one of 'min' or 'max' must not be None");
  }
  // torch.clamp promotes over all three operands; NaN propagates from the input.
  std::vector<Value> ops = {x};
  if (!lo.is_none()) ops.push_back(lo);
  if (!hi.is_none()) ops.push_back(hi);
  DType dt = lang::result_type(ops);
  // Selects, not maximum / minimum: the gradient reaches the input wherever lo <= x <= hi, as
  // torch's clamp's does (a maximum splits a tie's gradient in two). min > max gives max; a NaN
  // input or bound gives NaN.
  Value r = lang::convert_value(b, x, dt);
  auto select = [&](const Symbol& beyond, const Value& bound) {
    Value bd = lang::convert_value(b, bound, dt);
    Value c = lang::binary(b, beyond, r, bd, Promotion::kAlwaysBool);
    if (bd.is_tensor() && is_floating(dt)) {
      Value nan = lang::binary(b, prims::ne(), bd, bd, Promotion::kAlwaysBool);
      c = lang::binary(b, prims::bitwise_or(), c, nan, Promotion::kAlwaysBool);
    } else if (bd.is_number() && std::isnan(bd.as_double())) {
      c = lang::binary(b, prims::ne(), r, bd, Promotion::kAlwaysBool);  // true everywhere
    }
    return b.call_bound(ltorch_symbol("where"), {c, bd, r});
  };
  if (!lo.is_none()) r = select(prims::lt(), lo);
  if (!hi.is_none()) r = select(prims::gt(), hi);
  return r;
}

Value clamp_min_meta(Builder& b, const BoundArgs& a) {
  std::vector<Value> args = {a[0], a[1], Value()};
  return b.call_bound(ltorch_symbol("clamp"), std::move(args));
}

Value clamp_max_meta(Builder& b, const BoundArgs& a) {
  std::vector<Value> args = {a[0], Value(), a[1]};
  return b.call_bound(ltorch_symbol("clamp"), std::move(args));
}

Value relu_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (is_bool(x->dtype())) throw TypeError("relu: not implemented for bool tensors");
  return lang::binary(b, prims::maximum(), a[0], Value(int64_t{0}), Promotion::kNoOpmath);
}

// The value `input` holds after input.copy_(src): src converted to input's dtype and broadcast to its
// shape.
Value copy_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& self = a.tensor(0);
  Value src = a[1];
  if (!src.is_tensor()) {
    if (!src.is_number()) throw TypeError("copy_(): argument 'src' must be a Tensor");
    return lang::full(b, self->shape(), src, self->device(), self->dtype());
  }
  TensorRef s = src.as_tensor();
  Shape shape = lang::broadcast_shapes(self->shape(), s->shape());
  if (shape != self->shape()) {
    throw ValueError("copy_: the source of shape " + s->type_string() +
                     " cannot be broadcast to " + self->type_string());
  }
  TensorRef r = lang::expand_to(b, lang::convert(b, s, self->dtype()), self->shape());
  if (r == s) r = lang::call_t(b, prims::convert_element_type(), {Value(s), Value(s->dtype())});
  return r;
}

Value lerp_meta(Builder& b, const BoundArgs& a) {
  // Eager's lerp: end and a tensor weight of the start's dtype, floating or complex; computed as
  // start + weight * (end - start) where |weight| < 0.5, else end - (end - start) * (1 - weight)
  // (exact at weight 1).
  const TensorRef& start = a.tensor(0);
  const DType dt = start->dtype();
  auto same_dtype = [&](const Value& v, const char* name) {
    if (v.is_tensor() && v.as_tensor()->dtype() != dt) {
      throw Error(std::string("expected dtype ") + dtype_name(dt) + " for `" + name +
                  "` but got dtype " + dtype_name(v.as_tensor()->dtype()));
    }
  };
  same_dtype(a[1], "end");
  same_dtype(a[2], "weight");
  if (!is_floating(dt) && !is_complex(dt)) {
    throw NotImplementedError(std::string("lerp: not implemented for '") + dtype_name(dt) + "'");
  }
  const auto p = lang::elementwise_promotion({a[0], a[1], a[2]}, Promotion::kDefault);
  Value s = lang::convert_value(b, a[0], p.compute), e = lang::convert_value(b, a[1], p.compute);
  Value w = lang::convert_value(b, a[2], p.compute);
  Value diff = lang::binary(b, prims::sub(), e, s, Promotion::kDefault);
  auto low = [&] {
    return lang::binary(b, prims::add(), s,
                        lang::binary(b, prims::mul(), w, diff, Promotion::kDefault),
                        Promotion::kDefault);
  };
  auto high = [&](const Value& one_minus_w) {
    return lang::binary(b, prims::sub(), e,
                        lang::binary(b, prims::mul(), diff, one_minus_w, Promotion::kDefault),
                        Promotion::kDefault);
  };
  Value r;
  if (w.is_number()) {
    const double wd = w.as_double();
    r = std::abs(wd) < 0.5 ? low() : high(Value(1.0 - wd));
  } else {
    Value aw = b.call_bound(ltorch_symbol("abs"), {w});
    Value c = lang::binary(b, prims::lt(), aw, Value(0.5), Promotion::kAlwaysBool);
    Value l = low();
    r = lang::call(b, prims::where(),
                   {c, l, high(lang::binary(b, prims::sub(), Value(1.0), w, Promotion::kDefault))});
  }
  return lang::convert_value(b, r, p.result);
}

// addcmul and addcdiv as eager computes them: input, tensor1 and tensor2 converted to their common
// dtype (`value` does not take part; it is converted to that dtype, truncated for integers), then
// input + value * tensor1 (* or /) tensor2 in its compute type.
Value addc_meta(Builder& b, const BoundArgs& a, bool divide) {
  const auto p = lang::elementwise_promotion({a[0], a[1], a[2]}, Promotion::kDefault);
  const char* name = divide ? "addcdiv" : "addcmul";
  if (is_bool(p.result)) {
    throw NotImplementedError(std::string(name) + ": not implemented for 'Bool'");
  }
  auto integral = [](const Value& v) {
    const DType d = v.is_tensor() ? v.as_tensor()->dtype() : DType::kFloat32;
    return is_bool(d) || is_integer(d);
  };
  if (divide && integral(a[1]) && integral(a[2])) {
    throw Error(
        "Integer division with addcdiv is no longer supported, and in a future release addcdiv "
        "will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can "
        "be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for "
        "integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future "
        "addcdiv behavior is just the latter implementation: (input + value * tensor1 / tensor2), "
        "for all dtypes.");
  }
  Value x = lang::to_compute(b, a[0], p);
  Value t1 = lang::to_compute(b, a[1], p), t2 = lang::to_compute(b, a[2], p);
  Value v = a[3];
  if (v.is_float() && is_integer(p.result)) v = Value(static_cast<int64_t>(v.as_double()));
  Value scaled = t1;
  if (!(v.is_number() && v.as_double() == 1.0)) {
    scaled = lang::binary(b, prims::mul(), lang::convert_value(b, v, p.compute), t1,
                          Promotion::kDefault);
  }
  Value q = lang::binary(b, divide ? prims::div() : prims::mul(), scaled, t2, Promotion::kDefault);
  return lang::convert_value(b, lang::binary(b, prims::add(), x, q, Promotion::kDefault), p.result);
}
Value addcmul_meta(Builder& b, const BoundArgs& a) { return addc_meta(b, a, false); }
Value addcdiv_meta(Builder& b, const BoundArgs& a) { return addc_meta(b, a, true); }

// The operands of a binary math function (logaddexp): both converted to the promoted compute dtype,
// numbers kept as numbers.
struct MathOperands {
  Value x, y;
  lang::PromotionResult p;
};
MathOperands math_operands(Builder& b, const BoundArgs& a) {
  MathOperands m;
  m.p = lang::elementwise_promotion({a[0], a[1]}, Promotion::kDefault);
  m.x = lang::to_compute(b, a[0], m.p);
  m.y = lang::to_compute(b, a[1], m.p);
  return m;
}

// log(exp(x) + exp(y)) (kLog2: log2(2^x + 2^y)) as max(x, y) + log1p(exp(-|x - y|)): no overflow.
// Two infinities of one sign give that infinity (x - y would be NaN), as torch's kernel.
template <bool kLog2>
Value logaddexp_meta(Builder& b, const BoundArgs& a) {
  if (!a[0].is_tensor() || !a[1].is_tensor()) {
    throw TypeError(a.symbol().qualname() + "(): argument 'other' must be a Tensor");
  }
  MathOperands m = math_operands(b, a);
  if (!is_floating(m.p.result)) {
    throw NotImplementedError(std::string("\"") + (kLog2 ? "logaddexp2" : "logaddexp") +
                              "_cpu\" not implemented for '" + torch_type_name(m.p.result) + "'");
  }
  Value mx = bin(b, prims::maximum(), m.x, m.y);
  Value d = lang::unary(b, prims::abs(), bin(b, prims::sub(), m.x, m.y), Promotion::kNoOpmath);
  Value nd = lang::unary(b, prims::neg(), d, Promotion::kNoOpmath);
  Value t =
      lang::unary(b, prims::log1p(),
                  lang::unary(b, kLog2 ? prims::exp2() : prims::exp(), nd, Promotion::kNoOpmath),
                  Promotion::kNoOpmath);
  if (kLog2) t = bin(b, prims::mul(), t, Value(1.0 / M_LN2));
  Value r = bin(b, prims::add(), mx, t);
  Value inf = cmp(b, prims::eq(), lang::unary(b, prims::abs(), m.x, Promotion::kNoOpmath),
                  Value(std::numeric_limits<double>::infinity()));
  Value both = cmp(b, prims::bitwise_and(), inf, cmp(b, prims::eq(), m.x, m.y));
  r = select(b, both, m.x, r);
  return lang::convert_value(b, r, m.p.result);
}

// x - trunc(x), floating only.
Value frac_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!is_floating(x->dtype())) {
    throw NotImplementedError(std::string("\"frac_cpu\" not implemented for '") +
                              torch_type_name(x->dtype()) + "'");
  }
  return lang::binary(b, prims::sub(), a[0],
                      lang::unary(b, prims::trunc(), a[0], Promotion::kDefault),
                      Promotion::kDefault);
}

// NaN, +inf and -inf replaced (by default with 0 and the dtype's largest and lowest finite values);
// the gradient is 0 where a value is replaced. Integer and bool tensors come back unchanged (a
// copy).
Value nan_to_num_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!a[4].is_none()) throw NotImplementedError("nan_to_num: out= is not supported");
  if (!is_floating(x->dtype())) {
    if (is_complex(x->dtype()))
      throw NotImplementedError("nan_to_num: complex tensors are not supported");
    return lang::call_t(b, prims::convert_element_type(), {Value(x), Value(x->dtype())});
  }
  const double big = finite_max(x->dtype());
  Value nan = a[1].is_none() ? Value(0.0) : a[1];
  Value pos = a[2].is_none() ? Value(big) : a[2];
  Value neg = a[3].is_none() ? Value(-big) : a[3];
  const double inf = std::numeric_limits<double>::infinity();
  Value r = select(b, cmp(b, prims::ne(), Value(x), Value(x)), nan, Value(x));
  r = select(b, cmp(b, prims::eq(), Value(x), Value(inf)), pos, r);
  r = select(b, cmp(b, prims::eq(), Value(x), Value(-inf)), neg, r);
  return lang::convert_value(b, r, x->dtype());
}

// hypot(x, y) as m * sqrt(1 + (n / m)^2), m = max(|x|, |y|) and n = min(|x|, |y|): no overflow
// or underflow in the squares. An infinite operand gives inf (a NaN beside it too) and two zeros
// give 0, as C's hypot. Floating only; the gradient is eager's (autograd/grad_rules_math.cpp).
Value hypot_meta(Builder& b, const BoundArgs& a) {
  MathOperands m = math_operands(b, a);
  detail::nn::require_floating(m.p.result, "hypot_cpu");
  const double inf = std::numeric_limits<double>::infinity();
  Value ax = lang::unary(b, prims::abs(), m.x, Promotion::kNoOpmath);
  Value ay = lang::unary(b, prims::abs(), m.y, Promotion::kNoOpmath);
  Value hi = bin(b, prims::maximum(), ax, ay);
  Value q = bin(b, prims::div(), bin(b, prims::minimum(), ax, ay), hi);
  Value r = bin(b, prims::mul(), hi,
                lang::unary(b, prims::sqrt(), bin(b, prims::add(), bin(b, prims::mul(), q, q), 1.0),
                            Promotion::kNoOpmath));
  r = select(b, cmp(b, prims::eq(), hi, Value(0.0)), Value(0.0), r);
  Value infinite = cmp(b, prims::bitwise_or(), cmp(b, prims::eq(), ax, Value(inf)),
                       cmp(b, prims::eq(), ay, Value(inf)));
  r = select(b, infinite, Value(inf), r);
  return lang::convert_value(b, r, m.p.result);
}

// logit(x, eps) = log(x / (1 - x)), x first clamped to [eps, 1 - eps] when eps >= 0 (eps and
// 1 - eps rounded to the input's dtype, a NaN kept); integers give floats. The gradient is eager's
// (autograd/grad_rules_math.cpp).
Value logit_meta(Builder& b, const BoundArgs& a) {
  lang::PromotionResult p = lang::elementwise_promotion({a[0]}, Promotion::kIntToFloat);
  detail::nn::require_floating(p.result, "logit_cpu");
  TensorRef x = lang::convert(b, a.tensor(0), p.compute);
  if (!a[1].is_none() && a.number(1) >= 0) {
    const double lo = detail::nn::round_to(p.result, a.number(1));
    const double hi = detail::nn::round_to(p.result, 1.0 - lo);
    // x < lo ? lo : (x > hi ? hi : x), as eager's kernel (lo > hi when eps > 0.5).
    Value below = cmp(b, prims::lt(), Value(x), Value(lo));
    Value upper = select(b, cmp(b, prims::gt(), Value(x), Value(hi)), Value(hi), Value(x));
    x = select(b, below, Value(lo), upper).as_tensor();
  }
  TensorRef q = bin(b, prims::div(), Value(x), Value(bin(b, prims::sub(), Value(1.0), Value(x))));
  return lang::convert(b, un(b, prims::log(), q), p.result);
}

// copysign(x, y): |x| with y's sign bit (-0.0 and a NaN's sign bit too); integers give floats. The
// gradient is eager's (autograd/grad_rules_math.cpp).
Value copysign_meta(Builder& b, const BoundArgs& a) {
  lang::PromotionResult p = lang::elementwise_promotion({a[0], a[1]}, Promotion::kIntToFloat);
  detail::nn::require_floating(p.result, "copysign_cpu");
  Value x = lang::convert_value(b, a[0], p.result);
  Value y = lang::convert_value(b, a[1], p.result);
  Value ax = lang::unary(b, prims::abs(), x, Promotion::kNoOpmath);
  Value nax = lang::unary(b, prims::neg(), ax, Promotion::kNoOpmath);
  if (!y.is_tensor()) return std::signbit(y.as_double()) ? nax : ax;
  Value neg = lang::unary(b, prims::signbit(), y, Promotion::kAlwaysBool);
  return select(b, neg, nax, ax);
}

// heaviside(x, values): values where x is 0, 1 where x > 0, 0 elsewhere (NaN too). Both tensors of
// one dtype, as eager requires. Not differentiable in eager: capture runs it as its torch call when
// an operand requires grad.
Value heaviside_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& v = a.tensor(1);
  if (is_complex(x->dtype()) || is_complex(v->dtype())) {
    throw Error("heaviside is not yet implemented for complex tensors.");
  }
  if (x->dtype() != v->dtype()) {
    throw Error("heaviside is not yet implemented for tensors with different dtypes.");
  }
  Value zero = cmp(b, prims::eq(), Value(x), Value(int64_t{0}));
  Value pos = lang::convert(b, cmp(b, prims::gt(), Value(x), Value(int64_t{0})), x->dtype());
  return select(b, zero, Value(v), pos);
}

// xlogy(x, y) = x * log(y) (kLog1p: xlog1py, x * log1p(y)): NaN where y is NaN, else 0 where x is 0
// (eager's order); integers give floats. The gradient is eager's (autograd/grad_rules_math.cpp).
template <bool kLog1p>
Value xlogy_meta(Builder& b, const BoundArgs& a) {
  lang::PromotionResult p = lang::elementwise_promotion({a[0], a[1]}, Promotion::kIntToFloat);
  detail::nn::require_floating(p.result, kLog1p ? "xlog1py_cpu" : "xlogy_cpu");
  Value x = lang::to_compute(b, a[0], p);
  Value y = lang::to_compute(b, a[1], p);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Value ly = y.is_tensor()
                 ? lang::unary(b, kLog1p ? prims::log1p() : prims::log(), y, Promotion::kNoOpmath)
                 : Value(kLog1p ? std::log1p(y.as_double()) : std::log(y.as_double()));
  Value r = bin(b, prims::mul(), x, ly);
  if (x.is_tensor()) {
    r = select(b, cmp(b, prims::eq(), x, Value(0.0)), Value(0.0), r);
  } else if (x.as_double() == 0) {
    const TensorRef& t = r.as_tensor();
    r = lang::full(b, t->shape(), Value(0.0), t->device(), t->dtype());
  }
  if (y.is_tensor()) {
    r = select(b, cmp(b, prims::ne(), y, y), Value(nan), r);
  } else if (std::isnan(y.as_double())) {
    const TensorRef& t = r.as_tensor();
    r = lang::full(b, t->shape(), Value(nan), t->device(), t->dtype());
  }
  return lang::convert_value(b, r, p.result);
}

// float_power(x, y): pow in float64 (integers and floats of any width alike); the gradient is pow's
// through the conversions, as eager's composite. Complex operands run as the torch call (capture).
Value float_power_meta(Builder& b, const BoundArgs& a) {
  for (size_t i = 0; i < 2; ++i) {
    if (a[i].is_tensor() && is_complex(a[i].as_tensor()->dtype())) {
      throw NotImplementedError("float_power: complex operands are not supported");
    }
  }
  Value x = lang::convert_value(b, a[0], DType::kFloat64);
  Value y = lang::convert_value(b, a[1], DType::kFloat64);
  if (!x.is_tensor() && !y.is_tensor()) {
    throw TypeError("float_power(): one of the operands must be a Tensor");
  }
  return lang::binary(b, prims::pow(), x, y, Promotion::kDefault);
}

#define UNARY(name, prim, kind, ...)                                                     \
  OpDef { #name, "input", unary_op<prims::prim, Promotion::kind>,                          \
          {"torch." #name, "torch.Tensor." #name __VA_OPT__(, ) __VA_ARGS__}, {},          \
          kTagElementwise }
#define UNARY_INPLACE(name)                                                           \
  OpDef { #name "_", "input", nullptr, {"torch.Tensor." #name "_"}, {}, kTagElementwise, \
          #name }
#define BINARY(name, prim, kind, ...)                                                          \
  OpDef { #name, "input, other", binary_op<prims::prim, Promotion::kind>,                        \
          {"torch." #name, "torch.Tensor." #name __VA_OPT__(, ) __VA_ARGS__}, {}, kTagElementwise }
#define BINARY_INPLACE(name, ...)                                                  \
  OpDef { #name "_", "input, other", nullptr,                                      \
          {"torch.Tensor." #name "_" __VA_OPT__(, ) __VA_ARGS__}, {}, kTagElementwise, #name }

}  // namespace

void register_elementwise_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      // Arithmetic.
      {"add",
       "input, other, *, alpha=1",
       add_like<prims::add>,
       {"torch.add", "torch.Tensor.add", "torch.Tensor.__add__"},
       {},
       kTagElementwise},
      {"sub",
       "input, other, *, alpha=1",
       add_like<prims::sub>,
       {"torch.sub", "torch.Tensor.sub", "torch.Tensor.__sub__", "torch.subtract",
        "torch.Tensor.subtract"},
       "torch.sub",
       kTagElementwise},
      {"rsub", "input, other, *, alpha=1", rsub_meta, {"torch.rsub"}, {}, kTagElementwise},
      BINARY(mul, mul, kDefault, "torch.Tensor.__mul__", "torch.multiply", "torch.Tensor.multiply"),
      {"div",
       "input, other, *, rounding_mode=None",
       div_meta,
       {"torch.div", "torch.Tensor.div", "torch.Tensor.__truediv__", "torch.divide",
        "torch.Tensor.divide"},
       "torch.div",
       kTagElementwise},
      BINARY(true_divide, div, kIntToFloat),
      {"floor_divide",
       "input, other",
       floor_divide_meta,
       {"torch.floor_divide", "torch.Tensor.floor_divide", "torch.Tensor.__floordiv__"},
       {},
       kTagElementwise},
      BINARY(remainder, remainder, kDefault, "torch.Tensor.__mod__"),
      BINARY(fmod, fmod, kDefault),
      {"pow",
       "input, exponent",
       binary_op<prims::pow, Promotion::kDefault>,
       {"torch.pow", "torch.Tensor.pow", "torch.Tensor.__pow__"},
       {},
       kTagElementwise},
      BINARY(maximum, maximum, kDefault),
      BINARY(minimum, minimum, kDefault),
      BINARY(atan2, atan2, kIntToFloat, "torch.arctan2"),
      BINARY(bitwise_and, bitwise_and, kDefault, "torch.Tensor.__and__"),
      BINARY(bitwise_or, bitwise_or, kDefault, "torch.Tensor.__or__"),
      BINARY(bitwise_xor, bitwise_xor, kDefault, "torch.Tensor.__xor__"),
      BINARY(bitwise_left_shift, bitwise_left_shift, kDefault, "torch.Tensor.__lshift__"),
      BINARY(bitwise_right_shift, bitwise_right_shift, kDefault, "torch.Tensor.__rshift__"),
      {"lerp",
       "input, end, weight",
       lerp_meta,
       {"torch.lerp", "torch.Tensor.lerp"},
       {},
       kTagElementwise},
      {"logaddexp",
       "input, other",
       logaddexp_meta<false>,
       {"torch.logaddexp", "torch.Tensor.logaddexp"},
       {},
       kTagElementwise},
      {"logaddexp2",
       "input, other",
       logaddexp_meta<true>,
       {"torch.logaddexp2", "torch.Tensor.logaddexp2"},
       {},
       kTagElementwise},
      {"frac", "input", frac_meta, {"torch.frac", "torch.Tensor.frac"}, {}, kTagElementwise},
      {"nan_to_num",
       "input, nan=0.0, posinf=None, neginf=None, *, out=None",
       nan_to_num_meta,
       {"torch.nan_to_num", "torch.Tensor.nan_to_num"},
       {},
       kTagElementwise},
      {"hypot",
       "input, other",
       hypot_meta,
       {"torch.hypot", "torch.Tensor.hypot"},
       {},
       kTagElementwise},
      {"logit",
       "input, eps=None",
       logit_meta,
       {"torch.logit", "torch.Tensor.logit", "torch.special.logit"},
       {},
       kTagElementwise},
      {"copysign",
       "input, other",
       copysign_meta,
       {"torch.copysign", "torch.Tensor.copysign"},
       {},
       kTagElementwise},
      {"heaviside",
       "input, values",
       heaviside_meta,
       {"torch.heaviside", "torch.Tensor.heaviside"},
       {},
       kTagElementwise},
      {"xlogy",
       "input, other",
       xlogy_meta<false>,
       {"torch.xlogy", "torch.Tensor.xlogy", "torch.special.xlogy"},
       {},
       kTagElementwise},
      {"xlog1py", "input, other", xlogy_meta<true>, {"torch.special.xlog1py"}, {}, kTagElementwise},
      {"float_power",
       "input, exponent",
       float_power_meta,
       {"torch.float_power", "torch.Tensor.float_power"},
       {},
       kTagElementwise},
      {"addcmul",
       "input, tensor1, tensor2, *, value=1",
       addcmul_meta,
       {"torch.addcmul", "torch.Tensor.addcmul"},
       {},
       kTagElementwise},
      {"addcdiv",
       "input, tensor1, tensor2, *, value=1",
       addcdiv_meta,
       {"torch.addcdiv", "torch.Tensor.addcdiv"},
       {},
       kTagElementwise},
      // Comparisons and logic.
      BINARY(eq, eq, kAlwaysBool, "torch.Tensor.__eq__"),
      BINARY(ne, ne, kAlwaysBool, "torch.Tensor.__ne__", "torch.not_equal"),
      BINARY(lt, lt, kAlwaysBool, "torch.Tensor.__lt__", "torch.less"),
      BINARY(le, le, kAlwaysBool, "torch.Tensor.__le__", "torch.less_equal"),
      BINARY(gt, gt, kAlwaysBool, "torch.Tensor.__gt__", "torch.greater"),
      BINARY(ge, ge, kAlwaysBool, "torch.Tensor.__ge__", "torch.greater_equal"),
      {"logical_and",
       "input, other",
       logical_binary<prims::bitwise_and>,
       {"torch.logical_and", "torch.Tensor.logical_and"},
       {},
       kTagElementwise},
      {"logical_or",
       "input, other",
       logical_binary<prims::bitwise_or>,
       {"torch.logical_or", "torch.Tensor.logical_or"},
       {},
       kTagElementwise},
      {"logical_xor",
       "input, other",
       logical_binary<prims::bitwise_xor>,
       {"torch.logical_xor", "torch.Tensor.logical_xor"},
       {},
       kTagElementwise},
      {"logical_not",
       "input",
       logical_not_meta,
       {"torch.logical_not", "torch.Tensor.logical_not"},
       {},
       kTagElementwise},
      {"where",
       "condition, input, other",
       where_meta,
       {"torch.where", "torch.Tensor.where"},
       {},
       kTagElementwise},
      {"clamp",
       "input, min=None, max=None",
       clamp_meta,
       {"torch.clamp", "torch.Tensor.clamp", "torch.clip", "torch.Tensor.clip"},
       "torch.clamp",
       kTagElementwise},
      {"clamp_min",
       "input, min",
       clamp_min_meta,
       {"torch.clamp_min", "torch.Tensor.clamp_min"},
       {},
       kTagElementwise},
      {"clamp_max",
       "input, max",
       clamp_max_meta,
       {"torch.clamp_max", "torch.Tensor.clamp_max"},
       {},
       kTagElementwise},
      // Unary math.
      UNARY(abs, abs, kComplexToFloat, "torch.Tensor.__abs__", "torch.absolute"),
      UNARY(neg, neg, kDefault, "torch.Tensor.__neg__", "torch.negative"),
      UNARY(exp, exp, kIntToFloat),
      UNARY(exp2, exp2, kIntToFloat),
      UNARY(expm1, expm1, kIntToFloat),
      UNARY(log, log, kIntToFloat),
      UNARY(log1p, log1p, kIntToFloat),
      UNARY(log2, log2, kIntToFloat),
      UNARY(log10, log10, kIntToFloat),
      UNARY(sqrt, sqrt, kIntToFloat),
      UNARY(rsqrt, rsqrt, kIntToFloat),
      UNARY(sin, sin, kIntToFloat),
      UNARY(cos, cos, kIntToFloat),
      UNARY(tan, tan, kIntToFloat),
      UNARY(tanh, tanh, kIntToFloat, "torch.nn.functional.tanh"),
      UNARY(sinh, sinh, kIntToFloat),
      UNARY(cosh, cosh, kIntToFloat),
      UNARY(asin, asin, kIntToFloat, "torch.arcsin"),
      UNARY(acos, acos, kIntToFloat, "torch.arccos"),
      UNARY(atan, atan, kIntToFloat, "torch.arctan"),
      UNARY(asinh, asinh, kIntToFloat, "torch.arcsinh"),
      UNARY(acosh, acosh, kIntToFloat, "torch.arccosh"),
      UNARY(atanh, atanh, kIntToFloat, "torch.arctanh"),
      UNARY(erf, erf, kIntToFloat, "torch.special.erf"),
      UNARY(erfc, erfc, kIntToFloat, "torch.special.erfc"),
      UNARY(erfinv, erfinv, kIntToFloat, "torch.special.erfinv"),
      UNARY(lgamma, lgamma, kIntToFloat),
      UNARY(digamma, digamma, kIntToFloat, "torch.special.digamma"),
      UNARY(reciprocal, reciprocal, kIntToFloat),
      UNARY(sign, sign, kDefault),
      {"floor",
       "input",
       rounding_meta<prims::floor>,
       {"torch.floor", "torch.Tensor.floor"},
       {},
       kTagElementwise},
      {"ceil",
       "input",
       rounding_meta<prims::ceil>,
       {"torch.ceil", "torch.Tensor.ceil"},
       {},
       kTagElementwise},
      {"round",
       "input, *, decimals=0",
       round_meta,
       {"torch.round", "torch.Tensor.round"},
       {},
       kTagElementwise},
      {"trunc",
       "input",
       rounding_meta<prims::trunc>,
       {"torch.trunc", "torch.Tensor.trunc", "torch.fix", "torch.Tensor.fix"},
       {},
       kTagElementwise},
      UNARY(bitwise_not, bitwise_not, kDefault, "torch.Tensor.__invert__"),
      UNARY(isfinite, isfinite, kAlwaysBool),
      UNARY(signbit, signbit, kAlwaysBool),
      {"isnan", "input", isnan_meta, {"torch.isnan", "torch.Tensor.isnan"}, {}, kTagElementwise},
      {"isinf", "input", isinf_meta, {"torch.isinf", "torch.Tensor.isinf"}, {}, kTagElementwise},
      {"sigmoid",
       "input",
       sigmoid_meta,
       {"torch.sigmoid", "torch.Tensor.sigmoid", "torch.nn.functional.sigmoid",
        "torch.special.expit"},
       "torch.sigmoid",
       kTagElementwise},
      {"square",
       "input",
       square_meta,
       {"torch.square", "torch.Tensor.square"},
       {},
       kTagElementwise},
      {"copy",
       "input, src, non_blocking=False",
       copy_meta,
       {},
       "thunder.executors.torchex.copy",
       kTagElementwise},
      {"relu",
       "input",
       relu_meta,
       {"torch.relu", "torch.Tensor.relu", "torch.nn.functional.relu"},
       "torch.relu",
       kTagElementwise},
  };
  register_ops(table, defs);

  std::vector<OpDef> inplace = {
      {"add_",
       "input, other, *, alpha=1",
       nullptr,
       {"torch.Tensor.add_", "torch.Tensor.__iadd__"},
       "torch.Tensor.add_",
       kTagElementwise,
       "add"},
      {"sub_",
       "input, other, *, alpha=1",
       nullptr,
       {"torch.Tensor.sub_", "torch.Tensor.__isub__"},
       "torch.Tensor.sub_",
       kTagElementwise,
       "sub"},
      BINARY_INPLACE(mul, "torch.Tensor.__imul__"),
      {"div_",
       "input, other, *, rounding_mode=None",
       nullptr,
       {"torch.Tensor.div_", "torch.Tensor.__itruediv__"},
       "torch.Tensor.div_",
       kTagElementwise,
       "div"},
      BINARY_INPLACE(floor_divide, "torch.Tensor.__ifloordiv__"),
      BINARY_INPLACE(remainder, "torch.Tensor.__imod__"),
      {"pow_",
       "input, exponent",
       nullptr,
       {"torch.Tensor.pow_", "torch.Tensor.__ipow__"},
       "torch.Tensor.pow_",
       kTagElementwise,
       "pow"},
      BINARY_INPLACE(bitwise_and, "torch.Tensor.__iand__"),
      BINARY_INPLACE(bitwise_or, "torch.Tensor.__ior__"),
      BINARY_INPLACE(bitwise_xor, "torch.Tensor.__ixor__"),
      BINARY_INPLACE(maximum),
      BINARY_INPLACE(minimum),
      {"clamp_",
       "input, min=None, max=None",
       nullptr,
       {"torch.Tensor.clamp_", "torch.Tensor.clip_"},
       "torch.Tensor.clamp_",
       kTagElementwise,
       "clamp"},
      {"lerp_", "input, end, weight", nullptr, {"torch.Tensor.lerp_"}, {}, kTagElementwise, "lerp"},
      {"addcmul_",
       "input, tensor1, tensor2, *, value=1",
       nullptr,
       {"torch.Tensor.addcmul_"},
       {},
       kTagElementwise,
       "addcmul"},
      {"addcdiv_",
       "input, tensor1, tensor2, *, value=1",
       nullptr,
       {"torch.Tensor.addcdiv_"},
       {},
       kTagElementwise,
       "addcdiv"},
      UNARY_INPLACE(neg),
      UNARY_INPLACE(exp),
      UNARY_INPLACE(log),
      UNARY_INPLACE(sqrt),
      UNARY_INPLACE(rsqrt),
      UNARY_INPLACE(sin),
      UNARY_INPLACE(cos),
      UNARY_INPLACE(tanh),
      UNARY_INPLACE(sigmoid),
      UNARY_INPLACE(abs),
      UNARY_INPLACE(floor),
      UNARY_INPLACE(ceil),
      {"round_",
       "input, *, decimals=0",
       nullptr,
       {"torch.Tensor.round_"},
       {},
       kTagElementwise,
       "round"},
      UNARY_INPLACE(trunc),
      UNARY_INPLACE(reciprocal),
      {"copy_",
       "input, src, non_blocking=False",
       nullptr,
       {"torch.Tensor.copy_"},
       "thunder.executors.torchex.copy",
       kTagElementwise,
       "copy"},
      {"relu_",
       "input",
       nullptr,
       {"torch.Tensor.relu_", "torch.relu_"},
       "torch.relu_",
       kTagElementwise,
       "relu"},
  };
  register_ops(table, inplace);
}

}  // namespace thunder
