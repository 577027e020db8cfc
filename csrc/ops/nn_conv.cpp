// Torch-level convolution, pooling and padding ops over 1-3 spatial dims. Pooling windows are
// formed with prims.pad and one prims.unfold per spatial dim, then reduced; adaptive average
// pooling with uneven windows multiplies by averaging matrices built from iota.
#include <cmath>
#include <limits>

#include "ops/nn_common.h"

namespace thunder {

namespace {

using namespace detail::nn;

// An int or a sequence of `nd` ints, as torch's _single/_pair/_triple accept.
std::vector<int64_t> expand_param(const BoundArgs& a, size_t i, int64_t nd, const char* what) {
  std::vector<int64_t> v = a.ints(i);
  if (v.size() == 1) v.assign(nd, v[0]);
  if (static_cast<int64_t>(v.size()) != nd) {
    std::string got = "[";
    for (size_t k = 0; k < v.size(); ++k) got += (k ? ", " : "") + std::to_string(v[k]);
    throw Error(std::string("expected ") + what + " to be a single integer value or a list of " +
                std::to_string(nd) + " values to match the convolution dimensions, but got " +
                what + "=" + got + "]");
  }
  return v;
}

// Adds a batch dim to an unbatched input (rank nd + 1); `batched` says whether one was there.
TensorRef batch_input(Builder& b, const TensorRef& x, int64_t nd, const std::string& op,
                      bool* batched) {
  if (x->rank() != nd + 1 && x->rank() != nd + 2) {
    throw Error("Expected " + std::to_string(nd + 1) + "D (unbatched) or " +
                std::to_string(nd + 2) + "D (batched) input to " + op +
                ", but got input of size: " + shape_str(x->shape()));
  }
  *batched = x->rank() == nd + 2;
  return *batched ? x : lang::unsqueeze(b, x, {0});
}

TensorRef unbatch(Builder& b, const TensorRef& y, bool batched) {
  if (batched) return y;
  Shape s(y->shape().begin() + 1, y->shape().end());
  return lang::reshape(b, y, s);
}

// Pads the last nd dims by (lo[i], hi[i]) with `value`.
TensorRef pad_spatial(Builder& b, const TensorRef& x, const Value& value,
                      const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
  int64_t nd = static_cast<int64_t>(lo.size());
  bool any = false;
  std::vector<Value> config;
  for (int64_t i = 0; i < x->rank(); ++i) {
    int64_t s = i - (x->rank() - nd);
    int64_t l = s >= 0 ? lo[s] : 0, h = s >= 0 ? hi[s] : 0;
    any = any || l != 0 || h != 0;
    config.push_back(Value::ints({l, h, 0}));
  }
  if (!any) return x;
  return lang::call_t(b, prims::pad(), {Value(x), value, Value::tuple(std::move(config))});
}

// ---------------------------------------------------------------------------------------------
// Convolution: F.conv{1,2,3}d(input, weight, bias, stride, padding, dilation, groups).

template <int kNd>
Value conv_meta(Builder& b, const BoundArgs& a) {
  const std::string op = "conv" + std::to_string(kNd) + "d";
  bool batched;
  TensorRef x = batch_input(b, a.tensor(0), kNd, op, &batched);
  const TensorRef& w = a.tensor(1);
  if (w->rank() != kNd + 2) {
    throw Error("Expected " + std::to_string(kNd + 2) + "-dimensional weight for " +
                std::to_string(kNd + 2) + "-dimensional input, but got weight of size " +
                shape_str(w->shape()));
  }
  if (x->dtype() != w->dtype()) {
    throw Error(std::string("expected scalar type ") + torch_type_name(x->dtype()) + " but found " +
                torch_type_name(w->dtype()));
  }
  if (is_bool(x->dtype())) throw NotImplementedError("conv: not implemented for 'Bool'");
  std::vector<int64_t> stride = expand_param(a, 3, kNd, "stride");
  std::vector<int64_t> dilation = expand_param(a, 5, kNd, "dilation");
  int64_t groups = a.int_(6);
  std::vector<int64_t> padding(kNd, 0);
  if (a[4].is_string()) {
    const std::string& mode = a[4].as_string();
    if (mode == "same") {
      for (int64_t s : stride) {
        if (s != 1) throw Error("padding='same' is not supported for strided convolutions");
      }
      std::vector<int64_t> lo(kNd), hi(kNd);
      bool symmetric = true;
      for (int i = 0; i < kNd; ++i) {
        int64_t total = dilation[i] * (w->shape()[i + 2].value() - 1);
        lo[i] = total / 2;
        hi[i] = total - lo[i];
        symmetric = symmetric && lo[i] == hi[i];
      }
      if (symmetric) {
        padding = lo;
      } else {
        x = pad_spatial(b, x, Value(int64_t{0}), lo, hi);
      }
    } else if (mode != "valid") {
      throw Error("Invalid padding string: '" + mode + "'");
    }
  } else {
    padding = expand_param(a, 4, kNd, "padding");
  }
  if (groups < 1) throw Error("non-positive groups is not supported");
  int64_t cin = x->shape()[1].value(), cout = w->shape()[0].value();
  if (cin != w->shape()[1].value() * groups) {
    throw Error("Given groups=" + std::to_string(groups) + ", weight of size " +
                shape_str(w->shape()) + ", expected input" + shape_str(x->shape()) + " to have " +
                std::to_string(w->shape()[1].value() * groups) + " channels, but got " +
                std::to_string(cin) + " channels instead");
  }
  if (cout % groups != 0) {
    throw Error("Given groups=" + std::to_string(groups) + ", expected weight to be divisible by " +
                std::to_string(groups) + " at dimension 0, but got weight of size " +
                shape_str(w->shape()) + " instead");
  }
  std::string in_s, k_s;
  bool too_big = false;
  for (int i = 0; i < kNd; ++i) {
    int64_t padded = x->shape()[i + 2].value() + 2 * padding[i];
    int64_t k = dilation[i] * (w->shape()[i + 2].value() - 1) + 1;
    too_big = too_big || k > padded;
    in_s += (i ? " x " : "") + std::to_string(padded);
    k_s += (i ? " x " : "") + std::to_string(k);
  }
  if (too_big) {
    throw Error("Calculated padded input size per channel: (" + in_s + "). Kernel size: (" + k_s +
                "). Kernel size can't be greater than actual input size");
  }
  Value bias = a[2];
  if (bias.is_tensor()) {
    const TensorRef& bt = bias.as_tensor();
    if (bt->rank() != 1 || bt->shape()[0].value() != cout) {
      throw Error("Given weight of size " + shape_str(w->shape()) +
                  ", expected bias to be 1-dimensional with " + std::to_string(cout) +
                  " elements, but got bias of size " + shape_str(bt->shape()) + " instead");
    }
    if (bt->dtype() != x->dtype()) {
      throw Error(std::string("expected scalar type ") + torch_type_name(x->dtype()) +
                  " but found " + torch_type_name(bt->dtype()));
    }
  }
  TensorRef y = lang::call_t(
      b, prims::convolution(),
      {Value(x), Value(w), bias, Value::ints(stride), Value::ints(padding), Value::ints(dilation),
       Value(false), Value::ints(std::vector<int64_t>(kNd, 0)), Value(groups)});
  return unbatch(b, y, batched);
}

// ---------------------------------------------------------------------------------------------
// Pooling.

struct PoolGeometry {
  std::vector<int64_t> kernel, stride, padding, dilation, out, pad_hi;
};

// torch's pooling_output_shape and its checks, per spatial dim.
PoolGeometry pool_geometry(const BoundArgs& a, const TensorRef& x, int64_t nd, bool ceil_mode,
                           std::vector<int64_t> kernel, std::vector<int64_t> stride,
                           std::vector<int64_t> padding, std::vector<int64_t> dilation) {
  PoolGeometry g{kernel, stride, padding, dilation, {}, {}};
  std::string in_s, out_s;
  bool too_small = false;
  for (int64_t i = 0; i < nd; ++i) {
    int64_t in = x->shape()[x->rank() - nd + i].value();
    int64_t k = kernel[i], s = stride[i], p = padding[i], d = dilation[i];
    if (k <= 0 || s <= 0 || d <= 0 || p < 0) {
      throw Error(
          "pooling: kernel_size, stride and dilation must be positive and padding "
          "non-negative");
    }
    if (p > ((k - 1) * d + 1) / 2) {
      throw Error(
          "pad should be at most half of effective kernel size, but got pad=" + std::to_string(p) +
          ", kernel_size=" + std::to_string(k) + " and dilation=" + std::to_string(d));
    }
    int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) --o;
    too_small = too_small || o < 1;
    g.out.push_back(o);
    g.pad_hi.push_back((o - 1) * s + d * (k - 1) + 1 - in - p);
    if (i > 0) {
      in_s += 'x';
      out_s += 'x';
    }
    in_s += std::to_string(in);
    out_s += std::to_string(o);
  }
  if (too_small) {
    std::string c = std::to_string(x->shape()[x->rank() - nd - 1].value());
    throw Error("Given input size: (" + c + "x" + in_s + "). Calculated output size: (" + c + "x" +
                out_s + "). Output size is too small");
  }
  return g;
}

// The windows of the last nd dims of `padded`: shape (..., o1, ..., ond, k1, ..., knd).
TensorRef windows(Builder& b, const TensorRef& padded, const PoolGeometry& g) {
  int64_t nd = static_cast<int64_t>(g.kernel.size());
  int64_t first = padded->rank() - nd;
  TensorRef t = padded;
  for (int64_t i = 0; i < nd; ++i) {
    int64_t span = g.dilation[i] * (g.kernel[i] - 1) + 1;
    t = lang::call_t(b, prims::unfold(),
                     {Value(t), Value(first + i), Value(span), Value(g.stride[i])});
  }
  bool dilated = false;
  for (int64_t d : g.dilation) dilated = dilated || d != 1;
  if (dilated) {
    std::vector<int64_t> start(t->rank(), 0), end, strides(t->rank(), 1);
    for (Dim d : t->shape()) end.push_back(d.value());
    for (int64_t i = 0; i < nd; ++i) strides[t->rank() - nd + i] = g.dilation[i];
    t = lang::call_t(b, prims::slice(),
                     {Value(t), Value::ints(start), Value::ints(end), Value::ints(strides)});
  }
  return t;
}

std::vector<int64_t> last_dims(int64_t rank, int64_t nd) {
  std::vector<int64_t> dims;
  for (int64_t i = rank - nd; i < rank; ++i) dims.push_back(i);
  return dims;
}

// F.max_pool{1,2}d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
// With first_index, each window's first maximum is gathered (what training differentiates: the
// gradient goes to that element, as in eager); without, the windows' amax (the same values).
template <int kNd, bool first_index = false>
Value max_pool_meta(Builder& b, const BoundArgs& a) {
  if (a.bool_(6)) throw NotImplementedError("max_pool: return_indices=True is not supported");
  const std::string op = "max_pool" + std::to_string(kNd) + "d";
  bool batched;
  TensorRef x = batch_input(b, a.tensor(0), kNd, op, &batched);
  if (is_bool(x->dtype())) throw NotImplementedError("\"max_pool\" not implemented for 'Bool'");
  std::vector<int64_t> kernel = expand_param(a, 1, kNd, "kernel_size");
  std::vector<int64_t> stride =
      a[2].is_none() || a[2].as_int_list().empty() ? kernel : expand_param(a, 2, kNd, "stride");
  PoolGeometry g =
      pool_geometry(a, x, kNd, a.bool_(5), kernel, stride, expand_param(a, 3, kNd, "padding"),
                    expand_param(a, 4, kNd, "dilation"));
  Value lowest = is_floating(x->dtype()) ? Value(-std::numeric_limits<double>::infinity())
                                         : Value(std::numeric_limits<int64_t>::min());
  if (x->dtype() != DType::kInt64 && !is_floating(x->dtype())) {
    throw NotImplementedError(std::string("\"max_pool\" not implemented for '") +
                              torch_type_name(x->dtype()) + "'");
  }
  TensorRef padded = pad_spatial(b, x, lowest, g.padding, g.pad_hi);
  TensorRef win = windows(b, padded, g);
  TensorRef r;
  if (!first_index) {
    r = lang::call_t(b, prims::amax(), {Value(win), Value::ints(last_dims(win->rank(), kNd))});
  } else {
    // Each window's first maximum (in its row-major order), gathered: its gradient goes to that
    // element alone, as eager's max_pool routes it (amax's shares it among ties).
    Shape flat(win->shape().begin(), win->shape().end() - kNd);
    int64_t k = 1;
    for (int64_t i = win->rank() - kNd; i < win->rank(); ++i) k *= win->shape()[i].value();
    Shape keep = flat;
    flat.push_back(Dim(k));
    keep.push_back(Dim(1));
    TensorRef w = lang::reshape(b, win, flat);
    const int64_t last = w->rank() - 1;
    TensorRef idx =
        lang::reshape(b, lang::call_t(b, prims::argmax(), {Value(w), Value(last)}), keep);
    r = lang::call_t(b, prims::take_along_axis(), {Value(w), Value(idx), Value(last)});
    r = lang::call_t(b, prims::squeeze(), {Value(r), Value::ints({last})});
  }
  return unbatch(b, r, batched);
}

// max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
// -> (output, indices): ATen's pooling kernel, which also keeps each window's first maximum as its
// flat index into the input's plane; its backward, max_pool2d_with_indices_backward(grad_output,
// input, kernel_size, stride, padding, dilation, ceil_mode, indices), sends each window's gradient
// there. What max_pool2d's gradient rule runs, with every size given as a pair.
Value max_pool2d_with_indices_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() != 3 && x->rank() != 4) {
    throw Error("max_pool2d_with_indices: expected a 3-D or 4-D input, got " +
                shape_str(x->shape()));
  }
  PoolGeometry g = pool_geometry(a, x, 2, a.bool_(5), expand_param(a, 1, 2, "kernel_size"),
                                 expand_param(a, 2, 2, "stride"), expand_param(a, 3, 2, "padding"),
                                 expand_param(a, 4, 2, "dilation"));
  Shape s(x->shape().begin(), x->shape().end() - 2);
  s.push_back(Dim(g.out[0]));
  s.push_back(Dim(g.out[1]));
  return Value::tuple({Value(b.new_tensor(s, x->dtype(), x->device(), false)),
                       Value(b.new_tensor(s, DType::kInt64, x->device(), false))});
}

