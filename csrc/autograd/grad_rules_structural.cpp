// Gradient rules of the structural primitives: shapes and layouts, gathers and scatters,
// reductions, matrix products and convolution.
#include <numeric>
#include <unordered_set>

#include "autograd/grad_rule.h"
#include "core/error.h"
#include "ops/lang.h"

namespace thunder::autograd::detail {

namespace {

using V = Value;

TensorRef call(Builder& b, const Symbol& s, std::vector<Value> args) {
  return lang::call_t(b, s, std::move(args));
}

TensorRef zeros(Builder& b, const TensorRef& like) {
  return lang::full(b, like->shape(), V(0.0), like->device(), like->dtype());
}

std::vector<int64_t> iota_vec(int64_t n, int64_t start = 0) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(v.begin(), v.end(), start);
  return v;
}

}  // namespace

TensorRef sum_to_shape(Builder& b, const TensorRef& t, const Shape& shape) {
  if (t->shape() == shape) return t;
  int64_t lead = t->rank() - static_cast<int64_t>(shape.size());
  if (lead < 0) throw Error("internal: sum_to_shape to a larger rank");
  std::vector<int64_t> dims = iota_vec(lead);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i].value() == 1 && t->shape()[lead + i].value() != 1) dims.push_back(lead + i);
  }
  TensorRef s = dims.empty() ? t : call(b, prims::sum(), {V(t), V::ints(dims)});
  return lang::reshape(b, s, shape);
}

namespace {

// Broadcasts a reduction's result (or its cotangent) back to the input's shape.
TensorRef unreduce(Builder& b, const TensorRef& r, const Shape& shape,
                   const std::vector<int64_t>& reduced) {
  std::unordered_set<int64_t> red(reduced.begin(), reduced.end());
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (!red.count(i)) kept.push_back(i);
  }
  return call(b, prims::broadcast_in_dim(), {V(r), V::shape(shape), V::ints(kept)});
}

TensorRef transpose_last2(Builder& b, const TensorRef& t) {
  std::vector<int64_t> perm = iota_vec(t->rank());
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return lang::transpose(b, t, perm);
}

void rule(const Symbol& s, BackwardFn f) {
  GradRule r;
  r.backward = std::move(f);
  register_grad_rule(&s, std::move(r));
}

void matmul_backward(BackwardContext& c) {
  TensorRef g = c.grad_out();
  if (!g) return;
  TensorRef a = c.args[0].as_tensor();
  TensorRef bm = c.args[1].as_tensor();
  Builder& b = c.b;
  TensorRef A = a->rank() == 1 ? lang::reshape(b, a, {Dim(1), a->shape()[0]}) : a;
  TensorRef B = bm->rank() == 1 ? lang::reshape(b, bm, {bm->shape()[0], Dim(1)}) : bm;
  // g with the dims matmul dropped for 1-D operands restored.
  Shape full(g->shape().begin(), g->shape().end());
  if (a->rank() == 1) full.insert(full.end() - (bm->rank() == 1 ? 0 : 1), Dim(1));
  if (bm->rank() == 1) full.push_back(Dim(1));
  TensorRef G = lang::reshape(b, g, full);
  if (c.needs(0)) {
    TensorRef ga = call(b, prims::matmul(), {V(G), V(transpose_last2(b, B))});
    ga = sum_to_shape(b, ga, A->shape());
    c.put_grad(0, lang::reshape(b, ga, a->shape()));
  }
  if (c.needs(1)) {
    TensorRef gb = call(b, prims::matmul(), {V(transpose_last2(b, A)), V(G)});
    gb = sum_to_shape(b, gb, B->shape());
    c.put_grad(1, lang::reshape(b, gb, bm->shape()));
  }
}

