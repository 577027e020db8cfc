// Torch-level symbols that gradient rules emit: PyTorch's own backward kernels (and the forward
// kernels that return what those backward kernels need: layer_norm's mean and rstd, dropout's mask,
// attention's logsumexp). They are never recorded from user code; the autograd layer
// (csrc/autograd/) puts them in forward and backward traces, where they print like any symbol and
// run through the torch executor (each names the `torch.ops.aten` overload that runs it). Their
// metas follow the aten schemas.
#include <cmath>
#include <functional>
#include <limits>
#include <tuple>

#include "ops/nn_common.h"

namespace thunder {

namespace {

TensorRef like_tensor(Builder& b, const TensorRef& t, DType dtype) {
  return b.new_tensor(t->shape(), dtype, t->device(), false);
}

// _softmax_backward_data(grad_output, output, dim, input_dtype) = y * (g - sum(g * y, dim)) and
// _log_softmax_backward_data(...) = g - exp(y) * sum(g, dim), computed in the opmath dtype and
// returned in input_dtype. The decomposition lets the fuser take them; torch runs them otherwise.
Value softmax_backward_common(Builder& b, const BoundArgs& a, bool log) {
  const TensorRef& g = a.tensor(0);
  const TensorRef& y = a.tensor(1);
  if (g->shape() != y->shape()) throw ValueError("softmax_backward: grad and output shapes differ");
  int64_t dim = a.int_(2);
  if (dim < 0) dim += g->rank();
  if (g->rank() == 0) dim = 0;
  DType cd = detail::nn::opmath(promote_types(g->dtype(), y->dtype()));
  TensorRef gf = lang::convert(b, g, cd), yf = lang::convert(b, y, cd);
  std::vector<int64_t> dims;
  if (g->rank() > 0) dims.push_back(dim);
  TensorRef r;
  if (log) {
    TensorRef s = detail::nn::sum_keep(b, gf, dims);
    TensorRef p = detail::nn::un(b, prims::exp(), yf);
    r = detail::nn::bin(b, prims::sub(), Value(gf),
                        Value(detail::nn::bin(b, prims::mul(), Value(p), Value(s))));
  } else {
    TensorRef gy = detail::nn::bin(b, prims::mul(), Value(gf), Value(yf));
    TensorRef s = detail::nn::sum_keep(b, gy, dims);
    r = detail::nn::bin(b, prims::mul(), Value(yf),
                        Value(detail::nn::bin(b, prims::sub(), Value(gf), Value(s))));
  }
  return lang::convert(b, r, a[3].as_dtype());
}
Value softmax_backward_meta(Builder& b, const BoundArgs& a) {
  return softmax_backward_common(b, a, false);
}
Value log_softmax_backward_meta(Builder& b, const BoundArgs& a) {
  return softmax_backward_common(b, a, true);
}

// native_layer_norm(input, normalized_shape, weight, bias, eps) -> (out, mean, rstd), with mean and
// rstd shaped like the input with the normalized dims kept as size 1 (layer_norm's decomposition).
Value native_layer_norm_meta(Builder& b, const BoundArgs& a) {
  auto [out, mean, rstd] = detail::nn::layer_norm_parts(b, a);
  return Value::tuple({Value(out), Value(mean), Value(rstd)});
}

// The normalized dims of `x` (its last `k`): the number of leading dims, the normalized dims and
// their element count.
std::tuple<int64_t, std::vector<int64_t>, double> norm_dims(const TensorRef& x, size_t k) {
  int64_t lead = x->rank() - static_cast<int64_t>(k);
  double n = 1;
  std::vector<int64_t> dims;
  for (int64_t i = lead; i < x->rank(); ++i) {
    dims.push_back(i);
    n *= static_cast<double>(x->shape()[i].value());
  }
  return {lead, dims, n};
}

// Sums `t` over its first `lead` dims (the dims a weight is broadcast over); `t` itself for none.
TensorRef sum_leading(Builder& b, const TensorRef& t, int64_t lead) {
  if (lead == 0) return t;
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < lead; ++i) dims.push_back(i);
  return lang::call_t(b, prims::sum(), {Value(t), Value::ints(dims)});
}

// A normalization's input gradient over `dims` (of m elements each), in the compute dtype: with
// gw the incoming gradient times the weight and xhat the normalized input,
// rstd / m * (m * gw - sum(gw) - xhat * sum(gw * xhat)).
TensorRef norm_input_grad(Builder& b, const TensorRef& gw, const TensorRef& xhat,
                          const TensorRef& rstd, const std::vector<int64_t>& dims, double m) {
  using detail::nn::bin;
  TensorRef s1 = detail::nn::sum_keep(b, gw, dims);
  TensorRef s2 = detail::nn::sum_keep(b, bin(b, prims::mul(), Value(gw), Value(xhat)), dims);
  TensorRef inner =
      bin(b, prims::sub(),
          Value(bin(b, prims::sub(), Value(bin(b, prims::mul(), Value(gw), Value(m))), Value(s1))),
          Value(bin(b, prims::mul(), Value(xhat), Value(s2))));
  TensorRef scale = bin(b, prims::div(), Value(rstd), Value(m));
  return bin(b, prims::mul(), Value(scale), Value(inner));
}

// native_layer_norm_backward(grad_out, input, normalized_shape, mean, rstd, weight, bias,
// output_mask) -> (grad_input, grad_weight, grad_bias), None where output_mask is False. With
// xhat = (x - mean) * rstd and gw = grad_out * weight, over the N normalized elements:
// grad_input = rstd / N * (N * gw - sum(gw) - xhat * sum(gw * xhat)); grad_weight and grad_bias are
// sums over the leading dims of grad_out * xhat and grad_out.
Value native_layer_norm_backward_meta(Builder& b, const BoundArgs& a) {
  using namespace detail::nn;
  const TensorRef& x0 = a.tensor(1);
  std::vector<int64_t> mask = a.ints(7);
  auto [lead, dims, n] = norm_dims(x0, a.ints(2).size());
  DType cd = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, cd), g = lang::convert(b, a.tensor(0), cd);
  TensorRef mean = lang::convert(b, a.tensor(3), cd), rstd = lang::convert(b, a.tensor(4), cd);
  TensorRef xhat =
      bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(x), Value(mean))), Value(rstd));
  std::vector<Value> out(3);
  if (mask.at(0)) {
    TensorRef gw = a[5].is_tensor()
                       ? bin(b, prims::mul(), Value(g), Value(lang::convert(b, a.tensor(5), cd)))
                       : g;
    out[0] = Value(lang::convert(b, norm_input_grad(b, gw, xhat, rstd, dims, n), x0->dtype()));
  }
  if (mask.at(1) && a[5].is_tensor()) {
    TensorRef gx = bin(b, prims::mul(), Value(g), Value(xhat));
    out[1] = Value(lang::convert(b, sum_leading(b, gx, lead), a.tensor(5)->dtype()));
  }
  if (mask.at(2) && a[6].is_tensor()) {
    out[2] = Value(lang::convert(b, sum_leading(b, g, lead), a.tensor(6)->dtype()));
  }
  return Value::tuple(std::move(out));
}

