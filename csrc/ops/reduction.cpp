// Torch-level reductions: sum, mean, prod, amax/amin, max/min, argmax/argmin, var/std and their
// `_mean` twins, all/any, logsumexp, vector norms, count_nonzero and cumsum. Each validates its
// arguments as PyTorch does, reduces with a primitive over canonicalised dims (float16 and
// bfloat16 are reduced in float32) and restores kept dims with a broadcast. cumsum has no
// primitive (there is no scan) and is recorded without a decomposition.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ir/bound_symbol.h"
#include "ops/lang.h"
#include "ops/nn_common.h"
#include "ops/registry.h"

namespace thunder {

namespace {

using lang::Promotion;

using detail::nn::opmath;
using detail::nn::torch_type_name;

std::vector<int64_t> all_dims(int64_t rank) {
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < rank; ++i) dims.push_back(i);
  return dims;
}

// The dims argument `i` names, canonicalised: an int or a sequence of ints. None means every dim,
// and so does an empty sequence unless `empty_is_all` is false (all/any reduce nothing over
// `dim=()`).
std::vector<int64_t> reduction_dims(const BoundArgs& a, size_t i, int64_t rank,
                                    bool empty_is_all = true) {
  if (a[i].is_none()) return all_dims(rank);
  std::vector<int64_t> dims = lang::canonical_dims(a.ints(i), rank);
  if (dims.empty() && empty_is_all) return all_dims(rank);
  return dims;
}

// The number of elements reduced over `dims` (a 0-d tensor reduces its one element).
int64_t reduced_numel(const TensorRef& x, const std::vector<int64_t>& dims) {
  if (x->rank() == 0) return 1;
  int64_t n = 1;
  for (int64_t d : dims) n *= x->shape()[d].value();
  return n;
}

constexpr const char* kNeedsDim =
    "(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim "
    "with the 'dim' argument.";

// Reductions without an identity (amax, max, argmax ...) refuse empty reduced dims.
void check_nonempty_dims(const BoundArgs& a, const TensorRef& x, const std::vector<int64_t>& dims) {
  if (x->rank() == 0) return;
  for (int64_t d : dims) {
    if (x->shape()[d].value() == 0) {
      throw IndexError(a.symbol().name + "(): Expected reduction dim " + std::to_string(d) +
                       " to have non-zero size.");
    }
  }
}

TensorRef maybe_keep_dims(Builder& b, const TensorRef& r, const TensorRef& x,
                          const std::vector<int64_t>& dims, bool keepdim) {
  return keepdim ? lang::keep_dims(b, r, x->shape(), dims) : r;
}

TensorRef prim_reduce(Builder& b, const Symbol& prim, const TensorRef& x,
                      const std::vector<int64_t>& dims) {
  return lang::call_t(b, prim, {Value(x), Value::ints(dims)});
}

// x != 0 (x for bool tensors), as a bool tensor.
TensorRef nonzero_mask(Builder& b, const TensorRef& x) {
  if (is_bool(x->dtype())) return x;
  return lang::binary(b, prims::ne(), Value(x), Value(int64_t{0}), Promotion::kAlwaysBool)
      .as_tensor();
}

// The number of nonzero elements over dims, as int64.
TensorRef count_nonzero_over(Builder& b, const TensorRef& mask, const std::vector<int64_t>& dims) {
  return prim_reduce(b, prims::sum(), lang::convert(b, mask, DType::kInt64), dims);
}

// sum(input, dim=None, keepdim=False, *, dtype=None)
Value sum_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  std::optional<DType> dtype = a.optional_dtype(3);
  if (dtype == DType::kBool) {
    // A sum of bools as bool is "any nonzero": count, then convert.
    TensorRef r = lang::reduce(b, prims::sum(), x, dims, a.bool_(2), DType::kInt64);
    return lang::convert(b, r, DType::kBool);
  }
  return lang::reduce(b, prims::sum(), x, dims, a.bool_(2), dtype);
}

