// Torch-level indexing ops: tensor[...] reads and writes (basic indices, and integer advanced
// indices with PyTorch's placement rules), masked_fill, index_select, gather, scatter, index_put
// and take_along_dim. Reads decompose into slice/squeeze/broadcast and take; writes into pad +
// where (basic indices) or index_put with the coordinates of the indexed elements (advanced
// indices).
#include <algorithm>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

namespace {

using lang::dims_of;
using lang::ints_str;
using lang::slice_dim;

TensorRef iota(Builder& b, int64_t n, int64_t start, int64_t step, Device device) {
  return b
      .call(prims::iota(), {Value(n)},
            {{"start", Value(start)},
             {"step", Value(step)},
             {"device", Value(device)},
             {"dtype", Value(DType::kInt64)}})
      .as_tensor();
}

void check_index_dtype(const TensorRef& idx, const std::string& op) {
  if (idx->dtype() != DType::kInt64 && idx->dtype() != DType::kInt32) {
    throw TypeError(op + "(): Expected dtype int32/int64 for index, but got " +
                    dtype_name(idx->dtype()));
  }
}

// ---- tensor[index]
// -------------------------------------------------------------------------------

// One entry of an index expression, classified.
struct IndexItem {
  enum class Kind { kNone, kEllipsis, kInt, kSlice, kBool, kTensor } kind;
  int64_t i = 0;         // kInt; kBool (0 or 1)
  Slice slice;           // kSlice
  TensorRef tensor;      // kTensor (an integer index tensor)
  bool wrapped = false;  // kTensor: negative indices already wrapped
};

// A Python list of ints (possibly nested) as an int64 tensor: an iota when the values form an
// arithmetic progression, a concatenation of one-element fills otherwise.
TensorRef list_to_tensor(Builder& b, const Value& list, Device device) {
  std::vector<int64_t> shape, flat;
  std::function<void(const Value&, size_t)> walk = [&](const Value& v, size_t depth) {
    if (v.is_seq()) {
      const auto& items = v.items();
      if (depth == shape.size()) {
        shape.push_back(static_cast<int64_t>(items.size()));
      } else if (shape[depth] != static_cast<int64_t>(items.size())) {
        throw ValueError("expected sequence of length " + std::to_string(shape[depth]) +
                         " at dim " + std::to_string(depth) + " (got " +
                         std::to_string(items.size()) + ")");
      }
      for (const Value& item : items) walk(item, depth + 1);
      return;
    }
    if (!v.is_int() && !v.is_bool()) {
      throw IndexError(
          "only integers, slices (`:`), ellipsis (`...`), None and long or byte "
          "Variables are valid indices (got " +
          v.type_name() + ")");
    }
    flat.push_back(v.as_int());
  };
  walk(list, 0);
  int64_t n = static_cast<int64_t>(flat.size());
  bool progression = n > 0;
  int64_t step = n > 1 ? flat[1] - flat[0] : 1;
  for (int64_t k = 1; k < n && progression; ++k) progression = flat[k] - flat[k - 1] == step;
  TensorRef t;
  if (progression || n == 0) {
    t = iota(b, n, n ? flat[0] : 0, step, device);
  } else {
    std::vector<Value> parts;
    for (int64_t v : flat)
      parts.push_back(Value(lang::full(b, {1}, Value(v), device, DType::kInt64)));
    t = lang::call_t(b, prims::cat(), {Value::list(std::move(parts)), Value(int64_t{0})});
  }
  return lang::reshape(b, t, Shape(shape.begin(), shape.end()));
}

bool is_bool_list(const Value& v) {
  if (!v.is_seq() || v.items().empty()) return false;
  for (const Value& item : v.items()) {
    if (!item.is_bool()) return false;
  }
  return true;
}

bool is_scalar_list(const Value& v) {
  if (!v.is_seq()) return false;
  for (const Value& item : v.items()) {
    if (!(item.is_int() || item.is_bool() || (item.is_seq() && is_scalar_list(item)))) return false;
  }
  return true;
}

[[noreturn]] void bool_mask_unsupported() {
  throw NotImplementedError(
      "indexing with a boolean mask tensor gives a result whose shape depends on the mask's values "
      "(data-dependent), which thunder does not support; use torch.where(mask, x, other) or "
      "x.masked_fill(~mask, value) instead");
}

// The entries of `index` as PyTorch reads them: a tuple, a list of ints as one index tensor, a list
// holding slices/None/tensors as a tuple, anything else as a one-element tuple.
std::vector<Value> index_entries(const Value& index) {
  if (index.is_seq()) {
    const Seq& s = index.as_seq();
    if (s.kind == Seq::Kind::kTuple) return s.items;
    if (!is_scalar_list(index)) return s.items;
  }
  return {index};
}

std::vector<IndexItem> classify(Builder& b, const TensorRef& x, const Value& index) {
  std::vector<IndexItem> out;
  for (const Value& v : index_entries(index)) {
    IndexItem it{};
    if (v.is_none()) {
      it.kind = IndexItem::Kind::kNone;
    } else if (v.is_ellipsis()) {
      it.kind = IndexItem::Kind::kEllipsis;
    } else if (v.is_bool()) {
      it.kind = IndexItem::Kind::kBool;
      it.i = v.as_bool() ? 1 : 0;
    } else if (v.is_int()) {
      it.kind = IndexItem::Kind::kInt;
      it.i = v.as_int();
    } else if (v.is_slice()) {
      it.kind = IndexItem::Kind::kSlice;
      it.slice = v.as_slice();
    } else if (v.is_tensor()) {
      const TensorRef& t = v.as_tensor();
      if (t->dtype() == DType::kBool || t->dtype() == DType::kUInt8) bool_mask_unsupported();
      if (!is_integer(t->dtype())) {
        throw IndexError("tensors used as indices must be long, int, byte or bool tensors");
      }
      it.kind = IndexItem::Kind::kTensor;
      it.tensor = lang::convert(b, t, DType::kInt64);
    } else if (v.is_seq() && is_scalar_list(v)) {
      it.kind = IndexItem::Kind::kTensor;
      if (is_bool_list(v)) {
        // A static mask: its True positions are known now.
        std::vector<Value> pos;
        for (size_t k = 0; k < v.items().size(); ++k) {
          if (v.items()[k].as_bool()) pos.push_back(Value(static_cast<int64_t>(k)));
        }
        it.tensor = list_to_tensor(b, Value::list(std::move(pos)), x->device());
        it.i = static_cast<int64_t>(v.items().size());  // the mask's length, checked below
        it.slice.step = -1;                             // marks a mask
      } else {
        it.tensor = list_to_tensor(b, v, x->device());
      }
    } else {
      throw IndexError(
          "only integers, slices (`:`), ellipsis (`...`), None and long or byte "
          "Variables are valid indices (got " +
          v.type_name() + ")");
    }
    out.push_back(std::move(it));
  }
  return out;
}

// Python slice bounds for a positive step on a dim of size n: (start, length).
std::pair<int64_t, int64_t> slice_bounds(const Slice& s, int64_t n) {
  int64_t step = s.step.value_or(1);
  if (step <= 0) throw ValueError("step must be greater than zero");
  auto norm = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t i = *v < 0 ? *v + n : *v;
    return std::clamp<int64_t>(i, 0, n);
  };
  int64_t start = norm(s.start, 0), stop = norm(s.stop, n);
  int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
  return {start, len};
}