// N, C and HxW of native_group_norm and its backward (arguments i, i + 1, i + 2) checked against
// the input `x`: ATen reads the input as (N, C, HxW).
void check_group_norm_sizes(const BoundArgs& a, size_t i, const TensorRef& x) {
  const int64_t n = a.int_(i), c = a.int_(i + 1), hw = a.int_(i + 2);
  const int64_t xn = x->rank() >= 1 ? x->shape()[0].value() : -1;
  const int64_t xc = x->rank() >= 2 ? x->shape()[1].value() : -1;
  if (x->rank() < 2 || xn != n || xc != c || n * c * hw != x->numel()) {
    throw ValueError(a.symbol().qualname() + ": N=" + std::to_string(n) +
                     ", C=" + std::to_string(c) + ", HxW=" + std::to_string(hw) +
                     " do not describe input " + x->type_string());
  }
}

// native_group_norm(input, weight, bias, N, C, HxW, group, eps) -> (out, mean, rstd), mean and
// rstd shaped (N, group) in the compute dtype (group_norm's decomposition). ATen's kernel gives
// them in the input's dtype (a bf16 mean for a bf16 input): the torch executor runs it through
// torchex.native_group_norm, which returns them in the compute dtype, so that the backward can
// compute the forward's output again from them exactly.
Value native_group_norm_meta(Builder& b, const BoundArgs& a) {
  check_group_norm_sizes(a, 3, a.tensor(0));
  auto [out, mean, rstd] =
      detail::nn::group_norm_parts(b, a.tensor(0), a.int_(6), a[1], a[2], a.number(7));
  return Value::tuple({Value(out), Value(mean), Value(rstd)});
}

// native_group_norm_backward(grad_out, input, mean, rstd, weight, N, C, HxW, group, output_mask)
// -> (grad_input, grad_weight, grad_bias), None where output_mask is False. Over (N, group,
// C / group, HxW), with xhat = (x - mean) * rstd and gw = grad_out * weight, each group's M
// elements: grad_input = rstd / M * (M * gw - sum(gw) - xhat * sum(gw * xhat)); grad_weight and
// grad_bias are per-channel sums over N and HxW of grad_out * xhat and grad_out.
Value native_group_norm_backward_meta(Builder& b, const BoundArgs& a) {
  using namespace detail::nn;
  const TensorRef& x0 = a.tensor(1);
  check_group_norm_sizes(a, 5, x0);
  const int64_t n = a.int_(5), c = a.int_(6), hw = a.int_(7), grp = a.int_(8);
  if (grp <= 0 || c % grp != 0) {
    throw ValueError(a.symbol().qualname() + ": group=" + std::to_string(grp) +
                     " does not divide C=" + std::to_string(c));
  }
  const Shape grouped{n, grp, c / grp, hw};
  for (size_t i : {size_t{2}, size_t{3}}) {
    if (a.tensor(i)->shape() != Shape{n, grp}) {
      throw ValueError(a.symbol().qualname() + ": " + (i == 2 ? "mean " : "rstd ") +
                       a.tensor(i)->type_string() + " is not shaped (N, group) = (" +
                       std::to_string(n) + ", " + std::to_string(grp) + ")");
    }
  }
  if (a.tensor(0)->shape() != x0->shape()) {
    throw ValueError(a.symbol().qualname() + ": gradient " + a.tensor(0)->type_string() +
                     " does not match input " + x0->type_string());
  }
  std::vector<int64_t> mask = a.ints(9);
  DType cd = opmath(x0->dtype());
  auto grouped_f = [&](const TensorRef& t) {
    return lang::convert(b, lang::reshape(b, t, grouped), cd);
  };
  // A (N, group) statistic or a (C) parameter, broadcast over the grouped shape.
  auto spread = [&](const TensorRef& t, const Shape& as, std::vector<int64_t> dims) {
    return lang::call_t(b, prims::broadcast_in_dim(),
                        {Value(lang::convert(b, lang::reshape(b, t, as), cd)),
                         Value::ints({n, grp, c / grp, hw}), Value::ints(std::move(dims))});
  };
  TensorRef x = grouped_f(x0), g = grouped_f(a.tensor(0));
  TensorRef rstd = spread(a.tensor(3), {n, grp}, {0, 1});
  TensorRef xhat =
      bin(b, prims::mul(),
          Value(bin(b, prims::sub(), Value(x), Value(spread(a.tensor(2), {n, grp}, {0, 1})))),
          Value(rstd));
  std::vector<Value> out(3);
  const bool has_w = a[4].is_tensor();
  if (mask.at(0)) {
    const double m = static_cast<double>((c / grp) * hw);
    TensorRef gw =
        has_w ? bin(b, prims::mul(), Value(g), Value(spread(a.tensor(4), {grp, c / grp}, {1, 2})))
              : g;
    TensorRef gx = lang::convert(b, norm_input_grad(b, gw, xhat, rstd, {2, 3}, m), x0->dtype());
    out[0] = Value(lang::reshape(b, gx, x0->shape()));
  }
  // Per-channel sums over N and HxW, (group, C / group) reshaped to (C).
  auto per_channel = [&](const TensorRef& t, DType d) {
    TensorRef s = lang::call_t(b, prims::sum(), {Value(t), Value::ints({0, 3})});
    return Value(lang::reshape(b, lang::convert(b, s, d), {c}));
  };
  if (mask.at(1) && has_w) {
    out[1] = per_channel(bin(b, prims::mul(), Value(g), Value(xhat)), a.tensor(4)->dtype());
  }
  if (mask.at(2)) out[2] = per_channel(g, has_w ? a.tensor(4)->dtype() : x0->dtype());
  return Value::tuple(std::move(out));
}