// prod(input, dim=None, keepdim=False, *, dtype=None): one dim or all of them.
Value prod_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  if (!a[1].is_none() && !a[1].is_int()) {
    throw TypeError("prod(): argument 'dim' must be int, not " + a[1].type_name());
  }
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  return lang::reduce(b, prims::prod(), x, dims, a.bool_(2), a.optional_dtype(3));
}

// The sum of x over dims divided by the number of elements, in x's dtype (which must be floating).
TensorRef mean_of(Builder& b, const TensorRef& x, const std::vector<int64_t>& dims) {
  TensorRef s = prim_reduce(b, prims::sum(), x, dims);
  double n = static_cast<double>(reduced_numel(x, dims));
  return lang::call_t(b, prims::div(), {Value(s), Value(n)});
}

// mean(input, dim=None, keepdim=False, *, dtype=None)
Value mean_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  std::optional<DType> dtype = a.optional_dtype(3);
  DType result = dtype ? *dtype : x->dtype();
  if (!is_floating(result) && !is_complex(result)) {
    throw Error(
        std::string("mean(): could not infer output dtype. ") +
        (dtype ? "Optional dtype" : "Input dtype") +
        " must be either a floating point or complex dtype. Got: " + torch_type_name(result));
  }
  TensorRef xc = lang::convert(b, x, opmath(result));
  TensorRef m = lang::convert(b, mean_of(b, xc, dims), result);
  return maybe_keep_dims(b, m, x, dims, a.bool_(2));
}

// amax/amin(input, dim=(), keepdim=False)
template <const Symbol& (*P)()>
Value amax_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  bool all = a[1].is_none() || a.ints(1).empty();
  if (all && x->numel() == 0) throw Error(a.symbol().name + kNeedsDim);
  check_nonempty_dims(a, x, dims);
  return lang::reduce(b, P(), x, dims, a.bool_(2), std::nullopt);
}

// argmax/argmin over one dim (dim >= 0) or the flattened tensor (dim < 0), as int64.
template <const Symbol& (*P)()>
TensorRef arg_reduce(Builder& b, const TensorRef& x, std::optional<int64_t> dim, bool keepdim) {
  TensorRef xs = is_bool(x->dtype()) ? lang::convert(b, x, DType::kUInt8) : x;
  Value d = dim ? Value(*dim) : Value();
  TensorRef r = lang::call_t(b, P(), {Value(xs), d});
  if (!keepdim) return r;
  if (dim) return lang::keep_dims(b, r, x->shape(), {*dim});
  return lang::reshape(b, r, Shape(x->rank(), Dim(1)));
}

// argmax/argmin(input, dim=None, keepdim=False)
template <const Symbol& (*P)()>
Value argmax_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const std::string& name = a.symbol().name;
  if (is_bool(x->dtype())) throw Error(name + "(): does not support bool input");
  if (a[1].is_none()) {
    if (x->numel() == 0) {
      throw IndexError(name + "(): Expected reduction dim to be specified for input.numel() == 0.");
    }
    return arg_reduce<P>(b, x, std::nullopt, a.bool_(2));
  }
  int64_t dim = lang::canonical_dim(a.int_(1), x->rank());
  check_nonempty_dims(a, x, {dim});
  return arg_reduce<P>(b, x, dim, a.bool_(2));
}

