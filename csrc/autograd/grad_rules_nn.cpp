// Torch-level gradient rules: the ops whose decomposed gradient would be wasteful. Their backward
// calls PyTorch's own backward kernels (ops/grad_ops.cpp), and their forward saves what those
// kernels need (layer_norm's mean and rstd, dropout's mask, attention's logsumexp), so gradients
// match eager PyTorch's.
#include <cmath>
#include <limits>

#include "autograd/grad_rule.h"
#include "core/error.h"
#include "ops/lang.h"
#include "ops/nn_common.h"

namespace thunder::autograd::detail {

namespace {

using V = Value;

const Symbol& op(const char* name) { return ltorch_symbol(name); }

void rule(const char* name, GradRule r) { register_grad_rule(&op(name), std::move(r)); }

GradRule backward_only(BackwardFn f) {
  GradRule r;
  r.backward = std::move(f);
  return r;
}

// The output mask of a per-channel normalization's backward call (group_norm's, batch_norm's):
// which of the input, weight (argument `w`) and bias (argument `bias`) gradients it computes;
// ATen's gives a bias gradient only beside a weight.
V norm_grad_mask(const BackwardContext& c, size_t w, size_t bias) {
  return V::tuple({V(c.needs(0)), V(c.needs(w)), V(c.args[w].is_tensor() && c.needs(bias))});
}

// The (input, weight, bias) gradients `r` of a per-channel normalization's backward call
// (group_norm's, batch_norm's), the weight and bias being arguments `w` and `bias`; a bias without
// a weight (ATen's backward gives no bias gradient then) takes the sum of the cotangent `g` over
// every dim but the channels.
void put_norm_grads(BackwardContext& c, const V& r, const TensorRef& g, size_t w, size_t bias) {
  const auto& items = r.items();
  if (items[0].is_tensor()) c.put_grad(0, items[0].as_tensor());
  if (items[1].is_tensor()) c.put_grad(w, items[1].as_tensor());
  if (items[2].is_tensor()) c.put_grad(bias, items[2].as_tensor());
  if (c.args[w].is_tensor() || !c.needs(bias)) return;
  std::vector<int64_t> dims{0};
  for (int64_t i = 2; i < g->rank(); ++i) dims.push_back(i);
  TensorRef db = c.b.call(op("sum"), {V(g), V::ints(dims)}).as_tensor();
  const DType bd = c.args.tensor(bias)->dtype();
  c.put_grad(bias, db->dtype() == bd ? db : lang::convert(c.b, db, bd));
}

// softmax/log_softmax(input, dim=None, _stacklevel=3, dtype=None)
int64_t softmax_dim(const BoundArgs& a) {
  int64_t rank = a.tensor(0)->rank();
  if (a[1].is_none()) return (rank == 0 || rank == 1 || rank == 3) ? 0 : 1;
  return lang::canonical_dim(a.int_(1), rank);
}

// Whether PyTorch's CPU flash-attention pair takes scaled_dot_product_attention's arguments (the
// rank-4, same-batch-and-heads case is checked by the caller): one dtype it supports for q, k and v,
// one head size for all three, non-empty sequences, and no mask or a float mask of the query's
// dtype, not requiring grad, of rank 2 or 4 whose dims are 1 or those of (batch, heads, L, S).
// Eager falls back to its math kernel otherwise, and so does the rule (the decomposition is
// differentiated).
bool flash_cpu_takes(const BoundArgs& a) {
  const TensorRef& q = a.tensor(0);
  const TensorRef& k = a.tensor(1);
  const TensorRef& v = a.tensor(2);
  DType dt = q->dtype();
  bool dtype_ok = dt == DType::kFloat32 || dt == DType::kFloat64 || dt == DType::kBFloat16 ||
                  dt == DType::kFloat16;
  if (!dtype_ok || k->dtype() != dt || v->dtype() != dt) return false;
  const Shape& qs = q->shape();
  const Shape& ks = k->shape();
  const Shape& vs = v->shape();
  for (size_t i = 0; i < 2; ++i) {
    if (ks[i] != qs[i] || vs[i] != qs[i]) return false;
  }
  int64_t e = qs[3].value();
  if (e == 0 || ks[3].value() != e || vs[3].value() != e) return false;
  if (qs[2].value() == 0 || ks[2].value() == 0 || vs[2] != ks[2]) return false;
  if (a[3].is_none()) return true;
  if (!a[3].is_tensor()) return false;
  const TensorRef& m = a.tensor(3);
  if (m->requires_grad() || m->dtype() != dt) return false;
  const Shape& ms = m->shape();
  size_t r = ms.size();
  if (r != 2 && r != 4) return false;
  const Dim target[4] = {qs[0], qs[1], qs[2], ks[2]};
  for (size_t i = 0; i < r; ++i) {
    if (ms[i].value() != 1 && ms[i] != target[4 - r + i]) return false;
  }
  return true;
}

GradRule softmax_rule(const char* backward_op) {
  GradRule r;
  r.applies = [](const BoundSymbol& b) { return b.args[0].as_tensor()->rank() > 0; };
  r.backward = [backward_op](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    const TensorRef& y = c.output.as_tensor();
    c.put_grad(0, lang::call_t(c.b, op(backward_op),
                               {V(g), V(y), V(softmax_dim(c.args)), V(y->dtype())}));
  };
  return r;
}

// The elementwise activations whose torch backward kernel reads the input (gelu, silu) or the
// output (relu, sigmoid, tanh).
GradRule activation_rule(const char* backward_op, bool reads_output, bool gelu = false) {
  return backward_only([=](BackwardContext& c) {
    TensorRef g = c.grad_out();
    if (!g || !c.needs(0)) return;
    V x = reads_output ? c.output : c.args[0];
    std::vector<V> args = {V(g), x};
    std::vector<std::pair<std::string, V>> kw;
    if (gelu) kw.emplace_back("approximate", c.args[1]);
    if (std::string(backward_op) == "threshold_backward") args.push_back(V(int64_t{0}));
    c.put_grad(0, c.b.call(op(backward_op), std::move(args), std::move(kw)).as_tensor());
  });
}

}  // namespace

void register_nn_grad_rules() {
  // Values that do not depend differentiably on their tensor argument (only on its metadata, or
  // not at all): gradients stop here, as in eager.
  for (const char* name : {"detach", "zeros_like", "ones_like", "empty_like", "full_like",
                           "new_zeros", "new_ones", "new_empty", "new_full", "rand_like",
                           "randn_like"}) {
    register_nondifferentiable(&op(name));
  }
  // split/chunk/tensor_split/unbind: the outputs tile the input along `dim` in order, so the
  // gradient is one cat of the outputs' cotangents (zeros where none flows), as in eager.
  for (const char* name : {"split", "chunk", "tensor_split", "unbind"}) {
    bool unbind = std::string(name) == "unbind";
    rule(name, backward_only([unbind](BackwardContext& c) {
           if (!c.needs(0)) return;
           const TensorRef& x = c.args[0].as_tensor();
           int64_t dim = lang::canonical_dim(c.args.int_(unbind ? 1 : 2), x->rank());
           std::vector<Value> pieces;
           size_t n = 0;
           c.output.for_each_tensor([&](const TensorRef&) { ++n; });
           for (size_t i = 0; i < n; ++i) {
             TensorRef g = c.grad_out_or_zeros(i);
             if (unbind) g = lang::unsqueeze(c.b, g, {dim});
             pieces.push_back(V(g));
           }
           if (pieces.size() == 1) {
             c.put_grad(0, pieces[0].as_tensor());
             return;
           }
           c.put_grad(0, lang::call_t(c.b, prims::cat(), {V::list(pieces), V(dim)}));
         }));
  }

  {
    // linear(input, weight, bias=None) with a 2-D weight: one backward call (eager's addmm/mm
    // backward); other ranks go through the decomposition's prims.linear rule.
    GradRule r;
    r.applies = [](const BoundSymbol& b) {
      return b.args[1].as_tensor()->rank() == 2 && b.args[0].as_tensor()->rank() >= 2;
    };
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      // Under a fuser the bias gradient is a sum over the leading dimensions in the trace, so it
      // fuses with the kernel that makes the gradient (a dropout's or activation's backward).
      const bool bias_apart = fuses(*g) && c.needs(2) && g->rank() >= 2;
      // Under a fuser the input's gradient is its own matmul g @ weight, apart from the weight's:
      // it does not read the input, so a kernel that needs it (an activation's backward) can run
      // before the weight's gradient, together with the activation that the weight's gradient
      // reads when that is recomputed (gelu(x) beside gelu_backward(g, x): x read once).
      const bool split = fuses(*g) && c.needs(0) && c.needs(1);
      if (split) c.put_grad(0, c.b.call(op("matmul"), {V(g), c.args[1]}).as_tensor());
      V mask = V::tuple({V(c.needs(0) && !split), V(c.needs(1)), V(c.needs(2) && !bias_apart)});
      V r = lang::call(c.b, op("linear_backward"), {V(g), c.args[0], c.args[1], mask});
      const auto& items = r.items();
      for (size_t i = 0; i < 3; ++i) {
        if (items[i].is_tensor()) c.put_grad(i, items[i].as_tensor());
      }
      if (bias_apart) {
        std::vector<int64_t> lead(static_cast<size_t>(g->rank() - 1));
        for (size_t i = 0; i < lead.size(); ++i) lead[i] = static_cast<int64_t>(i);
        c.put_grad(2, c.b.call(op("sum"), {V(g), V::ints(lead)}).as_tensor());
      }
    };
    rule("linear", std::move(r));
  }