// What the basic part of an index does to each dim of the input, and where advanced indices apply.
struct BasicPlan {
  struct DimOp {
    bool is_int = false;
    int64_t start = 0, len = 0, step = 1;
  };
  std::vector<DimOp> dims;                              // one per input dim
  std::vector<std::pair<int64_t, TensorRef>> advanced;  // (dim of the basic result, index)
};

// Applies the basic indices (ints, slices, None, Ellipsis, Python bools) to x; returns the result
// and the advanced indices with the dims of that result they index.
TensorRef apply_basic(Builder& b, const TensorRef& x, std::vector<IndexItem>& items,
                      BasicPlan* plan) {
  int64_t consumed = 0;
  for (const IndexItem& it : items) {
    if (it.kind == IndexItem::Kind::kInt || it.kind == IndexItem::Kind::kSlice ||
        it.kind == IndexItem::Kind::kTensor) {
      ++consumed;
    }
  }
  if (consumed > x->rank()) {
    throw IndexError("too many indices for tensor of dimension " + std::to_string(x->rank()));
  }
  TensorRef y = x;
  int64_t d = 0;    // dim of y the next entry applies to
  int64_t src = 0;  // dim of x the next entry applies to
  bool seen_ellipsis = false;
  plan->dims.assign(x->rank(), {});
  for (int64_t i = 0; i < x->rank(); ++i) plan->dims[i] = {false, 0, x->shape()[i].value(), 1};
  for (IndexItem& it : items) {
    switch (it.kind) {
      case IndexItem::Kind::kNone:
        y = lang::unsqueeze(b, y, {d});
        ++d;
        break;
      case IndexItem::Kind::kBool:
        y = lang::unsqueeze(b, y, {d});
        if (it.i == 0) y = slice_dim(b, y, d, 0, 0, 1);
        ++d;
        break;
      case IndexItem::Kind::kEllipsis: {
        int64_t span = seen_ellipsis ? 0 : x->rank() - consumed;
        seen_ellipsis = true;
        d += span;
        src += span;
        break;
      }
      case IndexItem::Kind::kInt: {
        int64_t n = x->shape()[src].value();
        if (it.i < -n || it.i >= n) {
          throw IndexError("index " + std::to_string(it.i) + " is out of bounds for dimension " +
                           std::to_string(src) + " with size " + std::to_string(n));
        }
        int64_t i = it.i < 0 ? it.i + n : it.i;
        plan->dims[src] = {true, i, 1, 1};
        y = slice_dim(b, y, d, i, i + 1, 1);
        y = lang::call_t(b, prims::squeeze(), {Value(y), Value::ints({d})});
        ++src;
        break;
      }
      case IndexItem::Kind::kSlice: {
        int64_t n = x->shape()[src].value();
        auto [start, len] = slice_bounds(it.slice, n);
        int64_t step = it.slice.step.value_or(1);
        plan->dims[src] = {false, start, len, step};
        if (!(start == 0 && len == n && (step == 1 || n <= 1))) {
          y = slice_dim(b, y, d, start, len == 0 ? start : start + (len - 1) * step + 1, step);
        }
        ++d;
        ++src;
        break;
      }
      case IndexItem::Kind::kTensor: {
        int64_t n = x->shape()[src].value();
        if (it.slice.step && *it.slice.step == -1 && it.i != n) {
          throw IndexError("The shape of the mask [" + std::to_string(it.i) + "] at index " +
                           std::to_string(src) +
                           " does not match the shape of the indexed tensor " +
                           ints_str(dims_of(x->shape())) + " at index " + std::to_string(src));
        }
        if (!it.wrapped) {
          // Negative indices count from the end.
          TensorRef neg = lang::call_t(b, prims::lt(), {Value(it.tensor), Value(int64_t{0})});
          TensorRef up = lang::call_t(b, prims::add(), {Value(it.tensor), Value(n)});
          it.tensor = lang::call_t(b, prims::where(), {Value(neg), Value(up), Value(it.tensor)});
          it.wrapped = true;
        }
        plan->advanced.emplace_back(d, it.tensor);
        ++d;
        ++src;
        break;
      }
    }
  }
  return y;
}

