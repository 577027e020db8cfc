// Torch-level shape and layout ops: views and reshapes, permutations, expansion and repetition,
// joins (cat, stack) and splits (split, chunk, unbind), flips, rolls and triangular masks. Each
// decomposes into the shape primitives (reshape, broadcast_in_dim, transpose, slice, squeeze, cat,
// flip) with PyTorch's argument checks. Indexing ops (getitem, setitem, gather, scatter ...) live
// in indexing.cpp.
#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

void register_indexing_ops(SymbolTable& table);  // indexing.cpp

namespace {

using lang::ints_str;
using lang::slice_dim;

std::vector<int64_t> dims_of(const TensorRef& t) { return lang::dims_of(t->shape()); }

Shape to_shape(const std::vector<int64_t>& v) { return Shape(v.begin(), v.end()); }

// The shape a view/reshape produces: one -1 is inferred from the element count.
std::vector<int64_t> infer_shape(const std::vector<int64_t>& shape, int64_t numel) {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ValueError("only one dimension can be inferred");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw ValueError("invalid shape dimension " + std::to_string(shape[i]));
    } else {
      known *= shape[i];
    }
  }
  std::vector<int64_t> out = shape;
  if (infer >= 0) {
    if (known == 0) {
      throw ValueError("cannot reshape tensor of " + std::to_string(numel) +
                       " elements into shape " + ints_str(shape) +
                       " because the unspecified dimension size -1 can be any value and is "
                       "ambiguous");
    }
    if (numel % known == 0) {
      out[infer] = numel / known;
      return out;
    }
  } else if (known == numel) {
    return out;
  }
  throw ValueError("shape '" + ints_str(shape) + "' is invalid for input of size " +
                   std::to_string(numel));
}

// A fresh copy of `t` (eager returns a new tensor where the decomposition would return its input).
TensorRef fresh(Builder& b, const TensorRef& t) {
  return lang::call_t(b, prims::convert_element_type(), {Value(t), Value(t->dtype())});
}

TensorRef squeeze_dims(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims) {
  if (dims.empty()) return x;
  return lang::call_t(b, prims::squeeze(), {Value(x), Value::ints(dims)});
}

Value view_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const Value& s = a[1];
  if (s.is_seq() && s.items().size() == 1 && s.items()[0].is_dtype()) {
    throw NotImplementedError("view(dtype) reinterprets memory and is not supported by thunder");
  }
  if (s.is_dtype()) {
    throw NotImplementedError("view(dtype) reinterprets memory and is not supported by thunder");
  }
  std::vector<int64_t> shape = infer_shape(a.ints(1), x->numel());
  return lang::reshape(b, x, to_shape(shape));
}

Value view_as_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& other = a.tensor(1);
  if (x->numel() != other->numel()) {
    throw ValueError("shape '" + ints_str(dims_of(other)) + "' is invalid for input of size " +
                     std::to_string(x->numel()));
  }
  return lang::reshape(b, x, other->shape());
}

Value permute_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = a.ints(1);
  if (static_cast<int64_t>(dims.size()) != x->rank()) {
    throw ValueError(
        "permute(sparse_coo): number of dimensions in the tensor input does not match "
        "the length of the desired ordering of dimensions i.e. input.dim() = " +
        std::to_string(x->rank()) + " is not equal to len(dims) = " + std::to_string(dims.size()));
  }
  dims = lang::canonical_dims(dims, x->rank());
  if (x->rank() == 0) return x;
  return lang::transpose(b, x, dims);
}

TensorRef swap_dims(Builder& b, const TensorRef& x, int64_t d0, int64_t d1) {
  d0 = lang::canonical_dim(d0, x->rank());
  d1 = lang::canonical_dim(d1, x->rank());
  if (x->rank() == 0 || d0 == d1) return x;
  std::vector<int64_t> perm(x->rank());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[d0], perm[d1]);
  return lang::transpose(b, x, perm);
}

