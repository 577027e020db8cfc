// Torch-level neural-network ops: matrix products, embedding, activations, softmax, normalization,
// dropout and attention. Losses live in nn_loss.cpp, convolution, pooling and padding in
// nn_conv.cpp. Float16/bfloat16 inputs are computed in float32 and converted back, as PyTorch's
// kernels do.
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "ops/nn_common.h"

namespace thunder {

namespace detail::nn {

TensorRef softmax_along(Builder& b, const TensorRef& x, int64_t dim, bool log) {
  if (x->shape()[dim].value() == 0)
    return lang::full(b, x->shape(), Value(0.0), x->device(), x->dtype());
  TensorRef m = amax_keep(b, x, {dim});
  TensorRef shifted = bin(b, prims::sub(), Value(x), Value(m));
  TensorRef e = un(b, prims::exp(), shifted);
  TensorRef s = sum_keep(b, e, {dim});
  if (log) return bin(b, prims::sub(), Value(shifted), Value(un(b, prims::log(), s)));
  return bin(b, prims::div(), Value(e), Value(s));
}

const std::string& checked_reduction(const std::string& r, bool batchmean) {
  if (r != "none" && r != "mean" && r != "sum" && !(batchmean && r == "batchmean")) {
    throw ValueError(r + " is not a valid value for reduction");
  }
  return r;
}

std::string loss_reduction(const BoundArgs& a, size_t size_average, size_t reduce, size_t reduction,
                           bool batchmean) {
  if (!a[size_average].is_none() || !a[reduce].is_none()) {
    // torch.nn._reduction.legacy_get_string
    bool sa = a[size_average].is_none() ? true : a[size_average].as_bool();
    bool rd = a[reduce].is_none() ? true : a[reduce].as_bool();
    if (!rd) return "none";
    return sa ? "mean" : "sum";
  }
  return checked_reduction(a[reduction].as_string(), batchmean);
}

}  // namespace detail::nn

namespace {

using namespace detail::nn;

// c10's C++ type names, as in "expected m1 and m2 to have the same dtype, but got: float !=
// double".
const char* cpp_type_name(DType d) {
  switch (d) {
    case DType::kFloat32:
      return "float";
    case DType::kFloat64:
      return "double";
    case DType::kBFloat16:
      return "c10::BFloat16";
    case DType::kFloat16:
      return "c10::Half";
    case DType::kInt64:
      return "long int";
    case DType::kInt32:
      return "int";
    default:
      return dtype_name(d);
  }
}

void check_same_dtype(const TensorRef& x, const TensorRef& y) {
  if (x->dtype() != y->dtype()) {
    throw Error(std::string("expected m1 and m2 to have the same dtype, but got: ") +
                cpp_type_name(x->dtype()) + " != " + cpp_type_name(y->dtype()));
  }
}

void check_matmul_dtype(const TensorRef& x) {
  if (is_bool(x->dtype())) {
    throw NotImplementedError("\"addmm_impl_cpu_\" not implemented for 'Bool'");
  }
}

// ---------------------------------------------------------------------------------------------
// Matrix products.

Value linear_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& w = a.tensor(1);
  if (w->rank() > 2 || w->rank() < 1 || x->rank() < 1) {
    throw Error("linear: expected the weight to be 1-D or 2-D and the input at least 1-D, got " +
                x->type_string() + " and " + w->type_string());
  }
  check_same_dtype(x, w);
  check_matmul_dtype(x);
  int64_t in = x->shape().back().value(), w_in = w->shape().back().value();
  if (in != w_in) {
    int64_t rows = x->numel() / std::max<int64_t>(in, 1);
    throw Error("mat1 and mat2 shapes cannot be multiplied (" + std::to_string(rows) + "x" +
                std::to_string(in) + " and " + std::to_string(w_in) + "x" +
                std::to_string(w->rank() == 2 ? w->shape()[0].value() : 1) + ")");
  }
  Value bias = a[2];
  if (bias.is_tensor()) check_same_dtype(x, bias.as_tensor());
  return lang::call(b, prims::linear(), {Value(x), Value(w), bias});
}

Value matmul_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& y = a.tensor(1);
  if (x->rank() == 0 || y->rank() == 0) {
    throw Error("both arguments to matmul need to be at least 1D, but they are " +
                std::to_string(x->rank()) + "D and " + std::to_string(y->rank()) + "D");
  }
  check_same_dtype(x, y);
  check_matmul_dtype(x);
  int64_t k1 = x->shape().back().value();
  int64_t k2 = y->rank() == 1 ? y->shape()[0].value() : y->shape()[y->rank() - 2].value();
  if (k1 != k2) {
    int64_t rows = x->rank() == 1 ? 1 : x->shape()[x->rank() - 2].value();
    int64_t cols = y->rank() == 1 ? 1 : y->shape().back().value();
    throw Error("mat1 and mat2 shapes cannot be multiplied (" + std::to_string(rows) + "x" +
                std::to_string(k1) + " and " + std::to_string(k2) + "x" + std::to_string(cols) +
                ")");
  }
  return lang::call(b, prims::matmul(), {Value(x), Value(y)});
}

template <int kRank>
Value mm_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& y = a.tensor(1);
  const char* what = kRank == 2 ? "a matrix" : "a 3D tensor";
  if (x->rank() != kRank)
    throw Error(std::string(kRank == 2 ? "self" : "batch1") + " must be " + what);
  if (y->rank() != kRank)
    throw Error(std::string(kRank == 2 ? "mat2" : "batch2") + " must be " + what);
  check_same_dtype(x, y);
  check_matmul_dtype(x);
  if (kRank == 3 && x->shape()[0] != y->shape()[0]) {
    throw Error("Expected size for first two dimensions of batch2 tensor to be: [" +
                std::to_string(x->shape()[0].value()) + ", " +
                std::to_string(x->shape()[2].value()) + "] but got: [" +
                std::to_string(y->shape()[0].value()) + ", " +
                std::to_string(y->shape()[1].value()) + "].");
  }
  if (x->shape()[kRank - 1] != y->shape()[kRank - 2]) {
    throw Error("mat1 and mat2 shapes cannot be multiplied (" +
                std::to_string(x->shape()[kRank - 2].value()) + "x" +
                std::to_string(x->shape()[kRank - 1].value()) + " and " +
                std::to_string(y->shape()[kRank - 2].value()) + "x" +
                std::to_string(y->shape()[kRank - 1].value()) + ")");
  }
  return lang::call(b, prims::matmul(), {Value(x), Value(y)});
}

// addmm / baddbmm: beta * input + alpha * (mat1 @ mat2); beta == 0 ignores input (NaN included).
template <int kRank>
Value addmm_like_meta(Builder& b, const BoundArgs& a) {
  std::vector<Value> mm_args = {a[1], a[2]};
  BoundArgs mm(a.symbol(), mm_args);
  TensorRef prod = mm_like_meta<kRank>(b, mm).as_tensor();
  const TensorRef& input = a.tensor(0);
  check_same_dtype(input, prod);
  Shape shape;
  try {
    shape = lang::broadcast_shapes(input->shape(), prod->shape());
  } catch (const ValueError&) {
    shape = input->shape();  // reported below, as torch does, as a RuntimeError
  }
  if (shape != prod->shape()) {
    throw Error("The expanded size of the input " + shape_str(input->shape()) +
                " must match the product's size " + shape_str(prod->shape()));
  }
  const Value& beta = a[3];
  const Value& alpha = a[4];
  Value p = Value(prod);
  if (!(alpha.is_number() && alpha.as_double() == 1.0))
    p = lang::binary(b, prims::mul(), p, alpha, lang::Promotion::kDefault);
  if (beta.is_number() && beta.as_double() == 0.0) {
    return lang::convert(b, p.as_tensor(), prod->dtype());
  }
  Value in = Value(input);
  if (!(beta.is_number() && beta.as_double() == 1.0))
    in = lang::binary(b, prims::mul(), in, beta, lang::Promotion::kDefault);
  return lang::binary(b, prims::add(), in, p, lang::Promotion::kDefault);
}