  rule("softmax", softmax_rule("softmax_backward"));
  rule("log_softmax", softmax_rule("log_softmax_backward"));

  {
    // layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05)
    GradRule r;
    r.augmented_forward = [](ForwardContext& c) {
      V out = lang::call(c.b, op("native_layer_norm"),
                         {c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1], items[2]}};
    };
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      V mask = V::tuple({V(c.needs(0)), V(c.needs(2)), V(c.needs(3))});
      V r = lang::call(c.b, op("native_layer_norm_backward"),
                       {V(g), c.args[0], c.args[1], c.residuals[0], c.residuals[1], c.args[2],
                        c.args[3], mask});
      const auto& items = r.items();
      if (items[0].is_tensor()) c.put_grad(0, items[0].as_tensor());
      if (items[1].is_tensor()) c.put_grad(2, items[1].as_tensor());
      if (items[2].is_tensor()) c.put_grad(3, items[2].as_tensor());
    };
    rule("layer_norm", std::move(r));
  }

  {
    // group_norm(input, num_groups, weight=None, bias=None, eps=1e-05): the forward saves each
    // group's mean and rstd, the backward reads them (it does not compute them again from the
    // input), as ATen's native_group_norm pair does.
    GradRule r;
    auto sizes = [](const BoundArgs& a) {
      const TensorRef& x = a.tensor(0);
      const int64_t n = x->shape()[0].value(), c = x->shape()[1].value();
      return std::array<V, 3>{V(n), V(c), V(n * c == 0 ? int64_t{0} : x->numel() / (n * c))};
    };
    r.augmented_forward = [sizes](ForwardContext& c) {
      auto [n, ch, hw] = sizes(c.args);
      V out = lang::call(c.b, op("native_group_norm"),
                         {c.args[0], c.args[2], c.args[3], n, ch, hw, c.args[1], c.args[4]});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1], items[2]}};
    };
    r.backward = [sizes](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      auto [n, ch, hw] = sizes(c.args);
      V mask = norm_grad_mask(c, 2, 3);
      V r = lang::call(
          c.b, op("native_group_norm_backward"),
          {V(g), c.args[0], c.residuals[0], c.residuals[1], c.args[2], n, ch, hw, c.args[1], mask});
      put_norm_grads(c, r, g, 2, 3);
    };
    rule("group_norm", std::move(r));
  }
  {
    // batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
    // momentum=0.1, eps=1e-05) in training: the forward saves each channel's mean and rstd
    // (native_batch_norm, which also updates the running statistics), the backward reads them
    // instead of computing them again from the input. In evaluation the decomposition is
    // differentiated (the running statistics are constants).
    GradRule r;
    r.applies = [](const BoundSymbol& b) { return BoundArgs(*b.sym, b.args).bool_(5); };
    r.augmented_forward = [](ForwardContext& c) {
      const auto& a = c.args;
      V out = lang::call(c.b, op("native_batch_norm"),
                         {a[0], a[3], a[4], a[1], a[2], a[5], a[6], a[7]});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1], items[2]}};
    };
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      const auto& a = c.args;
      V mask = norm_grad_mask(c, 3, 4);
      V r = lang::call(c.b, op("native_batch_norm_backward"),
                       {V(g), a[0], a[3], V(), V(), c.residuals[0], c.residuals[1], V(true), a[7],
                        mask});  // (in training the running statistics take no part)
      put_norm_grads(c, r, g, 3, 4);
    };
    rule("batch_norm", std::move(r));
  }
  // native_group_norm's output, from its input, weight, bias and float32 statistics: a
  // silu(group_norm(x)) saves x and the statistics, not the normalized x its backward reads.
  register_recompute_recipe(
      &op("native_group_norm"),
      RecomputeRecipe{0, [](Builder& b, const BoundSymbol& s) {
                        BoundArgs a(*s.sym, s.args);
                        std::vector<TensorRef> outs = s.output_tensors();
                        return thunder::detail::nn::group_norm_output(b, a.tensor(0), a.int_(6), outs.at(1),
                                                             outs.at(2), a[1], a[2]);
                      }});

  // rms_norm(input, normalized_shape, weight=None, eps=None): one backward call that recomputes
  // the rstd (a cheap reduction) instead of saving it; the forward stays one F.rms_norm call.
  rule("rms_norm", backward_only([](BackwardContext& c) {
         TensorRef g = c.grad_out();
         if (!g) return;
         V mask = V::tuple({V(c.needs(0)), V(c.needs(2))});
         V r = lang::call(c.b, op("rms_norm_backward"),
                          {V(g), c.args[0], c.args[1], c.args[2], c.args[3], mask});
         const auto& items = r.items();
         if (items[0].is_tensor()) c.put_grad(0, items[0].as_tensor());
         if (items[1].is_tensor()) c.put_grad(2, items[1].as_tensor());
       }));

  // embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
  //           scale_grad_by_freq=False, sparse=False)
  rule("embedding", backward_only([](BackwardContext& c) {
         TensorRef g = c.grad_out();
         if (!g || !c.needs(1)) return;
         const TensorRef& w = c.args[1].as_tensor();
         int64_t padding_idx = c.args[2].is_none() ? -1 : c.args.int_(2);
         if (padding_idx < 0 && !c.args[2].is_none()) padding_idx += w->shape()[0].value();
         c.put_grad(1, lang::call_t(c.b, op("embedding_backward"),
                                    {V(g), c.args[0], V(w->shape()[0].value()), V(padding_idx),
                                     c.args[5]}));
       }));

  {
    // max_pool2d: ATen's kernel with indices, as eager's autograd runs it. The forward keeps each
    // window's first maximum's index (int64, the output's size), the backward sends each window's
    // gradient to that element (ties, such as a ReLU's zeros, are not shared).
    GradRule r;
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      return !a.bool_(6) && is_floating(a.tensor(0)->dtype());
    };
    auto pairs = [](const BoundArgs& a) {
      auto pair = [&](size_t i) {
        std::vector<int64_t> v = a.ints(i);
        return V::ints(v.size() == 1 ? std::vector<int64_t>{v[0], v[0]} : v);
      };
      // stride None (or empty): the kernel's size, as F.max_pool2d takes it.
      V stride = a[2].is_none() || a[2].as_int_list().empty() ? pair(1) : pair(2);
      return std::array<V, 5>{pair(1), stride, pair(3), pair(4), V(a.bool_(5))};
    };
    r.augmented_forward = [pairs](ForwardContext& c) {
      auto [k, s, p, d, ceil] = pairs(c.args);
      V out = lang::call(c.b, op("max_pool2d_with_indices"), {c.args[0], k, s, p, d, ceil});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1]}};
    };
    r.backward = [pairs](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      auto [k, s, p, d, ceil] = pairs(c.args);
      c.put_grad(0, lang::call_t(c.b, op("max_pool2d_with_indices_backward"),
                                 {V(g), c.args[0], k, s, p, d, ceil, c.residuals[0]}));
    };
    rule("max_pool2d", std::move(r));
  }

  // interpolate in the nearest modes: ATen's backward (one call, as in eager's autograd), not the
  // scatters undoing the forward's gathers. It is given the forward's scale factors where the
  // forward's source indices came from them (not recomputed from the sizes).
  {
    GradRule r = backward_only([](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      const BoundArgs& a = c.args;
      const TensorRef& x = a.tensor(0);
      const size_t dims = static_cast<size_t>(x->rank() - 2);
      std::vector<int64_t> out, in;
      for (size_t d = 0; d < dims; ++d) out.push_back(g->shape()[d + 2].value());
      for (Dim d : x->shape()) in.push_back(d.value());
      V scales;
      if (!a[2].is_none() && (a[5].is_none() || !a[5].as_bool())) {
        std::vector<V> sf = a[2].is_seq() ? a[2].items() : std::vector<V>(dims, a[2]);
        std::vector<V> per_dim;
        for (const V& f : sf) per_dim.push_back(V(f.as_double()));
        scales = V::list(per_dim);
      }
      c.put_grad(0, lang::call_t(c.b, op("upsample_nearest_backward"),
                                 {V(g), V::ints(out), V::ints(in), scales,
                                  V(a[3].as_string() == "nearest-exact")}));
    });
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      const std::string& mode = a[3].as_string();
      return (mode == "nearest" || mode == "nearest-exact") && is_floating(a.tensor(0)->dtype());
    };
    rule("interpolate", std::move(r));
  }

  // pad in the reflect and replicate modes: ATen's backward (one call, as in eager's autograd), not
  // scatters into zeros undoing the forward's gathers.
  {
    GradRule r = backward_only([](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      c.put_grad(0, lang::call_t(c.b, op("pad_backward"), {V(g), c.args[0], c.args[1], c.args[2]}));
    });
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      const std::string& mode = a[2].as_string();
      bool nonnegative = true;
      for (int64_t p : a.ints(1)) nonnegative = nonnegative && p >= 0;
      return (mode == "reflect" || mode == "replicate") && nonnegative &&
             is_floating(a.tensor(0)->dtype());
    };
    rule("pad", std::move(r));
  }

  // max_pool1d: differentiated as each window's first maximum gathered (eager's routing of the
  // gradient; the forward's amax would share it among ties, such as a ReLU's zeros).
  {
    GradRule r;
    r.rewrite_if = [](const BoundSymbol&) { return true; };
    r.rewrite = [](ForwardContext& c) {
      AugmentedForward af;
      af.output = c.b.call(op("max_pool1d_first_index"), c.bsym.args);
      return af;
    };
    rule("max_pool1d", std::move(r));
  }

  rule("gelu", activation_rule("gelu_backward", false, true));
  rule("silu", activation_rule("silu_backward", false));
  rule("relu", activation_rule("threshold_backward", true));
  rule("sigmoid", activation_rule("sigmoid_backward", true));
  rule("tanh", activation_rule("tanh_backward", true));

  {
    // dropout(input, p=0.5, training=True, inplace=False): the forward keeps the mask it drew
    // (aten.native_dropout draws exactly as F.dropout does), the backward scales by it.
    // With fusing_random(): the mask is uniform_philox(state) < 1 - p, drawn inside the fused
    // kernel; the forward saves the state ([seed, offset], 16 bytes) and the backward draws the
    // same mask again.
    GradRule r;
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      double p = a.number(1);
      return a.bool_(2) && p > 0.0 && p < 1.0;
    };
    r.augmented_forward = [](ForwardContext& c) {
      if (fusing_random()) {
        V state = c.b.call(prims::philox_state(), {}, {{"device", V(c.args.tensor(0)->device())}});
        return AugmentedForward{lang::philox_dropout(c.b, c.args[0], state, c.args.number(1)), {state}};
      }
      V out = lang::call(c.b, op("native_dropout"), {c.args[0], c.args[1], V(true)});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1]}};
    };
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      double p = c.args.number(1);
      const TensorRef& saved = c.residuals[0].as_tensor();
      if (saved->dtype() == DType::kInt64) {  // the random state, not a mask
        c.put_grad(0, lang::philox_dropout(c.b, V(g), c.residuals[0], p).as_tensor());
        return;
      }
      c.put_grad(0, lang::call_t(c.b, op("native_dropout_backward"),
                                 {V(g), c.residuals[0], V(1.0 / (1.0 - p))}));
    };
    rule("dropout", std::move(r));
  }

  {
    // scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
    //                              is_causal=False, *, scale=None, enable_gqa=False)
    // The fused kernel pairs eager PyTorch uses: on the CPU without dropout, flash attention (its
    // logsumexp saved); on CUDA in float32, memory-efficient attention (logsumexp and the philox RNG
    // state saved, so dropout's mask is regenerated, not stored); other CUDA calls run
    // F.scaled_dot_product_attention itself under torch autograd in the forward (whichever fused
    // kernel eager would choose: flash, cuDNN, ...) and ask torch for its backward. Elsewhere the
    // decomposition is differentiated.
    GradRule r;
    // 0: none, 1: flash (CPU), 2: efficient (CUDA), 3: eager's own kernel choice (CUDA)
    auto kernel = [](const BoundSymbol& b) -> int {
      BoundArgs a(*b.sym, b.args);
      const TensorRef& q = a.tensor(0);
      const TensorRef& k = a.tensor(1);
      const TensorRef& v = a.tensor(2);
      bool cuda_ok = q->device().type == DeviceType::kCUDA && is_floating(q->dtype()) &&
                     !(a[3].is_tensor() && a.tensor(3)->requires_grad());
      if (a.bool_(7) || q->rank() != 4 || k->rank() != 4 || v->rank() != 4 ||
          q->shape()[1] != k->shape()[1] || !is_floating(q->dtype())) {
        return cuda_ok ? 3 : 0;
      }
      if (q->device().type == DeviceType::kCPU) return a.number(4) == 0.0 && flash_cpu_takes(a) ? 1 : 0;
      int64_t e = q->shape().back().value(), ev = v->shape().back().value();
      bool dtype_ok = q->dtype() == DType::kFloat32 ||
                      (a.number(4) == 0.0 && (q->dtype() == DType::kFloat16 ||
                                              q->dtype() == DType::kBFloat16));
      if (q->device().type == DeviceType::kCUDA && a[3].is_none() && dtype_ok &&
          q->dtype() == DType::kFloat32 && e % 8 == 0 && ev % 8 == 0 && e <= 128 && ev <= 128) {
        return 2;
      }
      return cuda_ok ? 3 : 0;
    };
    r.applies = [kernel](const BoundSymbol& b) { return kernel(b) != 0; };
    r.augmented_forward = [kernel](ForwardContext& c) {
      if (kernel(c.bsym) == 3) {
        V out = c.b.call(op("sdpa_autograd_forward"),
                         {c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5],
                          c.args[6], c.args[7]});
        const auto& items = out.items();
        return AugmentedForward{items[0], {items[1]}};
      }
      if (kernel(c.bsym) == 2) {
        V out = c.b.call(op("sdpa_efficient"),
                         {c.args[0], c.args[1], c.args[2], V(), V(true), c.args[4], c.args[5]},
                         {{"scale", c.args[6]}});
        const auto& items = out.items();
        return AugmentedForward{items[0], {items[1], items[2], items[3]}};
      }
      V out = c.b.call(op("sdpa_flash_cpu"), {c.args[0], c.args[1], c.args[2], V(0.0), c.args[5]},
                       {{"attn_mask", c.args[3]}, {"scale", c.args[6]}});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1]}};
    };
    r.backward = [](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g) return;
      V r;
      if (c.residuals.size() == 1 && c.residuals[0].as_tensor()->dtype() == DType::kInt64) {
        V needs = V::tuple({V(c.needs(0)), V(c.needs(1)), V(c.needs(2))});
        r = c.b.call(op("sdpa_autograd_backward"),
                     {V(g), c.residuals[0], c.args[0], c.args[1], c.args[2], needs});
      } else if (c.residuals.size() == 3) {
        V mask = V::tuple({V(c.needs(0)), V(c.needs(1)), V(c.needs(2)), V(false)});
        r = c.b.call(op("sdpa_efficient_backward"),
                     {V(g), c.args[0], c.args[1], c.args[2], V(), c.output, c.residuals[0],
                      c.residuals[1], c.residuals[2], c.args[4], mask, c.args[5]},
                     {{"scale", c.args[6]}});
      } else {
        r = c.b.call(op("sdpa_flash_cpu_backward"),
                     {V(g), c.args[0], c.args[1], c.args[2], c.output, c.residuals[0], V(0.0),
                      c.args[5]},
                     {{"attn_mask", c.args[3]}, {"scale", c.args[6]}});
      }
      const auto& items = r.items();
      for (size_t i = 0; i < 3; ++i) {
        if (items[i].is_tensor()) c.put_grad(i, items[i].as_tensor());
      }
    };
    // With dropout: the operations of PyTorch's math kernel (which eager runs on the CPU), its
    // dropout included, so the mask is drawn exactly as eager draws it and is saved by dropout's rule.
    r.rewrite_if = [kernel](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      return a.number(4) > 0.0 && kernel(b) == 0;
    };
    r.rewrite = [](ForwardContext& c) {
      Builder& b = c.b;
      const BoundArgs& a = c.args;
      const TensorRef& q0 = a.tensor(0);
      V q = a[0], k = a[1], v = a[2];
      int64_t e = q0->shape().back().value();
      double scale = a[6].is_none() ? 1.0 / std::sqrt(static_cast<double>(e)) : a.number(6);
      if (a.bool_(7) && q0->rank() >= 3) {
        int64_t hq = q0->shape()[q0->rank() - 3].value();
        int64_t hk = a.tensor(1)->shape()[a.tensor(1)->rank() - 3].value();
        if (hk != hq) {
          k = b.call(op("repeat_interleave"), {k, V(hq / hk), V(int64_t{-3})});
          v = b.call(op("repeat_interleave"), {v, V(hq / hk), V(int64_t{-3})});
        }
      }
      double sf = std::sqrt(scale);
      V qs = b.call(op("mul"), {q, V(sf)});
      V kt = b.call(op("transpose"), {k, V(int64_t{-2}), V(int64_t{-1})});
      V s = b.call(op("matmul"), {qs, b.call(op("mul"), {kt, V(sf)})});
      const TensorRef& st = s.as_tensor();
      int64_t l = st->shape()[st->rank() - 2].value(), n = st->shape().back().value();
      const double kNegInf = -std::numeric_limits<double>::infinity();
      if (a.bool_(5) || (a[3].is_tensor() && a.tensor(3)->dtype() == DType::kBool)) {
        V mask;
        if (a.bool_(5)) {
          V rows = b.call(op("arange"), {V(l)}, {{"device", V(q0->device())}});
          V cols = b.call(op("arange"), {V(n)}, {{"device", V(q0->device())}});
          mask = b.call(op("ge"), {b.call(op("unsqueeze"), {rows, V(int64_t{1})}), cols});
        } else {
          mask = a[3];
        }
        s = b.call(op("where"), {mask, s, V(kNegInf)});
      } else if (a[3].is_tensor()) {
        s = b.call(op("add"), {s, a[3]});
      }
      V attn = b.call(op("softmax"), {s, V(int64_t{-1})});
      attn = b.call(op("dropout"), {attn, a[4], V(true)});
      V out = b.call(op("matmul"), {attn, v});
      return AugmentedForward{out, {}};
    };
    rule("scaled_dot_product_attention", std::move(r));
  }

  {
    // nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
    //          reduction='mean') on an (N, C) input: torch's kernel pair (total_weight saved).
    GradRule r;
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      return a.tensor(0)->rank() == 2 && a.tensor(1)->rank() == 1 && a[3].is_none() &&
             a[5].is_none() && !(a[2].is_tensor() && a.tensor(2)->requires_grad());
    };
    auto reduction = [](const BoundArgs& a) -> int64_t {
      const std::string& s = a[6].as_string();
      return s == "none" ? 0 : s == "sum" ? 2 : 1;
    };
    r.augmented_forward = [reduction](ForwardContext& c) {
      V out = lang::call(c.b, op("nll_loss_forward"),
                         {c.args[0], c.args[1], c.args[2], V(reduction(c.args)), c.args[4]});
      const auto& items = out.items();
      return AugmentedForward{items[0], {items[1]}};
    };
    r.backward = [reduction](BackwardContext& c) {
      TensorRef g = c.grad_out();
      if (!g || !c.needs(0)) return;
      c.put_grad(0, lang::call_t(c.b, op("nll_loss_backward"),
                                 {V(g), c.args[0], c.args[1], c.args[2], V(reduction(c.args)),
                                  c.args[4], c.residuals[0]}));
    };
    rule("nll_loss", std::move(r));
  }

  {
    // cross_entropy with class indices: log_softmax then nll_loss, as eager computes it, so the
    // backward saves log-probabilities and uses torch's log_softmax backward. Where a fusion
    // executor takes the logits (fp32/fp64, not a few on the CPU), log_softmax is written out as
    // eager's kernel computes it, (x - m) - log(sum(exp(x - m))) with m the rows' maximum
    // (detached: the result does not depend on it): the forward kernel then saves m and the sum
    // ([N, 1] each) rather than writing the log-probabilities, and the backward recomputes
    // exp(x - m) from the logits.
    GradRule r;
    r.rewrites = true;
    r.applies = [](const BoundSymbol& b) {
      BoundArgs a(*b.sym, b.args);
      const TensorRef& x = a.tensor(0);
      const TensorRef& t = a.tensor(1);
      return x->rank() >= 1 && (is_integer(t->dtype())) && a.number(7) == 0.0;
    };
    r.augmented_forward = [](ForwardContext& c) {
      const TensorRef& x = c.args.tensor(0);
      int64_t class_dim = x->rank() >= 2 ? 1 : 0;
      V logp;
      if (fuses(*x) && (x->dtype() == DType::kFloat32 || x->dtype() == DType::kFloat64)) {
        V dim = V::ints({class_dim});
        V m = c.b.call(op("detach"), {c.b.call(op("amax"), {c.args[0], dim, V(true)})});
        V d = c.b.call(op("sub"), {c.args[0], m});
        V s = c.b.call(op("sum"), {c.b.call(op("exp"), {d}), dim, V(true)});
        logp = c.b.call(op("sub"), {d, c.b.call(op("log"), {s})});
      } else {
        logp = c.b.call(op("log_softmax"), {c.args[0], V(class_dim)});
      }
      V out = c.b.call(op("nll_loss"), {logp, c.args[1]},
                       {{"weight", c.args[2]},
                        {"size_average", c.args[3]},
                        {"ignore_index", c.args[4]},
                        {"reduce", c.args[5]},
                        {"reduction", c.args[6]}});
      return AugmentedForward{out, {}};
    };
    rule("cross_entropy", std::move(r));
  }
}

}  // namespace thunder::autograd::detail