// torch.pixel_shuffle / pixel_unshuffle (input, factor r): channels C * r * r of each pixel moved
// into an r x r block of pixels, and back: a reshape, a permutation and a reshape.
template <bool kShuffle>
Value pixel_shuffle_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const int64_t r = a.int_(1);
  const std::string op = kShuffle ? "pixel_shuffle" : "pixel_unshuffle";
  if (x->rank() < 3) {
    throw Error(op + " expects input to have at least 3 dimensions, but got input with " +
                std::to_string(x->rank()) + " dimension(s)");
  }
  if (r <= 0) {
    throw Error(op + " expects a positive " + (kShuffle ? "upscale_factor" : "downscale_factor") +
                ", but got " + std::to_string(r));
  }
  const Shape& s = x->shape();
  const size_t k = s.size();
  const int64_t c = s[k - 3].value(), h = s[k - 2].value(), w = s[k - 1].value();
  Shape batch(s.begin(), s.end() - 3);
  const int64_t nb = static_cast<int64_t>(batch.size());
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < nb; ++i) perm.push_back(i);
  auto with_batch = [&](std::vector<int64_t> tail) {
    Shape out = batch;
    for (int64_t t : tail) out.push_back(Dim(t));
    return out;
  };
  if (kShuffle) {
    if (c % (r * r) != 0) {
      throw Error(
          "pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
          "square of upscale_factor, but input.size(-3)=" +
          std::to_string(c) + " is not divisible by " + std::to_string(r * r));
    }
    const int64_t oc = c / (r * r);
    // (oc, r, r, h, w) -> (oc, h, r, w, r)
    TensorRef y = lang::reshape(b, x, with_batch({oc, r, r, h, w}));
    for (int64_t p : {0, 3, 1, 4, 2}) perm.push_back(nb + p);
    y = lang::transpose(b, y, perm);
    return lang::reshape(b, y, with_batch({oc, h * r, w * r}));
  }
  if (h % r != 0 || w % r != 0) {
    const bool height = h % r != 0;
    throw Error(std::string("pixel_unshuffle expects ") + (height ? "height" : "width") +
                " to be divisible by downscale_factor, but input.size(" + (height ? "-2" : "-1") +
                ")=" + std::to_string(height ? h : w) + " is not divisible by " +
                std::to_string(r));
  }
  // (c, h / r, r, w / r, r) -> (c, r, r, h / r, w / r)
  TensorRef y = lang::reshape(b, x, with_batch({c, h / r, r, w / r, r}));
  for (int64_t p : {0, 2, 4, 1, 3}) perm.push_back(nb + p);
  y = lang::transpose(b, y, perm);
  return lang::reshape(b, y, with_batch({c * r * r, h / r, w / r}));
}

// torch.channel_shuffle(input, groups): channels (g, C / g) reordered as (C / g, g).
Value channel_shuffle_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const int64_t g = a.int_(1);
  if (x->rank() <= 2) {
    throw Error("channel_shuffle expects input with > 2 dims, but got input with sizes " +
                ints_str(dims_of(x)));
  }
  if (g <= 0) {
    throw Error("Number of groups to divide channels in must be positive. Value of groups:" +
                std::to_string(g));
  }
  const int64_t c = x->shape()[1].value();
  if (c % g != 0) {
    throw Error("Number of channels must be divisible by groups. Got " + std::to_string(c) +
                " channels and " + std::to_string(g) + " groups.");
  }
  Shape split = x->shape();
  split[1] = Dim(g);
  split.insert(split.begin() + 2, Dim(c / g));
  TensorRef y = swap_dims(b, lang::reshape(b, x, split), 1, 2);
  return lang::reshape(b, y, x->shape());
}

Value transpose_meta(Builder& b, const BoundArgs& a) {
  return swap_dims(b, a.tensor(0), a.int_(1), a.int_(2));
}

Value t_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() > 2) {
    throw ValueError("t() expects a tensor with <= 2 dimensions, but self is " +
                     std::to_string(x->rank()) + "D");
  }
  if (x->rank() < 2) return x;
  return swap_dims(b, x, 0, 1);
}

// contiguous(input): always recorded (a copy in primitives), since whether the runtime tensor is
// already contiguous is a property of strides, which proxies do not carry; torch returns the input
// itself when it is.
Value contiguous_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return lang::call_t(b, prims::convert_element_type(), {Value(x), Value(x->dtype())});
}

// The target shape of expand(sizes): -1 keeps an existing dim; new dims are prepended.
Shape expand_shape(const TensorRef& x, const std::vector<int64_t>& sizes) {
  int64_t n = static_cast<int64_t>(sizes.size());
  auto tensor_str = [&] { return ints_str(dims_of(x)); };
  if (n < x->rank()) {
    throw ValueError("expand(" + x->type_string() + ", size=" + ints_str(sizes) +
                     "): the number of sizes provided (" + std::to_string(n) +
                     ") must be greater or equal to the number of dimensions in the tensor (" +
                     std::to_string(x->rank()) + ")");
  }
  int64_t offset = n - x->rank();
  Shape out;
  for (int64_t i = 0; i < n; ++i) {
    int64_t s = sizes[i];
    if (i < offset) {
      if (s < 0) {
        throw ValueError("The expanded size of the tensor (" + std::to_string(s) +
                         ") isn't allowed in a leading, non-existing dimension " +
                         std::to_string(i));
      }
      out.push_back(s);
      continue;
    }
    int64_t cur = x->shape()[i - offset].value();
    if (s == -1) s = cur;
    if (cur != 1 && cur != s) {
      throw ValueError("The expanded size of the tensor (" + std::to_string(s) +
                       ") must match the existing size (" + std::to_string(cur) +
                       ") at non-singleton dimension " + std::to_string(i) +
                       ".  Target sizes: " + ints_str(sizes) + ".  Tensor sizes: " + tensor_str());
    }
    if (s < 0) throw ValueError("negative dimension " + std::to_string(s));
    out.push_back(s);
  }
  return out;
}

Value expand_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return lang::expand_to(b, x, expand_shape(x, a.ints(1)));
}

Value expand_as_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  return lang::expand_to(b, x, expand_shape(x, dims_of(a.tensor(1))));
}