// ---------------------------------------------------------------------------------------------
// Embedding.

Value embedding_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& idx = a.tensor(0);
  const TensorRef& w = a.tensor(1);
  if (idx->dtype() != DType::kInt64 && idx->dtype() != DType::kInt32) {
    throw Error(
        std::string("Expected tensor for argument #1 'indices' to have one of the following "
                    "scalar types: Long, Int; but got ") +
        dtype_name(idx->dtype()) + " instead (while checking arguments for embedding)");
  }
  if (w->rank() != 2) throw Error("'weight' must be 2-D");
  if (!a[3].is_none()) {
    throw NotImplementedError(
        "embedding: max_norm renormalizes the weight in place; not supported");
  }
  if (!a[2].is_none()) {
    int64_t n = w->shape()[0].value(), p = a.int_(2);
    if (p >= n || p < -n) throw ValueError("Padding_idx must be within num_embeddings");
  }
  // padding_idx, scale_grad_by_freq and sparse only change the gradient.
  TensorRef flat = lang::reshape(b, idx, {idx->numel()});
  TensorRef rows = lang::call_t(b, prims::take(), {Value(w), Value(flat), Value(int64_t{0})});
  Shape out = idx->shape();
  out.push_back(w->shape()[1]);
  return lang::reshape(b, rows, out);
}

// ---------------------------------------------------------------------------------------------
// Activations.

Value gelu_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "GeluKernelImpl");
  const std::string& approx = a[1].as_string();
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef inner;
  if (approx == "none") {
    // 0.5 * x * (1 + erf(x / sqrt(2)))
    TensorRef s = bin(b, prims::mul(), Value(x), Value(M_SQRT1_2));
    inner = un(b, prims::erf(), s);
  } else if (approx == "tanh") {
    // 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
    TensorRef x3 = bin(b, prims::mul(), Value(bin(b, prims::mul(), Value(x), Value(x))), Value(x));
    TensorRef t =
        bin(b, prims::add(), Value(x), Value(bin(b, prims::mul(), Value(x3), Value(0.044715))));
    TensorRef s = bin(b, prims::mul(), Value(t), Value(M_2_SQRTPI * M_SQRT1_2));
    inner = un(b, prims::tanh(), s);
  } else {
    throw Error("approximate argument must be either none or tanh.");
  }
  TensorRef one_plus = bin(b, prims::add(), Value(inner), Value(1.0));
  TensorRef half_x = bin(b, prims::mul(), Value(x), Value(0.5));
  return lang::convert(b, bin(b, prims::mul(), Value(half_x), Value(one_plus)), x0->dtype());
}

// x * sigmoid(x) = x / (1 + exp(-x))
Value silu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "silu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef e = un(b, prims::exp(), un(b, prims::neg(), x));
  TensorRef d = bin(b, prims::add(), Value(e), Value(1.0));
  return lang::convert(b, bin(b, prims::div(), Value(x), Value(d)), x0->dtype());
}

// log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold.
TensorRef softplus_core(Builder& b, const TensorRef& x, double beta, double threshold) {
  TensorRef bx = beta == 1.0 ? x : bin(b, prims::mul(), Value(x), Value(beta));
  TensorRef over = cmp(b, prims::gt(), Value(bx), Value(threshold));
  // The exponential reads 0 where the linear branch is taken: exp of a large bx is inf there, and
  // the untaken branch's gradient would be 0 * inf = NaN (torch's is 1).
  TensorRef safe = lang::call_t(b, prims::where(), {Value(over), Value(0.0), Value(bx)});
  TensorRef sp = un(b, prims::log1p(), un(b, prims::exp(), safe));
  if (beta != 1.0) sp = bin(b, prims::div(), Value(sp), Value(beta));
  return where(b, over, x, Value(sp));
}

Value softplus_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "softplus_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, softplus_core(b, x, a.number(1), a.number(2)), x0->dtype());
}

// x * tanh(softplus(x))
Value mish_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "mish_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef t = un(b, prims::tanh(), softplus_core(b, x, 1.0, 20.0));
  return lang::convert(b, bin(b, prims::mul(), Value(x), Value(t)), x0->dtype());
}

// x where x > 0, x * slope elsewhere (0 takes the slope's side): leaky_relu, rrelu out of
// training, prelu (a weight tensor broadcast to x).
TensorRef leaky(Builder& b, const TensorRef& x, const Value& slope) {
  TensorRef pos = cmp(b, prims::gt(), Value(x), Value(0.0));
  return where(b, pos, x, Value(bin(b, prims::mul(), Value(x), slope)));
}

Value leaky_relu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 2);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "leaky_relu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, leaky(b, x, Value(a.number(1))), x0->dtype());
}

// scale * (x where x > 0, alpha * (exp(x * input_scale) - 1) elsewhere): elu, selu and celu,
// torch's elu with its scale and input scale. At 0 the negative branch's gradient, as torch's. The
// exponential reads 0 where x > 0: at x = inf its overflow would make the gradient NaN through the
// branch not taken.
TensorRef scaled_elu(Builder& b, const TensorRef& x, double alpha, double scale,
                     double input_scale) {
  TensorRef pos = cmp(b, prims::gt(), Value(x), Value(0.0));
  TensorRef xn = lang::call_t(b, prims::where(), {Value(pos), Value(0.0), Value(x)});
  TensorRef xs = input_scale == 1.0 ? xn : bin(b, prims::mul(), Value(xn), Value(input_scale));
  TensorRef neg = bin(b, prims::mul(), Value(un(b, prims::expm1(), xs)), Value(alpha));
  TensorRef r = where(b, pos, x, Value(neg));
  return scale == 1.0 ? r : bin(b, prims::mul(), Value(r), Value(scale));
}

// x where x > 0, weight * x elsewhere; the weight one value, or one per channel (dim 1).
Value prelu_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  const TensorRef& w0 = a.tensor(1);
  if (w0->rank() > 1) {
    throw Error("prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = " +
                std::to_string(w0->rank()));
  }
  if (x0->dtype() != w0->dtype()) {
    throw Error(std::string("prelu: Type promoting not supported. Got ") +
                torch_type_name(x0->dtype()) + " and " + torch_type_name(w0->dtype()));
  }
  require_floating(x0->dtype(), "prelu_cpu");
  const int64_t n = w0->numel();
  if (n != 1) {
    if (x0->rank() == 0) throw Error("Not allow zero-dim input tensor.");
    const int64_t channels = x0->rank() >= 2 ? x0->shape()[1].value() : 1;
    if (n != channels) {
      throw Error(
          "Mismatch of parameter numbers and input channel size. Found parameter numbers = " +
          std::to_string(n) + " and channel size = " + std::to_string(channels) + ".");
    }
  }
  const DType ct = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, ct);
  TensorRef w = lang::convert(b, w0, ct);
  if (n == 1) {
    w = lang::reshape(b, w, {});
  } else if (x0->rank() > 2) {
    Shape ws = {w0->shape()[0]};
    for (int64_t i = 2; i < x0->rank(); ++i) ws.push_back(Dim(1));
    w = lang::reshape(b, w, ws);
  }
  return lang::convert(b, leaky(b, x, Value(w)), x0->dtype());
}