// The input gradient of a backward call whose arguments start (grad_output, input): the input's
// shape, the gradient's dtype. max_pool2d_with_indices_backward's, and pad_backward(grad_output,
// input, pad, mode)'s: ATen's gradient of reflect or replicate padding over the last len(pad) / 2
// dims (reflection_pad{1,2,3}d_backward, replication_pad...), each padded element's gradient added
// to the element it copied.
Value input_grad_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(1);
  return b.new_tensor(x->shape(), a.tensor(0)->dtype(), x->device(), false);
}

// upsample_nearest_backward(grad_output, output_size, input_size, scales, exact): ATen's gradient
// of nearest (exact: nearest-exact) interpolation over 1-3 spatial dims, each output element's
// gradient added to the input element it copied; `scales` the forward's scale factors per spatial
// dim, or None where the sizes give them.
Value upsample_nearest_backward_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& g = a.tensor(0);
  std::vector<int64_t> in = a.ints(2);
  return b.new_tensor(Shape(in.begin(), in.end()), g->dtype(), g->device(), false);
}

// The number of elements each avg_pool window averages over, per spatial dim (torch's
// avg_pool2d_out_frame): clipped to the padded input, and to the input itself without
// count_include_pad.
std::vector<int64_t> pool_counts(int64_t in, int64_t k, int64_t s, int64_t p, int64_t out,
                                 bool include_pad) {
  std::vector<int64_t> counts;
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * s - p, end = std::min(start + k, in + p);
    int64_t size = end - start;
    start = std::max<int64_t>(start, 0);
    end = std::min(end, in);
    counts.push_back(include_pad ? size : end - start);
  }
  return counts;
}

