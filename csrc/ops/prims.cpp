// Meta functions of the primitives and their registration from prims.def.
#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ir/builder.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

namespace {

using lang::requires_grad;

bool differentiable(DType d) { return is_floating(d) || is_complex(d); }

TensorRef like(Builder& b, const BoundArgs& a, const Shape& shape, DType dtype, Device device) {
  return b.new_tensor(shape, dtype, device, requires_grad(a) && differentiable(dtype));
}

std::string name_of(const BoundArgs& a) { return a.symbol().qualname(); }

Value meta_unary(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return like(b, a, x->shape(), x->dtype(), x->device());
}
Value meta_unary_real(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return like(b, a, x->shape(), to_real(x->dtype()), x->device());
}
Value meta_unary_bool(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return like(b, a, x->shape(), DType::kBool, x->device());
}

// The tensor operands of an elementwise primitive must agree in shape and dtype; one zero-dim CPU tensor
// may be combined with a tensor on another device.
TensorRef check_elementwise(const BoundArgs& a, bool same_dtype) {
  TensorRef ref;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_tensor()) {
      if (!a[i].is_number()) {
        throw TypeError(name_of(a) + ": expected tensors or numbers, got " + a[i].type_name());
      }
      continue;
    }
    const TensorRef& t = a[i].as_tensor();
    if (!ref) {
      ref = t;
      continue;
    }
    if (t->shape() != ref->shape()) {
      throw ValueError(name_of(a) + ": operands must have the same shape, got " +
                       t->type_string() + " and " + ref->type_string());
    }
    if (same_dtype && t->dtype() != ref->dtype()) {
      throw ValueError(name_of(a) + ": operands must have the same dtype, got " +
                       dtype_name(t->dtype()) + " and " + dtype_name(ref->dtype()));
    }
  }
  if (!ref) throw TypeError(name_of(a) + ": at least one operand must be a tensor");
  return ref;
}

Value meta_binary(Builder& b, const BoundArgs& a) {
  TensorRef ref = check_elementwise(a, true);
  return like(b, a, ref->shape(), ref->dtype(), ref->device());
}

Value meta_compare(Builder& b, const BoundArgs& a) {
  TensorRef ref = check_elementwise(a, true);
  return b.new_tensor(ref->shape(), DType::kBool, ref->device(), false);
}

Value meta_where(Builder& b, const BoundArgs& a) {
  if (a[0].is_tensor() && a[0].as_tensor()->dtype() != DType::kBool) {
    throw TypeError("prims.where: the condition must be a bool tensor");
  }
  TensorRef ref = check_elementwise(a, false);
  DType dt = ref->dtype();
  for (size_t i = 1; i < 3; ++i) {
    if (a[i].is_tensor()) {
      dt = a[i].as_tensor()->dtype();
      break;
    }
  }
  for (size_t i = 1; i < 3; ++i) {
    if (a[i].is_tensor() && a[i].as_tensor()->dtype() != dt) {
      throw ValueError("prims.where: operands must have the same dtype");
    }
  }
  bool rg = (a[1].is_tensor() && a[1].as_tensor()->requires_grad()) ||
            (a[2].is_tensor() && a[2].as_tensor()->requires_grad());
  return b.new_tensor(ref->shape(), dt, ref->device(), rg && differentiable(dt));
}

Value meta_convert_element_type(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  DType dt = a[1].as_dtype();
  return b.new_tensor(x->shape(), dt, x->device(), x->requires_grad() && differentiable(dt));
}

Value meta_broadcast_in_dim(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> shape = a.ints(1);
  std::vector<int64_t> bdims = a.ints(2);
  if (static_cast<int64_t>(bdims.size()) != x->rank()) {
    throw ValueError("prims.broadcast_in_dim: broadcast_dimensions must have one entry per input dim");
  }
  int64_t prev = -1;
  for (size_t i = 0; i < bdims.size(); ++i) {
    int64_t d = bdims[i];
    if (d <= prev || d >= static_cast<int64_t>(shape.size())) {
      throw ValueError("prims.broadcast_in_dim: broadcast_dimensions must be increasing and in range");
    }
    prev = d;
    int64_t n = x->shape()[i].value();
    if (n != 1 && n != shape[d]) {
      throw ValueError("prims.broadcast_in_dim: cannot broadcast " + x->type_string() + " to shape");
    }
  }
  return like(b, a, Shape(shape.begin(), shape.end()), x->dtype(), x->device());
}