// rrelu out of training: leaky_relu with the slope (lower + upper) / 2. In training its slopes are
// random (capture runs those calls as torch calls).
Value rrelu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 4);
  const TensorRef& x0 = a.tensor(0);
  const double lower = a.number(1), upper = a.number(2);
  if (lower > upper) throw Error("Lower bound should be less than or equal to the upper bound");
  if (a.bool_(3)) {
    throw NotImplementedError(
        "rrelu with training=True draws random slopes; thunder has no rule for it");
  }
  require_floating(x0->dtype(), "leaky_relu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, leaky(b, x, Value((lower + upper) / 2)), x0->dtype());
}

// x where x > 0, alpha * (exp(x) - 1) elsewhere.
Value elu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 2);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "elu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, scaled_elu(b, x, a.number(1), 1.0, 1.0), x0->dtype());
}

Value selu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "elu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(
      b,
      scaled_elu(b, x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946, 1.0),
      x0->dtype());
}

Value celu_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 2);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "elu_cpu");
  const double alpha = a.number(1);
  if (alpha == 0.0) throw Error("ZeroDivisionError: alpha cannot be 0 for CELU");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, scaled_elu(b, x, alpha, 1.0, 1.0 / alpha), x0->dtype());
}

// log(sigmoid(x)): x - log1p(exp(x)) below 0, -log1p(exp(-x)) from 0 on, each branch's exponent
// read as 0 where the other branch is taken (no overflow there, so no NaN in its gradient). At 0
// the gradient is 1/2, as torch's.
Value logsigmoid_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "log_sigmoid_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef neg = cmp(b, prims::lt(), Value(x), Value(0.0));
  TensorRef xn = where(b, neg, x, Value(0.0));
  TensorRef xp = lang::call_t(b, prims::where(), {Value(neg), Value(0.0), Value(x)});
  TensorRef below =
      bin(b, prims::sub(), Value(xn), Value(un(b, prims::log1p(), un(b, prims::exp(), xn))));
  TensorRef above =
      un(b, prims::neg(), un(b, prims::log1p(), un(b, prims::exp(), un(b, prims::neg(), xp))));
  return lang::convert(b, where(b, neg, below, Value(above)), x0->dtype());
}

// x / (1 + |x|) and x - tanh(x), as torch's Python definitions: integers give floats.
template <bool kTanh>
Value shrink_like_meta(Builder& b, const BoundArgs& a) {
  lang::PromotionResult p = lang::elementwise_promotion({a[0]}, lang::Promotion::kIntToFloat);
  TensorRef x = lang::convert(b, a.tensor(0), p.compute);
  TensorRef r;
  if (kTanh) {
    r = bin(b, prims::sub(), Value(x), Value(un(b, prims::tanh(), x)));
  } else {
    TensorRef d = bin(b, prims::add(), Value(un(b, prims::abs(), x)), Value(1.0));
    r = bin(b, prims::div(), Value(x), Value(d));
  }
  return lang::convert(b, r, p.result);
}

// x - lambd above lambd, x + lambd below -lambd, x * 0 between (-0 for negative x, NaN for NaN).
Value softshrink_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "softshrink_check");
  const double l = a.number(1);
  if (!(l >= 0)) {
    std::ostringstream os;
    os << "lambda must be in range [0, " << finite_max(x0->dtype()) << "] for input dtype "
       << torch_type_name(x0->dtype()) << ", but found " << l;
    throw Error(os.str());
  }
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef mid = bin(b, prims::mul(), Value(x), Value(0.0));
  TensorRef lo = where(b, cmp(b, prims::lt(), Value(x), Value(-l)),
                       bin(b, prims::add(), Value(x), Value(l)), Value(mid));
  TensorRef r = where(b, cmp(b, prims::gt(), Value(x), Value(l)),
                      bin(b, prims::sub(), Value(x), Value(l)), Value(lo));
  return lang::convert(b, r, x0->dtype());
}

// 0 for x in [-lambd, lambd], x elsewhere (NaN stays NaN).
Value hardshrink_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  require_floating(x->dtype(), "hardshrink_cpu");
  const double l = a.number(1);
  TensorRef inside = bin(b, prims::bitwise_and(), Value(cmp(b, prims::ge(), Value(x), Value(-l))),
                         Value(cmp(b, prims::le(), Value(x), Value(l))));
  return lang::call_t(b, prims::where(), {Value(inside), Value(0.0), Value(x)});
}

// value where x <= threshold, x elsewhere; both numbers in x's dtype (an integer tensor truncates
// them), as torch's kernel.
Value threshold_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 3);
  const TensorRef& x = a.tensor(0);
  if (is_bool(x->dtype()) || is_complex(x->dtype())) {
    throw NotImplementedError("\"threshold_cpu\" not implemented for '" +
                              std::string(torch_type_name(x->dtype())) + "'");
  }
  Value th = lang::convert_value(b, a[1], x->dtype());
  Value v = lang::convert_value(b, a[2], x->dtype());
  TensorRef below = cmp(b, prims::le(), Value(x), th);
  return lang::call_t(b, prims::where(), {Value(below), v, Value(x)});
}

// x clamped to [lo, hi] (NaN stays NaN) by selects, so that the gradient passes strictly inside
// the range, as torch's hardtanh, relu6, hardsigmoid and hardswish backward kernels pass it.
// Through maximum and minimum a value at an end got half the gradient.
TensorRef clamp_to(Builder& b, const TensorRef& x, double lo, double hi) {
  Value l = lang::convert_value(b, Value(lo), x->dtype());
  Value h = lang::convert_value(b, Value(hi), x->dtype());
  TensorRef r =
      lang::call_t(b, prims::where(), {Value(cmp(b, prims::le(), Value(x), l)), l, Value(x)});
  return lang::call_t(b, prims::where(), {Value(cmp(b, prims::ge(), Value(x), h)), h, Value(r)});
}

Value hardtanh_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 3);
  const TensorRef& x = a.tensor(0);
  if (is_bool(x->dtype()))
    throw NotImplementedError("\"clamp_scalar_cpu\" not implemented for 'Bool'");
  double lo = a.number(1), hi = a.number(2);
  if (lo > hi) throw ValueError("min_val cannot be greater than max_val");
  if (x->dtype() == DType::kUInt8 && lo < 0) {
    throw Error("cannot do hardtanh on an unsigned type with negative limits");
  }
  return clamp_to(b, x, lo, hi);
}

Value relu6_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x = a.tensor(0);
  if (is_bool(x->dtype()))
    throw NotImplementedError("\"clamp_scalar_cpu\" not implemented for 'Bool'");
  return clamp_to(b, x, 0.0, 6.0);
}

// x * relu6(x + 3) / 6
Value hardswish_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "hardswish_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef r = clamp_to(b, bin(b, prims::add(), Value(x), Value(3.0)), 0.0, 6.0);
  TensorRef y = bin(b, prims::div(), Value(bin(b, prims::mul(), Value(x), Value(r))), Value(6.0));
  return lang::convert(b, y, x0->dtype());
}