// y[..., idx_0, ..., idx_k, ...] for integer index tensors at the given dims of y, placed as
// PyTorch places them: at the first indexed dim when the indexed dims are adjacent, in front
// otherwise.
TensorRef apply_advanced(Builder& b, const TensorRef& y,
                         const std::vector<std::pair<int64_t, TensorRef>>& adv) {
  if (adv.empty()) return y;
  Shape bshape;
  for (size_t k = 0; k < adv.size(); ++k) {
    const Shape& s = adv[k].second->shape();
    bshape = k == 0 ? s : lang::broadcast_shapes(bshape, s);
  }
  std::vector<int64_t> bdims = dims_of(bshape);
  int64_t bnumel = numel(bshape);
  std::vector<TensorRef> idx;
  for (const auto& [d, t] : adv) idx.push_back(lang::expand_to(b, t, bshape));
  bool adjacent = true;
  for (size_t k = 1; k < adv.size(); ++k)
    adjacent = adjacent && adv[k].first == adv[k - 1].first + 1;

  // Bring the indexed dims to the front, flatten them and gather rows with one linear index.
  std::vector<int64_t> perm, rest;
  std::vector<bool> is_adv(y->rank(), false);
  for (const auto& [d, t] : adv) {
    perm.push_back(d);
    is_adv[d] = true;
  }
  for (int64_t i = 0; i < y->rank(); ++i) {
    if (!is_adv[i]) {
      perm.push_back(i);
      rest.push_back(y->shape()[i].value());
    }
  }
  TensorRef linear = idx[0];
  int64_t rows = y->shape()[adv[0].first].value();
  for (size_t k = 1; k < adv.size(); ++k) {
    int64_t n = y->shape()[adv[k].first].value();
    TensorRef scaled = lang::call_t(b, prims::mul(), {Value(linear), Value(n)});
    linear = lang::call_t(b, prims::add(), {Value(scaled), Value(idx[k])});
    rows *= n;
  }
  TensorRef yt = lang::transpose(b, y, perm);
  std::vector<int64_t> flat_shape = {rows};
  flat_shape.insert(flat_shape.end(), rest.begin(), rest.end());
  TensorRef flat = lang::reshape(b, yt, Shape(flat_shape.begin(), flat_shape.end()));
  TensorRef lin1 = lang::reshape(b, linear, {bnumel});
  TensorRef taken = lang::call_t(b, prims::take(), {Value(flat), Value(lin1), Value(int64_t{0})});
  std::vector<int64_t> out_shape = bdims;
  out_shape.insert(out_shape.end(), rest.begin(), rest.end());
  TensorRef out = lang::reshape(b, taken, Shape(out_shape.begin(), out_shape.end()));
  if (!adjacent) return out;
  // Move the broadcast dims to where the first indexed dim was.
  int64_t first = adv[0].first, nb = static_cast<int64_t>(bdims.size());
  int64_t nrest = static_cast<int64_t>(rest.size());
  std::vector<int64_t> back;
  for (int64_t i = 0; i < first; ++i) back.push_back(nb + i);
  for (int64_t i = 0; i < nb; ++i) back.push_back(i);
  for (int64_t i = first; i < nrest; ++i) back.push_back(nb + i);
  return lang::transpose(b, out, back);
}