// F.avg_pool{1,2}d(input, kernel_size, stride, padding, ceil_mode, count_include_pad[,
// divisor_override])
template <int kNd>
Value avg_pool_meta(Builder& b, const BoundArgs& a) {
  const std::string op = "avg_pool" + std::to_string(kNd) + "d";
  bool batched;
  TensorRef x0 = batch_input(b, a.tensor(0), kNd, op, &batched);
  if (is_bool(x0->dtype())) throw NotImplementedError("\"avg_pool2d\" not implemented for 'Bool'");
  std::vector<int64_t> kernel = expand_param(a, 1, kNd, "kernel_size");
  std::vector<int64_t> stride =
      a[2].is_none() || a[2].as_int_list().empty() ? kernel : expand_param(a, 2, kNd, "stride");
  PoolGeometry g = pool_geometry(a, x0, kNd, a.bool_(4), kernel, stride,
                                 expand_param(a, 3, kNd, "padding"), std::vector<int64_t>(kNd, 1));
  bool include_pad = a.bool_(5);
  std::optional<int64_t> divisor;
  if (a.size() > 6 && !a[6].is_none()) {
    divisor = a.int_(6);
    if (*divisor == 0) throw Error("divisor must be not zero");
  }
  bool integral = !is_floating(x0->dtype());
  DType compute = integral ? DType::kFloat64 : opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  TensorRef padded = pad_spatial(b, x, Value(0.0), g.padding, g.pad_hi);
  TensorRef win = windows(b, padded, g);
  TensorRef sum =
      lang::call_t(b, prims::sum(), {Value(win), Value::ints(last_dims(win->rank(), kNd))});
  TensorRef r;
  if (divisor) {
    r = bin(b, prims::div(), Value(sum), Value(static_cast<double>(*divisor)));
  } else {
    std::vector<std::vector<int64_t>> counts;
    bool uniform = true;
    int64_t first = 1;
    for (int64_t i = 0; i < kNd; ++i) {
      int64_t in = x->shape()[x->rank() - kNd + i].value();
      counts.push_back(
          pool_counts(in, g.kernel[i], g.stride[i], g.padding[i], g.out[i], include_pad));
      for (int64_t c : counts.back()) uniform = uniform && c == counts.back()[0];
      first *= counts.back().empty() ? 1 : counts.back()[0];
    }
    if (uniform) {
      r = bin(b, prims::div(), Value(sum), Value(static_cast<double>(first)));
    } else {
      // The counts as a tensor: windows of ones padded like the input (with ones over the padding
      // when it counts), summed.
      Shape spatial(x->shape().end() - kNd, x->shape().end());
      TensorRef ones = lang::full(b, spatial, Value(1.0), x->device(), compute);
      std::vector<int64_t> zeros(kNd, 0), extra(kNd);
      for (int64_t i = 0; i < kNd; ++i) extra[i] = g.pad_hi[i] - g.padding[i];
      TensorRef c = pad_spatial(b, ones, Value(include_pad ? 1.0 : 0.0), g.padding, g.padding);
      c = pad_spatial(b, c, Value(0.0), zeros, extra);
      TensorRef cw = windows(b, c, g);
      TensorRef cnt =
          lang::call_t(b, prims::sum(), {Value(cw), Value::ints(last_dims(cw->rank(), kNd))});
      r = bin(b, prims::div(), Value(sum), Value(cnt));
    }
  }
  if (integral) {
    // Integer average pooling truncates toward zero.
    r = un(b, prims::trunc(), r);
  }
  return unbatch(b, lang::convert(b, r, x0->dtype()), batched);
}