// max/min(input), max/min(input, dim, keepdim=False) -> (values, indices), and the elementwise
// max/min(input, other).
template <bool kMax>
Value max_like_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  const std::string& name = a.symbol().name;
  const Symbol& reduce_prim = kMax ? prims::amax() : prims::amin();
  if (a[1].is_tensor()) {
    return b.call(ltorch_symbol(kMax ? "maximum" : "minimum"), {a[0], a[1]});
  }
  if (a[1].is_none()) {
    if (x->numel() == 0) throw Error(name + kNeedsDim);
    return lang::reduce(b, reduce_prim, x, all_dims(x->rank()), false, std::nullopt);
  }
  int64_t dim = lang::canonical_dim(a.int_(1), x->rank());
  check_nonempty_dims(a, x, {dim});
  bool keepdim = a.bool_(2);
  if (x->rank() == 0) {
    return Value::tuple({Value(lang::reduce(b, reduce_prim, x, {dim}, keepdim, std::nullopt)),
                         Value(kMax ? arg_reduce<prims::argmax>(b, x, dim, keepdim)
                                    : arg_reduce<prims::argmin>(b, x, dim, keepdim))});
  }
  // The values gathered at the indices: their gradient goes to the element the index names (the
  // first of tied extrema), as torch's max/min(dim) backward routes it (amax shares it evenly).
  TensorRef indices = kMax ? arg_reduce<prims::argmax>(b, x, dim, true)
                           : arg_reduce<prims::argmin>(b, x, dim, true);
  TensorRef values =
      lang::call_t(b, prims::take_along_axis(), {Value(x), Value(indices), Value(dim)});
  if (!keepdim) {
    Shape out;
    for (int64_t d = 0; d < x->rank(); ++d)
      if (d != dim) out.push_back(x->shape()[d]);
    values = lang::reshape(b, values, out);
    indices = lang::reshape(b, indices, out);
  }
  return Value::tuple({Value(values), Value(indices)});
}

// The arguments of var/std/var_mean/std_mean(input, dim=None, unbiased=None, keepdim=False, *,
// correction=None). As in PyTorch, a bool in dim's place is `unbiased` (x.var(False)).
struct VarArgs {
  std::vector<int64_t> dims;
  Value correction;
  bool keepdim = false;
};

VarArgs var_args(const BoundArgs& a, const TensorRef& x) {
  const std::string& name = a.symbol().name;
  if (!is_floating(x->dtype()) && !is_complex(x->dtype())) {
    throw Error("std and var only support floating point and complex dtypes");
  }
  Value dim = a[1];
  Value unbiased = a[2];
  if (dim.is_bool()) {
    if (!unbiased.is_none()) {
      throw TypeError(name + "(): argument 'dim' must be a sequence of ints, not bool");
    }
    unbiased = dim;
    dim = Value();
  }
  if (!unbiased.is_none() && !a[4].is_none()) {
    throw TypeError(name + "() received an invalid combination of arguments: both 'unbiased' and " +
                    "'correction' were given");
  }
  VarArgs r;
  if (dim.is_none()) {
    r.dims = all_dims(x->rank());
  } else {
    if (!dim.is_int() && !dim.is_seq()) {
      throw TypeError(name + "(): argument 'dim' must be a sequence of ints, not " +
                      dim.type_name());
    }
    r.dims = lang::canonical_dims(dim.as_int_list(), x->rank());
    if (r.dims.empty()) r.dims = all_dims(x->rank());
  }
  if (!a[4].is_none()) {
    if (!a[4].is_number() || a[4].is_bool()) {
      throw TypeError(name + "(): argument 'correction' must be a number, not " +
                      a[4].type_name());
    }
    r.correction = a[4];
  } else if (!unbiased.is_none()) {
    if (!unbiased.is_bool()) {
      throw TypeError(name + "(): argument 'unbiased' must be bool, not " + unbiased.type_name());
    }
    r.correction = Value(int64_t{unbiased.as_bool() ? 1 : 0});
  } else {
    r.correction = Value(int64_t{1});
  }
  r.keepdim = a.bool_(3);
  return r;
}

// s^e for s >= 0 (e in (0, 1): a norm's root, or |x|^p for an order below 1; e < 0: |x|^p for an
// order below 0) whose gradient at s == 0 is 0, torch's for a zero norm, standard deviation or
// element: the power's derivative at 0 is infinite, and through the primitives the gradient would
// reach x as 0 * inf = NaN. The power of 0 takes a branch of its own (the value 0^e: 0, or inf for
// e < 0), and the power itself reads 1 there. `sqrt`: e is 0.5, by sqrt.
TensorRef pow_zero_grad(Builder& b, const TensorRef& s, double e, bool sqrt = false) {
  TensorRef zero = lang::call_t(b, prims::eq(), {Value(s), Value(0.0)});
  TensorRef one = lang::call_t(b, prims::where(), {Value(zero), Value(1.0), Value(s)});
  TensorRef pw = sqrt ? lang::call_t(b, prims::sqrt(), {Value(one)})
                      : lang::call_t(b, prims::pow(), {Value(one), Value(e)});
  const double at_zero = e < 0 ? std::numeric_limits<double>::infinity() : 0.0;
  return lang::call_t(b, prims::where(), {Value(zero), Value(at_zero), Value(pw)});
}