Value meta_reshape(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> shape = a.ints(1);
  Shape s(shape.begin(), shape.end());
  if (numel(s) != x->numel()) {
    throw ValueError("prims.reshape: cannot reshape " + x->type_string() + " to a shape of " +
                     std::to_string(numel(s)) + " elements");
  }
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_transpose(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> perm = a.ints(1);
  if (static_cast<int64_t>(perm.size()) != x->rank()) {
    throw ValueError("prims.transpose: the permutation must have one entry per dim");
  }
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i] != static_cast<int64_t>(i)) throw ValueError("prims.transpose: bad permutation");
  }
  Shape s;
  for (int64_t p : perm) s.push_back(x->shape()[p]);
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_slice(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> start = a.ints(1), end = a.ints(2);
  std::vector<int64_t> strides =
      a[3].is_none() ? std::vector<int64_t>(x->rank(), 1) : a.ints(3);
  size_t r = static_cast<size_t>(x->rank());
  if (start.size() != r || end.size() != r || strides.size() != r) {
    throw ValueError("prims.slice: start, end and strides need one entry per dim");
  }
  Shape s;
  for (size_t i = 0; i < r; ++i) {
    int64_t n = x->shape()[i].value();
    if (start[i] < 0 || end[i] > n || start[i] > end[i] || strides[i] < 1) {
      throw ValueError("prims.slice: bad bounds for dim " + std::to_string(i));
    }
    s.push_back((end[i] - start[i] + strides[i] - 1) / strides[i]);
  }
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_squeeze(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = lang::canonical_dims(a.ints(1), x->rank());
  std::unordered_set<int64_t> drop(dims.begin(), dims.end());
  Shape s;
  for (int64_t i = 0; i < x->rank(); ++i) {
    if (drop.count(i)) {
      if (x->shape()[i].value() != 1) throw ValueError("prims.squeeze: dim is not of size 1");
      continue;
    }
    s.push_back(x->shape()[i]);
  }
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_pad(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const auto& config = a[2].items();
  if (static_cast<int64_t>(config.size()) != x->rank()) {
    throw ValueError("prims.pad: padding_config needs one (lo, hi, interior) per dim");
  }
  Shape s;
  for (size_t i = 0; i < config.size(); ++i) {
    std::vector<int64_t> c = config[i].as_int_list();
    if (c.size() != 3 || c[2] < 0) throw ValueError("prims.pad: bad padding config");
    int64_t n = x->shape()[i].value();
    int64_t out = c[0] + c[1] + n + std::max<int64_t>(n - 1, 0) * c[2];
    if (out < 0) throw ValueError("prims.pad: negative output size");
    s.push_back(out);
  }
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_cat(Builder& b, const BoundArgs& a) {
  const auto& ts = a[0].items();
  if (ts.empty()) throw ValueError("prims.cat: expects a non-empty list of tensors");
  TensorRef first = ts[0].as_tensor();
  int64_t dim = lang::canonical_dim(a.int_(1), first->rank());
  Shape s = first->shape();
  int64_t total = 0;
  bool rg = false;
  for (const Value& v : ts) {
    const TensorRef& t = v.as_tensor();
    if (t->rank() != first->rank() || t->dtype() != first->dtype()) {
      throw ValueError("prims.cat: tensors must have the same rank and dtype");
    }
    for (int64_t i = 0; i < t->rank(); ++i) {
      if (i != dim && t->shape()[i] != first->shape()[i]) {
        throw ValueError("prims.cat: sizes must match except in the cat dim");
      }
    }
    total += t->shape()[dim].value();
    rg = rg || t->requires_grad();
  }
  s[dim] = total;
  return b.new_tensor(s, first->dtype(), first->device(), rg && differentiable(first->dtype()));
}

Value meta_flip(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  lang::canonical_dims(a.ints(1), x->rank());
  return like(b, a, x->shape(), x->dtype(), x->device());
}

Value meta_unfold(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  int64_t dim = lang::canonical_dim(a.int_(1), x->rank());
  int64_t size = a.int_(2), step = a.int_(3);
  Shape s = x->shape();
  int64_t n = x->rank() == 0 ? 1 : s[dim].value();
  if (size > n || step < 1 || size < 0) throw ValueError("prims.unfold: bad size or step");
  if (x->rank() == 0) {
    s = {size};
  } else {
    s[dim] = (n - size) / step + 1;
    s.push_back(size);
  }
  return like(b, a, s, x->dtype(), x->device());
}

void check_index_tensor(const BoundArgs& a, const TensorRef& idx) {
  if (!is_integer(idx->dtype())) {
    throw TypeError(name_of(a) + ": indices must be an integer tensor, got " +
                    dtype_name(idx->dtype()));
  }
}

Value meta_take(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(1);
  check_index_tensor(a, idx);
  if (idx->rank() > 1) throw ValueError("prims.take: indices must be 0-d or 1-d");
  int64_t dim = lang::canonical_dim(a.int_(2), x->rank());
  Shape s = x->shape();
  if (x->rank() > 0) s[dim] = idx->numel();
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_take_along_axis(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(1);
  check_index_tensor(a, idx);
  lang::canonical_dim(a.int_(2), x->rank());
  if (idx->rank() != x->rank()) {
    throw ValueError("prims.take_along_axis: indices must have the input's rank");
  }
  return like(b, a, idx->shape(), x->dtype(), x->device());
}

Value meta_index_put(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  for (const Value& v : a[1].items()) {
    if (!v.is_none()) {
      const TensorRef& t = v.as_tensor();
      if (!is_integer(t->dtype()) && t->dtype() != DType::kBool) {
        throw TypeError("prims.index_put: indices must be integer or bool tensors");
      }
    }
  }
  return like(b, a, x->shape(), x->dtype(), x->device());
}

Value meta_scatter_add(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  lang::canonical_dim(a.int_(1), x->rank());
  check_index_tensor(a, a.tensor(2));
  return like(b, a, x->shape(), x->dtype(), x->device());
}

Value meta_reduction(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = lang::canonical_dims(a.ints(1), x->rank());
  std::unordered_set<int64_t> drop(dims.begin(), dims.end());
  Shape s;
  for (int64_t i = 0; i < x->rank(); ++i) {
    if (!drop.count(i)) s.push_back(x->shape()[i]);
  }
  return like(b, a, s, x->dtype(), x->device());
}

Value meta_var(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = lang::canonical_dims(a.ints(1), x->rank());
  std::unordered_set<int64_t> drop(dims.begin(), dims.end());
  Shape s;
  for (int64_t i = 0; i < x->rank(); ++i) {
    if (!drop.count(i)) s.push_back(x->shape()[i]);
  }
  return like(b, a, s, to_real(x->dtype()), x->device());
}

Value meta_arg_reduction(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  Shape s;
  if (!a[1].is_none()) {
    int64_t dim = lang::canonical_dim(a.int_(1), x->rank());
    for (int64_t i = 0; i < x->rank(); ++i) {
      if (i != dim) s.push_back(x->shape()[i]);
    }
  }
  return b.new_tensor(s, DType::kInt64, x->device(), false);
}

Shape shape_arg(const BoundArgs& a, size_t i) {
  std::vector<int64_t> v = a.ints(i);
  for (int64_t d : v) {
    if (d < 0) throw ValueError(name_of(a) + ": negative dimension " + std::to_string(d));
  }
  return Shape(v.begin(), v.end());
}

Value meta_full(Builder& b, const BoundArgs& a) {
  return b.new_tensor(shape_arg(a, 0), a[3].as_dtype(), a[2].as_device(), false);
}

Value meta_iota(Builder& b, const BoundArgs& a) {
  int64_t n = a.int_(0);
  if (n < 0) throw ValueError("prims.iota: negative length");
  return b.new_tensor({n}, a[4].as_dtype(), a[3].as_device(), false);
}

Value meta_uniform(Builder& b, const BoundArgs& a) {
  return b.new_tensor(shape_arg(a, 0), a[4].as_dtype(), a[3].as_device(), false);
}

Value meta_philox_state(Builder& b, const BoundArgs& a) {
  if (!a[0].is_device()) throw TypeError("prims.philox_state: device must be a device");
  return b.new_tensor({2}, DType::kInt64, Device::cpu(), false);
}

Value meta_uniform_philox(Builder& b, const BoundArgs& a) {
  const TensorRef& s = a.tensor(1);
  if (s->dtype() != DType::kInt64 || s->device().type != DeviceType::kCPU || s->rank() != 1 ||
      s->shape()[0].value() != 2) {
    throw ValueError(
        "prims.uniform_philox: state must be a CPU int64 tensor of shape [2] (seed, "
        "offset), as prims.philox_state returns; got " +
        s->type_string());
  }
  return b.new_tensor(shape_arg(a, 0), DType::kFloat32, a[2].as_device(), false);
}

Value meta_randn(Builder& b, const BoundArgs& a) {
  return b.new_tensor(shape_arg(a, 0), a[2].as_dtype(), a[1].as_device(), false);
}

Value meta_matmul(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& y = a.tensor(1);
  if (x->dtype() != y->dtype()) {
    throw ValueError(std::string("matmul: expected both operands to have the same dtype, got ") +
                     dtype_name(x->dtype()) + " and " + dtype_name(y->dtype()));
  }
  if (x->rank() == 0 || y->rank() == 0) {
    throw ValueError("matmul: both arguments need at least one dimension");
  }
  Shape xs = x->shape(), ys = y->shape();
  bool x1 = xs.size() == 1, y1 = ys.size() == 1;
  if (x1) xs.insert(xs.begin(), Dim(1));
  if (y1) ys.push_back(Dim(1));
  int64_t k1 = xs.back().value(), k2 = ys[ys.size() - 2].value();
  if (k1 != k2) {
    throw ValueError("matmul: shapes " + x->type_string() + " and " + y->type_string() +
                     " cannot be multiplied (" + std::to_string(k1) + " vs " + std::to_string(k2) +
                     ")");
  }
  Shape xb(xs.begin(), xs.end() - 2), yb(ys.begin(), ys.end() - 2);
  Shape out = lang::broadcast_shapes(xb, yb);
  if (!x1) out.push_back(xs[xs.size() - 2]);
  if (!y1) out.push_back(ys.back());
  return like(b, a, out, x->dtype(), x->device());
}

Value meta_linear(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& w = a.tensor(1);
  if (w->rank() < 1 || w->rank() > 2 || x->rank() < 1) {
    throw ValueError("linear: weight must be 1-D or 2-D and the input at least 1-D");
  }
  int64_t in = x->shape().back().value();
  int64_t w_in = w->shape().back().value();
  if (in != w_in) {
    throw ValueError("linear: input " + x->type_string() + " and weight " + w->type_string() +
                     " have mismatched inner dimensions");
  }
  if (x->dtype() != w->dtype()) {
    throw ValueError(std::string("linear: input and weight dtypes differ: ") +
                     dtype_name(x->dtype()) + " and " + dtype_name(w->dtype()));
  }
  Shape out(x->shape().begin(), x->shape().end() - 1);
  if (w->rank() == 2) out.push_back(w->shape()[0]);
  if (!a[2].is_none()) {
    const TensorRef& bias = a.tensor(2);
    if (bias->dtype() != x->dtype()) throw ValueError("linear: bias dtype differs from input's");
  }
  return like(b, a, out, x->dtype(), x->device());
}

Value meta_convolution(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& w = a.tensor(1);
  int64_t nd = x->rank() - 2;
  if (nd < 1 || w->rank() != x->rank()) {
    throw ValueError("convolution: input " + x->type_string() + " and weight " + w->type_string() +
                     " do not match");
  }
  auto expand = [&](size_t i) {
    std::vector<int64_t> v = a.ints(i);
    if (v.size() == 1) v.assign(nd, v[0]);
    if (static_cast<int64_t>(v.size()) != nd) {
      throw ValueError("convolution: " + a.symbol().signature.params()[i].name +
                       " needs one entry per spatial dim");
    }
    return v;
  };
  std::vector<int64_t> stride = expand(3), padding = expand(4), dilation = expand(5);
  bool transposed = a.bool_(6);
  std::vector<int64_t> out_pad = expand(7);
  int64_t groups = a.int_(8);
  if (groups < 1) throw ValueError("convolution: groups must be positive");
  Shape out;
  out.push_back(x->shape()[0]);
  if (transposed) {
    out.push_back(w->shape()[1].value() * groups);
  } else {
    if (x->shape()[1].value() != w->shape()[1].value() * groups) {
      throw ValueError("convolution: expected input with " +
                       std::to_string(w->shape()[1].value() * groups) + " channels, got " +
                       std::to_string(x->shape()[1].value()));
    }
    out.push_back(w->shape()[0]);
  }
  for (int64_t i = 0; i < nd; ++i) {
    int64_t in = x->shape()[i + 2].value(), k = w->shape()[i + 2].value();
    int64_t o;
    if (transposed) {
      o = (in - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k - 1) + out_pad[i] + 1;
    } else {
      o = (in + 2 * padding[i] - dilation[i] * (k - 1) - 1) / stride[i] + 1;
    }
    if (o < 0) throw ValueError("convolution: the kernel is larger than the padded input");
    out.push_back(o);
  }
  return like(b, a, out, x->dtype(), x->device());
}

Value meta_none(Builder& b, const BoundArgs& a) {
  a.bool_(0);
  return Value();
}

Value meta_leaf_update(Builder& b, const BoundArgs& a) {
  const TensorRef& leaf = a.tensor(0);
  const TensorRef& value = a.tensor(1);
  if (value->shape() != leaf->shape() || value->dtype() != leaf->dtype()) {
    throw ValueError("prims.leaf_update: the value " + value->type_string() +
                     " does not match the leaf " + leaf->type_string());
  }
  return b.new_tensor(leaf->shape(), leaf->dtype(), leaf->device(), leaf->requires_grad());
}

Value meta_copy_(Builder& b, const BoundArgs& a) {
  const TensorRef& src = a.tensor(0);
  const TensorRef& dst = a.tensor(1);
  if (src->shape() != dst->shape()) {
    throw ValueError("prims.copy_: shapes differ: " + src->type_string() + " and " +
                     dst->type_string());
  }
  return b.new_tensor(dst->shape(), dst->dtype(), dst->device(), dst->requires_grad());
}

}  // namespace

namespace prims {
#define THUNDER_PRIM(id, sig, meta, tags)                    \
  const Symbol& id() {                                       \
    static const Symbol* s = (ensure_builtin_ops(), SymbolTable::instance().find("prims", #id)); \
    return *s;                                               \
  }
#include "ops/prims.def"
#undef THUNDER_PRIM
}  // namespace prims

void register_prims(SymbolTable& table) {
#define THUNDER_PRIM(id, sig, meta_fn, tag_bits) \
  {                                              \
    Symbol s;                                    \
    s.name = #id;                                \
    s.module = "prims";                          \
    s.kind = SymbolKind::kPrim;                  \
    s.signature = Signature::parse(sig);         \
    s.meta = meta_fn;                            \
    s.tags = (tag_bits);                         \
    table.add(std::move(s));                     \
  }
#include "ops/prims.def"
#undef THUNDER_PRIM
}

}  // namespace thunder