// native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps) ->
// (out, save_mean, save_invstd): batch_norm in training (the running statistics, where given,
// updated in place), each channel's mean and rstd shaped (C) in the compute dtype (ATen's CPU
// kernel gives them in a bf16 input's dtype: torchex.native_batch_norm returns them converted).
Value native_batch_norm_meta(Builder& b, const BoundArgs& a) {
  if (!a.bool_(5)) {
    throw NotImplementedError(a.symbol().qualname() + ": only training=True is recorded");
  }
  // F.batch_norm's argument order: input, running_mean, running_var, weight, bias, training,
  // momentum, eps.
  const std::vector<Value> bn_args{a[0], a[3], a[4], a[1], a[2], a[5], a[6], a[7]};
  BoundArgs as_bn(ltorch_symbol("batch_norm"), bn_args);  // (it keeps a reference to the values)
  auto [out, mean, rstd] = detail::nn::batch_norm_training_parts(b, as_bn);
  return Value::tuple({Value(out), Value(mean), Value(rstd)});
}

// native_batch_norm_backward(grad_out, input, weight, running_mean, running_var, save_mean,
// save_invstd, train, eps, output_mask) -> (grad_input, grad_weight, grad_bias), None where
// output_mask is False; train=True only. Over each channel's M elements (the batch and the
// positions), with xhat = (x - mean) * invstd and gw = grad_out * weight: grad_input = invstd / M *
// (M * gw - sum(gw) - xhat * sum(gw * xhat)); grad_weight and grad_bias are the channel's sums of
// grad_out * xhat and grad_out.
Value native_batch_norm_backward_meta(Builder& b, const BoundArgs& a) {
  using namespace detail::nn;
  const TensorRef& x0 = a.tensor(1);
  if (!a.bool_(7)) {
    throw NotImplementedError(a.symbol().qualname() + ": only train=True is recorded");
  }
  if (x0->rank() < 2 || a.tensor(0)->shape() != x0->shape()) {
    throw ValueError(a.symbol().qualname() + ": gradient " + a.tensor(0)->type_string() +
                     " does not match input " + x0->type_string() + " of at least 2 dims");
  }
  const int64_t c = x0->shape()[1].value(), rank = x0->rank();
  for (size_t i : {size_t{5}, size_t{6}}) {
    if (a.tensor(i)->shape() != Shape{c}) {
      throw ValueError(a.symbol().qualname() + ": " + (i == 5 ? "save_mean " : "save_invstd ") +
                       a.tensor(i)->type_string() + " is not shaped (C) = (" + std::to_string(c) +
                       ")");
    }
  }
  std::vector<int64_t> mask = a.ints(9);
  const DType cd = opmath(x0->dtype());
  const double m = c == 0 ? 0.0 : static_cast<double>(x0->numel() / c);
  std::vector<int64_t> dims = {0};
  for (int64_t i = 2; i < rank; ++i) dims.push_back(i);
  auto per_channel = [&](const TensorRef& t) {
    return channel_view(b, lang::convert(b, t, cd), rank);
  };
  TensorRef x = lang::convert(b, x0, cd), g = lang::convert(b, a.tensor(0), cd);
  TensorRef rstd = per_channel(a.tensor(6));
  TensorRef xhat =
      bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(x), Value(per_channel(a.tensor(5))))),
          Value(rstd));
  const bool has_w = a[2].is_tensor();
  std::vector<Value> out(3);
  if (mask.at(0)) {
    TensorRef gw = has_w ? bin(b, prims::mul(), Value(g), Value(per_channel(a.tensor(2)))) : g;
    out[0] = Value(lang::convert(b, norm_input_grad(b, gw, xhat, rstd, dims, m), x0->dtype()));
  }
  const DType pd = has_w ? a.tensor(2)->dtype() : x0->dtype();
  auto channel_sum = [&](const TensorRef& t) {
    return Value(
        lang::convert(b, lang::call_t(b, prims::sum(), {Value(t), Value::ints(dims)}), pd));
  };
  if (mask.at(1) && has_w) out[1] = channel_sum(bin(b, prims::mul(), Value(g), Value(xhat)));
  if (mask.at(2)) out[2] = channel_sum(g);
  return Value::tuple(std::move(out));
}