// relu6(x + 3) / 6
Value hardsigmoid_meta(Builder& b, const BoundArgs& a) {
  reject_inplace(a, 1);
  const TensorRef& x0 = a.tensor(0);
  require_floating(x0->dtype(), "hardsigmoid_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef r = clamp_to(b, bin(b, prims::add(), Value(x), Value(3.0)), 0.0, 6.0);
  return lang::convert(b, bin(b, prims::div(), Value(r), Value(6.0)), x0->dtype());
}

// F.one_hot(tensor, num_classes): (tensor[..., None] == arange(num_classes)) as int64.
Value one_hot_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& t = a.tensor(0);
  if (t->dtype() != DType::kInt64) {
    throw Error("one_hot is only applicable to index tensor of type LongTensor.");
  }
  int64_t n = a.int_(1);
  if (n == -1) {
    throw NotImplementedError(
        "one_hot: num_classes=-1 takes the class count from the values of "
        "the input; pass num_classes explicitly");
  }
  if (n < 1 && t->numel() > 0) throw Error("Class values must be smaller than num_classes.");
  TensorRef classes = iota(b, n, 0, t->device(), DType::kInt64);
  TensorRef idx = lang::unsqueeze(b, t, {t->rank()});
  TensorRef eq = cmp(b, prims::eq(), Value(idx), Value(classes));
  return lang::convert(b, eq, DType::kInt64);
}

// ---------------------------------------------------------------------------------------------
// Softmax.

// softmax, log_softmax, and softmin (kNeg: the softmax of -input).
template <bool kLog, bool kNeg = false>
Value softmax_meta(Builder& b, const BoundArgs& a) {
  TensorRef x = a.tensor(0);
  std::optional<DType> dtype = a.optional_dtype(3);
  int64_t rank = x->rank();
  int64_t dim;
  if (a[1].is_none()) {
    // torch.nn.functional._get_softmax_dim: the legacy implicit dim.
    dim = (rank == 0 || rank == 1 || rank == 3) ? 0 : 1;
  } else {
    dim = lang::canonical_dim(a.int_(1), rank);
  }
  if (dtype) x = lang::convert(b, x, *dtype);
  DType result = x->dtype();
  if (!is_floating(result)) {
    require_floating(result,
                     kLog ? "log_softmax_lastdim_kernel_impl" : "softmax_lastdim_kernel_impl");
  }
  Shape shape = x->shape();
  TensorRef xc = lang::convert(b, x, opmath(result));
  if (kNeg) xc = un(b, prims::neg(), xc);
  if (rank == 0) xc = lang::reshape(b, xc, {1});
  TensorRef r;
  bool low = result == DType::kBFloat16 || result == DType::kFloat16;
  if (kLog && low && x->device().type == DeviceType::kCPU && dim == std::max<int64_t>(rank - 1, 0) &&
      xc->shape()[dim].value() != 0) {
    // torch's CPU kernel over the last dim (`_vec_log_softmax_lastdim`) holds the row's sum of
    // exponentials and its log in the input's dtype: both are rounded to it, as there.
    TensorRef m = amax_keep(b, xc, {dim});
    TensorRef shifted = bin(b, prims::sub(), Value(xc), Value(m));
    TensorRef s = sum_keep(b, un(b, prims::exp(), shifted), {dim});
    s = lang::convert(b, lang::convert(b, s, result), xc->dtype());
    TensorRef ls = lang::convert(b, lang::convert(b, un(b, prims::log(), s), result), xc->dtype());
    r = bin(b, prims::sub(), Value(shifted), Value(ls));
  } else {
    r = softmax_along(b, xc, dim, kLog);
  }
  r = lang::reshape(b, r, shape);
  return lang::convert(b, r, result);
}

// F.glu(input, dim=-1): the first half of input along dim times the sigmoid of the second half.
Value glu_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  if (x0->rank() == 0)
    throw Error("glu does not support scalars because halving size must be even");
  const int64_t d = lang::canonical_dim(a.int_(1), x0->rank());
  const int64_t n = x0->shape()[d].value();
  if (n % 2 != 0) {
    throw Error("Halving dimension must be even, but dimension " + std::to_string(d) + " is size " +
                std::to_string(n));
  }
  require_floating(x0->dtype(), "glu_cpu");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef second = lang::slice_dim(b, x, d, n / 2, n);
  // torch's sigmoid (its gradient y * (1 - y) is 0 where the gate saturates; the primitives'
  // chain rule gives inf * 0 there).
  TensorRef gate = b.call_bound(ltorch_symbol("sigmoid"), {Value(second)}).as_tensor();
  return lang::convert(
      b, bin(b, prims::mul(), Value(lang::slice_dim(b, x, d, 0, n / 2)), Value(gate)), x0->dtype());
}

// ---------------------------------------------------------------------------------------------
// Normalization.

// Checks that `t` (weight or bias) has shape `ns`.
void check_affine(const BoundArgs& a, size_t i, const Shape& ns, const char* what) {
  if (a[i].is_none()) return;
  const TensorRef& t = a.tensor(i);
  if (t->shape() != ns) {
    throw Error(std::string("Expected ") + what +
                " to be of same shape as normalized_shape, but got " + what + " of shape " +
                shape_str(t->shape()) + " and normalized_shape = " + shape_str(ns));
  }
}

// The last len(normalized_shape) dims of x, after checking that they match.
std::vector<int64_t> normalized_dims(const BoundArgs& a, const TensorRef& x, Shape* ns_out) {
  std::vector<int64_t> ns = a.ints(1);
  Shape ns_shape(ns.begin(), ns.end());
  int64_t k = static_cast<int64_t>(ns.size());
  bool ok = k <= x->rank();
  for (int64_t i = 0; ok && i < k; ++i) ok = x->shape()[x->rank() - k + i].value() == ns[i];
  if (!ok) {
    throw Error("Given normalized_shape=" + shape_str(ns_shape) +
                ", expected input with shape [*, " + shape_str(ns_shape).substr(1) +
                ", but got input of size" + shape_str(x->shape()));
  }
  std::vector<int64_t> dims;
  for (int64_t i = x->rank() - k; i < x->rank(); ++i) dims.push_back(i);
  *ns_out = ns_shape;
  return dims;
}

TensorRef affine(Builder& b, const BoundArgs& a, TensorRef y, size_t wi, size_t bi) {
  if (!a[wi].is_none())
    y = bin(b, prims::mul(), Value(y), Value(lang::convert(b, a.tensor(wi), y->dtype())));
  if (!a[bi].is_none())
    y = bin(b, prims::add(), Value(y), Value(lang::convert(b, a.tensor(bi), y->dtype())));
  return y;
}

Value layer_norm_meta(Builder& b, const BoundArgs& a) { return Value(layer_norm_parts(b, a)[0]); }

Value rms_norm_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  Shape ns;
  std::vector<int64_t> dims = normalized_dims(a, x0, &ns);
  check_affine(a, 2, ns, "weight");
  require_floating(x0->dtype(), "rms_norm");
  DType compute = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  if (dims.empty()) throw Error("rms_norm: normalized_shape must not be empty");
  TensorRef y = bin(b, prims::mul(), Value(x), Value(rms_norm_rstd(b, x, dims, a[3])));
  if (!a[2].is_none()) {
    const TensorRef& w = a.tensor(2);
    DType wc = promote_types(compute, w->dtype());
    y = bin(b, prims::mul(), Value(lang::convert(b, y, wc)), Value(lang::convert(b, w, wc)));
  }
  return lang::convert(b, y, x0->dtype());
}

Value group_norm_meta(Builder& b, const BoundArgs& a) {
  return Value(group_norm_parts(b, a.tensor(0), a.int_(1), a[2], a[3], a.number(4))[0]);
}