// x repeated reps[i] times along each dim (leading reps add dims).
TensorRef repeat_to(Builder& b, const TensorRef& x, const std::vector<int64_t>& reps) {
  int64_t n = static_cast<int64_t>(reps.size());
  if (n < x->rank()) {
    throw ValueError(
        "Number of dimensions of repeat dims can not be smaller than number of "
        "dimensions of tensor");
  }
  int64_t offset = n - x->rank();
  std::vector<int64_t> wide, bdims, out;
  for (int64_t i = 0; i < n; ++i) {
    int64_t s = i < offset ? 1 : x->shape()[i - offset].value();
    if (reps[i] < 0) {
      throw ValueError("Trying to create tensor with negative dimension " +
                       std::to_string(reps[i]) + ": " + ints_str(reps));
    }
    wide.push_back(reps[i]);
    wide.push_back(s);
    if (i >= offset) bdims.push_back(2 * i + 1);
    out.push_back(reps[i] * s);
  }
  if (n == 0) return fresh(b, x);
  // [s0, s1] -> broadcast to [r0, s0, r1, s1] -> reshape to [r0*s0, r1*s1].
  TensorRef w =
      lang::call_t(b, prims::broadcast_in_dim(), {Value(x), Value::ints(wide), Value::ints(bdims)});
  return lang::call_t(b, prims::reshape(), {Value(w), Value::ints(out)});
}

Value repeat_meta(Builder& b, const BoundArgs& a) { return repeat_to(b, a.tensor(0), a.ints(1)); }

// torch.tile(input, dims): repeat with dims padded by leading 1s to the input's rank.
Value tile_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> reps = a.ints(1);
  while (static_cast<int64_t>(reps.size()) < x->rank()) reps.insert(reps.begin(), 1);
  return repeat_to(b, x, reps);
}

// torch.outer(input, vec2): input[:, None] * vec2[None, :], both 1-D.
Value outer_meta(Builder& b, const BoundArgs& a) {
  const char* names[] = {"self", "vec2"};
  for (int i = 0; i < 2; ++i) {
    if (a.tensor(i)->rank() != 1) {
      throw Error(std::string("outer: Expected 1-D argument ") + names[i] + ", but got " +
                  std::to_string(a.tensor(i)->rank()) + "-D");
    }
  }
  return lang::binary(b, prims::mul(), Value(lang::unsqueeze(b, a.tensor(0), {1})),
                      Value(lang::unsqueeze(b, a.tensor(1), {0})), lang::Promotion::kDefault);
}

Value repeat_interleave_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const Value& reps = a[1];
  if (reps.is_none()) {
    throw NotImplementedError(
        "torch.repeat_interleave(repeats) has an output shape that depends on "
        "the values of repeats; thunder does not support it");
  }
  std::optional<int64_t> dim;
  if (!a[2].is_none()) dim = lang::canonical_dim(a.int_(2), x->rank());
  if (reps.is_tensor()) {
    const TensorRef& r = reps.as_tensor();
    if (a[3].is_none()) {
      throw NotImplementedError(
          "repeat_interleave with tensor repeats has an output shape that "
          "depends on the values of repeats; pass output_size= or use an int");
    }
    if (r->rank() > 1) throw ValueError("repeats must be 0-dim or 1-dim tensor");
    Shape s = dim ? x->shape() : Shape{x->numel()};
    if (!s.empty()) s[dim.value_or(0)] = a.int_(3);
    return b.new_tensor(s, x->dtype(), x->device(), x->requires_grad());
  }
  int64_t r = a.int_(1);
  if (r < 0) throw ValueError("repeats can not be negative");
  TensorRef y = x;
  if (!dim) {
    y = lang::reshape(b, x, {x->numel()});
    dim = 0;
  }
  if (y->rank() == 0) y = lang::reshape(b, y, {1});
  int64_t d = *dim;
  // [.., n, ..] -> [.., n, r, ..] -> [.., n*r, ..]
  std::vector<int64_t> wide, bdims;
  for (int64_t i = 0; i < y->rank(); ++i) {
    bdims.push_back(static_cast<int64_t>(wide.size()));
    wide.push_back(y->shape()[i].value());
    if (i == d) wide.push_back(r);
  }
  std::vector<int64_t> out = dims_of(y);
  out[d] *= r;
  TensorRef w =
      lang::call_t(b, prims::broadcast_in_dim(), {Value(y), Value::ints(wide), Value::ints(bdims)});
  return lang::call_t(b, prims::reshape(), {Value(w), Value::ints(out)});
}

Value unsqueeze_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  int64_t d = lang::canonical_dim(a.int_(1), x->rank() + 1);
  return lang::unsqueeze(b, x, {d});
}

Value squeeze_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims;
  if (a[1].is_none()) {
    for (int64_t i = 0; i < x->rank(); ++i) dims.push_back(i);
  } else {
    dims = lang::canonical_dims(a.ints(1), x->rank());
    std::sort(dims.begin(), dims.end());
  }
  std::vector<int64_t> drop;
  for (int64_t d : dims) {
    if (x->rank() > 0 && x->shape()[d].value() == 1) drop.push_back(d);
  }
  return squeeze_dims(b, x, drop);
}

