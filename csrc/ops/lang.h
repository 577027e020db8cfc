// The core language for writing decompositions: PyTorch's type promotion and broadcasting, dimension
// canonicalisation, and helpers that call primitives with the conversions and broadcasts they need.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ir/builder.h"
#include "ir/symbol.h"

namespace thunder::lang {

// How an elementwise op maps its operands' promoted dtype to a computation and result dtype
// (torch._prims_common.ELEMENTWISE_TYPE_PROMOTION_KIND).
enum class Promotion {
  kDefault,         // result = promoted type
  kIntToFloat,      // integer/bool promote to the default float (sqrt, exp, true division ...)
  kAlwaysBool,      // comparisons
  kComplexToFloat,  // abs: complex -> real
  kBoolToLong,      // bool -> int64 (sum)
  kNoOpmath,        // compute in the result type even for float16/bfloat16
};

struct PromotionResult {
  DType compute;  // float16/bfloat16 compute in float32 ("opmath")
  DType result;
};

// torch.result_type over tensors and Python numbers (dimensioned tensors, zero-dim tensors and numbers
// form three priority tiers). `default_float` is torch.get_default_dtype().
DType result_type(const std::vector<Value>& operands, DType default_float = default_float_dtype());
PromotionResult elementwise_promotion(const std::vector<Value>& operands, Promotion kind,
                                      DType default_float = default_float_dtype());

// Broadcast shapes as PyTorch does; ValueError naming both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// For error messages in PyTorch's words: "[2, 3]".
std::string ints_str(const std::vector<int64_t>& v);
std::vector<int64_t> dims_of(const Shape& s);
// Wraps a possibly negative dim into [0, rank); IndexError when out of range. A 0-d tensor accepts
// dims -1 and 0 (as PyTorch does).
int64_t canonical_dim(int64_t dim, int64_t rank);
std::vector<int64_t> canonical_dims(const std::vector<int64_t>& dims, int64_t rank);

// The dtype of a value: a tensor's dtype, or the dtype a Python number takes alone.
DType value_dtype(const Value& v, DType default_float = default_float_dtype());
bool requires_grad(const BoundArgs& args);

// Calls a primitive (or any symbol) through the builder.
Value call(Builder& b, const Symbol& sym, std::vector<Value> args);
TensorRef call_t(Builder& b, const Symbol& sym, std::vector<Value> args);

// Dropout whose mask fused kernels draw: x * (1 / (1 - p)) where uniform_philox(state) < 1 - p, 0
// elsewhere, in x's dtype (torch-level operations). `state` is prims.philox_state's [seed, offset];
// the same state gives the same mask, which is how dropout's backward draws it again.
Value philox_dropout(Builder& b, const Value& x, const Value& state, double p);

// Shape and dtype helpers that record nothing when nothing needs doing.
TensorRef convert(Builder& b, const TensorRef& t, DType dtype);
Value convert_value(Builder& b, const Value& v, DType dtype);  // numbers convert in place
// An operand of an elementwise function converted to its compute dtype as eager converts it: an
// integer or bool tensor meets a float16/bfloat16 result in that dtype first (2049 becomes 2048,
// a large integer inf), then widens to the compute dtype.
Value to_compute(Builder& b, const Value& v, const PromotionResult& p);
TensorRef expand_to(Builder& b, const TensorRef& t, const Shape& shape);
TensorRef reshape(Builder& b, const TensorRef& t, const Shape& shape);
// t[..., start:stop:step, ...] along `dim`, bounds already normalised. Always records a slice.
TensorRef slice_dim(Builder& b, const TensorRef& t, int64_t dim, int64_t start, int64_t stop,
                    int64_t step = 1);
TensorRef transpose(Builder& b, const TensorRef& t, const std::vector<int64_t>& perm);
// Inserts size-1 dims at `dims` (of the output) by broadcast_in_dim.
TensorRef unsqueeze(Builder& b, const TensorRef& t, const std::vector<int64_t>& dims);
TensorRef full(Builder& b, const Shape& shape, const Value& fill, Device device, DType dtype);
// A tensor of `shape` drawn uniformly from [lo, hi) (prims.uniform: torch's default generator).
TensorRef uniform(Builder& b, const Shape& shape, double lo, double hi, Device device, DType dtype);

// Elementwise ops with promotion and broadcasting, as PyTorch's functions do them.
Value unary(Builder& b, const Symbol& prim, const Value& a, Promotion kind);
Value binary(Builder& b, const Symbol& prim, const Value& a, const Value& c, Promotion kind);

// Reductions with keepdim and dtype handling. dims empty (or None upstream) = all dims.
TensorRef reduce(Builder& b, const Symbol& prim, const TensorRef& a,
                 const std::vector<int64_t>& dims, bool keepdim, std::optional<DType> dtype);
// Restores reduced dims as size 1 (keepdim) after a primitive reduction.
TensorRef keep_dims(Builder& b, const TensorRef& reduced, const Shape& original,
                    const std::vector<int64_t>& dims);

}  // namespace thunder::lang