TensorRef index_tensor(Builder& b, const TensorRef& x, const Value& index) {
  std::vector<IndexItem> items = classify(b, x, index);
  BasicPlan plan;
  TensorRef y = apply_basic(b, x, items, &plan);
  return apply_advanced(b, y, plan.advanced);
}

Value getitem_meta(Builder& b, const BoundArgs& a) { return index_tensor(b, a.tensor(0), a[1]); }

// ---- tensor[index] = value
// -----------------------------------------------------------------------

// The value to write, converted to x's dtype and broadcast to the indexed region's shape `region`
// (PyTorch first drops the value's leading size-1 dims).
Value setitem_value(Builder& b, const TensorRef& x, const Value& v, const Shape& region) {
  if (!v.is_tensor()) {
    if (!v.is_number()) {
      throw TypeError("can't assign a " + v.type_name() + " to a " + x->type_string());
    }
    return lang::convert_value(b, v, x->dtype());
  }
  TensorRef t = v.as_tensor();
  Shape s = t->shape();
  size_t lead = 0;
  while (lead < s.size() && s[lead].value() == 1 && s.size() - lead > region.size()) ++lead;
  Shape stripped(s.begin() + static_cast<long>(lead), s.end());
  bool ok = stripped.size() <= region.size();
  if (ok) {
    for (size_t i = 0; i < stripped.size(); ++i) {
      int64_t vs = stripped[i].value(), rs = region[region.size() - stripped.size() + i].value();
      ok = ok && (vs == 1 || vs == rs);
    }
  }
  if (!ok) {
    throw ValueError("shape mismatch: value tensor of shape " + ints_str(dims_of(s)) +
                     " cannot be broadcast to indexing result of shape " +
                     ints_str(dims_of(region)));
  }
  t = lang::reshape(b, t, stripped);
  t = lang::convert(b, t, x->dtype());
  return lang::expand_to(b, t, region);
}

