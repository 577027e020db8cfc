// Torch-level loss functions: nll_loss, cross_entropy (class indices and probabilities, label
// smoothing), mse_loss, l1_loss, smooth_l1_loss, huber_loss, kl_div,
// binary_cross_entropy_with_logits, margin_ranking_loss, hinge_embedding_loss, soft_margin_loss,
// cosine_embedding_loss, poisson_nll_loss. Each reduces with torch's
// 'none' / 'mean' / 'sum' (or the legacy size_average / reduce flags).
#include <algorithm>
#include <cmath>

#include "ops/nn_common.h"

namespace thunder {

namespace detail::nn {

int64_t class_dim(const TensorRef& x) { return x->rank() == 1 ? 0 : 1; }

std::pair<TensorRef, TensorRef> nll_core(Builder& b, const TensorRef& logp, const TensorRef& target,
                                         const Value& weight, int64_t ignore_index) {
  int64_t cd = class_dim(logp);
  TensorRef keep = cmp(b, prims::ne(), Value(target), Value(ignore_index));
  TensorRef safe = where(b, keep, target, Value(int64_t{0}));
  TensorRef idx = lang::unsqueeze(b, safe, {cd});
  TensorRef picked =
      lang::call_t(b, prims::take_along_axis(), {Value(logp), Value(idx), Value(cd)});
  picked = lang::reshape(b, picked, target->shape());
  TensorRef w;
  if (weight.is_tensor()) {
    TensorRef wt = lang::convert(b, weight.as_tensor(), logp->dtype());
    TensorRef flat = lang::reshape(b, safe, {safe->numel()});
    w = lang::call_t(b, prims::take(), {Value(wt), Value(flat), Value(int64_t{0})});
    w = lang::reshape(b, w, target->shape());
    w = where(b, keep, w, Value(0.0));
  } else {
    w = lang::convert(b, keep, logp->dtype());
  }
  TensorRef loss = un(b, prims::neg(), bin(b, prims::mul(), Value(picked), Value(w)));
  return {where(b, keep, loss, Value(0.0)), w};
}

TensorRef reduce_weighted(Builder& b, const TensorRef& loss, const TensorRef& w,
                          const std::string& reduction) {
  if (reduction == "none") return loss;
  TensorRef s = sum_all(b, loss);
  if (reduction == "sum") return s;
  return bin(b, prims::div(), Value(s), Value(sum_all(b, w)));
}

}  // namespace detail::nn

namespace {

using namespace detail::nn;

TensorRef reduce_loss(Builder& b, const TensorRef& loss, const std::string& reduction) {
  if (reduction == "none") return loss;
  TensorRef s = sum_all(b, loss);
  if (reduction == "sum") {
    if (s == loss)
      s = lang::call_t(b, prims::convert_element_type(), {Value(loss), Value(loss->dtype())});
    return s;
  }
  return bin(b, prims::div(), Value(s), Value(static_cast<double>(loss->numel())));
}

void check_class_target(const TensorRef& x, const TensorRef& t, const char* op) {
  if (x->rank() < 1) throw Error(std::string(op) + ": input tensor should be 1D or more");
  Shape expected = x->shape();
  expected.erase(expected.begin() + class_dim(x));
  if (t->shape() != expected) {
    if (x->rank() == 1 || x->rank() == 2) {
      throw ValueError("Expected input batch_size (" +
                       std::to_string(x->rank() == 1 ? 1 : x->shape()[0].value()) +
                       ") to match target batch_size (" +
                       std::to_string(t->rank() == 0 ? 1 : t->shape()[0].value()) + ").");
    }
    throw Error("Expected target size " + shape_str(expected) + ", got " + shape_str(t->shape()));
  }
}

void check_weight(const BoundArgs& a, size_t i, const TensorRef& x) {
  if (a[i].is_none()) return;
  const TensorRef& w = a.tensor(i);
  int64_t c = x->shape()[class_dim(x)].value();
  if (w->rank() != 1 || w->shape()[0].value() != c) {
    throw Error("weight tensor should be defined either for all " + std::to_string(c) +
                " classes or no classes but got weight tensor of shape: " + shape_str(w->shape()));
  }
}

void check_index_target(const TensorRef& t) {
  if (t->dtype() != DType::kInt64 && t->dtype() != DType::kUInt8) {
    throw Error(std::string("expected target dtype to be Long or Byte, but got ") +
                torch_type_name(t->dtype()));
  }
}

// F.nll_loss(input, target, weight, size_average, ignore_index, reduce, reduction)
Value nll_loss_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  const TensorRef& t = a.tensor(1);
  std::string reduction = loss_reduction(a, 3, 5, 6);
  check_class_target(x0, t, "nll_loss");
  check_index_target(t);
  check_weight(a, 2, x0);
  require_floating(x0->dtype(), "nll_loss");
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  auto [loss, w] = nll_core(b, x, t, a[2], a.int_(4));
  return lang::convert(b, reduce_weighted(b, loss, w, reduction), x0->dtype());
}

// F.cross_entropy(input, target, weight, size_average, ignore_index, reduce, reduction,
// label_smoothing)
Value cross_entropy_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  const TensorRef& t0 = a.tensor(1);
  std::string reduction = loss_reduction(a, 3, 5, 6);
  double ls = a.number(7);
  if (ls < 0.0 || ls > 1.0) {
    throw Error("label_smoothing must be between 0.0 and 1.0. Got: " + std::to_string(ls));
  }
  if (x0->rank() < 1) throw Error("cross_entropy: input tensor should be 1D or more");
  check_weight(a, 2, x0);
  require_floating(x0->dtype(), "log_softmax_lastdim_kernel_impl");
  int64_t cd = class_dim(x0);
  int64_t c = x0->shape()[cd].value();
  TensorRef x = lang::convert(b, x0, opmath(x0->dtype()));
  TensorRef logp = softmax_along(b, x, cd, true);
  TensorRef wv;  // the class weights shaped to broadcast along the class dim
  if (!a[2].is_none()) {
    TensorRef w = lang::convert(b, a.tensor(2), x->dtype());
    wv = x->rank() == 1 ? w : channel_view(b, w, x->rank());
  }
  if (is_floating(t0->dtype())) {
    // Class probabilities.
    if (t0->shape() != x0->shape()) {
      throw Error("Expected target size " + shape_str(x0->shape()) + ", got " +
                  shape_str(t0->shape()));
    }
    DType result = promote_types(x0->dtype(), t0->dtype());
    x = lang::convert(b, x, opmath(result));
    logp = lang::convert(b, logp, opmath(result));
    if (wv) wv = lang::convert(b, wv, opmath(result));
    TensorRef t = lang::convert(b, t0, opmath(result));
    if (ls > 0.0) {
      t = bin(b, prims::add(), Value(bin(b, prims::mul(), Value(t), Value(1.0 - ls))),
              Value(ls / static_cast<double>(c)));
    }
    TensorRef prod = bin(b, prims::mul(), Value(logp), Value(t));
    if (wv) prod = bin(b, prims::mul(), Value(prod), Value(wv));
    TensorRef loss =
        un(b, prims::neg(), lang::reduce(b, prims::sum(), prod, {cd}, false, std::nullopt));
    TensorRef r;
    if (reduction == "none") {
      r = loss;
    } else if (reduction == "sum") {
      r = sum_all(b, loss);
    } else {
      double n = c == 0 ? 0.0 : static_cast<double>(x->numel() / c);
      r = bin(b, prims::div(), Value(sum_all(b, loss)), Value(n));
    }
    return lang::convert(b, r, result);
  }
  check_class_target(x0, t0, "cross_entropy");
  check_index_target(t0);
  int64_t ignore_index = a.int_(4);
  auto [nll, w] = nll_core(b, logp, t0, a[2], ignore_index);
  TensorRef r = reduce_weighted(b, nll, w, reduction);
  if (ls > 0.0) {
    // torch's cross_entropy_loss_label_smoothing
    TensorRef prod = wv ? bin(b, prims::mul(), Value(logp), Value(wv)) : logp;
    TensorRef smooth =
        un(b, prims::neg(), lang::reduce(b, prims::sum(), prod, {cd}, false, std::nullopt));
    TensorRef keep = cmp(b, prims::ne(), Value(t0), Value(ignore_index));
    smooth = where(b, keep, smooth, Value(0.0));
    TensorRef sr;
    if (reduction == "none") {
      sr = smooth;
    } else if (reduction == "sum") {
      sr = sum_all(b, smooth);
    } else {
      TensorRef denom = wv ? w : lang::convert(b, keep, x->dtype());
      sr = bin(b, prims::div(), Value(sum_all(b, smooth)), Value(sum_all(b, denom)));
    }
    r = bin(b, prims::add(), Value(bin(b, prims::mul(), Value(r), Value(1.0 - ls))),
            Value(bin(b, prims::mul(), Value(sr), Value(ls / static_cast<double>(c)))));
  }
  return lang::convert(b, r, x0->dtype());
}