// (x - mean) * rsqrt(var + eps), then times the weight and plus the bias per channel: the tail of
// batch_norm and instance_norm, whose arguments 3, 4 and 7 are weight, bias and eps. The
// rsqrt(var + eps) it computes goes to `rstd_out` where given.
TensorRef normalized_per_channel(Builder& b, const BoundArgs& a, const TensorRef& x,
                                 const TensorRef& mean, const TensorRef& var,
                                 TensorRef* rstd_out = nullptr) {
  const int64_t rank = x->rank();
  TensorRef rstd = un(b, prims::rsqrt(), bin(b, prims::add(), Value(var), Value(a.number(7))));
  if (rstd_out != nullptr) *rstd_out = rstd;
  TensorRef y =
      bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(x), Value(mean))), Value(rstd));
  if (!a[3].is_none())
    y = bin(b, prims::mul(), Value(y),
            Value(channel_view(b, lang::convert(b, a.tensor(3), x->dtype()), rank)));
  if (!a[4].is_none())
    y = bin(b, prims::add(), Value(y),
            Value(channel_view(b, lang::convert(b, a.tensor(4), x->dtype()), rank)));
  return y;
}

// The running statistics (arguments 1 and 2, running_mean and running_var, where given) updated in
// place (prims.copy_) with momentum (argument 6): (1 - momentum) * running + momentum * stat(i),
// the statistic reshaped to the running one's shape and computed only for a running statistic
// given. The training forms of batch_norm and instance_norm.
void update_running_stats(Builder& b, const BoundArgs& a, const std::string& op, DType compute,
                          const std::function<TensorRef(size_t)>& stat) {
  if (a[1].is_none() && a[2].is_none()) return;
  if (a[6].is_none()) {
    throw NotImplementedError(op + ": momentum=None (a cumulative average) is not supported");
  }
  const double momentum = a.number(6);
  std::vector<std::pair<TensorRef, TensorRef>> updates;  // (new value, running statistic)
  for (size_t i : {size_t{1}, size_t{2}}) {
    if (a[i].is_none()) continue;
    const TensorRef& run = a.tensor(i);
    TensorRef s = lang::reshape(b, stat(i), run->shape());
    TensorRef old =
        bin(b, prims::mul(), Value(lang::convert(b, run, compute)), Value(1.0 - momentum));
    TensorRef upd =
        bin(b, prims::add(), Value(old), Value(bin(b, prims::mul(), Value(s), Value(momentum))));
    updates.emplace_back(lang::convert(b, upd, run->dtype()), run);
  }
  // The copies after every new value (the partitioner orders each copy only with the readers of
  // its buffer, so their place splits no kernel).
  for (const auto& [upd, run] : updates) lang::call(b, prims::copy_(), {Value(upd), Value(run)});
}

// Each channel's mean and biased variance over `dims` (of `count` elements each) of x, x0 in its
// compute dtype, kept as size-1 dims, in one pass over x: with k the channel's first element (0
// where that is not finite) and d = x - k in float64 (exact for float32 and narrower inputs), mean
// = k + s1 / n and var = s2 / n - (s1 / n)^2 (never below 0) in float64 from the sums s1 of d and
// s2 of d * d. The two-pass form (the mean, then the squares about it) reads x once more, which for
// a channels_last input, whose channels are columns of memory, is a kernel of its own. The shift
// keeps the squares' sum near the variance, and float64 keeps what cancels exact enough: a channel
// whose first element is 1000 stds from its mean normalises within 1.2e-5 of float64's output
// (eager's float32 kernels: 6e-6 NCHW, 5e-4 channels_last; with float32 sums, 7e-2). A constant
// channel has d = 0: its mean is k and its variance 0 exactly.
std::pair<TensorRef, TensorRef> shifted_mean_var(Builder& b, const TensorRef& x0,
                                                 const TensorRef& x,
                                                 const std::vector<int64_t>& dims, int64_t count) {
  // (Sliced from the input, not from its conversion: a fused kernel reads the slice as a load.)
  TensorRef k = x0;
  for (int64_t d : dims)
    k = lang::slice_dim(b, k, d, 0, std::min<int64_t>(1, x->shape()[d].value()));
  k = lang::convert(b, k, x->dtype());
  k = where(b, un(b, prims::isfinite(), k), k, Value(0.0));
  const DType wide = DType::kFloat64;
  TensorRef kw = lang::convert(b, k, wide);
  TensorRef d = bin(b, prims::sub(), Value(lang::convert(b, x, wide)), Value(kw));
  const double n = static_cast<double>(count);
  TensorRef m1 = bin(b, prims::div(), Value(sum_keep(b, d, dims)), Value(n));
  TensorRef m2 = bin(b, prims::div(),
                     Value(sum_keep(b, bin(b, prims::mul(), Value(d), Value(d)), dims)), Value(n));
  TensorRef var =
      bin(b, prims::maximum(),
          Value(bin(b, prims::sub(), Value(m2), Value(bin(b, prims::mul(), Value(m1), Value(m1))))),
          Value(0.0));
  return {lang::convert(b, bin(b, prims::add(), Value(kw), Value(m1)), x->dtype()),
          lang::convert(b, var, x->dtype())};
}

// F.batch_norm's arguments (input, running_mean, running_var, weight, bias, training, momentum,
// eps) checked as eager checks them.
void check_batch_norm(const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  if (x0->rank() < 2) {
    throw ValueError("Expected 2D or 3D input (got " + std::to_string(x0->rank()) + "D input)");
  }
  int64_t c = x0->shape()[1].value();
  int64_t count = c == 0 ? 0 : x0->numel() / c;
  for (size_t i = 1; i < 5; ++i) {
    if (!a[i].is_none() && a.tensor(i)->numel() != c) {
      static const char* names[] = {"", "running_mean", "running_var", "weight", "bias"};
      throw Error(std::string(names[i]) + " should contain " + std::to_string(c) +
                  " elements not " + std::to_string(a.tensor(i)->numel()));
    }
  }
  if (a.bool_(5) && count == 1) {
    throw ValueError("Expected more than 1 value per channel when training, got input size " +
                     shape_str(x0->shape()));
  }
  require_floating(x0->dtype(), "batch_norm");
}

}  // namespace

namespace detail::nn {

std::array<TensorRef, 3> batch_norm_training_parts(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  check_batch_norm(a);
  const DType compute = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  const int64_t c = x0->shape()[1].value();
  const int64_t count = c == 0 ? 0 : x0->numel() / c;
  std::vector<int64_t> dims = {0};
  for (int64_t i = 2; i < x->rank(); ++i) dims.push_back(i);
  auto [mean, var] = shifted_mean_var(b, x0, x, dims, count);
  TensorRef rstd;
  TensorRef y = lang::convert(b, normalized_per_channel(b, a, x, mean, var, &rstd), x0->dtype());
  std::array<TensorRef, 3> out{y, lang::reshape(b, mean, {c}), lang::reshape(b, rstd, {c})};
  // The running statistics' copies last: a fused kernel computes the output and their new values
  // together, the copies follow it.
  const double unbias =
      count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
  update_running_stats(b, a, "batch_norm", compute, [&](size_t i) {
    return i == 1 ? mean : bin(b, prims::mul(), Value(var), Value(unbias));
  });
  return out;
}

}  // namespace detail::nn

