// Gradient rules of the elementwise primitives. Operands of an elementwise primitive share one
// shape and dtype (numbers may stand in for tensors), so each cotangent is the output's cotangent
// times the local derivative, with no broadcasting to undo.
#include <cmath>
#include <numbers>

#include "autograd/grad_rule.h"
#include "ops/lang.h"

namespace thunder::autograd::detail {

namespace {

using V = Value;

TensorRef call(Builder& b, const Symbol& s, std::vector<Value> args) {
  return lang::call_t(b, s, std::move(args));
}
TensorRef mul(Builder& b, const V& x, const V& y) { return call(b, prims::mul(), {x, y}); }
TensorRef divide(Builder& b, const V& x, const V& y) { return call(b, prims::div(), {x, y}); }
TensorRef add(Builder& b, const V& x, const V& y) { return call(b, prims::add(), {x, y}); }
TensorRef sub(Builder& b, const V& x, const V& y) { return call(b, prims::sub(), {x, y}); }
TensorRef neg(Builder& b, const V& x) { return call(b, prims::neg(), {x}); }

// d(out)/d(a) for a unary primitive, times g.
using UnaryGrad = TensorRef (*)(Builder& b, const V& a, const V& out, const TensorRef& g);

void unary(const Symbol& s, UnaryGrad f) {
  GradRule r;
  r.backward = [f](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    c.put_grad(0, f(c.b, c.args[0], c.output, g));
  };
  register_grad_rule(&s, std::move(r));
}

// Cotangents of a binary primitive: ga and gb may be null when not needed.
using BinaryGrad = void (*)(BackwardContext& c, const TensorRef& g, bool need_a, bool need_b);

void binary(const Symbol& s, BinaryGrad f) {
  GradRule r;
  r.backward = [f](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    f(c, g, c.needs(0), c.needs(1));
  };
  register_grad_rule(&s, std::move(r));
}

// 1 / sqrt(v)-style helpers on values of the operand's dtype.
TensorRef sq(Builder& b, const V& x) { return mul(b, x, x); }

}  // namespace

void register_elementwise_grad_rules() {
  constexpr double kLn2 = std::numbers::ln2;
  constexpr double kLn10 = std::numbers::ln10;
  constexpr double kTwoOverSqrtPi = 2.0 / 1.7724538509055160273;  // 2 / sqrt(pi)
  (void)kLn2;
  unary(prims::abs(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::sign(), {a})));
  });
  unary(prims::neg(), [](Builder& b, const V&, const V&, const TensorRef& g) { return neg(b, V(g)); });
  unary(prims::exp(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return mul(b, V(g), out);
  });
  unary(prims::exp2(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return mul(b, V(mul(b, V(g), out)), V(std::numbers::ln2));
  });
  unary(prims::expm1(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return mul(b, V(g), V(add(b, out, V(1.0))));
  });
  unary(prims::log(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), a);
  });
  unary(prims::log1p(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), V(add(b, a, V(1.0))));
  });
  unary(prims::log2(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), V(mul(b, a, V(std::numbers::ln2))));
  });
  unary(prims::log10(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), V(mul(b, a, V(std::numbers::ln10))));
  });
  (void)kLn10;
  unary(prims::sqrt(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return divide(b, V(g), V(mul(b, out, V(2.0))));
  });
  unary(prims::rsqrt(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    // d/da a^-1/2 = -1/2 a^-3/2 = -1/2 out^3
    TensorRef o3 = mul(b, V(sq(b, out)), out);
    return mul(b, V(mul(b, V(g), V(o3))), V(-0.5));
  });
  unary(prims::sin(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::cos(), {a})));
  });
  unary(prims::cos(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return neg(b, V(mul(b, V(g), V(call(b, prims::sin(), {a})))));
  });
  unary(prims::tan(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return mul(b, V(g), V(add(b, V(sq(b, out)), V(1.0))));
  });
  unary(prims::tanh(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return mul(b, V(g), V(sub(b, V(1.0), V(sq(b, out)))));
  });
  unary(prims::sinh(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::cosh(), {a})));
  });
  unary(prims::cosh(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::sinh(), {a})));
  });
  unary(prims::asin(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::rsqrt(), {V(sub(b, V(1.0), V(sq(b, a))))})));
  });
  unary(prims::acos(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return neg(b, V(mul(b, V(g), V(call(b, prims::rsqrt(), {V(sub(b, V(1.0), V(sq(b, a))))})))));
  });
  unary(prims::atan(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), V(add(b, V(sq(b, a)), V(1.0))));
  });
  unary(prims::asinh(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::rsqrt(), {V(add(b, V(sq(b, a)), V(1.0)))})));
  });
  unary(prims::acosh(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::rsqrt(), {V(sub(b, V(sq(b, a)), V(1.0)))})));
  });
  unary(prims::atanh(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return divide(b, V(g), V(sub(b, V(1.0), V(sq(b, a)))));
  });
  unary(prims::erf(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    TensorRef e = call(b, prims::exp(), {V(neg(b, V(sq(b, a))))});
    return mul(b, V(g), V(mul(b, V(e), V(2.0 / std::sqrt(std::numbers::pi)))));
  });
  unary(prims::erfc(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    TensorRef e = call(b, prims::exp(), {V(neg(b, V(sq(b, a))))});
    return mul(b, V(g), V(mul(b, V(e), V(-2.0 / std::sqrt(std::numbers::pi)))));
  });
  (void)kTwoOverSqrtPi;
  unary(prims::erfinv(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    TensorRef e = call(b, prims::exp(), {V(sq(b, out))});
    return mul(b, V(g), V(mul(b, V(e), V(std::sqrt(std::numbers::pi) / 2.0))));
  });
  unary(prims::lgamma(), [](Builder& b, const V& a, const V&, const TensorRef& g) {
    return mul(b, V(g), V(call(b, prims::digamma(), {a})));
  });
  unary(prims::reciprocal(), [](Builder& b, const V&, const V& out, const TensorRef& g) {
    return neg(b, V(mul(b, V(g), V(sq(b, out)))));
  });
  // Piecewise-constant functions: a zero gradient, as torch gives.
  for (const Symbol* s : {&prims::sign(), &prims::floor(), &prims::ceil(), &prims::round(),
                          &prims::trunc()}) {
    unary(*s, [](Builder& b, const V&, const V&, const TensorRef& g) {
      return lang::full(b, g->shape(), V(0.0), g->device(), g->dtype());
    });
  }
  for (const Symbol* s :
       {&prims::bitwise_not(), &prims::isfinite(), &prims::signbit(), &prims::eq(), &prims::ne(),
        &prims::lt(), &prims::le(), &prims::gt(), &prims::ge(), &prims::bitwise_and(),
        &prims::bitwise_or(), &prims::bitwise_xor(), &prims::bitwise_left_shift(),
        &prims::bitwise_right_shift()}) {
    register_nondifferentiable(s);
  }

  binary(prims::add(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, g);
    if (nb) c.put_grad(1, g);
  });
  binary(prims::sub(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, g);
    if (nb) c.put_grad(1, neg(c.b, V(g)));
  });
  binary(prims::mul(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, mul(c.b, V(g), c.args[1]));
    if (nb) c.put_grad(1, mul(c.b, V(g), c.args[0]));
  });
  binary(prims::div(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, divide(c.b, V(g), c.args[1]));
    if (nb) {
      // -g * a / b^2
      TensorRef t = divide(c.b, V(divide(c.b, V(g), c.args[1])), c.args[1]);
      c.put_grad(1, neg(c.b, V(mul(c.b, V(t), c.args[0]))));
    }
  });
  binary(prims::remainder(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, g);
    if (nb) {
      TensorRef q = call(c.b, prims::floor(), {V(divide(c.b, c.args[0], c.args[1]))});
      c.put_grad(1, neg(c.b, V(mul(c.b, V(g), V(q)))));
    }
  });
  binary(prims::fmod(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    if (na) c.put_grad(0, g);
    if (nb) {
      TensorRef q = call(c.b, prims::trunc(), {V(divide(c.b, c.args[0], c.args[1]))});
      c.put_grad(1, neg(c.b, V(mul(c.b, V(g), V(q)))));
    }
  });
  binary(prims::pow(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    const V& a = c.args[0];
    const V& e = c.args[1];
    if (na) {
      // g * e * a^(e-1), zero where e == 0 (as torch's pow_backward).
      V em1 = e.is_tensor() ? V(sub(c.b, e, V(1.0))) : V(e.as_double() - 1.0);
      TensorRef p = call(c.b, prims::pow(), {a, em1});
      TensorRef d = mul(c.b, V(mul(c.b, V(g), e)), V(p));
      if (e.is_tensor()) {
        d = call(c.b, prims::where(), {V(call(c.b, prims::eq(), {e, V(0.0)})), V(0.0), V(d)});
      } else if (e.as_double() == 0.0) {
        d = lang::full(c.b, g->shape(), V(0.0), g->device(), g->dtype());
      }
      c.put_grad(0, d);
    }
    if (nb) {
      // g * out * log(a), zero where a == 0 and e >= 0.
      V log_a = a.is_tensor() ? V(call(c.b, prims::log(), {a})) : V(std::log(a.as_double()));
      TensorRef d = mul(c.b, V(mul(c.b, V(g), c.output)), log_a);
      TensorRef mask = a.is_tensor()
                           ? call(c.b, prims::bitwise_and(),
                                  {V(call(c.b, prims::eq(), {a, V(0.0)})),
                                   V(call(c.b, prims::ge(), {e, V(0.0)}))})
                           : nullptr;
      if (mask) d = call(c.b, prims::where(), {V(mask), V(0.0), V(d)});
      c.put_grad(1, d);
    }
  });
  auto minmax = [](BackwardContext& c, const TensorRef& g, bool na, bool nb, const Symbol& win) {
    // The winner gets g, a tie splits it evenly (torch's maximum/minimum backward).
    const V& a = c.args[0];
    const V& o = c.args[1];
    TensorRef half = mul(c.b, V(g), V(0.5));
    TensorRef tie = call(c.b, prims::eq(), {a, o});
    if (na) {
      TensorRef w = call(c.b, win, {a, o});
      c.put_grad(0, call(c.b, prims::where(),
                         {V(tie), V(half), V(call(c.b, prims::where(), {V(w), V(g), V(0.0)}))}));
    }
    if (nb) {
      TensorRef w = call(c.b, win, {o, a});
      c.put_grad(1, call(c.b, prims::where(),
                         {V(tie), V(half), V(call(c.b, prims::where(), {V(w), V(g), V(0.0)}))}));
    }
  };
  {
    GradRule r;
    r.backward = [minmax](BackwardContext& c) {
      if (TensorRef g = c.grad_out()) minmax(c, g, c.needs(0), c.needs(1), prims::gt());
    };
    register_grad_rule(&prims::maximum(), std::move(r));
    GradRule r2;
    r2.backward = [minmax](BackwardContext& c) {
      if (TensorRef g = c.grad_out()) minmax(c, g, c.needs(0), c.needs(1), prims::lt());
    };
    register_grad_rule(&prims::minimum(), std::move(r2));
  }
  binary(prims::atan2(), [](BackwardContext& c, const TensorRef& g, bool na, bool nb) {
    const V& a = c.args[0];
    const V& o = c.args[1];
    TensorRef den = add(c.b, V(sq(c.b, a)), V(sq(c.b, o)));
    // At (0, 0) the gradient is 0, as torch's (not g * 0 / 0).
    TensorRef s =
        call(c.b, prims::where(),
             {V(call(c.b, prims::eq(), {V(den), V(0.0)})), V(0.0), V(divide(c.b, V(g), V(den)))});
    if (na) c.put_grad(0, mul(c.b, V(s), o));
    if (nb) c.put_grad(1, neg(c.b, V(mul(c.b, V(s), a))));
  });
  {
    GradRule r;
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      const V& pred = c.args[0];
      if (c.needs(1)) c.put_grad(1, call(c.b, prims::where(), {pred, V(g), V(0.0)}));
      if (c.needs(2)) c.put_grad(2, call(c.b, prims::where(), {pred, V(0.0), V(g)}));
    };
    register_grad_rule(&prims::where(), std::move(r));
  }
  {
    GradRule r;
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      c.put_grad(0, lang::convert(c.b, g, c.args[0].as_tensor()->dtype()));
    };
    register_grad_rule(&prims::convert_element_type(), std::move(r));
  }
}

}  // namespace thunder::autograd::detail