// The variance (or standard deviation) of x over dims, in x's opmath dtype.
TensorRef var_of(Builder& b, const TensorRef& xc, const VarArgs& v, bool sqrt) {
  TensorRef r = b.call(prims::var(), {Value(xc), Value::ints(v.dims)},
                       {{"correction", v.correction}})
                    .as_tensor();
  if (sqrt) r = pow_zero_grad(b, r, 0.5, true);
  return r;
}

template <bool kStd>
Value var_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  VarArgs v = var_args(a, x);
  TensorRef xc = lang::convert(b, x, opmath(x->dtype()));
  TensorRef r = lang::convert(b, var_of(b, xc, v, kStd), to_real(x->dtype()));
  return maybe_keep_dims(b, r, x, v.dims, v.keepdim);
}

template <bool kStd>
Value var_mean_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  VarArgs v = var_args(a, x);
  TensorRef xc = lang::convert(b, x, opmath(x->dtype()));
  TensorRef r = lang::convert(b, var_of(b, xc, v, kStd), to_real(x->dtype()));
  TensorRef m = lang::convert(b, mean_of(b, xc, v.dims), x->dtype());
  return Value::tuple({Value(maybe_keep_dims(b, r, x, v.dims, v.keepdim)),
                       Value(maybe_keep_dims(b, m, x, v.dims, v.keepdim))});
}

// all/any(input, dim=None, keepdim=False): bool results (uint8 for uint8 inputs).
template <bool kAll>
Value all_any_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank(), /*empty_is_all=*/false);
  DType out = x->dtype() == DType::kUInt8 ? DType::kUInt8 : DType::kBool;
  TensorRef mask = nonzero_mask(b, x);
  if (dims.empty()) return lang::convert(b, mask, out);
  // all: no zero element; any: some nonzero element. Counting keeps empty reductions right.
  TensorRef counted = mask;
  if (kAll) {
    counted = lang::call_t(b, prims::bitwise_not(), {Value(mask)});
  }
  TensorRef n = count_nonzero_over(b, counted, dims);
  const Symbol& cmp = kAll ? prims::eq() : prims::gt();
  TensorRef r = lang::call_t(b, cmp, {Value(n), Value(int64_t{0})});
  r = lang::convert(b, r, out);
  return maybe_keep_dims(b, r, x, dims, a.bool_(2));
}

// logsumexp(input, dim, keepdim=False): log(sum(exp(x - m))) + m with m the (finite) maximum.
Value logsumexp_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  lang::PromotionResult p = lang::elementwise_promotion({a[0]}, Promotion::kIntToFloat);
  TensorRef xc = lang::convert(b, x, p.compute);
  TensorRef r;
  if (reduced_numel(x, dims) == 0) {
    TensorRef e = lang::call_t(b, prims::exp(), {Value(xc)});
    r = lang::call_t(b, prims::log(), {Value(prim_reduce(b, prims::sum(), e, dims))});
  } else {
    TensorRef m = prim_reduce(b, prims::amax(), xc, dims);
    TensorRef finite = lang::call_t(b, prims::isfinite(), {Value(m)});
    m = lang::call_t(b, prims::where(), {Value(finite), Value(m), Value(0.0)});
    TensorRef mb = lang::expand_to(b, lang::keep_dims(b, m, x->shape(), dims), x->shape());
    TensorRef d = lang::call_t(b, prims::sub(), {Value(xc), Value(mb)});
    TensorRef e = lang::call_t(b, prims::exp(), {Value(d)});
    TensorRef l = lang::call_t(b, prims::log(), {Value(prim_reduce(b, prims::sum(), e, dims))});
    r = lang::call_t(b, prims::add(), {Value(l), Value(m)});
  }
  r = lang::convert(b, r, p.result);
  return maybe_keep_dims(b, r, x, dims, a.bool_(2));
}