// x[mask] = v with a boolean mask over x's leading dims and v broadcastable to the remaining dims:
// the written positions are known from the mask alone, so this is a select (no data-dependent
// shape). Returns a null Value when the index is not such a mask.
Value masked_setitem(Builder& b, const TensorRef& x, const Value& index, const Value& v) {
  Value m = index;
  if (m.is_seq() && m.as_seq().kind == Seq::Kind::kTuple && m.items().size() == 1) m = m.items()[0];
  if (!m.is_tensor() || m.as_tensor()->dtype() != DType::kBool) return Value();
  const TensorRef& mask = m.as_tensor();
  int64_t k = mask->rank();
  if (k > x->rank()) {
    throw IndexError("too many indices for tensor of dimension " + std::to_string(x->rank()));
  }
  for (int64_t i = 0; i < k; ++i) {
    if (mask->shape()[i].value() != x->shape()[i].value()) {
      throw IndexError("The shape of the mask " + ints_str(dims_of(mask->shape())) +
                       " at index " + std::to_string(i) +
                       " does not match the shape of the indexed tensor " +
                       ints_str(dims_of(x->shape())) + " at index " + std::to_string(i));
    }
  }
  Shape rest(x->shape().begin() + k, x->shape().end());
  if (v.is_tensor()) {
    const Shape& vs = v.as_tensor()->shape();
    size_t lead = 0;
    while (lead < vs.size() && vs[lead].value() == 1) ++lead;
    if (vs.size() - lead > rest.size()) {
      throw NotImplementedError(
          "x[mask] = value with one value per selected element depends on how many elements the "
          "mask selects (data-dependent), which thunder does not support; use "
          "torch.where(mask, values, x) with values shaped like x");
    }
  }
  std::vector<int64_t> lead_dims(k), rest_dims(rest.size());
  for (int64_t i = 0; i < k; ++i) lead_dims[i] = i;
  for (size_t i = 0; i < rest.size(); ++i) rest_dims[i] = k + static_cast<int64_t>(i);
  Value pred = Value(lang::call_t(
      b, prims::broadcast_in_dim(),
      {Value(mask), Value::shape(x->shape()), Value::ints(std::move(lead_dims))}));
  Value val = setitem_value(b, x, v, rest);
  if (val.is_tensor()) {
    val = Value(lang::call_t(b, prims::broadcast_in_dim(),
                             {val, Value::shape(x->shape()), Value::ints(std::move(rest_dims))}));
  } else {
    val = Value(lang::full(b, x->shape(), val, x->device(), x->dtype()));
  }
  return lang::call(b, prims::where(), {pred, val, Value(x)});
}

Value setitem_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  Value masked = masked_setitem(b, x, a[1], a[2]);
  if (!masked.is_none()) return masked;
  std::vector<IndexItem> items = classify(b, x, a[1]);
  BasicPlan plan;
  TensorRef region = apply_basic(b, x, items, &plan);
  if (!plan.advanced.empty()) {
    // Write through index_put at the coordinates of every indexed element: the coordinates along
    // dim j are the same indexing applied to an iota along j.
    TensorRef r = apply_advanced(b, region, plan.advanced);
    Value val = setitem_value(b, x, a[2], r->shape());
    if (!val.is_tensor()) val = lang::full(b, r->shape(), val, x->device(), x->dtype());
    std::vector<Value> coords;
    for (int64_t j = 0; j < x->rank(); ++j) {
      TensorRef grid = lang::call_t(b, prims::broadcast_in_dim(),
                                    {Value(iota(b, x->shape()[j].value(), 0, 1, x->device())),
                                     Value::shape(x->shape()), Value::ints({j})});
      BasicPlan p2;
      TensorRef g = apply_basic(b, grid, items, &p2);
      coords.push_back(Value(apply_advanced(b, g, p2.advanced)));
    }
    return lang::call_t(b, prims::index_put(),
                        {Value(x), Value::tuple(std::move(coords)), val, Value(false)});
  }
  // Basic indices: the written region is a strided box; pad the value (and a mask) out to x's
  // shape and select.
  Value val = setitem_value(b, x, a[2], region->shape());
  std::vector<int64_t> box;
  std::vector<Value> config;
  for (int64_t j = 0; j < x->rank(); ++j) {
    const BasicPlan::DimOp& op = plan.dims[j];
    int64_t n = x->shape()[j].value();
    box.push_back(op.len);
    if (op.len == 0) {
      config.push_back(Value::ints({0, n, 0}));
    } else {
      int64_t last = op.start + (op.len - 1) * op.step;
      config.push_back(Value::ints({op.start, n - last - 1, op.step - 1}));
    }
  }
  Shape box_shape(box.begin(), box.end());
  TensorRef ones = lang::full(b, box_shape, Value(true), x->device(), DType::kBool);
  TensorRef mask = lang::call_t(b, prims::pad(), {Value(ones), Value(false), Value::tuple(config)});
  Value fill = val;
  if (val.is_tensor()) {
    TensorRef boxed = lang::reshape(b, val.as_tensor(), box_shape);
    Value zero = lang::convert_value(b, Value(int64_t{0}), x->dtype());
    fill = Value(lang::call_t(b, prims::pad(), {Value(boxed), zero, Value::tuple(config)}));
  }
  return lang::call_t(b, prims::where(), {Value(mask), fill, Value(x)});
}