void linear_backward(BackwardContext& c) {
  TensorRef g = c.grad_out();
  if (!g) return;
  Builder& b = c.b;
  TensorRef x = c.args[0].as_tensor();
  TensorRef w = c.args[1].as_tensor();
  int64_t r = x->rank();
  if (w->rank() == 2) {
    if (c.needs(0)) c.put_grad(0, call(b, prims::matmul(), {V(g), V(w)}));
    if (c.needs(1) || c.needs(2)) {
      int64_t m = r == 1 ? 1 : x->numel() / std::max<int64_t>(x->shape().back().value(), 1);
      TensorRef g2 = lang::reshape(b, g, {Dim(m), w->shape()[0]});
      if (c.needs(1)) {
        TensorRef x2 = lang::reshape(b, x, {Dim(m), x->shape().back()});
        c.put_grad(1, call(b, prims::matmul(), {V(transpose_last2(b, g2)), V(x2)}));
      }
      if (c.needs(2)) c.put_grad(2, call(b, prims::sum(), {V(g2), V::ints({0})}));
    }
    return;
  }
  // A 1-D weight: out = x @ w, shaped x.shape[:-1].
  std::vector<int64_t> lead = iota_vec(r - 1);
  TensorRef gx = call(b, prims::broadcast_in_dim(), {V(g), V::shape(x->shape()), V::ints(lead)});
  if (c.needs(0)) {
    TensorRef wb =
        call(b, prims::broadcast_in_dim(), {V(w), V::shape(x->shape()), V::ints({r - 1})});
    c.put_grad(0, call(b, prims::mul(), {V(gx), V(wb)}));
  }
  if (c.needs(1)) {
    TensorRef p = call(b, prims::mul(), {V(gx), V(x)});
    c.put_grad(1, lead.empty() ? p : call(b, prims::sum(), {V(p), V::ints(lead)}));
  }
  if (c.needs(2)) c.put_grad(2, call(b, prims::sum(), {V(g), V::ints(iota_vec(g->rank()))}));
}

}  // namespace