// The (out, in) matrix averaging torch's adaptive windows [floor(i*in/out), ceil((i+1)*in/out)).
TensorRef adaptive_matrix(Builder& b, int64_t in, int64_t out, Device device, DType dtype) {
  TensorRef rows = lang::unsqueeze(b, iota(b, out, 0, device, DType::kInt64), {1});
  TensorRef cols = lang::unsqueeze(b, iota(b, in, 0, device, DType::kInt64), {0});
  TensorRef start =
      bin(b, prims::div(), Value(bin(b, prims::mul(), Value(rows), Value(in))), Value(out));
  TensorRef end =
      bin(b, prims::div(),
          Value(bin(b, prims::add(), Value(bin(b, prims::mul(), Value(rows), Value(in))),
                    Value(in + out - 1))),
          Value(out));
  TensorRef inside =
      bin(b, prims::bitwise_and(), Value(cmp(b, prims::ge(), Value(cols), Value(start))),
          Value(cmp(b, prims::lt(), Value(cols), Value(end))));
  TensorRef len = lang::convert(b, bin(b, prims::sub(), Value(end), Value(start)), dtype);
  return bin(b, prims::div(), Value(lang::convert(b, inside, dtype)), Value(len));
}

// F.adaptive_avg_pool{1,2}d(input, output_size)
template <int kNd>
Value adaptive_avg_pool_meta(Builder& b, const BoundArgs& a) {
  const std::string op = "adaptive_avg_pool" + std::to_string(kNd) + "d";
  bool batched;
  TensorRef x0 = batch_input(b, a.tensor(0), kNd, op, &batched);
  std::vector<int64_t> out;
  if (a[1].is_int()) {
    out.assign(kNd, a[1].as_int());
  } else {
    const auto& items = a[1].items();
    if (static_cast<int64_t>(items.size()) != kNd) {
      throw Error(op + ": output_size must be " + std::to_string(kNd));
    }
    for (int64_t i = 0; i < kNd; ++i) {
      out.push_back(items[i].is_none() ? x0->shape()[x0->rank() - kNd + i].value()
                                       : items[i].as_int());
    }
  }
  require_floating(x0->dtype(), op);
  DType compute = opmath(x0->dtype());
  TensorRef x = lang::convert(b, x0, compute);
  int64_t r0 = x->rank() - kNd;
  std::vector<int64_t> in;
  bool divisible = true;
  for (int64_t i = 0; i < kNd; ++i) {
    in.push_back(x->shape()[r0 + i].value());
    if (out[i] < 0)
      throw Error(op + ": elements of output_size must be greater than or equal to 0");
    if (in[i] == 0 && out[i] > 0) {
      throw Error(op + ": Expected input to have non-zero size for non-batch dimensions");
    }
    divisible = divisible && out[i] > 0 && in[i] % out[i] == 0;
  }
  TensorRef y;
  if (divisible) {
    // (..., o1, k1, o2, k2) summed over the k dims.
    Shape split(x->shape().begin(), x->shape().begin() + r0);
    std::vector<int64_t> kdims;
    double count = 1.0;
    for (int64_t i = 0; i < kNd; ++i) {
      split.push_back(out[i]);
      split.push_back(in[i] / out[i]);
      kdims.push_back(r0 + 2 * i + 1);
      count *= static_cast<double>(in[i] / out[i]);
    }
    TensorRef s =
        lang::call_t(b, prims::sum(), {Value(lang::reshape(b, x, split)), Value::ints(kdims)});
    y = bin(b, prims::div(), Value(s), Value(count));
  } else {
    // Averaging matrices: P_h @ x @ P_w^T (one product per spatial dim).
    y = x;
    for (int64_t i = kNd - 1; i >= 0; --i) {
      TensorRef p = adaptive_matrix(b, in[i], out[i], x->device(), compute);
      if (i == kNd - 1) {
        y = lang::call_t(b, prims::matmul(), {Value(y), Value(lang::transpose(b, p, {1, 0}))});
      } else {
        y = lang::call_t(b, prims::matmul(), {Value(p), Value(y)});
      }
    }
  }
  return unbatch(b, lang::convert(b, y, x0->dtype()), batched);
}