// embedding_dense_backward(grad_output, indices, num_weights, padding_idx, scale_grad_by_freq)
Value embedding_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g = a.tensor(0);
  Shape s = {Dim(a.int_(2)), g->shape().back()};
  return b.new_tensor(s, g->dtype(), g->device(), false);
}

// Elementwise backward kernels: the result is shaped like the incoming gradient.
Value elementwise_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g = a.tensor(0);
  const TensorRef& x = a.tensor(1);
  if (g->shape() != x->shape()) {
    throw ValueError(a.symbol().qualname() + ": gradient " + g->type_string() +
                     " does not match " + x->type_string());
  }
  return like_tensor(b, g, g->dtype());
}

// The elementwise backward kernels, decomposed so the fuser can take them with their neighbours
// (torch runs the aten op otherwise). Computed in the opmath dtype, returned in the gradient's.
struct ElementwiseGrad {
  Builder& b;
  DType cd;
  TensorRef mul(const Value& x, const Value& y) { return detail::nn::bin(b, prims::mul(), x, y); }
  TensorRef add(const Value& x, const Value& y) { return detail::nn::bin(b, prims::add(), x, y); }
  TensorRef sub(const Value& x, const Value& y) { return detail::nn::bin(b, prims::sub(), x, y); }
  TensorRef un(const Symbol& p, const TensorRef& x) { return detail::nn::un(b, p, x); }
};

Value elementwise_backward(
    Builder& b, const BoundArgs& a,
    const std::function<TensorRef(ElementwiseGrad&, const TensorRef&)>& derivative) {
  elementwise_backward_meta(b, a);  // checks the shapes
  const TensorRef& g0 = a.tensor(0);
  ElementwiseGrad e{b, detail::nn::opmath(g0->dtype())};
  TensorRef g = lang::convert(b, g0, e.cd), x = lang::convert(b, a.tensor(1), e.cd);
  return lang::convert(b, e.mul(Value(g), Value(derivative(e, x))), g0->dtype());
}

// gelu_backward: d/dx of 0.5 x (1 + erf(x / sqrt 2)) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2)
// / sqrt(2 pi); with approximate='tanh', u = k (x + c x^3), t = tanh(u): 0.5 (1 + t) + 0.5 x (1 -
// t^2) k (1 + 3 c x^2).
Value gelu_backward_meta(Builder& b, const BoundArgs& a) {
  const std::string& approx = a[2].as_string();
  if (approx != "none" && approx != "tanh")
    throw Error("approximate argument must be either none or tanh.");
  return elementwise_backward(b, a, [&](ElementwiseGrad& e, const TensorRef& x) {
    if (approx == "none") {
      TensorRef cdf = e.mul(
          Value(e.add(Value(e.un(prims::erf(), e.mul(Value(x), Value(M_SQRT1_2)))), Value(1.0))),
          Value(0.5));
      TensorRef pdf =
          e.mul(Value(e.un(prims::exp(), e.mul(Value(e.mul(Value(x), Value(x))), Value(-0.5)))),
                Value(0.5 * M_2_SQRTPI * M_SQRT1_2));
      return e.add(Value(cdf), Value(e.mul(Value(x), Value(pdf))));
    }
    const double k = M_2_SQRTPI * M_SQRT1_2;
    const double c = 0.044715;
    TensorRef x2 = e.mul(Value(x), Value(x));
    TensorRef u =
        e.mul(Value(e.add(Value(x), Value(e.mul(Value(e.mul(Value(x2), Value(x))), Value(c))))),
              Value(k));
    TensorRef t = e.un(prims::tanh(), u);
    TensorRef left = e.mul(Value(e.add(Value(t), Value(1.0))), Value(0.5));
    TensorRef dt = e.sub(Value(1.0), Value(e.mul(Value(t), Value(t))));
    TensorRef du =
        e.mul(Value(e.add(Value(e.mul(Value(x2), Value(3.0 * c))), Value(1.0))), Value(k));
    return e.add(
        Value(left),
        Value(e.mul(Value(e.mul(Value(e.mul(Value(x), Value(0.5))), Value(dt))), Value(du))));
  });
}

// silu_backward: d/dx x sigmoid(x) = s (1 + x (1 - s)), s = sigmoid(x).
Value silu_backward_meta(Builder& b, const BoundArgs& a) {
  return elementwise_backward(b, a, [](ElementwiseGrad& e, const TensorRef& x) {
    TensorRef s =
        detail::nn::bin(e.b, prims::div(), Value(1.0),
                        Value(e.add(Value(e.un(prims::exp(), e.un(prims::neg(), x))), Value(1.0))));
    return e.mul(
        Value(s),
        Value(e.add(Value(1.0), Value(e.mul(Value(x), Value(e.sub(Value(1.0), Value(s))))))));
  });
}