// Promotes input and target, broadcasting them (torch warns but broadcasts).
std::pair<TensorRef, TensorRef> loss_operands(Builder& b, const BoundArgs& a, DType* result) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& t = a.tensor(1);
  *result = promote_types(x->dtype(), t->dtype());
  DType compute = opmath(*result);
  // torch's broadcasting error (lang::broadcast_shapes raises a ValueError).
  size_t n = std::max(x->shape().size(), t->shape().size());
  for (size_t i = 0; i < n; ++i) {
    int64_t xs = i < x->shape().size() ? x->shape()[x->shape().size() - 1 - i].value() : 1;
    int64_t ts = i < t->shape().size() ? t->shape()[t->shape().size() - 1 - i].value() : 1;
    if (xs != ts && xs != 1 && ts != 1) {
      throw Error("The size of tensor a (" + std::to_string(xs) +
                  ") must match the size of tensor "
                  "b (" +
                  std::to_string(ts) + ") at non-singleton dimension " + std::to_string(n - 1 - i));
    }
  }
  Shape shape = lang::broadcast_shapes(x->shape(), t->shape());
  return {lang::expand_to(b, lang::convert(b, x, compute), shape),
          lang::expand_to(b, lang::convert(b, t, compute), shape)};
}

template <bool kSquare>
Value pointwise_loss_meta(Builder& b, const BoundArgs& a) {
  std::string reduction = loss_reduction(a, 2, 3, 4);
  DType result;
  auto [x, t] = loss_operands(b, a, &result);
  require_floating(result, kSquare ? "mse_cpu" : "l1_cpu");
  TensorRef d = bin(b, prims::sub(), Value(x), Value(t));
  TensorRef loss = kSquare ? bin(b, prims::mul(), Value(d), Value(d)) : un(b, prims::abs(), d);
  if (!a[5].is_none()) {
    loss = bin(b, prims::mul(), Value(loss), Value(lang::convert(b, a.tensor(5), loss->dtype())));
  }
  return lang::convert(b, reduce_loss(b, loss, reduction), result);
}