namespace {

// F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps). In
// training the running statistics are updated in place (recorded as prims.copy_), with the unbiased
// variance.
Value batch_norm_meta(Builder& b, const BoundArgs& a) {
  if (a.bool_(5)) return Value(batch_norm_training_parts(b, a)[0]);  // (which checks `a`)
  check_batch_norm(a);
  const TensorRef& x0 = a.tensor(0);
  if (a[1].is_none() || a[2].is_none()) {
    throw Error("running_mean and running_var must be defined in evaluation mode");
  }
  DType compute = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  TensorRef mean = channel_view(b, lang::convert(b, a.tensor(1), compute), x->rank());
  TensorRef var = channel_view(b, lang::convert(b, a.tensor(2), compute), x->rank());
  return lang::convert(b, normalized_per_channel(b, a, x, mean, var), x0->dtype());
}

// F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps):
// each (sample, channel) normalised over its spatial elements. With use_input_stats and running
// statistics, these are updated in place (prims.copy_) with the batch's mean of the instances'
// means and unbiased variances, as eager's batch_norm over the instances then averaged; without
// use_input_stats, the running statistics normalise.
Value instance_norm_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  const bool use_input_stats = a.bool_(5);
  if (x0->rank() < 2) {
    throw ValueError("instance_norm: expected an input of at least 2 dims (N, C, ...), got shape " +
                     shape_str(x0->shape()));
  }
  const int64_t n = x0->shape()[0].value(), c = x0->shape()[1].value();
  int64_t spatial = 1;
  for (int64_t i = 2; i < x0->rank(); ++i) spatial *= x0->shape()[static_cast<size_t>(i)].value();
  if (use_input_stats && spatial == 1) {
    throw ValueError("Expected more than 1 spatial element when training, got input size " +
                     shape_str(x0->shape()));
  }
  for (size_t i = 1; i < 5; ++i) {
    if (!a[i].is_none() && a.tensor(i)->numel() != c) {
      static const char* names[] = {"", "running_mean", "running_var", "weight", "bias"};
      throw Error(std::string(names[i]) + " should contain " + std::to_string(c) +
                  " elements (the input's channels) not " + std::to_string(a.tensor(i)->numel()));
    }
  }
  require_floating(x0->dtype(), "instance_norm");
  DType compute = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  const int64_t rank = x->rank();
  std::vector<int64_t> dims;
  for (int64_t i = 2; i < rank; ++i) dims.push_back(i);
  TensorRef mean, var;  // (N, C, 1, ...) from the input, (1, C, 1, ...) from running statistics
  if (!use_input_stats) {
    if (a[1].is_none() || a[2].is_none()) {
      throw Error(
          "Expected running_mean and running_var to be defined when use_input_stats is false");
    }
    mean = channel_view(b, lang::convert(b, a.tensor(1), compute), rank);
    var = channel_view(b, lang::convert(b, a.tensor(2), compute), rank);
    return lang::convert(b, normalized_per_channel(b, a, x, mean, var), x0->dtype());
  }
  mean = mean_keep(b, x, dims, static_cast<double>(spatial));
  var = var_keep(b, x, dims);
  TensorRef y = lang::convert(b, normalized_per_channel(b, a, x, mean, var), x0->dtype());
  const double unbias = static_cast<double>(spatial) / static_cast<double>(spatial - 1);
  update_running_stats(b, a, "instance_norm", compute, [&](size_t i) {  // last, as batch_norm's
    TensorRef stat = i == 1 ? mean : bin(b, prims::mul(), Value(var), Value(unbias));
    return mean_keep(b, lang::reshape(b, stat, {n, c}), {0}, static_cast<double>(n));
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Dropout and attention.

// x * mask / (1 - p) with mask = uniform(0, 1) < 1 - p; `x` is in its compute dtype.
TensorRef dropout_core(Builder& b, const TensorRef& x, double p) {
  if (p == 1.0) return bin(b, prims::mul(), Value(x), Value(0.0));
  TensorRef u = lang::uniform(b, x->shape(), 0.0, 1.0, x->device(), x->dtype());
  TensorRef keep = cmp(b, prims::lt(), Value(u), Value(1.0 - p));
  TensorRef scaled = bin(b, prims::mul(), Value(x), Value(1.0 / (1.0 - p)));
  return where(b, keep, scaled, Value(0.0));
}

void check_p(double p) {
  if (p < 0.0 || p > 1.0) {
    throw ValueError("dropout probability has to be between 0 and 1, but got " + std::to_string(p));
  }
}

Value dropout_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  double p = a.number(1);
  check_p(p);
  reject_inplace(a, 3);
  if (!a.bool_(2) || p == 0.0) return a[0];
  require_floating(x0->dtype(), "dropout");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  return lang::convert(b, dropout_core(b, x, p), x0->dtype());
}

// k/v of shape (..., Hk, S, E) repeated to Hq heads, each head `Hq / Hk` times in a row.
TensorRef repeat_heads(Builder& b, const TensorRef& t, int64_t hq) {
  int64_t r = t->rank();
  int64_t hk = t->shape()[r - 3].value();
  if (hk == hq) return t;
  TensorRef u = lang::unsqueeze(b, t, {r - 2});
  Shape expanded = u->shape();
  expanded[r - 2] = hq / hk;
  u = lang::expand_to(b, u, expanded);
  Shape out = t->shape();
  out[r - 3] = hq;
  return lang::reshape(b, u, out);
}

Value sdpa_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& q0 = a.tensor(0);
  TensorRef k0 = a.tensor(1);
  TensorRef v0 = a.tensor(2);
  const Value& mask = a[3];
  double dropout_p = a.number(4);
  bool causal = a.bool_(5);
  bool gqa = a.bool_(7);
  if (q0->rank() < 2 || k0->rank() < 2 || v0->rank() < 2) {
    throw Error("scaled_dot_product_attention: query, key and value must be at least 2-D");
  }
  if (q0->dtype() != k0->dtype() || q0->dtype() != v0->dtype()) {
    throw Error(std::string("Expected query, key, and value to have the same dtype, but got "
                            "query.dtype: ") +
                dtype_name(q0->dtype()) + " key.dtype: " + dtype_name(k0->dtype()) +
                " and value.dtype: " + dtype_name(v0->dtype()) + " instead.");
  }
  require_floating(q0->dtype(), "scaled_dot_product_attention");
  int64_t e = q0->shape().back().value();
  if (k0->shape().back().value() != e) {
    throw Error("scaled_dot_product_attention: query and key must have the same embedding size");
  }
  if (k0->shape()[k0->rank() - 2] != v0->shape()[v0->rank() - 2]) {
    throw Error("scaled_dot_product_attention: key and value must have the same sequence length");
  }
  if (causal && !mask.is_none()) {
    throw Error(
        "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
        "is_causal=True");
  }
  check_p(dropout_p);
  if (gqa && q0->rank() >= 3 && k0->rank() >= 3) {
    int64_t hq = q0->shape()[q0->rank() - 3].value();
    int64_t hk = k0->shape()[k0->rank() - 3].value();
    int64_t hv = v0->shape()[v0->rank() - 3].value();
    if (hk == 0 || hv == 0 || hq % hk != 0 || hq % hv != 0) {
      throw Error(
          "scaled_dot_product_attention: number of heads in key/value must divide number "
          "of heads in query");
    }
    k0 = repeat_heads(b, k0, hq);
    v0 = repeat_heads(b, v0, hq);
  }
  DType compute = opmath(q0->dtype());
  double scale = a[6].is_none() ? 1.0 / std::sqrt(static_cast<double>(e)) : a.number(6);
  TensorRef q = lang::convert(b, q0, compute);
  TensorRef k = lang::convert(b, k0, compute);
  TensorRef v = lang::convert(b, v0, compute);
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < k->rank(); ++i) perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  TensorRef kt = lang::transpose(b, k, perm);
  TensorRef scores = lang::call_t(b, prims::matmul(), {Value(q), Value(kt)});
  scores = bin(b, prims::mul(), Value(scores), Value(scale));
  int64_t l = q->shape()[q->rank() - 2].value(), s = k->shape()[k->rank() - 2].value();
  const double kNegInf = -std::numeric_limits<double>::infinity();
  if (causal) {
    // Position i attends to positions j <= i.
    TensorRef rows = lang::unsqueeze(b, iota(b, l, 0, q->device(), DType::kInt64), {1});
    TensorRef cols = lang::unsqueeze(b, iota(b, s, 0, q->device(), DType::kInt64), {0});
    TensorRef allowed = cmp(b, prims::ge(), Value(rows), Value(cols));
    scores = where(b, lang::expand_to(b, allowed, scores->shape()), scores, Value(kNegInf));
  } else if (mask.is_tensor()) {
    const TensorRef& m = mask.as_tensor();
    Shape shape = lang::broadcast_shapes(scores->shape(), m->shape());
    if (shape != scores->shape()) {
      throw Error("scaled_dot_product_attention: attn_mask " + shape_str(m->shape()) +
                  " cannot be broadcast to the attention weights " + shape_str(scores->shape()));
    }
    if (m->dtype() == DType::kBool) {
      scores = where(b, lang::expand_to(b, m, shape), scores, Value(kNegInf));
    } else {
      scores = bin(b, prims::add(), Value(scores), Value(lang::convert(b, m, compute)));
    }
  }
  TensorRef attn = softmax_along(b, scores, scores->rank() - 1, false);
  if (mask.is_tensor()) {
    // As torch's _safe_softmax: a row that attends to nothing gets weights 0, not NaN.
    TensorRef m = amax_keep(b, scores, {scores->rank() - 1});
    attn = where(b, cmp(b, prims::ne(), Value(m), Value(kNegInf)), attn, Value(0.0));
  }
  if (dropout_p > 0.0) attn = dropout_core(b, attn, dropout_p);
  TensorRef out = lang::call_t(b, prims::matmul(), {Value(attn), Value(v)});
  return lang::convert(b, out, q0->dtype());
}

}  // namespace