Value flatten_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) return lang::reshape(b, x, {1});
  int64_t s = lang::canonical_dim(a.int_(1), x->rank());
  int64_t e = lang::canonical_dim(a.int_(2), x->rank());
  if (s > e) throw ValueError("flatten() has invalid args: start_dim cannot come after end_dim");
  Shape out;
  int64_t merged = 1;
  for (int64_t i = 0; i < x->rank(); ++i) {
    int64_t n = x->shape()[i].value();
    if (i < s || i > e) {
      out.push_back(n);
    } else {
      merged *= n;
      if (i == e) out.push_back(merged);
    }
  }
  return lang::reshape(b, x, out);
}

Value unflatten_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) throw ValueError("unflatten: Expected at least one dimension");
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  std::vector<int64_t> sizes = a.ints(2);
  if (sizes.empty()) throw ValueError("unflatten: sizes must be non-empty");
  int64_t n = x->shape()[d].value();
  std::vector<int64_t> inner;
  try {
    inner = infer_shape(sizes, n);
  } catch (const ValueError&) {
    throw ValueError("unflatten: Provided sizes " + ints_str(sizes) +
                     " don't multiply up to the size of dim " + std::to_string(d) + " (" +
                     std::to_string(n) + ") in the input tensor");
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < x->rank(); ++i) {
    if (i == d) {
      out.insert(out.end(), inner.begin(), inner.end());
    } else {
      out.push_back(x->shape()[i].value());
    }
  }
  return lang::reshape(b, x, to_shape(out));
}

Value narrow_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) throw IndexError("narrow() cannot be applied to a 0-dim tensor.");
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  if (a[2].is_tensor()) {
    throw NotImplementedError("narrow with a tensor start depends on tensor values; use an int");
  }
  int64_t start = a.int_(2), length = a.int_(3);
  int64_t n = x->shape()[d].value();
  if (start < -n || start > n) {
    throw IndexError("start out of range (expected to be in range of [" + std::to_string(-n) +
                     ", " + std::to_string(n) + "], but got " + std::to_string(start) + ")");
  }
  if (start < 0) start += n;
  if (length < 0) throw ValueError("narrow(): length must be non-negative.");
  if (start + length > n) {
    throw ValueError("start (" + std::to_string(start) + ") + length (" + std::to_string(length) +
                     ") exceeds dimension size (" + std::to_string(n) + ").");
  }
  if (start == 0 && length == n) return x;
  return slice_dim(b, x, d, start, start + length);
}

TensorRef select_dim(Builder& b, const TensorRef& x, int64_t dim, int64_t index) {
  if (x->rank() == 0) throw IndexError("select() cannot be applied to a 0-dim tensor.");
  int64_t d = lang::canonical_dim(dim, x->rank());
  int64_t n = x->shape()[d].value();
  if (index < -n || index >= n) {
    throw IndexError("select(): index " + std::to_string(index) +
                     " out of range for tensor of size " + ints_str(dims_of(x)) + " at dimension " +
                     std::to_string(d));
  }
  if (index < 0) index += n;
  TensorRef s = slice_dim(b, x, d, index, index + 1);
  return squeeze_dims(b, s, {d});
}

Value select_meta(Builder& b, const BoundArgs& a) {
  if (a[2].is_tensor()) {
    throw NotImplementedError(
        "select with a tensor index depends on tensor values; use an int or "
        "index_select");
  }
  return select_dim(b, a.tensor(0), a.int_(1), a.int_(2));
}

Value movedim_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> src = a.ints(1), dst = a.ints(2);
  if (src.size() != dst.size()) {
    throw ValueError("movedim: Invalid source or destination dims: source (" + ints_str(src) +
                     " dims) should contain the same number of dims as destination (" +
                     ints_str(dst) + " dims)");
  }
  src = lang::canonical_dims(src, x->rank());
  dst = lang::canonical_dims(dst, x->rank());
  if (x->rank() == 0) return x;
  std::vector<int64_t> perm(x->rank(), -1);
  std::vector<bool> used(x->rank(), false);
  for (size_t i = 0; i < src.size(); ++i) {
    perm[dst[i]] = src[i];
    used[src[i]] = true;
  }
  int64_t next = 0;
  for (int64_t& p : perm) {
    if (p >= 0) continue;
    while (used[next]) ++next;
    p = next++;
  }
  return lang::transpose(b, x, perm);
}

// Splits `x` along `dim` into pieces of the given sizes (always new proxies).
Value split_sizes(Builder& b, const TensorRef& x, int64_t dim, const std::vector<int64_t>& sizes) {
  std::vector<Value> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(Value(slice_dim(b, x, dim, start, start + s)));
    start += s;
  }
  return Value::tuple(std::move(out));
}