// F.binary_cross_entropy_with_logits(input, target, weight, size_average, reduce, reduction,
// pos_weight): (1 - t) * x + (1 + (pos_weight - 1) * t) * (log1p(exp(-|x|)) + max(-x, 0))
Value bce_logits_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x0 = a.tensor(0);
  const TensorRef& t0 = a.tensor(1);
  std::string reduction = loss_reduction(a, 3, 4, 5);
  if (x0->shape() != t0->shape()) {
    throw ValueError("Target size (torch.Size(" + shape_str(t0->shape()) +
                     ")) must be the same as input size (torch.Size(" + shape_str(x0->shape()) +
                     "))");
  }
  DType common = promote_types(x0->dtype(), t0->dtype());
  require_floating(common, "binary_cross_entropy_with_logits");
  // Eager computes in place into (1 - target): the loss has the target's dtype (a float64 input
  // with a float32 target gives float32).
  const DType result = is_floating(t0->dtype()) ? t0->dtype() : common;
  DType compute = opmath(common);
  TensorRef x = lang::convert(b, x0, compute);
  TensorRef t = lang::convert(b, t0, compute);
  TensorRef one_minus_t = bin(b, prims::sub(), Value(1.0), Value(t));
  TensorRef first = bin(b, prims::mul(), Value(one_minus_t), Value(x));
  TensorRef nx = un(b, prims::neg(), x);
  TensorRef soft = bin(b, prims::add(),
                       Value(un(b, prims::log1p(),
                                un(b, prims::exp(), un(b, prims::neg(), un(b, prims::abs(), x))))),
                       Value(bin(b, prims::maximum(), Value(nx), Value(0.0))));
  if (!a[6].is_none()) {
    TensorRef pw = lang::convert(b, a.tensor(6), compute);
    TensorRef lw = bin(
        b, prims::add(),
        Value(bin(b, prims::mul(), Value(bin(b, prims::sub(), Value(pw), Value(1.0))), Value(t))),
        Value(1.0));
    soft = bin(b, prims::mul(), Value(lw), Value(soft));
  }
  TensorRef loss = bin(b, prims::add(), Value(first), Value(soft));
  if (!a[2].is_none()) {
    loss = bin(b, prims::mul(), Value(loss), Value(lang::convert(b, a.tensor(2), compute)));
  }
  return lang::convert(b, reduce_loss(b, loss, reduction), result);
}