namespace detail::nn {

TensorRef rms_norm_rstd(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims,
                        const Value& eps) {
  double e = eps.is_none() ? (x->dtype() == DType::kFloat64 ? std::numeric_limits<double>::epsilon()
                                                            : std::numeric_limits<float>::epsilon())
                           : eps.as_double();
  double n = 1;
  for (int64_t d : dims) n *= static_cast<double>(x->shape()[d].value());
  TensorRef ms = bin(b, prims::div(),
                     Value(sum_keep(b, bin(b, prims::mul(), Value(x), Value(x)), dims)), Value(n));
  return un(b, prims::rsqrt(), bin(b, prims::add(), Value(ms), Value(e)));
}

namespace {

// x0's (n, groups, channels / groups, spatial) shape, checked against group_norm's arguments.
Shape group_norm_groups(const TensorRef& x0, int64_t g, const Value& weight, const Value& bias) {
  if (x0->rank() < 2) {
    throw Error("Expected at least 2 dimensions for input tensor but received " +
                std::to_string(x0->rank()));
  }
  int64_t n = x0->shape()[0].value(), c = x0->shape()[1].value();
  if (g <= 0 || c % g != 0) {
    throw Error(
        "Expected number of channels in input to be divisible by num_groups, but got input "
        "of shape " +
        shape_str(x0->shape()) + " and num_groups=" + std::to_string(g));
  }
  for (const Value* p : {&weight, &bias}) {
    const char* what = p == &weight ? "weight" : "bias";
    if (!p->is_none() && (p->as_tensor()->rank() != 1 || p->as_tensor()->shape()[0].value() != c)) {
      throw Error(std::string("Expected ") + what +
                  " to be a vector of size equal to the number of channels in input, but got " +
                  what + " of shape " + shape_str(p->as_tensor()->shape()) +
                  " and input of shape " + shape_str(x0->shape()));
    }
  }
  require_floating(x0->dtype(), "GroupNormKernelImpl");
  return {n, g, c / g, n * c == 0 ? 0 : x0->numel() / (n * c)};
}

// The normalized `y` (grouped, compute dtype) times the weight and plus the bias, each viewed as
// (groups, channels / groups), back in x0's dtype and shape.
TensorRef group_norm_affine(Builder& b, TensorRef y, const TensorRef& x0, const Shape& grouped,
                            const Value& weight, const Value& bias) {
  auto per_group_channel = [&](const Value& p) {
    TensorRef t =
        lang::convert(b, lang::reshape(b, p.as_tensor(), {grouped[1], grouped[2]}), y->dtype());
    return lang::call_t(b, prims::broadcast_in_dim(),
                        {Value(t), Value::ints({grouped[0].value(), grouped[1].value(),
                                                grouped[2].value(), grouped[3].value()}),
                         Value::ints({1, 2})});
  };
  if (!weight.is_none()) y = bin(b, prims::mul(), Value(y), Value(per_group_channel(weight)));
  if (!bias.is_none()) y = bin(b, prims::add(), Value(y), Value(per_group_channel(bias)));
  return lang::reshape(b, lang::convert(b, y, x0->dtype()), x0->shape());
}

}  // namespace

std::array<TensorRef, 3> group_norm_parts(Builder& b, const TensorRef& x0, int64_t g,
                                          const Value& weight, const Value& bias, double eps) {
  // Computed over (n, g, c / g, spatial): the statistics reduce the last two dims, and the weight
  // and bias, viewed as (g, c / g), broadcast over the others. One domain for the whole function,
  // so its forward and its backward fuse without reshapes of computed values between them.
  // Reshaped before they are converted: a reshape of an input is indexing in a fused kernel.
  const Shape grouped = group_norm_groups(x0, g, weight, bias);
  const double count = static_cast<double>(grouped[2].value() * grouped[3].value());
  TensorRef xg = lang::convert(b, lang::reshape(b, x0, grouped), opmath(x0->dtype()));
  TensorRef mean = mean_keep(b, xg, {2, 3}, count);
  TensorRef var = var_keep(b, xg, {2, 3});
  TensorRef rstd = un(b, prims::rsqrt(), bin(b, prims::add(), Value(var), Value(eps)));
  TensorRef y =
      bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(xg), Value(mean))), Value(rstd));
  const Shape stat{grouped[0], grouped[1]};
  return {group_norm_affine(b, y, x0, grouped, weight, bias), lang::reshape(b, mean, stat),
          lang::reshape(b, rstd, stat)};
}

TensorRef group_norm_output(Builder& b, const TensorRef& x0, int64_t g, const TensorRef& mean,
                            const TensorRef& rstd, const Value& weight, const Value& bias) {
  const Shape grouped = group_norm_groups(x0, g, weight, bias);
  const DType cd = opmath(x0->dtype());
  auto spread = [&](const TensorRef& t) {
    return lang::call_t(b, prims::broadcast_in_dim(),
                        {Value(lang::convert(b, t, cd)),
                         Value::ints({grouped[0].value(), grouped[1].value(), grouped[2].value(),
                                      grouped[3].value()}),
                         Value::ints({0, 1})});
  };
  TensorRef xg = lang::convert(b, lang::reshape(b, x0, grouped), cd);
  TensorRef y = bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(xg), Value(spread(mean)))),
                    Value(spread(rstd)));
  return group_norm_affine(b, y, x0, grouped, weight, bias);
}