// The vector p-norm of x over dims (linalg.vector_norm's semantics); `name` prefixes errors.
TensorRef vector_norm(Builder& b, const std::string& name, const TensorRef& x, double p,
                      const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype) {
  if (!is_floating(x->dtype()) && !is_complex(x->dtype())) {
    throw Error("linalg.vector_norm: Expected a floating point or complex tensor as input. Got " +
                std::string(torch_type_name(x->dtype())));
  }
  if (dtype && !is_floating(*dtype) && !is_complex(*dtype)) {
    throw Error(name + ": dtype should be floating point or complex. Got " +
                torch_type_name(*dtype));
  }
  DType in = dtype ? *dtype : x->dtype();
  DType result = to_real(in);
  TensorRef xc = lang::convert(b, x, opmath(in));
  TensorRef r;
  if (std::isinf(p)) {
    if (reduced_numel(x, dims) == 0) {
      throw Error(name +
                  " cannot compute the inf norm on an empty tensor because the operation does not "
                  "have an identity");
    }
    TensorRef abs = lang::call_t(b, prims::abs(), {Value(xc)});
    r = prim_reduce(b, p > 0 ? prims::amax() : prims::amin(), abs, dims);
  } else if (p == 0) {
    TensorRef nz = lang::convert(b, nonzero_mask(b, xc), opmath(result));
    r = prim_reduce(b, prims::sum(), nz, dims);
  } else {
    TensorRef abs = lang::call_t(b, prims::abs(), {Value(xc)});
    if (p == 1) {
      r = prim_reduce(b, prims::sum(), abs, dims);
    } else {
      TensorRef pw;
      if (p == 2) {
        pw = lang::call_t(b, prims::mul(), {Value(abs), Value(abs)});
      } else if (p < 1) {
        // A zero element's gradient 0, as the root's below. Below order 0 its power is inf and
        // the norm 0: torch's gradient is then 0 for every element, which the root's vanishing
        // derivative at inf gives the others.
        pw = pow_zero_grad(b, abs, p);
      } else {
        pw = lang::call_t(b, prims::pow(), {Value(abs), Value(p)});
      }
      TensorRef sum = prim_reduce(b, prims::sum(), pw, dims);
      // Below order 0 the root of a zero sum (every element infinite) is inf, its gradient NaN as
      // eager's: a plain power.
      r = p < 0 ? lang::call_t(b, prims::pow(), {Value(sum), Value(1.0 / p)})
                : pow_zero_grad(b, sum, 1.0 / p, p == 2);
    }
  }
  r = lang::convert(b, r, result);
  return keepdim ? lang::keep_dims(b, r, x->shape(), dims) : r;
}

double norm_order(const BoundArgs& a, size_t i) {
  const Value& ord = a[i];
  if (ord.is_none()) return 2.0;
  if (!ord.is_number() || ord.is_bool()) {
    throw TypeError(a.symbol().name + "(): argument '" + a.symbol().signature.params()[i].name +
                    "' must be a number, not " + ord.type_name());
  }
  return ord.as_double();
}

// linalg.vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None)
Value vector_norm_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 2, x->rank());
  return vector_norm(b, "linalg.vector_norm", x, norm_order(a, 1), dims, a.bool_(3),
                     a.optional_dtype(4));
}

// F.normalize(input, p=2.0, dim=1, eps=1e-12, out=None): input / max(vector_norm(input, p, dim,
// keepdim=True), eps), the clamp's gradient passing where the norm is at least eps (clamp_min's).
Value normalize_meta(Builder& b, const BoundArgs& a) {
  if (!a[4].is_none()) {
    throw NotImplementedError(
        "thunder does not support torch.nn.functional.normalize writing into an existing tensor "
        "(out=) yet; use its out-of-place form");
  }
  const TensorRef& x = a.tensor(0);
  const int64_t dim = lang::canonical_dim(a.int_(2), x->rank());
  TensorRef norm =
      vector_norm(b, "linalg.vector_norm", x, norm_order(a, 1), {dim}, true, std::nullopt);
  const double eps = a.number(3);
  TensorRef small = lang::call_t(b, prims::lt(), {Value(norm), Value(eps)});
  TensorRef denom = lang::call_t(b, prims::where(), {Value(small), Value(eps), Value(norm)});
  denom = lang::expand_to(b, denom, x->shape());
  return lang::call_t(b, prims::div(), {Value(x), Value(denom)});
}