// F.smooth_l1_loss(input, target, size_average, reduce, reduction, beta) and
// F.huber_loss(input, target, reduction, delta, weight), with z = |input - target| and torch's
// roundings: smooth L1 is 0.5 * z * z / beta where z < beta and z - 0.5 * beta elsewhere (beta 0:
// z); huber is 0.5 * z * z where z < delta and delta * (z - 0.5 * delta) elsewhere.
template <bool kHuber>
Value smooth_loss_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction =
      kHuber ? checked_reduction(a[2].as_string()) : loss_reduction(a, 2, 3, 4);
  const double k = a.number(kHuber ? 3 : 5);
  if (kHuber && !(k > 0)) throw Error("huber_loss does not support non-positive values for delta.");
  if (!kHuber && k < 0) throw Error("smooth_l1_loss does not support negative values for beta.");
  DType result;
  auto [x, t] = loss_operands(b, a, &result);
  require_floating(result, kHuber ? "huber_cpu" : "smooth_l1_cpu");
  TensorRef z = un(b, prims::abs(), bin(b, prims::sub(), Value(x), Value(t)));
  TensorRef loss = z;
  if (kHuber || k != 0) {
    TensorRef sq =
        bin(b, prims::mul(), Value(bin(b, prims::mul(), Value(z), Value(0.5))), Value(z));
    if (!kHuber) sq = bin(b, prims::div(), Value(sq), Value(k));
    TensorRef lin = bin(b, prims::sub(), Value(z), Value(0.5 * k));
    if (kHuber) lin = bin(b, prims::mul(), Value(lin), Value(k));
    loss = where(b, cmp(b, prims::lt(), Value(z), Value(k)), sq, Value(lin));
  }
  if (kHuber && !a[4].is_none()) {
    loss = bin(b, prims::mul(), Value(loss), Value(lang::convert(b, a.tensor(4), loss->dtype())));
  }
  return lang::convert(b, reduce_loss(b, loss, reduction), result);
}

// F.kl_div(input, target, size_average, reduce, reduction, log_target): input holds
// log-probabilities; the pointwise loss is exp(target) * (target - input) with log_target, else
// xlogy(target, target) - target * input (0 where target is 0). 'batchmean' divides the sum by
// the batch size (input.size(0)).
Value kl_div_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction = loss_reduction(a, 2, 3, 4, true);
  const bool log_target = a.bool_(5);
  DType result;
  auto [x, t] = loss_operands(b, a, &result);
  require_floating(result, "kl_div");
  TensorRef loss;
  if (log_target) {
    loss = bin(b, prims::mul(), Value(un(b, prims::exp(), t)),
               Value(bin(b, prims::sub(), Value(t), Value(x))));
  } else {
    TensorRef zero = cmp(b, prims::eq(), Value(t), Value(0.0));
    TensorRef tx = bin(b, prims::mul(), Value(t), Value(x));
    TensorRef xlogy = bin(b, prims::mul(), Value(t), Value(un(b, prims::log(), t)));
    // Where target is 0: 0 - 0 * input (NaN for an infinite input, as in torch). The target's
    // gradient there is NaN, as torch's (xlogy's derivative in its second argument, t / t).
    TensorRef at_zero =
        bin(b, prims::sub(), Value(0.0), Value(bin(b, prims::mul(), Value(x), Value(0.0))));
    loss = where(b, zero, at_zero, Value(bin(b, prims::sub(), Value(xlogy), Value(tx))));
  }
  if (reduction == "batchmean") {
    TensorRef s = sum_all(b, loss);
    if (x->rank() == 0) return lang::convert(b, s, result);
    double n = static_cast<double>(a.tensor(0)->shape()[0].value());
    return lang::convert(b, bin(b, prims::div(), Value(s), Value(n)), result);
  }
  return lang::convert(b, reduce_loss(b, loss, reduction), result);
}