// tanh_backward(grad, output): 1 - y^2; sigmoid_backward(grad, output): y (1 - y).
Value tanh_backward_meta(Builder& b, const BoundArgs& a) {
  return elementwise_backward(b, a, [](ElementwiseGrad& e, const TensorRef& y) {
    return e.sub(Value(1.0), Value(e.mul(Value(y), Value(y))));
  });
}
Value sigmoid_backward_meta(Builder& b, const BoundArgs& a) {
  return elementwise_backward(b, a, [](ElementwiseGrad& e, const TensorRef& y) {
    return e.mul(Value(y), Value(e.sub(Value(1.0), Value(y))));
  });
}

// threshold_backward(grad, input, threshold): grad where input > threshold, else 0 (relu's).
Value threshold_backward_meta(Builder& b, const BoundArgs& a) {
  elementwise_backward_meta(b, a);
  const TensorRef& g = a.tensor(0);
  TensorRef keep = detail::nn::cmp(b, prims::gt(), Value(a.tensor(1)), a[2]);
  return detail::nn::where(b, keep, g, Value(0.0));
}

// native_dropout(input, p, train) -> (out, mask)
Value native_dropout_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return Value::tuple({Value(like_tensor(b, x, x->dtype())),
                       Value(like_tensor(b, x, DType::kBool))});
}

// convert_tensors(tensors, dtype) -> a tuple of the tensors converted to dtype, by one multi-tensor
// copy (written by the grouping of a program's input casts, executors/group_casts.h).
Value convert_tensors_meta(Builder& b, const BoundArgs& a) {
  std::optional<DType> dtype = a.optional_dtype(1);
  if (!dtype) throw TypeError("convert_tensors: expects a dtype");
  std::vector<Value> out;
  for (const Value& v : a[0].items()) {
    if (!v.is_tensor()) throw TypeError("convert_tensors: expects a sequence of tensors");
    out.push_back(Value(like_tensor(b, v.as_tensor(), *dtype)));
  }
  return Value::tuple(std::move(out));
}

// native_dropout_backward(grad_output, mask, scale) = grad_output * mask * scale, in the opmath
// dtype (as eager's kernel); the decomposition lets the fuser take it beside its neighbours.
Value native_dropout_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g0 = a.tensor(0);
  const TensorRef& mask = a.tensor(1);
  if (mask->shape() != g0->shape()) {
    throw ValueError("native_dropout_backward: the mask " + mask->type_string() +
                     " does not match the gradient " + g0->type_string());
  }
  ElementwiseGrad e{b, detail::nn::opmath(g0->dtype())};
  TensorRef g = lang::convert(b, g0, e.cd), m = lang::convert(b, mask, e.cd);
  return lang::convert(b, e.mul(Value(e.mul(Value(g), Value(m))), Value(a.number(2))), g0->dtype());
}

// _scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal, *,
// attn_mask, scale) -> (output, logsumexp); query (..., L, E), value (..., S, Ev).
Value sdpa_flash_cpu_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& q = a.tensor(0);
  const TensorRef& v = a.tensor(2);
  Shape out = q->shape();
  out.back() = v->shape().back();
  Shape lse(q->shape().begin(), q->shape().end() - 1);
  return Value::tuple(
      {Value(b.new_tensor(out, q->dtype(), q->device(), false)),
       Value(b.new_tensor(lse, detail::nn::opmath(q->dtype()), q->device(), false))});
}

Value sdpa_flash_cpu_backward_meta(Builder& b, const BoundArgs& a) {
  return Value::tuple({Value(like_tensor(b, a.tensor(1), a.tensor(1)->dtype())),
                       Value(like_tensor(b, a.tensor(2), a.tensor(2)->dtype())),
                       Value(like_tensor(b, a.tensor(3), a.tensor(3)->dtype()))});
}

// _scaled_dot_product_efficient_attention(query, key, value, attn_bias, compute_log_sumexp,
// dropout_p, is_causal, *, scale) -> (output, log_sumexp, philox_seed, philox_offset): log_sumexp is
// (B, H, L rounded up to 32) in float32; the philox seed and offset are int64 scalars on the CPU.
Value sdpa_efficient_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& q = a.tensor(0);
  const TensorRef& v = a.tensor(2);
  Shape out = q->shape();
  out.back() = v->shape().back();
  int64_t l = q->shape()[q->rank() - 2].value();
  int64_t lse_len = a.bool_(4) ? (l + 31) / 32 * 32 : 0;
  Shape lse = {q->shape()[0], q->shape()[1], Dim(lse_len)};
  return Value::tuple({Value(b.new_tensor(out, q->dtype(), q->device(), false)),
                       Value(b.new_tensor(lse, DType::kFloat32, q->device(), false)),
                       Value(b.new_tensor({}, DType::kInt64, Device::cpu(), false)),
                       Value(b.new_tensor({}, DType::kInt64, Device::cpu(), false))});
}

// _scaled_dot_product_efficient_attention_backward(grad_out_, query, key, value, attn_bias, out,
// logsumexp, philox_seed, philox_offset, dropout_p, grad_input_mask, is_causal, *, scale)
Value sdpa_efficient_backward_meta(Builder& b, const BoundArgs& a) {
  std::vector<int64_t> mask = a.ints(10);
  std::vector<Value> out;
  for (size_t i = 1; i <= 3; ++i) {
    out.push_back(mask.at(i - 1) ? Value(like_tensor(b, a.tensor(i), a.tensor(i)->dtype())) : Value());
  }
  out.push_back(mask.at(3) && a[4].is_tensor() ? Value(like_tensor(b, a.tensor(4), a.tensor(4)->dtype()))
                                               : Value());
  return Value::tuple(std::move(out));
}