Value split_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) throw ValueError("split expects at least a 1-dimensional tensor");
  int64_t d = lang::canonical_dim(a.int_(2), x->rank());
  int64_t n = x->shape()[d].value();
  std::vector<int64_t> sizes;
  if (a[1].is_int()) {
    int64_t s = a.int_(1);
    if (s < 0)
      throw ValueError("split expects split_size be non-negative, but got split_size=" +
                       std::to_string(s));
    if (s == 0 && n != 0) {
      throw ValueError(
          "split_size can only be 0 if dimension size is 0, but got dimension size of " +
          std::to_string(n));
    }
    if (n == 0) {
      sizes = {0};
    } else {
      for (int64_t start = 0; start < n; start += s) sizes.push_back(std::min(s, n - start));
    }
  } else {
    sizes = a.ints(1);
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0)
        throw ValueError(
            "split_with_sizes expects split_sizes have only non-negative entries, but got "
            "split_sizes=" +
            ints_str(sizes));
      total += s;
    }
    if (total != n) {
      throw ValueError("split_with_sizes expects split_sizes to sum exactly to " +
                       std::to_string(n) + " (input tensor's size at dimension " +
                       std::to_string(d) + "), but got split_sizes=" + ints_str(sizes));
    }
  }
  return split_sizes(b, x, d, sizes);
}

Value chunk_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) throw ValueError("chunk expects at least a 1-dimensional tensor");
  int64_t chunks = a.int_(1);
  if (chunks <= 0) {
    throw ValueError("chunk expects `chunks` to be greater than 0, got: " + std::to_string(chunks));
  }
  int64_t d = lang::canonical_dim(a.int_(2), x->rank());
  int64_t n = x->shape()[d].value();
  int64_t size = (n + chunks - 1) / chunks;
  std::vector<int64_t> sizes;
  if (size == 0 && n == 0) {
    sizes.assign(chunks, 0);
  } else {
    for (int64_t start = 0; start < n; start += size) sizes.push_back(std::min(size, n - start));
  }
  return split_sizes(b, x, d, sizes);
}

Value unbind_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) throw IndexError("Dimension specified as 0 but tensor has no dimensions");
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  std::vector<Value> out;
  for (int64_t i = 0; i < x->shape()[d].value(); ++i) out.push_back(Value(select_dim(b, x, d, i)));
  return Value::tuple(std::move(out));
}

// Python's slice normalisation for a non-negative step: clamps start and stop into [0, n].
int64_t clamp_index(int64_t i, int64_t n) {
  if (i < 0) i += n;
  return std::clamp<int64_t>(i, 0, n);
}

Value tensor_split_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() == 0) {
    throw ValueError(
        "tensor_split expected at least a 1-dimensional tensor, but got a tensor with "
        "0 dims");
  }
  int64_t d = lang::canonical_dim(a.int_(2), x->rank());
  int64_t n = x->shape()[d].value();
  if (a[1].is_tensor()) {
    throw NotImplementedError(
        "tensor_split with a tensor of indices depends on tensor values; pass "
        "a Python int or list");
  }
  std::vector<Value> out;
  if (a[1].is_int()) {
    int64_t sections = a.int_(1);
    if (sections <= 0) {
      throw ValueError("number of sections must be larger than 0, got " + std::to_string(sections));
    }
    int64_t base = n / sections, extra = n % sections, start = 0;
    for (int64_t i = 0; i < sections; ++i) {
      int64_t len = base + (i < extra ? 1 : 0);
      out.push_back(Value(slice_dim(b, x, d, start, start + len)));
      start += len;
    }
  } else {
    std::vector<int64_t> idx = a.ints(1);
    int64_t prev = 0;
    for (size_t i = 0; i <= idx.size(); ++i) {
      int64_t stop = i < idx.size() ? clamp_index(idx[i], n) : n;
      int64_t start = std::min(prev, n);
      out.push_back(Value(slice_dim(b, x, d, start, std::max(start, stop))));
      if (i < idx.size()) prev = clamp_index(idx[i], n);
    }
  }
  return Value::tuple(std::move(out));
}

std::vector<TensorRef> tensor_list(const BoundArgs& a, size_t i, const char* op) {
  const Value& v = a[i];
  if (!v.is_seq()) {
    throw TypeError(std::string(op) + "(): argument 'tensors' must be tuple of Tensors, not " +
                    v.type_name());
  }
  std::vector<TensorRef> out;
  for (const Value& item : v.items()) {
    if (!item.is_tensor()) {
      throw TypeError(std::string(op) + "(): expected Tensor as element " +
                      std::to_string(out.size()) + " in argument 0, but got " + item.type_name());
    }
    out.push_back(item.as_tensor());
  }
  return out;
}