std::array<TensorRef, 3> layer_norm_parts(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  Shape ns;
  std::vector<int64_t> dims = normalized_dims(a, x0, &ns);
  check_affine(a, 2, ns, "weight");
  check_affine(a, 3, ns, "bias");
  require_floating(x0->dtype(), "LayerNormKernelImpl");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  if (dims.empty()) throw Error("layer_norm: normalized_shape must not be empty");
  TensorRef mean = mean_keep(b, x, dims, static_cast<double>(numel(ns)));
  TensorRef var = var_keep(b, x, dims);
  TensorRef rstd = un(b, prims::rsqrt(), bin(b, prims::add(), Value(var), Value(a.number(4))));
  TensorRef y =
      bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(x), Value(mean))), Value(rstd));
  return {lang::convert(b, affine(b, a, y, 2, 3), x0->dtype()), mean, rstd};
}

}  // namespace detail::nn

void register_nn_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"linear", "input, weight, bias=None", linear_meta, {"torch.nn.functional.linear"}},
      {"matmul",
       "input, other",
       matmul_meta,
       {"torch.matmul", "torch.Tensor.matmul", "torch.Tensor.__matmul__"},
       "torch.matmul"},
      {"mm", "input, mat2", mm_like_meta<2>, {"torch.mm", "torch.Tensor.mm"}, "torch.mm"},
      {"bmm", "input, mat2", mm_like_meta<3>, {"torch.bmm", "torch.Tensor.bmm"}, "torch.bmm"},
      {"addmm",
       "input, mat1, mat2, *, beta=1, alpha=1",
       addmm_like_meta<2>,
       {"torch.addmm", "torch.Tensor.addmm"},
       "torch.addmm"},
      {"baddbmm",
       "input, batch1, batch2, *, beta=1, alpha=1",
       addmm_like_meta<3>,
       {"torch.baddbmm", "torch.Tensor.baddbmm"},
       "torch.baddbmm"},
      {"embedding",
       "input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, "
       "sparse=False",
       embedding_meta,
       {"torch.nn.functional.embedding"}},
      {"gelu",
       "input, *, approximate='none'",
       gelu_meta,
       {"torch.nn.functional.gelu"},
       {},
       kTagElementwise},
      {"silu",
       "input, inplace=False",
       silu_meta,
       {"torch.nn.functional.silu"},
       {},
       kTagElementwise},
      {"mish",
       "input, inplace=False",
       mish_meta,
       {"torch.nn.functional.mish"},
       {},
       kTagElementwise},
      {"softplus",
       "input, beta=1.0, threshold=20.0",
       softplus_meta,
       {"torch.nn.functional.softplus"},
       {},
       kTagElementwise},
      {"leaky_relu",
       "input, negative_slope=0.01, inplace=False",
       leaky_relu_meta,
       {"torch.nn.functional.leaky_relu"},
       {},
       kTagElementwise},
      {"elu",
       "input, alpha=1.0, inplace=False",
       elu_meta,
       {"torch.nn.functional.elu"},
       {},
       kTagElementwise},
      {"rrelu",
       "input, lower=0.125, upper=0.3333333333333333, training=False, inplace=False",
       rrelu_meta,
       {"torch.nn.functional.rrelu"},
       {},
       kTagElementwise},
      {"prelu",
       "input, weight",
       prelu_meta,
       {"torch.nn.functional.prelu", "torch.prelu", "torch.Tensor.prelu"},
       {},
       kTagElementwise},
      {"selu",
       "input, inplace=False",
       selu_meta,
       {"torch.nn.functional.selu", "torch.selu"},
       {},
       kTagElementwise},
      {"celu",
       "input, alpha=1.0, inplace=False",
       celu_meta,
       {"torch.nn.functional.celu", "torch.celu"},
       {},
       kTagElementwise},
      {"logsigmoid",
       "input",
       logsigmoid_meta,
       {"torch.nn.functional.logsigmoid"},
       {},
       kTagElementwise},
      {"softsign",
       "input",
       shrink_like_meta<false>,
       {"torch.nn.functional.softsign"},
       {},
       kTagElementwise},
      {"tanhshrink",
       "input",
       shrink_like_meta<true>,
       {"torch.nn.functional.tanhshrink"},
       {},
       kTagElementwise},
      {"softshrink",
       "input, lambd=0.5",
       softshrink_meta,
       {"torch.nn.functional.softshrink"},
       {},
       kTagElementwise},
      {"hardshrink",
       "input, lambd=0.5",
       hardshrink_meta,
       {"torch.nn.functional.hardshrink", "torch.hardshrink", "torch.Tensor.hardshrink"},
       {},
       kTagElementwise},
      {"threshold",
       "input, threshold, value, inplace=False",
       threshold_meta,
       {"torch.nn.functional.threshold", "torch.threshold"},
       {},
       kTagElementwise},
      {"hardtanh",
       "input, min_val=-1.0, max_val=1.0, inplace=False",
       hardtanh_meta,
       {"torch.nn.functional.hardtanh"},
       {},
       kTagElementwise},
      {"relu6",
       "input, inplace=False",
       relu6_meta,
       {"torch.nn.functional.relu6"},
       {},
       kTagElementwise},
      {"hardswish",
       "input, inplace=False",
       hardswish_meta,
       {"torch.nn.functional.hardswish"},
       {},
       kTagElementwise},
      {"hardsigmoid",
       "input, inplace=False",
       hardsigmoid_meta,
       {"torch.nn.functional.hardsigmoid"},
       {},
       kTagElementwise},
      {"one_hot", "tensor, num_classes=-1", one_hot_meta, {"torch.nn.functional.one_hot"}},
      {"softmax",
       "input, dim=None, _stacklevel=3, dtype=None",
       softmax_meta<false>,
       {"torch.nn.functional.softmax", "torch.softmax", "torch.Tensor.softmax",
        "torch.special.softmax"}},
      {"log_softmax",
       "input, dim=None, _stacklevel=3, dtype=None",
       softmax_meta<true>,
       {"torch.nn.functional.log_softmax", "torch.log_softmax", "torch.Tensor.log_softmax",
        "torch.special.log_softmax"}},
      {"softmin",
       "input, dim=None, _stacklevel=3, dtype=None",
       softmax_meta<false, true>,
       {"torch.nn.functional.softmin"}},
      {"glu", "input, dim=-1", glu_meta, {"torch.nn.functional.glu"}},
      {"layer_norm",
       "input, normalized_shape, weight=None, bias=None, eps=1e-05",
       layer_norm_meta,
       {"torch.nn.functional.layer_norm"}},
      {"rms_norm",
       "input, normalized_shape, weight=None, eps=None",
       rms_norm_meta,
       {"torch.nn.functional.rms_norm"}},
      {"group_norm",
       "input, num_groups, weight=None, bias=None, eps=1e-05",
       group_norm_meta,
       {"torch.nn.functional.group_norm"}},
      {"batch_norm",
       "input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, "
       "eps=1e-05",
       batch_norm_meta,
       {"torch.nn.functional.batch_norm"}},
      {"instance_norm",
       "input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True, "
       "momentum=0.1, eps=1e-05",
       instance_norm_meta,
       {"torch.nn.functional.instance_norm"}},
      {"dropout",
       "input, p=0.5, training=True, inplace=False",
       dropout_meta,
       {"torch.nn.functional.dropout"},
       {},
       kTagRandom},
      {"scaled_dot_product_attention",
       "query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, "
       "enable_gqa=False",
       sdpa_meta,
       {"torch.nn.functional.scaled_dot_product_attention"}},
  };
  register_ops(table, defs);
  register_nn_loss_ops(table);
  register_nn_conv_ops(table);
  register_einsum_ops(table);
}

}  // namespace thunder