// sdpa_autograd_forward(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
// -> (output, handle): F.scaled_dot_product_attention run under torch autograd; `handle` is an
// empty int64 tensor on the query's device (a CUDA program stays on its device) that carries
// torch's graph to sdpa_autograd_backward(grad_out, handle, query, key, value, needs) ->
// (grad_query, grad_key, grad_value), None where `needs` is False.
Value sdpa_autograd_forward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& q = a.tensor(0);
  const TensorRef& v = a.tensor(2);
  Shape out = q->shape();
  out.back() = v->shape().back();
  return Value::tuple({Value(b.new_tensor(out, q->dtype(), q->device(), false)),
                       Value(b.new_tensor({0}, DType::kInt64, q->device(), false))});
}

Value sdpa_autograd_backward_meta(Builder& b, const BoundArgs& a) {
  std::vector<int64_t> needs = a.ints(5);
  std::vector<Value> out;
  for (size_t i = 0; i < 3; ++i) {
    const TensorRef& t = a.tensor(2 + i);
    out.push_back(needs.at(i) ? Value(like_tensor(b, t, t->dtype())) : Value());
  }
  return Value::tuple(std::move(out));
}

// convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
// transposed, output_padding, groups, output_mask) -> (grad_input, grad_weight, grad_bias)
Value convolution_backward_meta(Builder& b, const BoundArgs& a) {
  std::vector<int64_t> mask = a.ints(10);
  const TensorRef& x = a.tensor(1);
  const TensorRef& w = a.tensor(2);
  std::vector<Value> out;
  out.push_back(mask.at(0) ? Value(like_tensor(b, x, x->dtype())) : Value());
  out.push_back(mask.at(1) ? Value(like_tensor(b, w, w->dtype())) : Value());
  if (mask.at(2) && !a[3].is_none()) {
    std::vector<int64_t> bs = a.ints(3);
    out.push_back(Value(b.new_tensor(Shape(bs.begin(), bs.end()), w->dtype(), w->device(), false)));
  } else {
    out.push_back(Value());
  }
  return Value::tuple(std::move(out));
}

// unfold_backward(grad_in, input_sizes, dim, size, step)
Value unfold_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g = a.tensor(0);
  std::vector<int64_t> s = a.ints(1);
  return b.new_tensor(Shape(s.begin(), s.end()), g->dtype(), g->device(), false);
}

// index(self, indices): advanced indexing with a list of index tensors (None for full dims); used
// for the gradient of the values of an index_put. The meta handles the common case where the
// index tensors are adjacent and lead: result = broadcast(indices).shape + self.shape[len(indices):].
Value index_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const auto& idx = a[1].items();
  Shape bshape;
  size_t first = idx.size(), n_tensor = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    if (!idx[i].is_tensor()) continue;
    if (first == idx.size()) first = i;
    ++n_tensor;
    bshape = n_tensor == 1 ? idx[i].as_tensor()->shape()
                           : lang::broadcast_shapes(bshape, idx[i].as_tensor()->shape());
  }
  if (n_tensor == 0) throw ValueError("index: expected at least one index tensor");
  bool adjacent = true;
  for (size_t i = first; i < first + n_tensor; ++i) adjacent = adjacent && idx[i].is_tensor();
  Shape out;
  if (adjacent) {
    for (size_t i = 0; i < first; ++i) out.push_back(x->shape()[i]);
    out.insert(out.end(), bshape.begin(), bshape.end());
    for (size_t i = first + n_tensor; i < static_cast<size_t>(x->rank()); ++i) {
      out.push_back(x->shape()[i]);
    }
  } else {
    out = bshape;
    for (size_t i = 0; i < static_cast<size_t>(x->rank()); ++i) {
      if (i >= idx.size() || !idx[i].is_tensor()) out.push_back(x->shape()[i]);
    }
  }
  return b.new_tensor(out, x->dtype(), x->device(), false);
}

// linear_backward(grad_output, input, weight, output_mask) -> (grad_input, grad_weight, grad_bias)
// for a 2-D weight and an input of rank >= 2: what eager's AddmmBackward computes, in one call.
// The decomposition (for executors that run primitives): matmuls over the flattened leading dims.
Value linear_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g = a.tensor(0);
  const TensorRef& x = a.tensor(1);
  const TensorRef& w = a.tensor(2);
  std::vector<int64_t> mask = a.ints(3);
  if (w->rank() != 2 || x->rank() < 2) {
    throw ValueError("linear_backward: expects a 2-D weight and an input of rank >= 2");
  }
  int64_t in = x->shape().back().value(), out = w->shape()[0].value();
  int64_t m = in == 0 ? 0 : x->numel() / in;
  std::vector<Value> r(3);
  if (mask.at(0)) r[0] = lang::call(b, prims::matmul(), {Value(g), Value(w)});
  if (mask.at(1) || mask.at(2)) {
    TensorRef g2 = lang::reshape(b, g, {Dim(m), Dim(out)});
    if (mask.at(1)) {
      TensorRef x2 = lang::reshape(b, x, {Dim(m), Dim(in)});
      TensorRef gt = lang::transpose(b, g2, {1, 0});
      r[1] = lang::call(b, prims::matmul(), {Value(gt), Value(x2)});
    }
    if (mask.at(2)) r[2] = lang::call(b, prims::sum(), {Value(g2), Value::ints({0})});
  }
  return Value::tuple(std::move(r));
}

const char* reduction_name(int64_t r) { return r == 0 ? "none" : r == 2 ? "sum" : "mean"; }