TensorRef cat_tensors(Builder& b, const std::vector<TensorRef>& ts, int64_t dim_arg) {
  if (ts.empty()) throw ValueError("torch.cat(): expected a non-empty list of Tensors");
  std::vector<Value> ops;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i]->rank() == 0) {
      throw ValueError("zero-dimensional tensor (at position " + std::to_string(i) +
                       ") cannot be concatenated");
    }
    ops.push_back(Value(ts[i]));
  }
  DType dt = lang::result_type(ops);
  // Legacy behaviour: 1-D empty tensors are skipped.
  std::vector<TensorRef> kept;
  std::vector<size_t> where;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i]->rank() == 1 && ts[i]->numel() == 0) continue;
    kept.push_back(ts[i]);
    where.push_back(i);
  }
  if (kept.empty()) {
    lang::canonical_dim(dim_arg, 1);
    return lang::full(b, {0}, Value(int64_t{0}), ts[0]->device(), dt);
  }
  const TensorRef& ref = kept[0];
  int64_t dim = lang::canonical_dim(dim_arg, ref->rank());
  std::vector<Value> conv;
  for (size_t k = 0; k < kept.size(); ++k) {
    const TensorRef& t = kept[k];
    if (t->rank() != ref->rank()) {
      throw ValueError("Tensors must have same number of dimensions: got " +
                       std::to_string(ref->rank()) + " and " + std::to_string(t->rank()));
    }
    for (int64_t i = 0; i < t->rank(); ++i) {
      if (i != dim && t->shape()[i] != ref->shape()[i]) {
        throw ValueError("Sizes of tensors must match except in dimension " + std::to_string(dim) +
                         ". Expected size " + std::to_string(ref->shape()[i].value()) +
                         " but got size " + std::to_string(t->shape()[i].value()) +
                         " for tensor number " + std::to_string(where[k]) + " in the list.");
      }
    }
    conv.push_back(Value(lang::convert(b, t, dt)));
  }
  return lang::call_t(b, prims::cat(), {Value::list(std::move(conv)), Value(dim)});
}

Value cat_meta(Builder& b, const BoundArgs& a) {
  return cat_tensors(b, tensor_list(a, 0, "cat"), a.int_(1));
}

Value stack_meta(Builder& b, const BoundArgs& a) {
  std::vector<TensorRef> ts = tensor_list(a, 0, "stack");
  if (ts.empty()) throw ValueError("stack expects a non-empty TensorList");
  for (size_t i = 1; i < ts.size(); ++i) {
    if (ts[i]->shape() != ts[0]->shape()) {
      throw ValueError("stack expects each tensor to be equal size, but got " +
                       ints_str(dims_of(ts[0])) + " at entry 0 and " + ints_str(dims_of(ts[i])) +
                       " at entry " + std::to_string(i));
    }
  }
  int64_t d = lang::canonical_dim(a.int_(1), ts[0]->rank() + 1);
  std::vector<TensorRef> u;
  for (const TensorRef& t : ts) u.push_back(lang::unsqueeze(b, t, {d}));
  return cat_tensors(b, u, d);
}

TensorRef at_least(Builder& b, const TensorRef& t, int64_t rank) {
  if (t->rank() >= rank) return t;
  std::vector<int64_t> s = dims_of(t);
  if (rank == 2 && s.size() == 1) return lang::reshape(b, t, {1, s[0]});
  s.insert(s.begin(), rank - static_cast<int64_t>(s.size()), 1);
  return lang::reshape(b, t, to_shape(s));
}

Value hstack_meta(Builder& b, const BoundArgs& a) {
  std::vector<TensorRef> ts = tensor_list(a, 0, "hstack");
  if (ts.empty()) throw ValueError("hstack expects a non-empty TensorList");
  bool all1 = true;
  for (TensorRef& t : ts) {
    t = at_least(b, t, 1);
    all1 = all1 && t->rank() == 1;
  }
  return cat_tensors(b, ts, all1 ? 0 : 1);
}

Value vstack_meta(Builder& b, const BoundArgs& a) {
  std::vector<TensorRef> ts = tensor_list(a, 0, "vstack");
  if (ts.empty()) throw ValueError("vstack expects a non-empty TensorList");
  for (TensorRef& t : ts) t = at_least(b, t, 2);
  return cat_tensors(b, ts, 0);
}

Value flip_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = lang::canonical_dims(a.ints(1), x->rank());
  if (x->rank() == 0) dims.clear();
  return lang::call_t(b, prims::flip(), {Value(x), Value::ints(dims)});
}

template <int64_t kDim, int64_t kMinRank>
Value flip_one_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (x->rank() < kMinRank) {
    throw ValueError(std::string(kDim == 0 ? "flipud" : "fliplr") +
                     ": Input must be >= " + std::to_string(kMinRank) + "-d.");
  }
  return lang::call_t(b, prims::flip(), {Value(x), Value::ints({kDim})});
}

TensorRef roll_dim(Builder& b, const TensorRef& x, int64_t shift, int64_t d) {
  int64_t n = x->shape()[d].value();
  if (n == 0) return x;
  int64_t s = ((shift % n) + n) % n;
  if (s == 0) return x;
  TensorRef tail = slice_dim(b, x, d, n - s, n);
  TensorRef head = slice_dim(b, x, d, 0, n - s);
  return lang::call_t(b, prims::cat(), {Value::list({Value(tail), Value(head)}), Value(d)});
}

