// Helpers shared by the neural-network op files (nn.cpp, nn_loss.cpp, nn_conv.cpp): opmath dtypes,
// PyTorch's type names for error messages, and thin wrappers over the primitives for decompositions
// whose operands already have one dtype.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

void register_nn_loss_ops(SymbolTable& table);
void register_nn_conv_ops(SymbolTable& table);
void register_einsum_ops(SymbolTable& table);

namespace detail::nn {

// The dtype PyTorch computes in: float32 for float16/bfloat16, the dtype itself otherwise.
inline DType opmath(DType d) { return is_low_precision(d) ? DType::kFloat32 : d; }

// c10's ScalarType names ("Float", "Long"), as in "... not implemented for 'Long'".
inline const char* torch_type_name(DType d) {
  switch (d) {
    case DType::kBool:
      return "Bool";
    case DType::kUInt8:
      return "Byte";
    case DType::kInt8:
      return "Char";
    case DType::kInt16:
      return "Short";
    case DType::kInt32:
      return "Int";
    case DType::kInt64:
      return "Long";
    case DType::kFloat16:
      return "Half";
    case DType::kBFloat16:
      return "BFloat16";
    case DType::kFloat32:
      return "Float";
    case DType::kFloat64:
      return "Double";
    case DType::kComplex64:
      return "ComplexFloat";
    case DType::kComplex128:
      return "ComplexDouble";
  }
  return "?";
}

// The largest finite value of a floating dtype (printed with 6 digits, as torch's messages show
// it).
inline double finite_max(DType d) {
  switch (d) {
    case DType::kFloat16:
      return 65504.0;
    case DType::kBFloat16:
      return 3.3895313892515355e38;
    case DType::kFloat64:
      return std::numeric_limits<double>::max();
    default:
      return std::numeric_limits<float>::max();
  }
}

// `v` rounded to the nearest value of the floating dtype `d` (ties to even), as a number PyTorch
// converts to the tensor's scalar type; no overflow handling (for small constants such as an eps).
inline double round_to(DType d, double v) {
  if (d == DType::kFloat64 || v == 0.0 || !std::isfinite(v)) return v;
  if (d == DType::kFloat32) return static_cast<float>(v);
  const int bits = d == DType::kFloat16 ? 11 : 8;  // significand bits
  const int min_exp = d == DType::kFloat16 ? -14 : -126;
  int e = 0;
  std::frexp(v, &e);  // v = f * 2^e, 0.5 <= |f| < 1
  const double ulp = std::ldexp(1.0, std::max(e - 1, min_exp) - (bits - 1));
  return std::nearbyint(v / ulp) * ulp;
}

// PyTorch's NotImplementedError for a kernel without an implementation for `d` unless it is
// floating.
inline void require_floating(DType d, const std::string& kernel) {
  if (!is_floating(d)) {
    throw NotImplementedError("\"" + kernel + "\" not implemented for '" + torch_type_name(d) +
                              "'");
  }
}

inline void reject_inplace(const BoundArgs& a, size_t i) {
  if (a[i].is_bool() && a[i].as_bool()) {
    throw NotImplementedError(a.symbol().qualname() +
                              ": inplace=True is not supported here; use the in-place variant");
  }
}

// Elementwise ops on operands that already share a dtype (numbers allowed); broadcasts tensors.
inline TensorRef bin(Builder& b, const Symbol& p, const Value& x, const Value& y) {
  return lang::binary(b, p, x, y, lang::Promotion::kNoOpmath).as_tensor();
}
inline TensorRef cmp(Builder& b, const Symbol& p, const Value& x, const Value& y) {
  return lang::binary(b, p, x, y, lang::Promotion::kAlwaysBool).as_tensor();
}
inline TensorRef un(Builder& b, const Symbol& p, const TensorRef& x) {
  return lang::call_t(b, p, {Value(x)});
}
// where(pred, x, y) with pred broadcast to x's shape; y may be a number or a tensor of x's shape.
inline TensorRef where(Builder& b, const TensorRef& pred, const TensorRef& x, const Value& y) {
  TensorRef p = lang::expand_to(b, pred, x->shape());
  Value yy = y.is_tensor() ? Value(lang::expand_to(b, y.as_tensor(), x->shape())) : y;
  return lang::call_t(b, prims::where(), {Value(p), Value(x), yy});
}

// Reductions that keep the reduced dims as size 1; the input is already in the compute dtype.
inline TensorRef sum_keep(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims) {
  return lang::reduce(b, prims::sum(), x, dims, true, std::nullopt);
}
inline TensorRef amax_keep(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims) {
  return lang::reduce(b, prims::amax(), x, dims, true, std::nullopt);
}
// Sum over every dim, to a 0-d tensor.
inline TensorRef sum_all(Builder& b, const TensorRef& x) {
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < x->rank(); ++i) dims.push_back(i);
  if (dims.empty()) return x;
  return lang::call_t(b, prims::sum(), {Value(x), Value::ints(dims)});
}
// The biased variance (correction 0) over `dims`, kept as size-1 dims.
inline TensorRef var_keep(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims) {
  Value v =
      b.call(prims::var(), {Value(x), Value::ints(dims)}, {{"correction", Value(int64_t{0})}});
  return lang::keep_dims(b, v.as_tensor(), x->shape(), dims);
}

