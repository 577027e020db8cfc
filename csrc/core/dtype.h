// Tensor element types, interned as a small enum, and PyTorch's type-promotion lattice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace thunder {

// X(enum, python name, short name, bytes, kind)
#define THUNDER_FOR_EACH_DTYPE(X)                   \
  X(kBool, "bool", "b8", 1, kBool)                  \
  X(kUInt8, "uint8", "u8", 1, kInt)                 \
  X(kInt8, "int8", "i8", 1, kInt)                   \
  X(kInt16, "int16", "i16", 2, kInt)                \
  X(kInt32, "int32", "i32", 4, kInt)                \
  X(kInt64, "int64", "i64", 8, kInt)                \
  X(kFloat16, "float16", "f16", 2, kFloat)          \
  X(kBFloat16, "bfloat16", "bf16", 2, kFloat)       \
  X(kFloat32, "float32", "f32", 4, kFloat)          \
  X(kFloat64, "float64", "f64", 8, kFloat)          \
  X(kComplex64, "complex64", "c64", 8, kComplex)    \
  X(kComplex128, "complex128", "c128", 16, kComplex)

enum class DType : uint8_t {
#define THUNDER_DTYPE_ENUM(e, py, sh, n, k) e,
  THUNDER_FOR_EACH_DTYPE(THUNDER_DTYPE_ENUM)
#undef THUNDER_DTYPE_ENUM
};

inline constexpr int kNumDTypes = 12;

// Categories in promotion order: bool < integer < floating < complex.
enum class DTypeKind : uint8_t { kBool = 0, kInt = 1, kFloat = 2, kComplex = 3 };

const char* dtype_name(DType d);        // "float32"
const char* dtype_short_name(DType d);  // "f32"
int dtype_size(DType d);
DTypeKind dtype_kind(DType d);
std::optional<DType> dtype_from_name(std::string_view name);

inline bool is_bool(DType d) { return d == DType::kBool; }
inline bool is_integer(DType d) { return dtype_kind(d) == DTypeKind::kInt; }
inline bool is_floating(DType d) { return dtype_kind(d) == DTypeKind::kFloat; }
inline bool is_complex(DType d) { return dtype_kind(d) == DTypeKind::kComplex; }
inline bool is_low_precision(DType d) { return d == DType::kFloat16 || d == DType::kBFloat16; }

// torch.promote_types.
DType promote_types(DType a, DType b);

// torch.get_default_dtype() as the code being traced sees it: the dtype of Python floats in type
// promotion and of creation ops without a dtype. Set per thread when tracing starts (float32
// before).
DType default_float_dtype();
void set_default_float_dtype(DType d);
// The real dtype of a complex one (complex64 -> float32); identity otherwise.
DType to_real(DType d);
// The complex dtype holding a floating one (float64 -> complex128).
DType to_complex(DType d);

}  // namespace thunder