Value roll_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> shifts = a.ints(1);
  TensorRef r = x;
  if (a[2].is_none() || (a[2].is_seq() && a[2].items().empty())) {
    if (shifts.size() != 1) {
      throw ValueError("shifts and dimensions must align. shifts: " +
                       std::to_string(shifts.size()) + ", dims:0");
    }
    TensorRef flat = lang::reshape(b, x, {x->numel()});
    r = lang::reshape(b, roll_dim(b, flat, shifts[0], 0), x->shape());
  } else {
    std::vector<int64_t> dims = a.ints(2);
    if (dims.size() != shifts.size()) {
      throw ValueError("shifts and dimensions must align. shifts: " +
                       std::to_string(shifts.size()) + ", dims:" + std::to_string(dims.size()));
    }
    for (size_t i = 0; i < dims.size(); ++i) {
      int64_t d = lang::canonical_dim(dims[i], x->rank());
      if (x->rank() == 0) continue;
      r = roll_dim(b, r, shifts[i], d);
    }
  }
  return r == x ? fresh(b, x) : r;
}

// tril/triu: keep the elements with (col - row) <= diagonal (tril) or >= diagonal (triu).
template <bool kLower>
Value tri_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const char* name = kLower ? "tril" : "triu";
  if (x->rank() < 2) {
    throw ValueError(std::string(name) + ": input tensor must have at least 2 dimensions");
  }
  int64_t diagonal = a.int_(1);
  int64_t m = x->shape()[x->rank() - 2].value(), n = x->shape()[x->rank() - 1].value();
  auto iota = [&](int64_t len) {
    return b
        .call(prims::iota(), {Value(len)},
              {{"start", Value(int64_t{0})},
               {"step", Value(int64_t{1})},
               {"device", Value(x->device())},
               {"dtype", Value(DType::kInt64)}})
        .as_tensor();
  };
  TensorRef rows = lang::call_t(b, prims::broadcast_in_dim(),
                                {Value(iota(m)), Value::ints({m, n}), Value::ints({0})});
  TensorRef cols = lang::call_t(b, prims::broadcast_in_dim(),
                                {Value(iota(n)), Value::ints({m, n}), Value::ints({1})});
  TensorRef diff = lang::call_t(b, prims::sub(), {Value(cols), Value(rows)});
  TensorRef mask =
      lang::call_t(b, kLower ? prims::le() : prims::ge(), {Value(diff), Value(diagonal)});
  mask = lang::expand_to(b, mask, x->shape());
  Value zero = lang::convert_value(b, Value(int64_t{0}), x->dtype());
  return lang::call_t(b, prims::where(), {Value(mask), Value(x), zero});
}

Value unfold_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  int64_t size = a.int_(2), step = a.int_(3);
  int64_t n = x->rank() == 0 ? 1 : x->shape()[d].value();
  if (size > n) {
    throw ValueError("maximum size for tensor at dimension " + std::to_string(d) + " is " +
                     std::to_string(n) + " but size is " + std::to_string(size));
  }
  if (step <= 0) throw ValueError("step is " + std::to_string(step) + " but must be > 0");
  if (size < 0) throw ValueError("size is " + std::to_string(size) + " but must be >= 0");
  return lang::call_t(b, prims::unfold(), {Value(x), Value(d), Value(size), Value(step)});
}

constexpr uint32_t kView = kTagView | kTagShape;

}  // namespace