// ---- masked_fill, gather, scatter
// ----------------------------------------------------------------

Value masked_fill_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& mask = a.tensor(1);
  if (mask->dtype() != DType::kBool) {
    throw TypeError(
        std::string("masked_fill_ only supports boolean masks, but got mask with dtype ") +
        dtype_name(mask->dtype()));
  }
  Value v = a[2];
  if (v.is_tensor() && v.as_tensor()->rank() != 0) {
    throw ValueError(
        "masked_fill_ only supports a 0-dimensional value tensor, but got tensor with " +
        std::to_string(v.as_tensor()->rank()) + " dimension(s).");
  }
  if (!v.is_tensor() && !v.is_number()) {
    throw TypeError("masked_fill(): argument 'value' must be Number or Tensor, not " +
                    v.type_name());
  }
  Shape shape = lang::broadcast_shapes(x->shape(), mask->shape());
  TensorRef m = lang::expand_to(b, mask, shape);
  TensorRef xx = lang::expand_to(b, x, shape);
  Value fill = lang::convert_value(b, v, x->dtype());
  if (fill.is_tensor()) fill = lang::expand_to(b, fill.as_tensor(), shape);
  return lang::call_t(b, prims::where(), {Value(m), fill, Value(xx)});
}

Value index_select_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(2);
  check_index_dtype(idx, "index_select");
  if (idx->rank() > 1) throw IndexError("index_select(): Index is supposed to be a vector");
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  TensorRef i1 = lang::reshape(b, idx, {idx->numel()});
  if (x->rank() == 0) {
    if (idx->numel() != 1)
      throw IndexError("index_select(): Index to scalar can have only 1 value");
    i1 = idx;
  }
  return lang::call_t(b, prims::take(), {Value(x), Value(i1), Value(d)});
}

// Checks gather/scatter index shapes: same rank as the input, and no larger than `other` (the input
// or src) in every dim but `dim` (when `skip_dim`).
void check_scatter_shape(const std::string& op, const TensorRef& x, const TensorRef& idx,
                         int64_t dim, const TensorRef& other, bool skip_dim) {
  if (idx->rank() != x->rank() && !(idx->rank() <= 1 && x->rank() <= 1)) {
    throw ValueError("Index tensor must have the same number of dimensions as " +
                     std::string(op == "gather" ? "input" : "self") + " tensor");
  }
  for (int64_t i = 0; i < idx->rank(); ++i) {
    if (skip_dim && i == dim) continue;
    if (other->rank() > i && idx->shape()[i].value() > other->shape()[i].value()) {
      throw ValueError("Size does not match at dimension " + std::to_string(i) +
                       " expected index " + ints_str(dims_of(idx->shape())) +
                       " to be no larger than " + (op == "gather" ? "self " : "") +
                       ints_str(dims_of(other->shape())) + " apart from dimension " +
                       std::to_string(dim));
    }
  }
}

Value gather_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(2);
  check_index_dtype(idx, "gather");
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  check_scatter_shape("gather", x, idx, d, x, true);
  if (x->rank() == 0 || idx->rank() == 0) {
    TensorRef xx = lang::reshape(b, x, {x->numel()});
    TensorRef ii = lang::reshape(b, idx, {idx->numel()});
    TensorRef r =
        lang::call_t(b, prims::take_along_axis(), {Value(xx), Value(ii), Value(int64_t{0})});
    return lang::reshape(b, r, idx->shape());
  }
  return lang::call_t(b, prims::take_along_axis(), {Value(x), Value(idx), Value(d)});
}

Value scatter_add_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(2);
  const TensorRef& src = a.tensor(3);
  if (idx->dtype() != DType::kInt64) {
    throw TypeError(std::string("scatter(): Expected dtype int64 for index, but got ") +
                    dtype_name(idx->dtype()));
  }
  if (src->dtype() != x->dtype()) {
    throw TypeError("scatter(): Expected self.dtype to be equal to src.dtype");
  }
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  check_scatter_shape("scatter_add", x, idx, d, x, true);
  check_scatter_shape("scatter_add", x, idx, d, src, false);
  return lang::call_t(b, prims::scatter_add(), {Value(x), Value(d), Value(idx), Value(src)});
}