// The mean over `dims` (of `count` elements), kept as size-1 dims, for centring a normalisation:
// sum / count, corrected by the mean of the differences from it. For a constant row the
// differences are one value of a few ulps, their sum and the correction are exact, and the mean is
// the row's value: x - mean is 0, as eager's Welford mean gives (sum / count alone can be an ulp
// off, which the normalisation's rstd of 1/sqrt(eps) turns into an error of about 1e-4). Elsewhere
// it halves the mean's rounding error. In a fused kernel the correction is one more sum in the
// variance's pass, over the differences that pass computes anyway.
inline TensorRef mean_keep(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims,
                           double count) {
  TensorRef m = bin(b, prims::div(), Value(sum_keep(b, x, dims)), Value(count));
  TensorRef d = bin(b, prims::sub(), Value(x), Value(m));
  return bin(b, prims::add(), Value(m),
             Value(bin(b, prims::div(), Value(sum_keep(b, d, dims)), Value(count))));
}

// A 1-D tensor (C) viewed as (1, C, 1, ..., 1) of rank `rank`, to broadcast along dim 1.
inline TensorRef channel_view(Builder& b, const TensorRef& t, int64_t rank) {
  std::vector<int64_t> shape(rank, 1);
  shape[1] = t->shape()[0].value();
  return lang::call_t(b, prims::broadcast_in_dim(),
                      {Value(t), Value::ints(shape), Value::ints({1})});
}

inline TensorRef iota(Builder& b, int64_t n, int64_t start, Device device, DType dtype) {
  return b
      .call(prims::iota(), {Value(n)},
            {{"start", Value(start)},
             {"step", Value(int64_t{1})},
             {"device", Value(device)},
             {"dtype", Value(dtype)}})
      .as_tensor();
}

inline std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i].value());
  return r + "]";
}

// softmax / log_softmax of `x` (already in its compute dtype) along a canonical dim.
TensorRef softmax_along(Builder& b, const TensorRef& x, int64_t dim, bool log);

// The class dim of an (N, C, d1, ...) or (C) input.
int64_t class_dim(const TensorRef& x);

// The negative log likelihood of `logp` (compute dtype, classes along class_dim) at the class
// indices `target`, with per-class weights (a tensor or None) and ignore_index. Returns the
// unreduced loss and the per-element weight (zero where ignored), both shaped like the target.
std::pair<TensorRef, TensorRef> nll_core(Builder& b, const TensorRef& logp, const TensorRef& target,
                                         const Value& weight, int64_t ignore_index);
// The loss reduced as torch's nll_loss reduces it ("mean" divides by the sum of the weights).
TensorRef reduce_weighted(Builder& b, const TensorRef& loss, const TensorRef& w,
                          const std::string& reduction);

// layer_norm(input, normalized_shape, weight, bias, eps) decomposed: (output, mean, rstd), mean and
// rstd over the normalized dims kept as size-1 dims, in the compute dtype.
std::array<TensorRef, 3> layer_norm_parts(Builder& b, const BoundArgs& a);

// batch_norm in training (its arguments as F.batch_norm's, checked) decomposed: (output, mean,
// rstd), mean and rstd of each channel shaped (C) in the compute dtype; the running statistics,
// where given, updated in place after them.
std::array<TensorRef, 3> batch_norm_training_parts(Builder& b, const BoundArgs& a);

// group_norm(x0, g, weight, bias, eps) decomposed: (output, mean, rstd), mean and rstd shaped
// (N, g) in the compute dtype.
std::array<TensorRef, 3> group_norm_parts(Builder& b, const TensorRef& x0, int64_t g,
                                          const Value& weight, const Value& bias, double eps);
// group_norm's output computed again from its (N, g) mean and rstd: the same operations on the
// same values as group_norm_parts' output (its statistics in the compute dtype).
TensorRef group_norm_output(Builder& b, const TensorRef& x0, int64_t g, const TensorRef& mean,
                            const TensorRef& rstd, const Value& weight, const Value& bias);

// rms_norm's rsqrt(mean(x^2) + eps) over `dims` (kept as size 1) of `x` in its compute dtype; `eps`
// None is the compute dtype's machine epsilon, as torch's.
TensorRef rms_norm_rstd(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims,
                        const Value& eps);

// `r` if it names a reduction mode ("none", "mean", "sum", and "batchmean" where `batchmean`
// allows it: kl_div's); torch's ValueError otherwise.
const std::string& checked_reduction(const std::string& r, bool batchmean = false);

// The reduction mode from (size_average, reduce, reduction) as torch's _Reduction does it:
// "none", "mean" or "sum" (or "batchmean", see checked_reduction).
std::string loss_reduction(const BoundArgs& a, size_t size_average, size_t reduce, size_t reduction,
                           bool batchmean = false);

}  // namespace detail::nn
}  // namespace thunder