void register_shape_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      // Views and reshapes.
      {"view", "input, *shape", view_meta, {"torch.Tensor.view"}, {}, kView},
      {"view_as", "input, other", view_as_meta, {"torch.Tensor.view_as"}, {}, kView},
      {"reshape",
       "input, *shape",
       view_meta,
       {"torch.reshape", "torch.Tensor.reshape"},
       "torch.reshape",
       kView},
      {"reshape_as", "input, other", view_as_meta, {"torch.Tensor.reshape_as"}, {}, kView},
      {"contiguous",
       "input, *, memory_format=None",
       contiguous_meta,
       {"torch.Tensor.contiguous"},
       {},
       kView},
      {"flatten",
       "input, start_dim=0, end_dim=-1",
       flatten_meta,
       {"torch.flatten", "torch.Tensor.flatten"},
       {},
       kView},
      {"unflatten",
       "input, dim, sizes",
       unflatten_meta,
       {"torch.unflatten", "torch.Tensor.unflatten"},
       {},
       kView},
      {"unsqueeze",
       "input, dim",
       unsqueeze_meta,
       {"torch.unsqueeze", "torch.Tensor.unsqueeze"},
       {},
       kView},
      {"squeeze",
       "input, dim=None",
       squeeze_meta,
       {"torch.squeeze", "torch.Tensor.squeeze"},
       "thunder.executors.torchex.squeeze_op",
       kView},
      // Permutations.
      {"permute",
       "input, *dims",
       permute_meta,
       {"torch.permute", "torch.Tensor.permute"},
       {},
       kView},
      {"transpose",
       "input, dim0, dim1",
       transpose_meta,
       {"torch.transpose", "torch.Tensor.transpose"},
       {},
       kView},
      {"swapaxes",
       "input, axis0, axis1",
       transpose_meta,
       {"torch.swapaxes", "torch.Tensor.swapaxes"},
       {},
       kView},
      {"swapdims",
       "input, dim0, dim1",
       transpose_meta,
       {"torch.swapdims", "torch.Tensor.swapdims"},
       {},
       kView},
      {"t", "input", t_meta, {"torch.t", "torch.Tensor.t"}, {}, kView},
      {"pixel_shuffle",
       "input, upscale_factor",
       pixel_shuffle_meta<true>,
       {"torch.pixel_shuffle", "torch.nn.functional.pixel_shuffle"}},
      {"pixel_unshuffle",
       "input, downscale_factor",
       pixel_shuffle_meta<false>,
       {"torch.pixel_unshuffle", "torch.nn.functional.pixel_unshuffle"}},
      {"channel_shuffle",
       "input, groups",
       channel_shuffle_meta,
       {"torch.channel_shuffle", "torch.nn.functional.channel_shuffle",
        "torch.native_channel_shuffle"}},
      {"movedim",
       "input, source, destination",
       movedim_meta,
       {"torch.movedim", "torch.Tensor.movedim"},
       {},
       kView},
      {"moveaxis",
       "input, source, destination",
       movedim_meta,
       {"torch.moveaxis", "torch.Tensor.moveaxis"},
       {},
       kView},
      // Expansion and repetition.
      {"expand", "input, *size", expand_meta, {"torch.Tensor.expand"}, {}, kView},
      {"expand_as", "input, other", expand_as_meta, {"torch.Tensor.expand_as"}, {}, kView},
      {"broadcast_to",
       "input, size",
       expand_meta,
       {"torch.broadcast_to", "torch.Tensor.broadcast_to"},
       {},
       kView},
      {"repeat", "input, *repeats", repeat_meta, {"torch.Tensor.repeat"}, {}, kTagShape},
      {"tile", "input, *dims", tile_meta, {"torch.tile", "torch.Tensor.tile"}, {}, kTagShape},
      {"outer",
       "input, vec2",
       outer_meta,
       {"torch.outer", "torch.Tensor.outer", "torch.ger", "torch.Tensor.ger"},
       {},
       kTagElementwise},
      {"repeat_interleave",
       "input, repeats=None, dim=None, *, output_size=None",
       repeat_interleave_meta,
       {"torch.repeat_interleave", "torch.Tensor.repeat_interleave"},
       {},
       kTagShape},
      // Sub-tensors.
      {"narrow",
       "input, dim, start, length",
       narrow_meta,
       {"torch.narrow", "torch.Tensor.narrow"},
       {},
       kView},
      {"select",
       "input, dim, index",
       select_meta,
       {"torch.select", "torch.Tensor.select"},
       {},
       kView},
      {"unfold", "input, dimension, size, step", unfold_meta, {"torch.Tensor.unfold"}, {}, kView},
      {"split",
       "tensor, split_size_or_sections, dim=0",
       split_meta,
       {"torch.split", "torch.Tensor.split"},
       "torch.split",
       kView},
      {"chunk",
       "input, chunks, dim=0",
       chunk_meta,
       {"torch.chunk", "torch.Tensor.chunk"},
       {},
       kView},
      {"unbind", "input, dim=0", unbind_meta, {"torch.unbind", "torch.Tensor.unbind"}, {}, kView},
      {"tensor_split",
       "input, indices_or_sections, dim=0",
       tensor_split_meta,
       {"torch.tensor_split", "torch.Tensor.tensor_split"},
       {},
       kView},
      // Joins.
      {"cat", "tensors, dim=0", cat_meta, {"torch.cat"}, {}, kTagShape},
      {"concat", "tensors, dim=0", cat_meta, {"torch.concat"}, {}, kTagShape},
      {"concatenate", "tensors, axis=0", cat_meta, {"torch.concatenate"}, {}, kTagShape},
      {"stack", "tensors, dim=0", stack_meta, {"torch.stack"}, {}, kTagShape},
      {"hstack", "tensors", hstack_meta, {"torch.hstack"}, {}, kTagShape},
      {"vstack",
       "tensors",
       vstack_meta,
       {"torch.vstack", "torch.row_stack"},
       "torch.vstack",
       kTagShape},
      // Reorderings and masks.
      {"flip", "input, *dims", flip_meta, {"torch.flip", "torch.Tensor.flip"}, {}, kTagShape},
      {"fliplr",
       "input",
       flip_one_meta<1, 2>,
       {"torch.fliplr", "torch.Tensor.fliplr"},
       {},
       kTagShape},
      {"flipud",
       "input",
       flip_one_meta<0, 1>,
       {"torch.flipud", "torch.Tensor.flipud"},
       {},
       kTagShape},
      {"roll",
       "input, shifts, dims=None",
       roll_meta,
       {"torch.roll", "torch.Tensor.roll"},
       {},
       kTagShape},
      {"tril",
       "input, diagonal=0",
       tri_meta<true>,
       {"torch.tril", "torch.Tensor.tril"},
       {},
       kTagNone},
      {"triu",
       "input, diagonal=0",
       tri_meta<false>,
       {"torch.triu", "torch.Tensor.triu"},
       {},
       kTagNone},
  };
  register_ops(table, defs);
  register_indexing_ops(table);
}

}  // namespace thunder