// ---------------------------------------------------------------------------------------------
// F.pad(input, pad, mode, value)

// Indices into a dim of size n for positions -lo .. n + hi - 1 under a non-constant mode.
TensorRef pad_indices(Builder& b, int64_t n, int64_t lo, int64_t hi, const std::string& mode,
                      Device device) {
  TensorRef j = iota(b, n + lo + hi, -lo, device, DType::kInt64);
  if (mode == "replicate") {
    TensorRef r = bin(b, prims::maximum(), Value(j), Value(int64_t{0}));
    return bin(b, prims::minimum(), Value(r), Value(n - 1));
  }
  if (mode == "circular") return bin(b, prims::remainder(), Value(j), Value(n));
  // reflect: |j|, then mirrored at n - 1.
  TensorRef m = un(b, prims::abs(), j);
  TensorRef over = cmp(b, prims::gt(), Value(m), Value(n - 1));
  TensorRef mirrored = bin(b, prims::sub(), Value(2 * (n - 1)), Value(m));
  return where(b, over, mirrored, Value(m));
}

Value pad_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> pad = a.ints(1);
  const std::string& mode = a[2].as_string();
  if (pad.size() % 2 != 0) throw Error("Padding length must be divisible by 2");
  int64_t np = static_cast<int64_t>(pad.size()) / 2;
  if (np > x->rank()) {
    throw Error(
        "Padding length should be less than or equal to two times the input dimension but "
        "got padding length " +
        std::to_string(pad.size()) + " and input of dimension " + std::to_string(x->rank()));
  }
  std::vector<int64_t> lo(x->rank(), 0), hi(x->rank(), 0);
  for (int64_t i = 0; i < np; ++i) {
    lo[x->rank() - 1 - i] = pad[2 * i];
    hi[x->rank() - 1 - i] = pad[2 * i + 1];
  }
  if (mode == "constant") {
    Value value = a[3].is_none() ? Value(int64_t{0}) : a[3];
    value = lang::convert_value(b, value, x->dtype());
    std::vector<Value> config;
    for (int64_t i = 0; i < x->rank(); ++i) config.push_back(Value::ints({lo[i], hi[i], 0}));
    for (int64_t i = 0; i < x->rank(); ++i) {
      if (x->shape()[i].value() + lo[i] + hi[i] < 0) {
        throw Error("The input size " + std::to_string(x->shape()[i].value()) +
                    ", plus negative "
                    "padding " +
                    std::to_string(lo[i]) + " and " + std::to_string(hi[i]) +
                    " resulted in a negative output size, which is invalid. Check dimension " +
                    std::to_string(i) + " of your input.");
      }
    }
    return lang::call_t(b, prims::pad(), {Value(x), value, Value::tuple(std::move(config))});
  }
  if (mode != "reflect" && mode != "replicate" && mode != "circular") {
    throw NotImplementedError("Unrecognised padding mode " + mode);
  }
  if (!a[3].is_none() && a[3].as_double() != 0.0) {
    throw Error("Padding mode \"" + mode + "\" doesn't take in value argument");
  }
  if (x->rank() < np + 1 || x->rank() > np + 2 || np > 3) {
    throw NotImplementedError("Padding size " + std::to_string(pad.size()) +
                              " is not supported for " + std::to_string(x->rank()) +
                              "D input tensor.");
  }
  TensorRef y = x;
  for (int64_t d = x->rank() - np; d < x->rank(); ++d) {
    int64_t n = x->shape()[d].value();
    if (lo[d] == 0 && hi[d] == 0) continue;
    if (mode == "reflect" && (lo[d] >= n || hi[d] >= n)) {
      throw Error(
          "Argument #4: Padding size should be less than the corresponding input "
          "dimension, but got: padding (" +
          std::to_string(lo[d]) + ", " + std::to_string(hi[d]) + ") at dimension " +
          std::to_string(d) + " of input " + shape_str(x->shape()));
    }
    if (n == 0) throw Error(mode + " padding: input dimension " + std::to_string(d) + " is empty");
    if (mode == "circular" && (lo[d] > n || hi[d] > n)) {
      throw Error("Padding value causes wrapping around more than once.");
    }
    TensorRef idx = pad_indices(b, n, lo[d], hi[d], mode, x->device());
    y = lang::call_t(b, prims::take(), {Value(y), Value(idx), Value(d)});
  }
  if (y == x) y = lang::call_t(b, prims::convert_element_type(), {Value(x), Value(x->dtype())});
  return y;
}