// scatter(input, dim, index, src): index_put at coordinates (iota along every dim but `dim`, index
// along `dim`) of the values src[:index.shape].
Value scatter_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(2);
  if (!a[4].is_none()) {
    throw NotImplementedError(
        "scatter with reduce= is not supported by thunder; use scatter_add or "
        "scatter_reduce outside the jitted function");
  }
  if (idx->dtype() != DType::kInt64) {
    throw TypeError(std::string("scatter(): Expected dtype int64 for index, but got ") +
                    dtype_name(idx->dtype()));
  }
  int64_t d = lang::canonical_dim(a.int_(1), x->rank());
  check_scatter_shape("scatter", x, idx, d, x, true);
  Value src = a[3];
  TensorRef vals;
  if (src.is_tensor()) {
    TensorRef s = src.as_tensor();
    if (s->dtype() != x->dtype()) {
      throw TypeError("scatter(): Expected self.dtype to be equal to src.dtype");
    }
    check_scatter_shape("scatter", x, idx, d, s, false);
    if (s->shape() != idx->shape()) {
      std::vector<int64_t> lo(s->rank(), 0), hi = dims_of(idx->shape());
      s = lang::call_t(b, prims::slice(), {Value(s), Value::ints(lo), Value::ints(hi)});
    }
    vals = s;
  } else if (src.is_number()) {
    vals = lang::full(b, idx->shape(), src, x->device(), x->dtype());
  } else {
    throw TypeError("scatter(): argument 'src' must be Tensor or Number, not " + src.type_name());
  }
  if (idx->rank() == 0 || x->rank() == 0) {
    TensorRef i1 = lang::reshape(b, idx, {idx->numel()});
    TensorRef v1 = lang::reshape(b, vals, {vals->numel()});
    TensorRef x1 = lang::reshape(b, x, {x->numel()});
    TensorRef r = lang::call_t(b, prims::index_put(),
                               {Value(x1), Value::tuple({Value(i1)}), Value(v1), Value(false)});
    return lang::reshape(b, r, x->shape());
  }
  std::vector<Value> coords;
  for (int64_t j = 0; j < x->rank(); ++j) {
    if (j == d) {
      coords.push_back(Value(idx));
      continue;
    }
    TensorRef io = iota(b, idx->shape()[j].value(), 0, 1, x->device());
    coords.push_back(Value(lang::call_t(
        b, prims::broadcast_in_dim(), {Value(io), Value::shape(idx->shape()), Value::ints({j})})));
  }
  return lang::call_t(b, prims::index_put(),
                      {Value(x), Value::tuple(std::move(coords)), Value(vals), Value(false)});
}

Value index_put_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!a[1].is_seq()) {
    throw TypeError("index_put(): argument 'indices' must be tuple of Tensors, not " +
                    a[1].type_name());
  }
  const auto& indices = a[1].items();
  if (static_cast<int64_t>(indices.size()) > x->rank()) {
    throw IndexError("too many indices for tensor of dimension " + std::to_string(x->rank()) +
                     " (got " + std::to_string(indices.size()) + ")");
  }
  for (const Value& i : indices) {
    if (!i.is_none() && !i.is_tensor()) {
      throw TypeError("index_put(): expected Tensor or None as indices, but got " + i.type_name());
    }
  }
  const TensorRef& v = a.tensor(2);
  if (v->dtype() != x->dtype()) {
    throw TypeError(
        std::string("Index put requires the source and destination dtypes match, got ") +
        dtype_name(x->dtype()) + " for the destination and " + dtype_name(v->dtype()) +
        " for the source.");
  }
  return lang::call_t(b, prims::index_put(), {Value(x), a[1], Value(v), Value(a.bool_(3))});
}