// nll_loss_forward(input, target, weight, reduction, ignore_index) -> (output, total_weight) for an
// (N, C) input; reduction is torch's enum (0 none, 1 mean, 2 sum); total_weight is the sum of the
// weights of the rows not ignored. Decomposed as nll_loss is, so the fuser can take it.
Value nll_loss_forward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  TensorRef x = lang::convert(b, x0, detail::nn::opmath(x0->dtype()));
  auto [loss, w] = detail::nn::nll_core(b, x, a.tensor(1), a[2], a.int_(4));
  TensorRef out = detail::nn::reduce_weighted(b, loss, w, reduction_name(a.int_(3)));
  return Value::tuple({Value(lang::convert(b, out, x0->dtype())),
                       Value(lang::convert(b, detail::nn::sum_all(b, w), x0->dtype()))});
}

// nll_loss_backward(grad_output, input, target, weight, reduction, ignore_index, total_weight):
// -grad (over total_weight for 'mean', times the target's weight) at each row's target class, zero
// elsewhere and on ignored rows. The class index is an iota compared with the target.
Value nll_loss_backward_meta(Builder& b, const BoundArgs& a) {
  using namespace detail::nn;
  const TensorRef& x = a.tensor(1);
  const TensorRef& t = a.tensor(2);
  if (x->rank() != 2 || t->rank() != 1)
    throw ValueError("nll_loss_backward: expected (N, C) input and (N) target");
  DType cd = opmath(x->dtype());
  int64_t c = x->shape()[1].value();
  int64_t reduction = a.int_(4);
  TensorRef keep = cmp(b, prims::ne(), Value(t), Value(a.int_(5)));
  TensorRef tgt = where(b, keep, t, Value(int64_t{-1}));  // -1 matches no class
  TensorRef cols = lang::unsqueeze(b, iota(b, c, 0, x->device(), t->dtype()), {0});
  TensorRef onehot = cmp(b, prims::eq(), Value(cols), Value(lang::unsqueeze(b, tgt, {1})));
  TensorRef coef = un(b, prims::neg(), lang::convert(b, a.tensor(0), cd));  // () or (N)
  if (reduction == 1)
    coef = bin(b, prims::div(), Value(coef), Value(lang::convert(b, a.tensor(6), cd)));
  if (a[3].is_tensor()) {
    TensorRef safe = where(b, keep, t, Value(int64_t{0}));
    TensorRef wt =
        lang::call_t(b, prims::take(),
                     {Value(lang::convert(b, a.tensor(3), cd)), Value(safe), Value(int64_t{0})});
    coef = bin(b, prims::mul(), Value(coef), Value(wt));
  }
  if (coef->rank() == 1) coef = lang::unsqueeze(b, coef, {1});
  TensorRef r = where(b, onehot, lang::expand_to(b, coef, onehot->shape()), Value(0.0));
  return lang::convert(b, r, x->dtype());
}

// rms_norm_backward(grad_output, input, normalized_shape, weight, eps, output_mask) ->
// (grad_input, grad_weight): recomputes rstd = rsqrt(mean(x^2) + eps) from the input; with
// xhat = x * rstd and gw = grad * weight, grad_input = rstd * (gw - xhat * mean(gw * xhat)) and
// grad_weight sums grad * xhat over the leading dims.
Value rms_norm_backward_meta(Builder& b, const BoundArgs& a) {
  using namespace detail::nn;
  std::vector<int64_t> mask = a.ints(5);
  const TensorRef& x0 = a.tensor(1);
  auto [lead, dims, n] = norm_dims(x0, a.ints(2).size());
  DType cd = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, cd), g = lang::convert(b, a.tensor(0), cd);
  TensorRef rstd = rms_norm_rstd(b, x, dims, a[4]);
  TensorRef xhat = bin(b, prims::mul(), Value(x), Value(rstd));
  Value gw_out;
  if (a[3].is_tensor()) {
    if (mask.at(1)) {
      TensorRef gx = bin(b, prims::mul(), Value(g), Value(xhat));
      gw_out = Value(lang::convert(b, sum_leading(b, gx, lead), a.tensor(3)->dtype()));
    }
    g = bin(b, prims::mul(), Value(g), Value(lang::convert(b, a.tensor(3), cd)));
  }
  Value gi;
  if (mask.at(0)) {
    TensorRef m =
        bin(b, prims::div(), Value(sum_keep(b, bin(b, prims::mul(), Value(g), Value(xhat)), dims)),
            Value(n));
    TensorRef r = bin(
        b, prims::mul(), Value(rstd),
        Value(bin(b, prims::sub(), Value(g), Value(bin(b, prims::mul(), Value(xhat), Value(m))))));
    gi = Value(lang::convert(b, r, x0->dtype()));
  }
  return Value::tuple({gi, gw_out});
}

// checkpoint_region(begin): marks where a torch.utils.checkpoint call starts and ends; no output.
Value checkpoint_region_meta(Builder&, const BoundArgs&) { return Value(); }

}  // namespace

