// Tensor element types and the promotion lattice (mirrors c10's promoteTypes table).
#include "core/dtype.h"

#include "core/error.h"

namespace thunder {

namespace {

struct DTypeInfo {
  const char* name;
  const char* short_name;
  int size;
  DTypeKind kind;
};

constexpr DTypeInfo kInfo[] = {
#define THUNDER_DTYPE_INFO(e, py, sh, n, k) {py, sh, n, DTypeKind::k},
    THUNDER_FOR_EACH_DTYPE(THUNDER_DTYPE_INFO)
#undef THUNDER_DTYPE_INFO
};

int int_rank(DType d) {
  switch (d) {
    case DType::kInt8: return 1;
    case DType::kInt16: return 2;
    case DType::kInt32: return 3;
    case DType::kInt64: return 4;
    default: return 0;
  }
}

}  // namespace

const char* dtype_name(DType d) { return kInfo[static_cast<int>(d)].name; }
const char* dtype_short_name(DType d) { return kInfo[static_cast<int>(d)].short_name; }
int dtype_size(DType d) { return kInfo[static_cast<int>(d)].size; }
DTypeKind dtype_kind(DType d) { return kInfo[static_cast<int>(d)].kind; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (name == kInfo[i].name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

DType to_real(DType d) {
  if (d == DType::kComplex64) return DType::kFloat32;
  if (d == DType::kComplex128) return DType::kFloat64;
  return d;
}

DType to_complex(DType d) {
  switch (d) {
    case DType::kFloat64: return DType::kComplex128;
    case DType::kComplex64:
    case DType::kComplex128: return d;
    default: return DType::kComplex64;
  }
}

namespace {
thread_local DType g_default_float = DType::kFloat32;
}  // namespace

DType default_float_dtype() { return g_default_float; }
void set_default_float_dtype(DType d) { g_default_float = d; }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::kBool) return b;
  if (b == DType::kBool) return a;
  DTypeKind ka = dtype_kind(a), kb = dtype_kind(b);
  if (ka == DTypeKind::kComplex || kb == DTypeKind::kComplex) {
    // The complex type wide enough for both value types.
    DType ra = to_real(a), rb = to_real(b);
    bool wide = ra == DType::kFloat64 || rb == DType::kFloat64 || a == DType::kComplex128 ||
                b == DType::kComplex128;
    return wide ? DType::kComplex128 : DType::kComplex64;
  }
  if (ka == DTypeKind::kFloat && kb == DTypeKind::kFloat) {
    if (a == DType::kFloat64 || b == DType::kFloat64) return DType::kFloat64;
    return DType::kFloat32;  // f16/bf16 mixed, or either with f32
  }
  if (ka == DTypeKind::kFloat) return a;
  if (kb == DTypeKind::kFloat) return b;
  // Both integers.
  if (a == DType::kUInt8 || b == DType::kUInt8) {
    DType other = a == DType::kUInt8 ? b : a;
    return other == DType::kInt8 ? DType::kInt16 : other;
  }
  return int_rank(a) >= int_rank(b) ? a : b;
}

}  // namespace thunder