// F.interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor,
// antialias) in modes 'nearest' and 'nearest-exact' (the other modes run as their torch call: see
// thunder/core/capture.py): per spatial dim, the input's elements at eager's source indices,
// computed as eager's kernels compute them (in float: floor(dst * scale), or floor((dst + 0.5) *
// scale), at most the last index; scale = 1 / scale_factor when one is given and not recomputed,
// else in / out), taken along the dim.
Value interpolate_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const std::string& mode = a[3].as_string();
  const bool exact = mode == "nearest-exact";
  if (mode != "nearest" && !exact) {
    throw NotImplementedError("interpolate: mode '" + mode + "' has no thunder rule");
  }
  const int64_t dims = x->rank() - 2;
  if (dims < 1 || dims > 3) {
    throw NotImplementedError("Input Error: Only 3D, 4D and 5D input Tensors supported (got " +
                              std::to_string(x->rank()) + "D) for the modes: nearest | linear | " +
                              "bilinear | bicubic | trilinear | area | nearest-exact (got " + mode +
                              ")");
  }
  if (!a[4].is_none()) {
    throw ValueError(
        "align_corners option can only be set with the interpolating modes: linear | bilinear | "
        "bicubic | trilinear");
  }
  if (!a[6].is_none() && a[6].as_bool()) {
    throw ValueError(
        "Anti-alias option is restricted to bilinear and bicubic modes and "
        "requires a 4-D tensor as input");
  }
  if (a[1].is_none() == a[2].is_none()) {
    throw ValueError(a[1].is_none() ? "either size or scale_factor should be defined"
                                    : "only one of size or scale_factor should be defined");
  }
  const std::string spatial = shape_str(Shape(x->shape().begin() + 2, x->shape().end()));
  auto per_dim = [&](size_t i, const char* what) {
    std::vector<Value> v;
    if (a[i].is_seq()) {
      v = a[i].items();
      if (static_cast<int64_t>(v.size()) != dims) {
        throw ValueError(std::string("Input and ") + what +
                         " must have the same number of spatial "
                         "dimensions, but got input with spatial dimensions of " +
                         spatial + " and " + what + " of " + std::to_string(v.size()) + " values.");
      }
    } else {
      v.assign(static_cast<size_t>(dims), a[i]);
    }
    return v;
  };
  const bool recompute = !a[5].is_none() && a[5].as_bool();
  std::vector<int64_t> out(static_cast<size_t>(dims));
  std::vector<double> scale_factor(static_cast<size_t>(dims), 0.0);  // 0: none
  if (!a[1].is_none()) {
    std::vector<Value> size = per_dim(1, "output size");
    for (int64_t d = 0; d < dims; ++d) out[d] = size[d].as_int();
  } else {
    std::vector<Value> sf = per_dim(2, "scale_factor");
    for (int64_t d = 0; d < dims; ++d) {
      const double f = sf[d].as_double();
      const int64_t in = x->shape()[static_cast<size_t>(d + 2)].value();
      out[d] = static_cast<int64_t>(std::floor(static_cast<double>(in) * f));
      if (!recompute) scale_factor[d] = f;
    }
  }
  TensorRef y = x;
  for (int64_t d = 0; d < dims; ++d) {
    const int64_t in = x->shape()[static_cast<size_t>(d + 2)].value();
    if (out[d] <= 0 || in <= 0) {
      throw Error("Input and output sizes should be greater than 0, but got input (" + spatial +
                  ") and output size " + std::to_string(out[d]) + " at spatial dim " +
                  std::to_string(d));
    }
    if (out[d] == in && !exact) continue;  // eager's index is the output's own
    const float scale = scale_factor[d] > 0 ? static_cast<float>(1.0 / scale_factor[d])
                                            : static_cast<float>(in) / static_cast<float>(out[d]);
    TensorRef dst =
        lang::convert(b, iota(b, out[d], 0, x->device(), DType::kInt64), DType::kFloat32);
    if (exact) dst = bin(b, prims::add(), Value(dst), Value(0.5));
    TensorRef src =
        un(b, prims::floor(), bin(b, prims::mul(), Value(dst), Value(static_cast<double>(scale))));
    src = lang::convert(b, src, DType::kInt64);
    src = bin(b, prims::minimum(), Value(src), Value(in - 1));
    y = lang::call_t(b, prims::take(), {Value(y), Value(src), Value(d + 2)});
  }
  if (y == x) y = lang::call_t(b, prims::convert_element_type(), {Value(x), Value(x->dtype())});
  return y;
}

}  // namespace