Value take_along_dim_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const TensorRef& idx = a.tensor(1);
  if (idx->dtype() != DType::kInt64) {
    throw TypeError(
        std::string("torch.take_along_dim(): dtype of indices should be int64 but got ") +
        dtype_name(idx->dtype()));
  }
  if (a[2].is_none()) {
    TensorRef xx = lang::reshape(b, x, {x->numel()});
    TensorRef ii = lang::reshape(b, idx, {idx->numel()});
    return lang::call_t(b, prims::take_along_axis(), {Value(xx), Value(ii), Value(int64_t{0})});
  }
  int64_t d = lang::canonical_dim(a.int_(2), x->rank());
  if (x->rank() != idx->rank()) {
    throw ValueError(
        "torch.take_along_dim(): input and indices should have the same number of "
        "dimensions, but got " +
        std::to_string(x->rank()) + " dimensions for input, and " + std::to_string(idx->rank()) +
        " dimensions for indices");
  }
  if (x->rank() == 0) {
    TensorRef xx = lang::reshape(b, x, {1});
    TensorRef ii = lang::reshape(b, idx, {1});
    TensorRef r =
        lang::call_t(b, prims::take_along_axis(), {Value(xx), Value(ii), Value(int64_t{0})});
    return lang::reshape(b, r, Shape{});
  }
  Shape xs = x->shape(), is = idx->shape();
  xs[d] = 1;
  is[d] = 1;
  Shape common = lang::broadcast_shapes(xs, is);
  Shape xt = common, it = common;
  xt[d] = x->shape()[d];
  it[d] = idx->shape()[d];
  TensorRef xx = lang::expand_to(b, x, xt);
  TensorRef ii = lang::expand_to(b, idx, it);
  return lang::call_t(b, prims::take_along_axis(), {Value(xx), Value(ii), Value(d)});
}

}  // namespace

void register_indexing_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"getitem",
       "input, indices",
       getitem_meta,
       {"torch.Tensor.__getitem__"},
       {},
       kTagView | kTagShape},
      {"setitem", "input, indices, values", setitem_meta, {}, "thunder.executors.torchex.setitem"},
      {"masked_fill",
       "input, mask, value",
       masked_fill_meta,
       {"torch.masked_fill", "torch.Tensor.masked_fill"}},
      {"index_select",
       "input, dim, index",
       index_select_meta,
       {"torch.index_select", "torch.Tensor.index_select"}},
      {"gather",
       "input, dim, index, *, sparse_grad=False",
       gather_meta,
       {"torch.gather", "torch.Tensor.gather"}},
      {"scatter_add",
       "input, dim, index, src",
       scatter_add_meta,
       {"torch.scatter_add", "torch.Tensor.scatter_add"}},
      {"scatter",
       "input, dim, index, src, *, reduce=None",
       scatter_meta,
       {"torch.scatter", "torch.Tensor.scatter"},
       "thunder.executors.torchex.scatter_op"},
      {"index_put",
       "input, indices, values, accumulate=False",
       index_put_meta,
       {"torch.index_put", "torch.Tensor.index_put"}},
      {"take_along_dim",
       "input, indices, dim=None",
       take_along_dim_meta,
       {"torch.take_along_dim", "torch.Tensor.take_along_dim"}},
  };
  register_ops(table, defs);

  std::vector<OpDef> inplace = {
      {"setitem_",
       "input, indices, values",
       nullptr,
       {"torch.Tensor.__setitem__"},
       "thunder.executors.torchex.setitem_",
       kTagNone,
       "setitem"},
      {"masked_fill_",
       "input, mask, value",
       nullptr,
       {"torch.Tensor.masked_fill_"},
       {},
       kTagNone,
       "masked_fill"},
      {"scatter_add_",
       "input, dim, index, src",
       nullptr,
       {"torch.Tensor.scatter_add_"},
       {},
       kTagNone,
       "scatter_add"},
      {"scatter_",
       "input, dim, index, src, *, reduce=None",
       nullptr,
       {"torch.Tensor.scatter_"},
       "thunder.executors.torchex.scatter_op_",
       kTagNone,
       "scatter"},
      {"index_put_",
       "input, indices, values, accumulate=False",
       nullptr,
       {"torch.Tensor.index_put_"},
       {},
       kTagNone,
       "index_put"},
      {"tril_", "input, diagonal=0", nullptr, {"torch.Tensor.tril_"}, {}, kTagNone, "tril"},
      {"triu_", "input, diagonal=0", nullptr, {"torch.Tensor.triu_"}, {}, kTagNone, "triu"},
  };
  register_ops(table, inplace);
}

}  // namespace thunder