void register_grad_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"softmax_backward",
       "grad_output, output, dim, input_dtype",
       softmax_backward_meta,
       {},
       "torch.ops.aten._softmax_backward_data"},
      {"log_softmax_backward",
       "grad_output, output, dim, input_dtype",
       log_softmax_backward_meta,
       {},
       "torch.ops.aten._log_softmax_backward_data"},
      {"native_layer_norm",
       "input, normalized_shape, weight, bias, eps",
       native_layer_norm_meta,
       {},
       "torch.ops.aten.native_layer_norm"},
      {"native_layer_norm_backward",
       "grad_out, input, normalized_shape, mean, rstd, weight, bias, output_mask",
       native_layer_norm_backward_meta,
       {},
       "torch.ops.aten.native_layer_norm_backward"},
      {"native_group_norm",
       "input, weight, bias, N, C, HxW, group, eps",
       native_group_norm_meta,
       {},
       "thunder.executors.torchex.native_group_norm"},
      {"native_group_norm_backward",
       "grad_out, input, mean, rstd, weight, N, C, HxW, group, output_mask",
       native_group_norm_backward_meta,
       {},
       "thunder.executors.torchex.native_group_norm_backward"},
      {"native_batch_norm",
       "input, weight, bias, running_mean, running_var, training, momentum, eps",
       native_batch_norm_meta,
       {},
       "thunder.executors.torchex.native_batch_norm"},
      {"native_batch_norm_backward",
       "grad_out, input, weight, running_mean, running_var, save_mean, save_invstd, train, eps, "
       "output_mask",
       native_batch_norm_backward_meta,
       {},
       "thunder.executors.torchex.native_batch_norm_backward"},
      {"embedding_backward",
       "grad_output, indices, num_weights, padding_idx, scale_grad_by_freq",
       embedding_backward_meta,
       {},
       "torch.ops.aten.embedding_dense_backward"},
      {"gelu_backward",
       "grad_output, input, *, approximate='none'",
       gelu_backward_meta,
       {},
       "torch.ops.aten.gelu_backward",
       kTagElementwise},
      {"silu_backward",
       "grad_output, input",
       silu_backward_meta,
       {},
       "torch.ops.aten.silu_backward",
       kTagElementwise},
      {"threshold_backward",
       "grad_output, input, threshold",
       threshold_backward_meta,
       {},
       "torch.ops.aten.threshold_backward",
       kTagElementwise},
      {"tanh_backward",
       "grad_output, output",
       tanh_backward_meta,
       {},
       "torch.ops.aten.tanh_backward",
       kTagElementwise},
      {"sigmoid_backward",
       "grad_output, output",
       sigmoid_backward_meta,
       {},
       "torch.ops.aten.sigmoid_backward",
       kTagElementwise},
      {"native_dropout",
       "input, p, train",
       native_dropout_meta,
       {},
       "torch.ops.aten.native_dropout",
       kTagRandom},
      {"native_dropout_backward",
       "grad_output, mask, scale",
       native_dropout_backward_meta,
       {},
       "torch.ops.aten.native_dropout_backward",
       kTagElementwise},
      {"sdpa_flash_cpu",
       "query, key, value, dropout_p, is_causal, *, attn_mask=None, scale=None",
       sdpa_flash_cpu_meta,
       {},
       "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu"},
      {"sdpa_flash_cpu_backward",
       "grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *, attn_mask=None, "
       "scale=None",
       sdpa_flash_cpu_backward_meta,
       {},
       "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward"},
      {"sdpa_efficient",
       "query, key, value, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *, "
       "scale=None",
       sdpa_efficient_meta,
       {},
       "torch.ops.aten._scaled_dot_product_efficient_attention",
       kTagRandom},
      {"sdpa_efficient_backward",
       "grad_out_, query, key, value, attn_bias, out, logsumexp, philox_seed, philox_offset, "
       "dropout_p, grad_input_mask, is_causal=False, *, scale=None",
       sdpa_efficient_backward_meta,
       {},
       "torch.ops.aten._scaled_dot_product_efficient_attention_backward"},
      {"convert_tensors",
       "tensors, dtype",
       convert_tensors_meta,
       {},
       "thunder.executors.torchex.convert_tensors"},
      {"sdpa_autograd_forward",
       "query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa",
       sdpa_autograd_forward_meta,
       {},
       "thunder.core.autograd.sdpa_autograd_forward",
       kTagRandom},
      {"sdpa_autograd_backward",
       "grad_out, handle, query, key, value, needs",
       sdpa_autograd_backward_meta,
       {},
       "thunder.core.autograd.sdpa_autograd_backward"},
      {"convolution_backward",
       "grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed, "
       "output_padding, groups, output_mask",
       convolution_backward_meta,
       {},
       "torch.ops.aten.convolution_backward"},
      {"unfold_backward",
       "grad_in, input_sizes, dim, size, step",
       unfold_backward_meta,
       {},
       "torch.ops.aten.unfold_backward"},
      {"advanced_index", "input, indices", index_meta, {}, "torch.ops.aten.index"},
      {"linear_backward",
       "grad_output, input, weight, output_mask",
       linear_backward_meta,
       {},
       "thunder.core.autograd.linear_backward"},
      {"nll_loss_forward",
       "input, target, weight, reduction, ignore_index",
       nll_loss_forward_meta,
       {},
       "torch.ops.aten.nll_loss_forward"},
      {"nll_loss_backward",
       "grad_output, input, target, weight, reduction, ignore_index, total_weight",
       nll_loss_backward_meta,
       {},
       "torch.ops.aten.nll_loss_backward"},
      {"rms_norm_backward",
       "grad_output, input, normalized_shape, weight, eps, output_mask",
       rms_norm_backward_meta,
       {},
       "thunder.core.autograd.rms_norm_backward"},
      {"checkpoint_region",
       "begin",
       checkpoint_region_meta,
       {},
       "thunder.core.autograd.checkpoint_region",
       kTagDontDce},
  };
  register_ops(table, defs);
}

}  // namespace thunder