void register_nn_conv_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"conv1d",
       "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1",
       conv_meta<1>,
       {"torch.nn.functional.conv1d", "torch.conv1d"}},
      {"conv2d",
       "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1",
       conv_meta<2>,
       {"torch.nn.functional.conv2d", "torch.conv2d"}},
      {"conv3d",
       "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1",
       conv_meta<3>,
       {"torch.nn.functional.conv3d", "torch.conv3d"}},
      {"max_pool1d",
       "input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
       "return_indices=False",
       max_pool_meta<1>,
       {"torch.nn.functional.max_pool1d"}},
      {"max_pool2d",
       "input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
       "return_indices=False",
       max_pool_meta<2>,
       {"torch.nn.functional.max_pool2d"}},
      {"max_pool1d_first_index",
       "input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, "
       "return_indices=False",
       max_pool_meta<1, true>,
       {}},
      {"max_pool2d_with_indices",
       "input, kernel_size, stride, padding, dilation, ceil_mode",
       max_pool2d_with_indices_meta,
       {},
       "torch.ops.aten.max_pool2d_with_indices"},
      {"max_pool2d_with_indices_backward",
       "grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices",
       input_grad_meta,
       {},
       "torch.ops.aten.max_pool2d_with_indices_backward"},
      {"pad_backward",
       "grad_output, input, pad, mode",
       input_grad_meta,
       {},
       "thunder.executors.torchex.pad_backward"},
      {"upsample_nearest_backward",
       "grad_output, output_size, input_size, scales, exact",
       upsample_nearest_backward_meta,
       {},
       "thunder.executors.torchex.upsample_nearest_backward"},
      {"avg_pool1d",
       "input, kernel_size, stride=None, padding=0, ceil_mode=False, "
       "count_include_pad=True",
       avg_pool_meta<1>,
       {"torch.nn.functional.avg_pool1d"}},
      {"avg_pool2d",
       "input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, "
       "divisor_override=None",
       avg_pool_meta<2>,
       {"torch.nn.functional.avg_pool2d"}},
      {"adaptive_avg_pool1d",
       "input, output_size",
       adaptive_avg_pool_meta<1>,
       {"torch.nn.functional.adaptive_avg_pool1d"}},
      {"adaptive_avg_pool2d",
       "input, output_size",
       adaptive_avg_pool_meta<2>,
       {"torch.nn.functional.adaptive_avg_pool2d"}},
      {"pad", "input, pad, mode='constant', value=None", pad_meta, {"torch.nn.functional.pad"}},
      {"interpolate",
       "input, size=None, scale_factor=None, mode='nearest', align_corners=None, "
       "recompute_scale_factor=None, antialias=False",
       interpolate_meta,
       {"torch.nn.functional.interpolate"}},
  };
  register_ops(table, defs);
}

}  // namespace thunder