// The losses below are ATen composites; each is written with the torch-level ops ATen's composite
// calls, in its order, so values, dtypes and gradients follow eager's (its zeros_like operands as 0
// selects of the same dtype).
Value call(Builder& b, const char* name, std::vector<Value> args) {
  return b.call(ltorch_symbol(name), std::move(args));
}
Value zeros_like(Builder& b, const Value& t) { return call(b, "zeros_like", {t}); }

// ATen's apply_loss_reduction: loss.mean() or loss.sum().
Value reduce_as_aten(Builder& b, const Value& loss, const std::string& reduction) {
  if (reduction == "none") return loss;
  return call(b, reduction == "sum" ? "sum" : "mean", {loss});
}

std::string size_str(const Shape& s) { return "torch.Size(" + shape_str(s) + ")"; }

// F.margin_ranking_loss(input1, input2, target, margin, size_average, reduce, reduction):
// max(0, -target * (input1 - input2) + margin).
Value margin_ranking_loss_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction = loss_reduction(a, 4, 5, 6);
  const TensorRef& x1 = a.tensor(0);
  const TensorRef& x2 = a.tensor(1);
  const TensorRef& t = a.tensor(2);
  if (x1->rank() != x2->rank() || x1->rank() != t->rank()) {
    throw Error(
        "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
        "input1: " +
        size_str(x1->shape()) + ", input2: " + size_str(x2->shape()) +
        ", target: " + size_str(t->shape()) + " ");
  }
  Value d = call(b, "mul", {call(b, "neg", {Value(t)}), call(b, "sub", {Value(x1), Value(x2)})});
  Value loss = call(b, "clamp_min", {call(b, "add", {d, Value(a.number(3))}), Value(int64_t{0})});
  return reduce_as_aten(b, loss, reduction);
}

// F.hinge_embedding_loss(input, target, margin, size_average, reduce, reduction): where target
// is not 1, max(0, margin - input); where target is not -1, input; the two added.
Value hinge_embedding_loss_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction = loss_reduction(a, 3, 4, 5);
  Value x = a[0], t = a[1];
  Value zeros = zeros_like(b, x);
  Value margin_clamp =
      call(b, "clamp_min", {call(b, "sub", {Value(a.number(2)), x}), Value(int64_t{0})});
  Value out_margin = call(b, "where", {call(b, "ne", {t, Value(int64_t{1})}), margin_clamp, zeros});
  Value out_self = call(b, "where", {call(b, "ne", {t, Value(int64_t{-1})}), x, zeros});
  return reduce_as_aten(b, call(b, "add", {out_margin, out_self}), reduction);
}

// F.soft_margin_loss(input, target, size_average, reduce, reduction): log(1 + exp(-input *
// target)), in the input's shape and dtype (ATen writes it into a tensor like the input).
Value soft_margin_loss_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction = loss_reduction(a, 2, 3, 4);
  const TensorRef& x = a.tensor(0);
  const TensorRef& t = a.tensor(1);
  Shape shape = lang::broadcast_shapes(x->shape(), t->shape());
  if (shape != x->shape()) {
    throw Error("output with shape " + shape_str(x->shape()) +
                " doesn't match the broadcast shape " + shape_str(shape));
  }
  DType result = lang::result_type({Value(x), Value(t)});
  if (is_floating(result) && !is_floating(x->dtype())) {
    throw Error(std::string("result type ") + torch_type_name(result) +
                " can't be cast to the desired output type " + torch_type_name(x->dtype()));
  }
  Value loss =
      call(b, "log1p", {call(b, "exp", {call(b, "mul", {call(b, "neg", {Value(x)}), Value(t)})})});
  return reduce_as_aten(b, loss, reduction);
}