// F.pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False): eager's norm(x1 - x2 + eps, p) over
// the last dim of the larger rank (a 0-d pair: the whole difference).
Value pairwise_distance_meta(Builder& b, const BoundArgs& a) {
  const int64_t rank = std::max(a.tensor(0)->rank(), a.tensor(1)->rank());
  Value d = b.call_bound(ltorch_symbol("sub"), {a[0], a[1], Value(int64_t{1})});
  d = b.call_bound(ltorch_symbol("add"), {d, Value(a.number(3)), Value(int64_t{1})});
  std::vector<int64_t> dims;
  if (rank > 0) dims.push_back(rank - 1);
  return vector_norm(b, "linalg.vector_norm", d.as_tensor(), norm_order(a, 2), dims, a.bool_(4),
                     std::nullopt);
}

// norm(input, p='fro', dim=None, keepdim=False, out=None, dtype=None): vector norms, and the
// Frobenius norm (the 2-norm over at most two dims). Tensor.norm has no `out`: its fifth positional
// is the dtype.
Value norm_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::optional<DType> dtype = a.optional_dtype(5);
  if (a[4].is_dtype() && !dtype) {
    dtype = a[4].as_dtype();
  } else if (!a[4].is_none()) {
    throw NotImplementedError("norm(): out= is not supported");
  }
  std::vector<int64_t> dims = reduction_dims(a, 2, x->rank());
  double p = 2.0;
  if (a[1].is_string()) {
    const std::string& s = a[1].as_string();
    if (s == "nuc") throw NotImplementedError("norm(): the nuclear norm ('nuc') is not supported");
    if (s != "fro") throw Error("norm(): invalid norm type '" + s + "'");
    if (!a[2].is_none() && a[2].as_int_list().size() > 2) {
      throw Error("norm(): the Frobenius norm takes at most two dims, got " +
                  std::to_string(a[2].as_int_list().size()));
    }
  } else {
    p = norm_order(a, 1);
  }
  return vector_norm(b, "linalg.vector_norm", x, p, dims, a.bool_(3), dtype);
}

// count_nonzero(input, dim=None)
Value count_nonzero_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  std::vector<int64_t> dims = reduction_dims(a, 1, x->rank());
  return count_nonzero_over(b, nonzero_mask(b, x), dims);
}

// cumsum(input, dim, *, dtype=None): no scan primitive, so no decomposition.
Value cumsum_meta(Builder& b, const BoundArgs& a) {
  const TensorRef& x = a.tensor(0);
  lang::canonical_dim(a.int_(1), x->rank());
  std::optional<DType> dtype = a.optional_dtype(2);
  DType out = dtype ? *dtype
              : (is_integer(x->dtype()) || is_bool(x->dtype())) ? DType::kInt64
                                                                  : x->dtype();
  bool rg = x->requires_grad() && (is_floating(out) || is_complex(out));
  return b.new_tensor(x->shape(), out, x->device(), rg);
}

}  // namespace