void register_structural_grad_rules() {
  rule(prims::broadcast_in_dim(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    std::vector<int64_t> bdims = c.args.ints(2);
    std::unordered_set<int64_t> mapped(bdims.begin(), bdims.end());
    std::vector<int64_t> dims;
    for (int64_t i = 0; i < g->rank(); ++i) {
      if (!mapped.count(i)) dims.push_back(i);
    }
    for (size_t i = 0; i < bdims.size(); ++i) {
      if (a->shape()[i].value() == 1 && g->shape()[bdims[i]].value() != 1) dims.push_back(bdims[i]);
    }
    std::sort(dims.begin(), dims.end());
    TensorRef s = dims.empty() ? g : call(c.b, prims::sum(), {V(g), V::ints(dims)});
    c.put_grad(0, lang::reshape(c.b, s, a->shape()));
  });
  auto reshape_back = [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (g && c.needs(0)) c.put_grad(0, lang::reshape(c.b, g, c.args[0].as_tensor()->shape()));
  };
  rule(prims::reshape(), reshape_back);
  rule(prims::squeeze(), reshape_back);
  rule(prims::transpose(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    std::vector<int64_t> perm = c.args.ints(1);
    std::vector<int64_t> inv(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
    c.put_grad(0, lang::transpose(c.b, g, inv));
  });
  rule(prims::slice(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    std::vector<int64_t> start = c.args.ints(1), end = c.args.ints(2);
    std::vector<int64_t> strides =
        c.args[3].is_none() ? std::vector<int64_t>(a->rank(), 1) : c.args.ints(3);
    if (g->numel() == 0) {
      c.put_grad(0, lang::full(c.b, a->shape(), V(0.0), a->device(), a->dtype()));
      return;
    }
    std::vector<Value> config;
    for (int64_t i = 0; i < a->rank(); ++i) {
      int64_t n = a->shape()[i].value(), m = g->shape()[i].value();
      int64_t last = start[i] + (m - 1) * strides[i];
      config.push_back(V::ints({start[i], n - last - 1, strides[i] - 1}));
    }
    c.put_grad(0, call(c.b, prims::pad(), {V(g), V(0.0), V::tuple(config)}));
  });
  rule(prims::pad(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    const auto& config = c.args[2].items();
    // Negative padding cropped the input: pad the cotangent back with zeros, then take every
    // (interior + 1)-th element from the low edge.
    std::vector<Value> uncrop;
    bool cropped = false;
    for (const Value& cv : config) {
      std::vector<int64_t> p = cv.as_int_list();
      uncrop.push_back(V::ints({std::max<int64_t>(-p[0], 0), std::max<int64_t>(-p[1], 0), 0}));
      cropped = cropped || p[0] < 0 || p[1] < 0;
    }
    TensorRef h = cropped ? call(c.b, prims::pad(), {V(g), V(0.0), V::tuple(uncrop)}) : g;
    std::vector<int64_t> start, end, strides;
    for (int64_t i = 0; i < a->rank(); ++i) {
      std::vector<int64_t> p = config[i].as_int_list();
      int64_t n = a->shape()[i].value();
      int64_t lo = std::max<int64_t>(p[0], 0);
      start.push_back(lo);
      end.push_back(n == 0 ? lo : lo + (n - 1) * (p[2] + 1) + 1);
      strides.push_back(p[2] + 1);
    }
    c.put_grad(0, call(c.b, prims::slice(),
                       {V(h), V::ints(start), V::ints(end), V::ints(strides)}));
  });
  rule(prims::cat(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    const auto& ts = c.args[0].items();
    int64_t dim = lang::canonical_dim(c.args.int_(1), g->rank());
    int64_t off = 0;
    for (const Value& v : ts) {
      const TensorRef& t = v.as_tensor();
      int64_t n = t->shape()[dim].value();
      if (c.needs(v)) {
        std::vector<int64_t> start(g->rank(), 0), end = lang::dims_of(g->shape());
        start[dim] = off;
        end[dim] = off + n;
        c.put_grad(t, call(c.b, prims::slice(), {V(g), V::ints(start), V::ints(end), V()}));
      }
      off += n;
    }
  });
  rule(prims::flip(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (g && c.needs(0)) c.put_grad(0, call(c.b, prims::flip(), {V(g), c.args[1]}));
  });
  rule(prims::unfold(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    c.put_grad(0, lang::call_t(c.b, ltorch_symbol("unfold_backward"),
                               {V(g), V::shape(a->shape()), c.args[1], c.args[2], c.args[3]}));
  });
  rule(prims::take(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    const TensorRef& idx = c.args[1].as_tensor();
    int64_t dim = lang::canonical_dim(c.args.int_(2), a->rank());
    TensorRef flat = lang::reshape(c.b, idx, {Dim(idx->numel())});
    TensorRef ie = call(c.b, prims::broadcast_in_dim(),
                        {V(flat), V::shape(g->shape()), V::ints({dim})});
    c.put_grad(0, call(c.b, prims::scatter_add(), {V(zeros(c.b, a)), V(dim), V(ie), V(g)}));
  });
  rule(prims::take_along_axis(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    c.put_grad(0, call(c.b, prims::scatter_add(),
                       {V(zeros(c.b, a)), c.args[2], c.args[1], V(g)}));
  });
  rule(prims::scatter_add(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    if (c.needs(0)) c.put_grad(0, g);
    if (c.needs(3)) {
      const TensorRef& idx = c.args[2].as_tensor();
      const TensorRef& src = c.args[3].as_tensor();
      if (idx->shape() != src->shape()) {
        throw NotImplementedError("the gradient of scatter_add with an index smaller than src");
      }
      c.put_grad(3, call(c.b, prims::take_along_axis(), {V(g), V(idx), c.args[1]}));
    }
  });
  rule(prims::index_put(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    const V& indices = c.args[1];
    bool accumulate = c.args[3].as_bool();
    if (c.needs(0)) {
      if (accumulate) {
        c.put_grad(0, g);
      } else {
        const TensorRef& vals = c.args[2].as_tensor();
        c.put_grad(0, call(c.b, prims::index_put(),
                           {V(g), indices, V(zeros(c.b, vals)), V(false)}));
      }
    }
    if (c.needs(2)) {
      const TensorRef& vals = c.args[2].as_tensor();
      TensorRef gv = lang::call_t(c.b, ltorch_symbol("advanced_index"), {V(g), indices});
      c.put_grad(2, sum_to_shape(c.b, gv, vals->shape()));
    }
  });

  rule(prims::sum(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    c.put_grad(0, unreduce(c.b, g, a->shape(), lang::canonical_dims(c.args.ints(1), a->rank())));
  });
  rule(prims::prod(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    std::vector<int64_t> dims = lang::canonical_dims(c.args.ints(1), a->rank());
    // The product of the other elements, as torch's prod backward: grad * prod / x where the
    // reduction has no zero; with one zero, that element gets grad * the product of the others
    // and the rest 0; with more, all 0 (prod / x would be 0 / 0 = NaN there).
    TensorRef zero = call(c.b, prims::eq(), {V(a), V(0.0)});
    TensorRef safe = call(c.b, prims::where(), {V(zero), V(1.0), V(a)});
    TensorRef zeros = unreduce(
        c.b, call(c.b, prims::sum(), {V(lang::convert(c.b, zero, a->dtype())), V::ints(dims)}),
        a->shape(), dims);
    TensorRef gb = unreduce(c.b, g, a->shape(), dims);
    TensorRef plain = call(
        c.b, prims::div(),
        {V(unreduce(c.b, call(c.b, prims::mul(), {V(g), c.output}), a->shape(), dims)), V(safe)});
    TensorRef others =
        unreduce(c.b, call(c.b, prims::prod(), {V(safe), V::ints(dims)}), a->shape(), dims);
    TensorRef at_zero = call(c.b, prims::where(),
                             {V(call(c.b, prims::eq(), {V(zeros), V(1.0)})),
                              V(call(c.b, prims::mul(), {V(gb), V(others)})), V(0.0)});
    TensorRef none = call(c.b, prims::eq(), {V(zeros), V(0.0)});
    c.put_grad(
        0, call(c.b, prims::where(),
                {V(zero), V(at_zero), V(call(c.b, prims::where(), {V(none), V(plain), V(0.0)}))}));
  });
  auto extremum = [](BackwardContext& c) {
    // The cotangent is shared evenly among the elements equal to the extremum (torch's amax/amin).
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    std::vector<int64_t> dims = lang::canonical_dims(c.args.ints(1), a->rank());
    TensorRef ob = unreduce(c.b, c.output.as_tensor(), a->shape(), dims);
    TensorRef mask = call(c.b, prims::eq(), {V(a), V(ob)});
    TensorRef cnt =
        call(c.b, prims::sum(), {V(lang::convert(c.b, mask, a->dtype())), V::ints(dims)});
    TensorRef share = unreduce(c.b, call(c.b, prims::div(), {V(g), V(cnt)}), a->shape(), dims);
    c.put_grad(0, call(c.b, prims::where(), {V(mask), V(share), V(0.0)}));
  };
  rule(prims::amax(), extremum);
  rule(prims::amin(), extremum);
  rule(prims::var(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& a = c.args[0].as_tensor();
    std::vector<int64_t> dims = lang::canonical_dims(c.args.ints(1), a->rank());
    int64_t n = 1;
    for (int64_t d : dims) n *= a->shape()[d].value();
    double correction = c.args.number(2);
    TensorRef mean = call(c.b, prims::div(), {V(call(c.b, prims::sum(), {V(a), V::ints(dims)})),
                                              V(static_cast<double>(n))});
    TensorRef centered = call(c.b, prims::sub(), {V(a), V(unreduce(c.b, mean, a->shape(), dims))});
    TensorRef gb = unreduce(c.b, g, a->shape(), dims);
    double scale = 2.0 / (static_cast<double>(n) - correction);
    c.put_grad(0, call(c.b, prims::mul(), {V(call(c.b, prims::mul(), {V(gb), V(centered)})),
                                           V(scale)}));
  });
  for (const Symbol* s : {&prims::argmax(), &prims::argmin(), &prims::full(), &prims::iota(),
                          &prims::uniform(), &prims::randn()}) {
    register_nondifferentiable(s);
  }

  // copy_(copy_from, copy_to): the written value is copy_from (converted to copy_to's dtype).
  rule(prims::copy_(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& src = c.args[0].as_tensor();
    TensorRef gs = lang::convert(c.b, g, src->dtype());
    if (gs->shape() != src->shape()) gs = sum_to_shape(c.b, gs, src->shape());
    c.put_grad(0, gs);
  });

  // leaf_update(leaf, value): what reads the result differentiates with respect to the leaf.
  rule(prims::leaf_update(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (g && c.needs(0)) c.put_grad(0, g);
  });

  rule(prims::matmul(), matmul_backward);
  rule(prims::linear(), linear_backward);
  rule(prims::convolution(), [](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g) return;
    const V& bias = c.args[2];
    V bias_sizes = bias.is_tensor() ? V::shape(bias.as_tensor()->shape()) : V();
    V mask = V::tuple({V(c.needs(0)), V(c.needs(1)), V(c.needs(2))});
    Value r = lang::call(c.b, ltorch_symbol("convolution_backward"),
                         {V(g), c.args[0], c.args[1], bias_sizes, c.args[3], c.args[4], c.args[5],
                          c.args[6], c.args[7], c.args[8], mask});
    const auto& items = r.items();
    for (size_t i = 0; i < 3; ++i) {
      if (items[i].is_tensor()) c.put_grad(i, items[i].as_tensor());
    }
  });
}

}  // namespace thunder::autograd::detail