// F.cosine_embedding_loss(input1, input2, target, margin, size_average, reduce, reduction): the
// cosine of each pair of rows (squared magnitudes plus 1e-12), 1 - cos where target is 1 and
// max(0, cos - margin) where it is -1.
Value cosine_embedding_loss_meta(Builder& b, const BoundArgs& a) {
  const std::string reduction = loss_reduction(a, 4, 5, 6);
  const TensorRef& x1 = a.tensor(0);
  const TensorRef& x2 = a.tensor(1);
  const TensorRef& t = a.tensor(2);
  const int64_t td = t->rank();
  if (td != 0 && td != 1)
    throw Error("0D or 1D target tensor expected, multi-target not supported");
  if (x1->rank() != td + 1 || x2->rank() != td + 1) {
    throw Error(
        std::string(td == 1 ? "1D target tensor expects 2D" : "0D target tensor expects 1D") +
        " input tensors, but found inputs with sizes " + shape_str(x1->shape()) + " and " +
        shape_str(x2->shape()) + ".");
  }
  const double eps = 1e-12;
  Value dim = Value(td);
  auto sum_of = [&](const Value& p, const Value& q) {
    return call(b, "sum", {call(b, "mul", {p, q}), dim});
  };
  Value prod_sum = sum_of(Value(x1), Value(x2));
  Value mag1 = call(b, "add", {sum_of(Value(x1), Value(x1)), Value(eps)});
  Value mag2 = call(b, "add", {sum_of(Value(x2), Value(x2)), Value(eps)});
  Value denom = call(b, "sqrt", {call(b, "mul", {mag1, mag2})});
  Value cos = call(b, "div", {prod_sum, denom});
  Value zeros = zeros_like(b, cos);
  Value pos = call(b, "rsub", {cos, Value(int64_t{1})});
  Value neg = call(b, "clamp_min", {call(b, "sub", {cos, Value(a.number(3))}), Value(int64_t{0})});
  Value out_pos = call(b, "where", {call(b, "eq", {Value(t), Value(int64_t{1})}), pos, zeros});
  Value out_neg = call(b, "where", {call(b, "eq", {Value(t), Value(int64_t{-1})}), neg, zeros});
  return reduce_as_aten(b, call(b, "add", {out_pos, out_neg}), reduction);
}

// F.cosine_similarity(x1, x2, dim, eps), as ATen's composite: the operands broadcast together, each
// divided by its 2-norm along dim (at least eps), the products summed along dim. (ATen clamps the
// norms outside autograd's view; here the clamp is differentiated, which differs only for norms
// between 0 and eps.)
Value cosine_similarity_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x1 = a.tensor(0);
  const TensorRef& x2 = a.tensor(1);
  const DType common = promote_types(x1->dtype(), x2->dtype());
  if (!is_floating(common)) {
    throw Error(std::string("expected common dtype to be floating point, yet common dtype is ") +
                torch_type_name(common));
  }
  const Shape shape = lang::broadcast_shapes(x1->shape(), x2->shape());
  const int64_t dim = lang::canonical_dim(a.int_(2), static_cast<int64_t>(shape.size()));
  Value eps = Value(a.number(3));
  auto unit = [&](const TensorRef& x) {
    Value e = Value(lang::expand_to(b, lang::convert(b, x, common), shape));
    Value norm = call(b, "vector_norm", {e, Value(2.0), Value::ints({dim}), Value(true)});
    return call(b, "div", {e, call(b, "clamp_min", {norm, eps})});
  };
  return call(b, "sum", {call(b, "mul", {unit(x1), unit(x2)}), Value(dim)});
}

