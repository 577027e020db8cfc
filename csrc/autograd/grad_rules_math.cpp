// Gradient rules of torch-level math functions whose decomposition's gradient would differ from
// eager's at the edges of their domains: hypot (NaN at the origin, where the decomposition selects
// 0), logit (eager's values at 0 and 1 and outside [eps, 1 - eps]), copysign (NaN at infinities, 0
// for the sign's operand) and xlogy / xlog1py (eager's formulas where x or the gradient is 0 or y
// is NaN). Each backward writes eager's derivative formula (PyTorch's derivatives.yaml) with
// primitives in the output's compute dtype, and sums a broadcast operand's cotangent back to its
// shape.
#include <cmath>
#include <limits>

#include "autograd/grad_rule.h"
#include "ops/lang.h"
#include "ops/nn_common.h"

namespace thunder::autograd::detail {

namespace {

using V = Value;
using thunder::detail::nn::bin;
using thunder::detail::nn::cmp;
using thunder::detail::nn::opmath;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// where(pred, x, y) on tensors or numbers of one dtype, broadcast to `shape`.
TensorRef select(Builder& b, const TensorRef& pred, const V& x, const V& y) {
  return lang::call(b, ltorch_symbol("where"), {V(pred), x, y}).as_tensor();
}

// The forward's operands and output as the backward computes with them: argument tensors converted
// to the output's compute dtype and broadcast to its shape, numbers kept.
struct Operands {
  DType cd;
  TensorRef g, out;
  V x, y;
};
Operands operands(BackwardContext& c, const TensorRef& g, size_t n) {
  const TensorRef& out = c.output.as_tensor();
  Operands o;
  o.cd = opmath(out->dtype());
  o.g = lang::convert(c.b, g, o.cd);
  o.out = lang::convert(c.b, out, o.cd);
  V* dst[2] = {&o.x, &o.y};
  for (size_t i = 0; i < n; ++i) {
    const V& a = c.args[i];
    *dst[i] = a.is_tensor()
                  ? V(lang::expand_to(c.b, lang::convert(c.b, a.as_tensor(), o.cd), out->shape()))
                  : a;
  }
  return o;
}

// Hands argument i the cotangent `g` (of the output's shape), summed back to the argument's shape.
void put(BackwardContext& c, size_t i, const TensorRef& g) {
  if (!c.needs(i)) return;
  c.put_grad(i, sum_to_shape(c.b, g, c.args[i].as_tensor()->shape()));
}

}  // namespace

void register_math_grad_rules() {
  auto rule = [](const char* name, BackwardFn f) {
    GradRule r;
    r.backward = std::move(f);
    register_grad_rule(&ltorch_symbol(name), std::move(r));
  };

  // cumsum: the cotangent's cumulative sum from the end (flip, cumsum, flip), in the input's dtype.
  rule("cumsum", [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& x = c.args[0].as_tensor();
    TensorRef r = g;
    if (x->rank() > 0 && x->numel() > 1) {
      const int64_t d = lang::canonical_dim(c.args[1].as_int(), x->rank());
      TensorRef f = lang::call_t(c.b, prims::flip(), {V(g), V::ints({d})});
      TensorRef s = c.b.call_bound(ltorch_symbol("cumsum"), {V(f), V(d), V()}).as_tensor();
      r = lang::call_t(c.b, prims::flip(), {V(s), V::ints({d})});
    }
    c.put_grad(0, lang::reshape(c.b, lang::convert(c.b, r, x->dtype()), x->shape()));
  });

  // hypot: grad * x / result and grad * y / result.
  rule("hypot", [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    Operands o = operands(c, g, 2);
    const V* xs[2] = {&o.x, &o.y};
    for (size_t i = 0; i < 2; ++i) {
      if (!c.needs(i)) continue;
      put(c, i, bin(c.b, prims::div(), V(bin(c.b, prims::mul(), V(o.g), *xs[i])), V(o.out)));
    }
  });

  // logit: without eps (or eps < 0), NaN outside [0, 1] and grad * inf at 0 and 1; with eps, 0
  // outside [eps, 1 - eps] (eps and 1 - eps rounded to the input's dtype, as the forward's). Else
  // grad / (x * (1 - x)). With eps, a NaN input gets NaN, as eager's scalar loop (its vectorised
  // loop gives 0, so capture runs logit with eps as its torch call when its input needs a
  // gradient).
  rule("logit", [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    Operands o = operands(c, g, 1);
    Builder& b = c.b;
    const TensorRef& x = o.x.as_tensor();
    TensorRef d = bin(b, prims::div(), V(o.g),
                      V(bin(b, prims::mul(), V(x), V(bin(b, prims::sub(), V(1.0), V(x))))));
    TensorRef edge = cmp(b, prims::bitwise_or(), V(cmp(b, prims::eq(), V(x), V(0.0))),
                         V(cmp(b, prims::eq(), V(x), V(1.0))));
    d = select(b, edge, V(bin(b, prims::mul(), V(o.g), V(kInf))), V(d));
    const bool clamped = !c.args[1].is_none() && c.args.number(1) >= 0;
    double lo = 0.0, hi = 1.0;
    if (clamped) {
      DType rd = c.output.as_tensor()->dtype();
      lo = thunder::detail::nn::round_to(rd, c.args.number(1));
      hi = thunder::detail::nn::round_to(rd, 1.0 - lo);
    }
    TensorRef outside = cmp(b, prims::bitwise_or(), V(cmp(b, prims::lt(), V(x), V(lo))),
                            V(cmp(b, prims::gt(), V(x), V(hi))));
    c.put_grad(0, select(b, outside, V(clamped ? 0.0 : kNaN), V(d)));
  });

  // copysign: grad * (result / x), 0 where x is 0 (NaN where x is infinite); zeros for the sign.
  rule("copysign", [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    if (c.needs(1)) {
      const TensorRef& y = c.args[1].as_tensor();
      c.put_grad(1, lang::full(c.b, y->shape(), V(0.0), y->device(), y->dtype()));
    }
    if (!c.needs(0)) return;
    Operands o = operands(c, g, 1);
    Builder& b = c.b;
    TensorRef ratio = bin(b, prims::div(), V(o.out), o.x);
    ratio = select(b, cmp(b, prims::eq(), o.x, V(0.0)), V(0.0), V(ratio));
    put(c, 0, bin(b, prims::mul(), V(o.g), V(ratio)));
  });

  // xlogy / xlog1py: x's cotangent xlogy(grad, y) (NaN where y is NaN, else 0 where grad is 0,
  // else grad * log(y)), 0 where x is 0 and y <= 0 (a number y: not > 0); y's grad * x / y.
  // xlog1py: log1p(y), -1 in place of 0
  // and grad * x / (y + 1).
  auto xlogy_rule = [](bool log1p) {
    return [log1p](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      Operands o = operands(c, g, 2);
      Builder& b = c.b;
      if (c.needs(0)) {
        const TensorRef& x = o.x.as_tensor();
        const double yv = o.y.is_tensor() ? 0.0 : o.y.as_double();
        V ly = o.y.is_tensor() ? V(lang::call_t(b, log1p ? prims::log1p() : prims::log(), {o.y}))
                               : V(log1p ? std::log1p(yv) : std::log(yv));
        TensorRef d = bin(b, prims::mul(), V(o.g), ly);
        d = select(b, cmp(b, prims::eq(), V(o.g), V(0.0)), V(0.0), V(d));
        if (o.y.is_tensor()) {
          d = select(b, cmp(b, prims::ne(), o.y, o.y), V(kNaN), V(d));
        } else if (std::isnan(yv)) {
          d = lang::full(b, x->shape(), V(kNaN), x->device(), o.cd);
        }
        const double bound = log1p ? -1.0 : 0.0;
        TensorRef zero_x = cmp(b, prims::eq(), V(x), V(0.0));
        if (o.y.is_tensor()) {
          zero_x = cmp(b, prims::bitwise_and(), V(zero_x), V(cmp(b, prims::le(), o.y, V(bound))));
          d = select(b, zero_x, V(0.0), V(d));
        } else if (!(yv > bound)) {  // eager's Scalar overload: also for a NaN
          d = select(b, zero_x, V(0.0), V(d));
        }
        put(c, 0, d);
      }
      if (c.needs(1)) {
        V den = log1p ? V(bin(b, prims::add(), o.y, V(1.0))) : o.y;
        put(c, 1, bin(b, prims::div(), V(bin(b, prims::mul(), V(o.g), o.x)), den));
      }
    };
  };
  rule("xlogy", xlogy_rule(false));
  rule("xlog1py", xlogy_rule(true));
}

}  // namespace thunder::autograd::detail