void register_reduction_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"sum",
       "input, dim=None, keepdim=False, *, dtype=None",
       sum_meta,
       {"torch.sum", "torch.Tensor.sum"},
       {},
       kTagReduction},
      {"mean",
       "input, dim=None, keepdim=False, *, dtype=None",
       mean_meta,
       {"torch.mean", "torch.Tensor.mean"},
       {},
       kTagReduction},
      {"prod",
       "input, dim=None, keepdim=False, *, dtype=None",
       prod_meta,
       {"torch.prod", "torch.Tensor.prod"},
       "thunder.executors.torchex.ltorch_prod",
       kTagReduction},
      {"amax",
       "input, dim=(), keepdim=False",
       amax_like_meta<prims::amax>,
       {"torch.amax", "torch.Tensor.amax"},
       {},
       kTagReduction},
      {"amin",
       "input, dim=(), keepdim=False",
       amax_like_meta<prims::amin>,
       {"torch.amin", "torch.Tensor.amin"},
       {},
       kTagReduction},
      {"max",
       "input, dim=None, keepdim=False",
       max_like_meta<true>,
       {"torch.max", "torch.Tensor.max"},
       "thunder.executors.torchex.ltorch_max",
       kTagReduction},
      {"min",
       "input, dim=None, keepdim=False",
       max_like_meta<false>,
       {"torch.min", "torch.Tensor.min"},
       "thunder.executors.torchex.ltorch_min",
       kTagReduction},
      {"argmax",
       "input, dim=None, keepdim=False",
       argmax_like_meta<prims::argmax>,
       {"torch.argmax", "torch.Tensor.argmax"},
       {},
       kTagReduction},
      {"argmin",
       "input, dim=None, keepdim=False",
       argmax_like_meta<prims::argmin>,
       {"torch.argmin", "torch.Tensor.argmin"},
       {},
       kTagReduction},
      {"var",
       "input, dim=None, unbiased=None, keepdim=False, *, correction=None",
       var_meta<false>,
       {"torch.var", "torch.Tensor.var"},
       "thunder.executors.torchex.ltorch_var",
       kTagReduction},
      {"std",
       "input, dim=None, unbiased=None, keepdim=False, *, correction=None",
       var_meta<true>,
       {"torch.std", "torch.Tensor.std"},
       "thunder.executors.torchex.ltorch_std",
       kTagReduction},
      {"var_mean",
       "input, dim=None, unbiased=None, keepdim=False, *, correction=None",
       var_mean_meta<false>,
       {"torch.var_mean"},
       "thunder.executors.torchex.ltorch_var_mean",
       kTagReduction},
      {"std_mean",
       "input, dim=None, unbiased=None, keepdim=False, *, correction=None",
       var_mean_meta<true>,
       {"torch.std_mean"},
       "thunder.executors.torchex.ltorch_std_mean",
       kTagReduction},
      {"all",
       "input, dim=None, keepdim=False",
       all_any_meta<true>,
       {"torch.all", "torch.Tensor.all"},
       {},
       kTagReduction},
      {"any",
       "input, dim=None, keepdim=False",
       all_any_meta<false>,
       {"torch.any", "torch.Tensor.any"},
       {},
       kTagReduction},
      {"logsumexp",
       "input, dim, keepdim=False",
       logsumexp_meta,
       {"torch.logsumexp", "torch.Tensor.logsumexp", "torch.special.logsumexp"},
       "torch.logsumexp",
       kTagReduction},
      {"normalize",
       "input, p=2.0, dim=1, eps=1e-12, out=None",
       normalize_meta,
       {"torch.nn.functional.normalize"}},
      {"pairwise_distance",
       "x1, x2, p=2.0, eps=1e-06, keepdim=False",
       pairwise_distance_meta,
       {"torch.nn.functional.pairwise_distance", "torch.pairwise_distance"}},
      {"vector_norm",
       "x, ord=2, dim=None, keepdim=False, *, dtype=None",
       vector_norm_meta,
       {"torch.linalg.vector_norm"},
       {},
       kTagReduction},
      {"norm",
       "input, p='fro', dim=None, keepdim=False, out=None, dtype=None",
       norm_meta,
       {"torch.norm", "torch.Tensor.norm"},
       {},
       kTagReduction},
      {"count_nonzero",
       "input, dim=None",
       count_nonzero_meta,
       {"torch.count_nonzero", "torch.Tensor.count_nonzero"},
       {},
       kTagReduction},
      {"cumsum",
       "input, dim, *, dtype=None",
       cumsum_meta,
       {"torch.cumsum", "torch.Tensor.cumsum"},
       {},
       kTagNone},
  };
  register_ops(table, defs);
}

}  // namespace thunder