// F.poisson_nll_loss(input, target, log_input, full, size_average, eps, reduce, reduction):
// exp(input) - target * input (log_input), else input - target * log(input + eps); with full, the
// Stirling term target * log(target) - target + 0.5 * log(2 pi target) added where target > 1.
Value poisson_nll_loss_meta(Builder& b, const BoundArgs& a) {
  std::string reduction = a[7].as_string();
  if (!a[4].is_none() || !a[6].is_none()) {
    reduction = loss_reduction(a, 4, 6, 7);
  } else if (reduction != "none" && reduction != "mean" && reduction != "sum") {
    throw ValueError(reduction + " is not a valid value for reduction");
  }
  Value x = a[0], t = a[1];
  Value loss;
  if (a.bool_(2)) {
    loss = call(b, "sub", {call(b, "exp", {x}), call(b, "mul", {t, x})});
  } else {
    Value l = call(b, "log", {call(b, "add", {x, Value(a.number(5))})});
    loss = call(b, "sub", {x, call(b, "mul", {t, l})});
  }
  if (a.bool_(3)) {
    Value st = call(b, "sub", {call(b, "mul", {t, call(b, "log", {t})}), t});
    Value half_log =
        call(b, "mul", {call(b, "log", {call(b, "mul", {Value(2 * M_PI), t})}), Value(0.5)});
    st = call(b, "add", {st, half_log});
    st = call(b, "masked_fill", {st, call(b, "le", {t, Value(int64_t{1})}), Value(int64_t{0})});
    DType ld = loss.as_tensor()->dtype();
    loss = lang::convert_value(b, call(b, "add", {loss, st}), ld);
  }
  return reduce_as_aten(b, loss, reduction);
}

}  // namespace

void register_nn_loss_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"nll_loss",
       "input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, "
       "reduction='mean'",
       nll_loss_meta,
       {"torch.nn.functional.nll_loss"}},
      {"cross_entropy",
       "input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, "
       "reduction='mean', label_smoothing=0.0",
       cross_entropy_meta,
       {"torch.nn.functional.cross_entropy"}},
      {"mse_loss",
       "input, target, size_average=None, reduce=None, reduction='mean', weight=None",
       pointwise_loss_meta<true>,
       {"torch.nn.functional.mse_loss"}},
      {"l1_loss",
       "input, target, size_average=None, reduce=None, reduction='mean', weight=None",
       pointwise_loss_meta<false>,
       {"torch.nn.functional.l1_loss"}},
      {"smooth_l1_loss",
       "input, target, size_average=None, reduce=None, reduction='mean', beta=1.0",
       smooth_loss_meta<false>,
       {"torch.nn.functional.smooth_l1_loss"}},
      {"huber_loss",
       "input, target, reduction='mean', delta=1.0, weight=None",
       smooth_loss_meta<true>,
       {"torch.nn.functional.huber_loss"}},
      {"kl_div",
       "input, target, size_average=None, reduce=None, reduction='mean', log_target=False",
       kl_div_meta,
       {"torch.nn.functional.kl_div"}},
      {"binary_cross_entropy_with_logits",
       "input, target, weight=None, size_average=None, reduce=None, reduction='mean', "
       "pos_weight=None",
       bce_logits_meta,
       {"torch.nn.functional.binary_cross_entropy_with_logits"}},
      {"margin_ranking_loss",
       "input1, input2, target, margin=0, size_average=None, reduce=None, reduction='mean'",
       margin_ranking_loss_meta,
       {"torch.nn.functional.margin_ranking_loss"}},
      {"hinge_embedding_loss",
       "input, target, margin=1.0, size_average=None, reduce=None, reduction='mean'",
       hinge_embedding_loss_meta,
       {"torch.nn.functional.hinge_embedding_loss"}},
      {"soft_margin_loss",
       "input, target, size_average=None, reduce=None, reduction='mean'",
       soft_margin_loss_meta,
       {"torch.nn.functional.soft_margin_loss"}},
      {"cosine_embedding_loss",
       "input1, input2, target, margin=0, size_average=None, reduce=None, reduction='mean'",
       cosine_embedding_loss_meta,
       {"torch.nn.functional.cosine_embedding_loss"}},
      {"cosine_similarity",
       "x1, x2, dim=1, eps=1e-08",
       cosine_similarity_meta,
       {"torch.nn.functional.cosine_similarity", "torch.cosine_similarity"}},
      {"poisson_nll_loss",
       "input, target, log_input=True, full=False, size_average=None, eps=1e-08, reduce=None, "
       "reduction='mean'",
       poisson_nll_loss_meta,
       {"torch.nn.functional.poisson_nll_loss"}},
  };
  register_ops(table, defs);
}

}  // namespace thunder
