// Expressions shared by the CPU and CUDA code generators.
#include "fuser/codegen_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <unordered_map>

#include "core/error.h"

namespace thunder::fuser {

bool float_sum(const KNode& n) { return n.op == "sum" && compute_type(n.dtype) == "float"; }

std::string compute_type(DType d) {
  switch (d) {
    case DType::kBool: return "bool";
    case DType::kUInt8: return "uint8_t";
    case DType::kInt8: return "int8_t";
    case DType::kInt16: return "int16_t";
    case DType::kInt32: return "int32_t";
    case DType::kInt64: return "int64_t";
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat32: return "float";
    case DType::kFloat64: return "double";
    default: throw Error(std::string("fuser: no compute type for ") + dtype_name(d));
  }
}

std::string storage_type(DType d) {
  if (d == DType::kFloat16 || d == DType::kBFloat16) return "unsigned short";
  return compute_type(d);
}

std::string load_expr(DType d, const std::string& e) {
  if (d == DType::kBFloat16) return "th_ld_bf16(" + e + ")";
  if (d == DType::kFloat16) return "th_ld_f16(" + e + ")";
  return e;
}

std::string store_expr(DType d, const std::string& v) {
  if (d == DType::kBFloat16) return "th_st_bf16(" + v + ")";
  if (d == DType::kFloat16) return "th_st_f16(" + v + ")";
  return "(" + compute_type(d) + ")(" + v + ")";
}

namespace {

std::string float_literal(double v, const std::string& ct) {
  if (std::isnan(v)) return "((" + ct + ")th_nan())";
  if (std::isinf(v)) return std::string("((") + ct + ")" + (v < 0 ? "-" : "") + "th_inf())";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%a", v);
  return "((" + ct + ")" + buf + ")";
}

bool is_fp(DType d) { return is_floating(d); }

}  // namespace

std::string const_expr(const KNode& n, Backend be) {
  std::string ct = compute_type(n.dtype);
  if (n.dtype == DType::kBool) return (n.is_float_const ? n.fvalue != 0 : n.ivalue != 0) ? "true" : "false";
  if (is_fp(n.dtype)) return float_literal(n.number(), ct);
  if (n.is_float_const) return "((" + ct + ")" + float_literal(n.fvalue, "double") + ")";
  return "((" + ct + ")" + std::to_string(n.ivalue) + "LL)";
}

std::string fill_expr(const KNode& load, Backend be) {
  KNode c = load;
  c.op = "const";
  const std::string v = const_expr(c, be);
  // The value the load's dtype holds (a bf16 tensor padded with 0.1 holds bf16(0.1)).
  if (load.dtype == DType::kBFloat16) return "th_round_bf16(" + v + ")";
  if (load.dtype == DType::kFloat16) return "th_round_f16(" + v + ")";
  return v;
}

std::string bounds_cond(const Access& a, const std::function<std::string(int)>& index,
                        const std::function<std::string(int64_t)>& lit) {
  if (a.never) return "false";
  std::string cond;
  for (const AxisMask& m : a.masks) {
    const std::string p = "(" + lit(m.start) + " + " + lit(m.step) + " * " + index(m.axis) + ")";
    cond += (cond.empty() ? "(" : " && (") + p + " >= 0 && " + p + " < " + lit(m.size) + ")";
  }
  return cond;
}

std::string iota_expr(const KNode& n, const std::string& idx) {
  return "((" + compute_type(n.dtype) + ")(" + std::to_string(n.ivalue) + "LL + " +
         std::to_string(n.step) + "LL * (long long)(" + idx + ")))";
}

std::string rand_expr(const std::string& seed, const std::string& offset, const std::string& idx) {
  return "th_rand(" + seed + ", " + offset + ", (int64_t)(" + idx + "))";
}

std::string op_expr(const KNode& n, const std::vector<std::string>& a,
                    const std::vector<DType>& dt) {
  const std::string& op = n.op;
  const std::string ct = compute_type(n.dtype);
  auto cast = [&](const std::string& e) { return "((" + ct + ")(" + e + "))"; };
  if (op == "convert_element_type") {
    if (n.dtype == DType::kBool) return "(" + a[0] + " != 0)";
    // A conversion to bf16/fp16 rounds, as it does in eager (decompositions convert only where
    // eager's kernels round), on both backends: registers hold fp32, so a bare cast would keep
    // every bit.
    const DType from = dt.empty() ? n.dtype : dt[0];
    if (from != n.dtype) {
      if (n.dtype == DType::kBFloat16) return "th_round_bf16((float)(" + a[0] + "))";
      if (n.dtype == DType::kFloat16) return "th_round_f16((float)(" + a[0] + "))";
    }
    return cast(a[0]);
  }
  if (op == "where") return "(" + a[0] + " ? " + a[1] + " : " + a[2] + ")";
  const DType in = dt.empty() ? n.dtype : dt[0];
  const bool fp = is_fp(in);
  const bool dbl = in == DType::kFloat64;
  auto fn = [&](const char* name) {
    std::string f = name;
    if (!dbl) f += "f";
    std::string s = f + "(";
    for (size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + a[i];
    return s + ")";
  };
  static const std::unordered_map<std::string, const char*> kMath = {
      {"exp", "exp"},     {"exp2", "exp2"},   {"expm1", "expm1"}, {"log", "log"},
      {"log1p", "log1p"}, {"log2", "log2"},   {"log10", "log10"}, {"sqrt", "sqrt"},
      {"sin", "sin"},     {"cos", "cos"},     {"tan", "tan"},     {"tanh", "tanh"},
      {"sinh", "sinh"},   {"cosh", "cosh"},   {"asin", "asin"},   {"acos", "acos"},
      {"atan", "atan"},   {"asinh", "asinh"}, {"acosh", "acosh"}, {"atanh", "atanh"},
      {"erf", "erf"},     {"erfc", "erfc"},   {"lgamma", "lgamma"}, {"fmod", "fmod"},
      {"atan2", "atan2"}, {"floor", "floor"}, {"ceil", "ceil"},   {"trunc", "trunc"},
      {"round", "nearbyint"}};
  if (fp) {
    auto it = kMath.find(op);
    if (it != kMath.end()) return fn(it->second);
  }
  if (op == "abs") return fp ? fn("fabs") : cast("(" + a[0] + " < 0 ? -" + a[0] + " : " + a[0] + ")");
  if (op == "neg") return cast("-" + a[0]);
  if (op == "rsqrt") return "(" + std::string(dbl ? "1.0" : "1.0f") + " / " + fn("sqrt") + ")";
  if (op == "reciprocal") return "(" + std::string(dbl ? "1.0" : "1.0f") + " / " + a[0] + ")";
  // Eager's sign: (0 < x) - (x < 0), so NaN gives 0 (CPU and CUDA alike).
  if (op == "sign") return "((" + ct + ")((" + a[0] + " > 0) - (" + a[0] + " < 0)))";
  if (op == "floor" || op == "ceil" || op == "trunc" || op == "round" || op == "real") return a[0];
  if (op == "bitwise_not") return in == DType::kBool ? "(!" + a[0] + ")" : cast("~" + a[0]);
  if (op == "isfinite") return fp ? "(" + a[0] + " - " + a[0] + " == " + a[0] + " - " + a[0] + ")" : "true";
  if (op == "signbit") return fp ? "(" + std::string(dbl ? "th_signbit_d(" : "th_signbit(") + a[0] + "))"
                                 : "(" + a[0] + " < 0)";
  if (op == "add") return cast(a[0] + " + " + a[1]);
  if (op == "sub") return cast(a[0] + " - " + a[1]);
  if (op == "mul") return cast(a[0] + " * " + a[1]);
  if (op == "div") return cast(a[0] + " / " + a[1]);
  if (op == "remainder") return "th_rem(" + a[0] + ", " + a[1] + ")";
  if (op == "pow") return "th_pow(" + a[0] + ", " + a[1] + ")";
  if (op == "maximum") return fp ? "th_max(" + a[0] + ", " + a[1] + ")"
                                 : cast("(" + a[0] + " > " + a[1] + " ? " + a[0] + " : " + a[1] + ")");
  if (op == "minimum") return fp ? "th_min(" + a[0] + ", " + a[1] + ")"
                                 : cast("(" + a[0] + " < " + a[1] + " ? " + a[0] + " : " + a[1] + ")");
  if (op == "bitwise_and") return cast(a[0] + " & " + a[1]);
  if (op == "bitwise_or") return cast(a[0] + " | " + a[1]);
  if (op == "bitwise_xor") return cast(a[0] + " ^ " + a[1]);
  static const std::unordered_map<std::string, const char*> kCmp = {
      {"eq", "=="}, {"ne", "!="}, {"lt", "<"}, {"le", "<="}, {"gt", ">"}, {"ge", ">="}};
  auto c = kCmp.find(op);
  if (c != kCmp.end()) return "(" + a[0] + " " + c->second + " " + a[1] + ")";
  throw Error("fuser: no expression for " + op);
}

bool exp_of_row_excess(const KernelDef& k, int id) {
  const KNode& n = k.nodes[id];
  if (n.op != "exp" || compute_type(n.dtype) != "float") return false;
  const KNode& d = k.nodes[n.args[0]];
  if (d.op != "sub") return false;
  const KNode& m = k.nodes[d.args[1]];
  return m.op == "amax" && m.args[0] == d.args[0];
}

bool erf_rounded_to_half(const KernelDef& k, int id, bool fp16_too) {
  const KNode& n = k.nodes[id];
  if (n.op != "erf" || compute_type(n.dtype) != "float") return false;
  auto half = [&](DType d) { return d == DType::kBFloat16 || (fp16_too && d == DType::kFloat16); };
  std::vector<std::vector<int>> users(k.nodes.size());
  for (size_t u = 0; u < k.nodes.size(); ++u) {
    for (int a : k.nodes[u].args) users[a].push_back(static_cast<int>(u));
  }
  // -1 unknown, 0 no, 1 yes; nodes are in topological order, users come later.
  std::vector<int> memo(k.nodes.size(), -1);
  std::function<bool(int)> rounded = [&](int v) {
    if (memo[v] >= 0) return memo[v] == 1;
    bool used = false, all = true;
    for (size_t o = 0; o < k.output_nodes.size(); ++o) {
      if (k.output_nodes[o] != v) continue;
      used = true;
      all = all && half(k.outputs[o]->dtype());
    }
    for (int u : users[v]) {
      used = true;
      const KNode& w = k.nodes[u];
      if (w.op == "convert_element_type" && half(w.dtype)) continue;
      bool arithmetic = w.op == "add" || w.op == "sub" || w.op == "mul" || w.op == "div" ||
                        w.op == "neg" || (w.op == "where" && w.args[0] != v) ||
                        (w.op == "convert_element_type" && compute_type(w.dtype) == "float");
      all = all && arithmetic && compute_type(w.dtype) == "float" && rounded(u);
    }
    memo[v] = used && all ? 1 : 0;
    return memo[v] == 1;
  };
  return rounded(id);
}

bool sum_of_single_use_product(const KernelDef& k, int reduction) {
  const KNode& r = k.nodes[reduction];
  if (r.op != "sum" || r.dtype != DType::kFloat32 || r.args.size() != 1) return false;
  const int id = r.args[0];
  const KNode& m = k.nodes[id];
  if (m.op != "mul" || m.dtype != DType::kFloat32 || m.args.size() != 2) return false;
  if (compute_type(k.nodes[m.args[0]].dtype) != "float" ||
      compute_type(k.nodes[m.args[1]].dtype) != "float") {
    return false;
  }
  // Read by the sum alone: no output, and no other operand slot of any node.
  int reads = 0;
  for (const KNode& w : k.nodes)
    reads += static_cast<int>(std::count(w.args.begin(), w.args.end(), id));
  for (int o : k.output_nodes) reads += o == id ? 1 : 0;
  return reads == 1;
}

std::string fma_expr(Backend be, const std::string& x, const std::string& y,
                     const std::string& acc) {
  return std::string(be == Backend::kCuda ? "__fmaf_rn(" : "th_fma(") + x + ", " + y + ", " + acc +
         ")";
}

bool erf_offset_by_unit(const KernelDef& k, int id) {
  bool used = false;
  for (int o : k.output_nodes) {
    if (o == id) return false;
  }
  for (const KNode& w : k.nodes) {
    for (size_t i = 0; i < w.args.size(); ++i) {
      if (w.args[i] != id) continue;
      used = true;
      if ((w.op != "add" && w.op != "sub") || w.args.size() != 2 || w.args[0] == w.args[1])
        return false;
      const KNode& c = k.nodes[w.args[1 - i]];
      if (c.op != "const" || !(std::fabs(c.number()) >= 1.0)) return false;
    }
  }
  return used;
}

std::string reduce_identity(const std::string& op, DType d, Backend be) {
  std::string ct = compute_type(d);
  bool fp = is_fp(d);
  if (op == "sum") return "((" + ct + ")0)";
  if (op == "prod") return "((" + ct + ")1)";
  std::string lim = "th_limits<" + ct + ">";
  if (op == "amax") return fp ? "((" + ct + ")-th_inf())" : lim + "::lowest()";
  if (op == "amin") return fp ? "((" + ct + ")th_inf())" : lim + "::highest()";
  throw Error("fuser: no identity for " + op);
}

std::string reduce_combine(const std::string& op, DType d, const std::string& acc,
                           const std::string& v) {
  bool fp = is_fp(d);
  if (op == "sum") return acc + " + " + v;
  if (op == "prod") return acc + " * " + v;
  if (op == "amax") return fp ? "th_max(" + acc + ", " + v + ")" : "(" + acc + " > " + v + " ? " + acc + " : " + v + ")";
  if (op == "amin") return fp ? "th_min(" + acc + ", " + v + ")" : "(" + acc + " < " + v + " ? " + acc + " : " + v + ")";
  throw Error("fuser: no combiner for " + op);
}

std::string prelude(Backend be) {
  std::string common = R"(
template <typename T> struct th_limits;
template <> struct th_limits<int64_t> { TH_DEV static int64_t lowest() { return (int64_t)(-9223372036854775807LL - 1); } TH_DEV static int64_t highest() { return 9223372036854775807LL; } };
template <> struct th_limits<int32_t> { TH_DEV static int32_t lowest() { return (int32_t)(-2147483647 - 1); } TH_DEV static int32_t highest() { return 2147483647; } };
template <> struct th_limits<int16_t> { TH_DEV static int16_t lowest() { return -32768; } TH_DEV static int16_t highest() { return 32767; } };
template <> struct th_limits<int8_t> { TH_DEV static int8_t lowest() { return -128; } TH_DEV static int8_t highest() { return 127; } };
template <> struct th_limits<uint8_t> { TH_DEV static uint8_t lowest() { return 0; } TH_DEV static uint8_t highest() { return 255; } };
// NaN-propagating maximum and minimum (one instruction from sm_80 on).
TH_INLINE float th_max(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r; asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r;
#else
  return (a != a || a > b) ? a : b;
#endif
}
TH_INLINE float th_min(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r; asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r;
#else
  return (a != a || a < b) ? a : b;
#endif
}
TH_INLINE double th_max(double a, double b) { return (a != a || a > b) ? a : b; }
TH_INLINE double th_min(double a, double b) { return (a != a || a < b) ? a : b; }
TH_INLINE float th_rem(float a, float b) { float m = fmodf(a, b); if (m != 0.0f && ((b < 0) != (m < 0))) m += b; return m; }
TH_INLINE double th_rem(double a, double b) { double m = fmod(a, b); if (m != 0.0 && ((b < 0) != (m < 0))) m += b; return m; }
TH_INLINE float th_pow(float a, float b) { return b == 2.0f ? a * a : (b == 0.5f ? sqrtf(a) : (b == 1.0f ? a : powf(a, b))); }
TH_INLINE double th_pow(double a, double b) { return b == 2.0 ? a * a : (b == 0.5 ? sqrt(a) : pow(a, b)); }
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011): the four
// words of the block at counter (c0, c1, c2, c3) under key (k0, k1).
TH_INLINE void th_philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = (uint64_t)c[0] * 0xD2511F53u, p1 = (uint64_t)c[2] * 0xCD9E8D57u;
    const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0; c[1] = (uint32_t)p1; c[2] = n2; c[3] = (uint32_t)p0;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
}
// A word's top 24 bits on [0, 1).
TH_INLINE float th_u01(uint32_t w) { return (float)(w >> 8) * 5.9604644775390625e-08f; }
// uniform_philox's element i under state (seed, offset): word i % 4 of the block at counter
// (offset / 4, i / 4) under key seed.
TH_INLINE void th_rand_block(int64_t seed, int64_t offset, int64_t g, uint32_t c[4]) {
  const uint64_t s = (uint64_t)seed, o = (uint64_t)offset >> 2, q = (uint64_t)g;
  c[0] = (uint32_t)o; c[1] = (uint32_t)(o >> 32); c[2] = (uint32_t)q; c[3] = (uint32_t)(q >> 32);
  th_philox(c, (uint32_t)s, (uint32_t)(s >> 32));
}
TH_INLINE float th_rand(int64_t seed, int64_t offset, int64_t i) {
  uint32_t c[4];
  th_rand_block(seed, offset, i >> 2, c);
  const int w = (int)(i & 3);
  return th_u01(w == 0 ? c[0] : w == 1 ? c[1] : w == 2 ? c[2] : c[3]);
}
TH_INLINE float th_ld_bf16(unsigned short h) { unsigned int u = ((unsigned int)h) << 16; float f; TH_BITCAST(f, u); return f; }
TH_INLINE unsigned short th_st_bf16_sw(float f) { unsigned int u; TH_BITCAST(u, f); if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40); u += 0x7fffu + ((u >> 16) & 1u); return (unsigned short)(u >> 16); }
)";
  if (be == Backend::kCpu) {
    // No standard headers: declaring the few functions used keeps a compile at ~0.1 s (<cmath> alone
    // costs ~0.2 s).
    return R"(// Generated by thunder's fuser (CPU backend).
typedef long long int64_t; typedef int int32_t; typedef short int16_t; typedef signed char int8_t;
typedef unsigned char uint8_t; typedef unsigned int uint32_t; typedef unsigned long long uint64_t;
#define TH_DEV
#define TH_INLINE static inline __attribute__((always_inline))
#define TH_BITCAST(dst, src) __builtin_memcpy(&(dst), &(src), sizeof(dst))
extern "C" {
#define TH_SIMD noexcept __attribute__((simd("notinbranch")))
float expf(float) TH_SIMD; float logf(float) TH_SIMD; float erff(float) TH_SIMD; float tanhf(float) TH_SIMD;
float expm1f(float) TH_SIMD; float log1pf(float) TH_SIMD; float sinf(float) TH_SIMD; float cosf(float) TH_SIMD;
float exp2f(float) TH_SIMD; float log2f(float) TH_SIMD; float log10f(float) TH_SIMD; float erfcf(float) TH_SIMD;
float atanf(float) TH_SIMD; float tanf(float) TH_SIMD; float sinhf(float) TH_SIMD; float coshf(float) TH_SIMD;
float asinf(float) TH_SIMD; float acosf(float) TH_SIMD;
float powf(float, float) noexcept; float fmodf(float, float) noexcept; float atan2f(float, float) noexcept;
float sqrtf(float) noexcept; float fabsf(float) noexcept; float floorf(float) noexcept; float ceilf(float) noexcept;
float truncf(float) noexcept; float nearbyintf(float) noexcept; float lgammaf(float) noexcept;
float asinhf(float) noexcept; float acoshf(float) noexcept; float atanhf(float) noexcept;
double exp(double) noexcept; double exp2(double) noexcept; double expm1(double) noexcept; double log(double) noexcept;
double log1p(double) noexcept; double log2(double) noexcept; double log10(double) noexcept; double sqrt(double) noexcept;
double sin(double) noexcept; double cos(double) noexcept; double tan(double) noexcept; double tanh(double) noexcept;
double sinh(double) noexcept; double cosh(double) noexcept; double asin(double) noexcept; double acos(double) noexcept;
double atan(double) noexcept; double asinh(double) noexcept; double acosh(double) noexcept; double atanh(double) noexcept;
double erf(double) noexcept; double erfc(double) noexcept; double lgamma(double) noexcept; double fmod(double, double) noexcept;
double atan2(double, double) noexcept; double floor(double) noexcept; double ceil(double) noexcept;
double trunc(double) noexcept; double nearbyint(double) noexcept; double fabs(double) noexcept; double pow(double, double) noexcept;
}
static inline float th_inf() { return __builtin_inff(); }
static inline float th_nan() { return __builtin_nanf(""); }
// The sign bit by a bit cast: g++ 12 crashes (an internal compiler error) vectorizing
// __builtin_signbit of a value loaded from bf16 under AVX-512.
static inline bool th_signbit(float f) { unsigned u; TH_BITCAST(u, f); return (u >> 31) != 0; }
static inline bool th_signbit_d(double f) { unsigned long long u; TH_BITCAST(u, f); return (u >> 63) != 0; }
TH_INLINE float th_ld_f16(unsigned short h) { _Float16 x; __builtin_memcpy(&x, &h, 2); return (float)x; }
TH_INLINE unsigned short th_st_f16(float f) { _Float16 x = (_Float16)f; unsigned short h; __builtin_memcpy(&h, &x, 2); return h; }
// x * y + z rounded once: one instruction where the target has fused multiply-adds; elsewhere the
// two roundings (a library fmaf would be a call per element).
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
TH_INLINE float th_fma(float x, float y, float z) { return __builtin_fmaf(x, y, z); }
#else
TH_INLINE float th_fma(float x, float y, float z) { return x * y + z; }
#endif
// exp(x) for x <= 0 or NaN (a value minus its row's maximum), vectorisable: 2^n 2^f with
// n = round(x log2 e), |f| <= 1/2, 2^f by a degree-6 polynomial. Relative error about 2^-22 plus
// |x| * 2^-24 from the multiply's rounding, so the absolute error stays below 2^-21 (the results
// are at most 1); results below 2^-126 flush to 0. About 1.5x the throughput of libmvec's expf.
TH_INLINE float th_exp_nonpos(float x) {
  float t = x * 1.44269504088896341f;
  t = t > -127.0f ? t : -127.0f;  // NaN too: every conversion below stays defined
  const float n = (t + 12582912.0f) - 12582912.0f;
  const float f = t - n;
  float p = 1.535336188319500e-4f;
  p = __builtin_fmaf(p, f, 1.339887440266574e-3f);
  p = __builtin_fmaf(p, f, 9.618437357674640e-3f);
  p = __builtin_fmaf(p, f, 5.550332471162809e-2f);
  p = __builtin_fmaf(p, f, 2.402264791363012e-1f);
  p = __builtin_fmaf(p, f, 6.931472028550421e-1f);
  p = __builtin_fmaf(p, f, 1.0f);
  const int ni = (int)n;  // in [-127, 0]
  unsigned bits;
  TH_BITCAST(bits, p);
  bits += (unsigned)ni << 23;
  float r;
  TH_BITCAST(r, bits);
  r = ni <= -126 ? 0.0f : r;
  return x != x ? x : r;
}
)" + common +
           "TH_INLINE unsigned short th_st_bf16(float f) { return th_st_bf16_sw(f); }\n"
           "TH_INLINE float th_round_bf16(float f) { return th_ld_bf16(th_st_bf16_sw(f)); }\n"
           "TH_INLINE float th_round_f16(float f) { return th_ld_f16(th_st_f16(f)); }\n";
  }
  // The CUDA kernels' own helpers follow: vector accesses and warp shuffles.
  static const char* cuda_helpers = R"(
// A random state passed by value (the host's [seed, offset]).
struct th_rng_state { long long seed, offset; };
template <int B> struct th_raw { unsigned char b[B]; };
template <> struct __align__(2) th_raw<2> { unsigned short x; };
template <> struct __align__(4) th_raw<4> { unsigned int x; };
template <> struct __align__(8) th_raw<8> { unsigned int x, y; };
template <> struct __align__(16) th_raw<16> { unsigned int x, y, z, w; };
template <typename T, int V> TH_INLINE void th_ldv(const T* __restrict__ p, T* o) {
  constexpr int B = (int)sizeof(T) * V;
  if constexpr (V > 1 && (B == 2 || B == 4 || B == 8 || B == 16)) {
    union { th_raw<B> r; T e[V]; } u;
    u.r = *reinterpret_cast<const th_raw<B>*>(p);
#pragma unroll
    for (int l = 0; l < V; ++l) o[l] = u.e[l];
  } else {
#pragma unroll
    for (int l = 0; l < V; ++l) o[l] = p[l];
  }
}
// The same through 32-bit words for 2-byte lanes (each lane shifted or masked out of its word, each
// pair stored as one): a union of 16-bit lanes costs a byte permute or two a lane (and a pair
// stored) in the machine code. Row kernels take this form (see CudaGen::words_).
template <typename T, int V> TH_INLINE void th_ldw(const T* __restrict__ p, T* o) {
  constexpr int B = (int)sizeof(T) * V;
  if constexpr (sizeof(T) == 2 && V % 2 == 0 && (B == 4 || B == 8 || B == 16)) {
    union { th_raw<B> r; unsigned w[B / 4]; } u;
    u.r = *reinterpret_cast<const th_raw<B>*>(p);
#pragma unroll
    for (int i = 0; i < V / 2; ++i) {
      o[2 * i] = (T)(u.w[i] & 0xffffu);
      o[2 * i + 1] = (T)(u.w[i] >> 16);
    }
  } else {
    th_ldv<T, V>(p, o);
  }
}
// A barrier over `n` threads of the block (a multiple of 32) on named barrier `id` (1..15; 0 is the
// whole block's): the row groups of a block synchronise apart. Without a GPU (the emulator): its
// barrier of that id.
TH_INLINE void th_bar_sync(int id, int n) {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.sync %0, %1;" : : "r"(id), "r"(n) : "memory");
#else
  emu_bar_sync(id, n);
#endif
}
// 16 bytes from L2, past L1 (partial results other blocks wrote).
template <typename T> TH_INLINE void th_ldcg16(const T* p, T* o) {
  constexpr int V = 16 / (int)sizeof(T);
  union { int4 r; T e[V]; } u;
#if defined(__CUDA_ARCH__)
  u.r = __ldcg(reinterpret_cast<const int4*>(p));
#else
  memcpy(&u.r, p, 16);
#endif
#pragma unroll
  for (int l = 0; l < V; ++l) o[l] = u.e[l];
}
template <typename T, int V> TH_INLINE void th_stv(T* __restrict__ p, const T* v) {
  constexpr int B = (int)sizeof(T) * V;
  if constexpr (V > 1 && (B == 2 || B == 4 || B == 8 || B == 16)) {
    union { th_raw<B> r; T e[V]; } u;
#pragma unroll
    for (int l = 0; l < V; ++l) u.e[l] = v[l];
    *reinterpret_cast<th_raw<B>*>(p) = u.r;
  } else {
#pragma unroll
    for (int l = 0; l < V; ++l) p[l] = v[l];
  }
}
template <typename T, int V> TH_INLINE void th_stw(T* __restrict__ p, const T* v) {
  constexpr int B = (int)sizeof(T) * V;
  if constexpr (sizeof(T) == 2 && V % 2 == 0 && (B == 4 || B == 8 || B == 16)) {
    union { th_raw<B> r; unsigned w[B / 4]; } u;
#pragma unroll
    for (int i = 0; i < V / 2; ++i) u.w[i] = (unsigned)v[2 * i] | ((unsigned)v[2 * i + 1] << 16);
    *reinterpret_cast<th_raw<B>*>(p) = u.r;
  } else {
    th_stv<T, V>(p, v);
  }
}
// A 16-byte copy from global to shared memory, asynchronous from sm_80 on (cp.async), and the
// wait for the calling thread's copies.
TH_INLINE void th_cp_async16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned s; asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(s) : "l"(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(s), "l"(gmem) : "memory");
#else
  memcpy(smem, gmem, 16);
#endif
}
TH_INLINE void th_cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}
TH_INLINE float th_shfl(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
TH_INLINE double th_shfl(double v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
TH_INLINE int32_t th_shfl(int32_t v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
TH_INLINE int64_t th_shfl(int64_t v, int m) { return __shfl_xor_sync(0xffffffffu, (long long)v, m); }
TH_INLINE int16_t th_shfl(int16_t v, int m) { return (int16_t)__shfl_xor_sync(0xffffffffu, (int)v, m); }
TH_INLINE int8_t th_shfl(int8_t v, int m) { return (int8_t)__shfl_xor_sync(0xffffffffu, (int)v, m); }
TH_INLINE uint8_t th_shfl(uint8_t v, int m) { return (uint8_t)__shfl_xor_sync(0xffffffffu, (int)v, m); }
)";
  return R"(// Generated by thunder's fuser (CUDA backend).
typedef long long int64_t; typedef int int32_t; typedef short int16_t; typedef signed char int8_t;
typedef unsigned char uint8_t; typedef unsigned int uint32_t; typedef unsigned long long uint64_t;
#define TH_DEV __device__
#define TH_INLINE static __device__ __forceinline__
#define TH_BITCAST(dst, src) memcpy(&(dst), &(src), sizeof(dst))
TH_INLINE float th_inf() { return __int_as_float(0x7f800000); }
TH_INLINE float th_nan() { return __int_as_float(0x7fffffff); }
TH_INLINE bool th_signbit(float f) { return (__float_as_uint(f) >> 31) != 0; }
TH_INLINE bool th_signbit_d(double f) { return (__double_as_longlong(f) >> 63) != 0; }
TH_INLINE float th_ld_f16(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
TH_INLINE unsigned short th_st_f16(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
)" + common +
         R"(// exp(x) for x <= 0 or NaN (a value minus its row's maximum): a multiply and the hardware's
// base-2 exponential. Relative error about 2^-22 plus |x| * 2^-24 from the multiply's rounding, so
// the absolute error stays below 2^-21 (the results are at most 1); results below 2^-126 flush to
// 0. Without a GPU (the emulator): the same multiply, then exp2f.
TH_INLINE float th_exp_nonpos(float x) {
#if defined(__CUDA_ARCH__)
  float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.4426950408889634f)); return y;
#else
  return exp2f(x * 1.4426950408889634f);
#endif
}
// erf(s / sqrt(log2 e)) within an absolute 1.5e-7: Abramowitz and Stegun 7.1.26 with an
// approximate reciprocal and the hardware's base-2 exponential, the argument scaled so that
// exp(-x^2) is 2^(-s^2) (a multiply fewer; gelu's 1/sqrt(2) takes the scale). Not relatively
// accurate near 0. NaN and +-inf give NaN and +-1.
TH_INLINE float th_erf_as(float s) {
  const float a = fabsf(s);
  const float d = fmaf(0.2727374808792225f, a, 1.0f);  // 0.3275911 / sqrt(log2 e)
#if defined(__CUDA_ARCH__)
  float t; asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(t) : "f"(d));
  float e; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(-(a * a)));
#else
  const float t = 1.0f / d;
  const float e = exp2f(-(a * a));
#endif
  float p = fmaf(1.061405429f, t, -1.453152027f);
  p = fmaf(p, t, 1.421413741f);
  p = fmaf(p, t, -0.284496736f);
  p = fmaf(p, t, 0.254829592f);
  return copysignf(fmaf(-(p * t), e, 1.0f), s);
}
// th_erf_as, and for |s| below 2^-8 sqrt(log2 e) erf's linear term (the cubic term is below 2.2e-8
// there): gelu of fp16 values. An fp16 subnormal x with an odd last bit makes x / 2 a tie, which
// eager's 1 + erf(x / sqrt(2)) decides; th_erf_as's error near 0 is as large as erf there.
TH_INLINE float th_erf_as_lin(float s) {
  return fabsf(s) < 0.004691884f ? s * 0.9394372786996513f : th_erf_as(s);  // 2/sqrt(pi log2 e)
}
// erf of a value rounded to bf16 afterwards (see erf_rounded_to_half): th_erf_as for |x| >= 0.1,
// x (2/sqrt(pi)) (1 - x^2/3 + x^4/10) below it (relative error below 3e-8); relative error at most
// 2e-6 overall, against the 2^-9 of a bf16 rounding. About half the instructions of erff.
TH_INLINE float th_erf_lp(float x) {
  const float x2 = x * x;
  const float small = x * fmaf(fmaf(0.112837916709551f, x2, -0.376126389031838f), x2, 1.128379167095513f);
  return fabsf(x) < 0.1f ? small : th_erf_as(x * 1.2011224087864498f);
}
// sm_80 and later round to bf16 in one instruction (NaN becomes the canonical NaN).
TH_INLINE unsigned short th_st_bf16(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
  return th_st_bf16_sw(f);
#endif
}
// A value rounded to bf16 or fp16 and widened back, as eager's conversion between two operations.
// sm_80 and later: the packing conversion (F2FP, which issues at a higher rate than the one-value
// conversion F2F) with 0 in the low half, so a bf16 result is the fp32 bits as they are.
TH_INLINE float th_round_bf16(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned p; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(p) : "f"(f), "f"(0.0f)); return __uint_as_float(p);
#else
  return th_ld_bf16(th_st_bf16_sw(f));
#endif
}
TH_INLINE float th_round_f16(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned p; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(p) : "f"(f), "f"(0.0f));
  float r; asm("{ .reg .f16 lo, hi; mov.b32 {lo, hi}, %1; cvt.f32.f16 %0, hi; }" : "=f"(r) : "r"(p)); return r;
#else
  return th_ld_f16(th_st_f16(f));
#endif
}
// Lane pairs of 2-byte floating values: one 32-bit register, lane l in the low half.
TH_INLINE unsigned th_pair(const unsigned short* a, int l) { return (unsigned)a[l] | ((unsigned)a[l + 1] << 16); }
TH_INLINE unsigned th_pair_dup(unsigned short a) { return (unsigned)a * 0x10001u; }
TH_INLINE void th_st_pair(unsigned short* a, int l, unsigned p) { a[l] = (unsigned short)p; a[l + 1] = (unsigned short)(p >> 16); }
// Lane j of a pair, widened.
TH_INLINE float th_half_f16(unsigned p, int j) { return th_ld_f16((unsigned short)(j ? p >> 16 : p)); }
TH_INLINE float th_half_bf16(unsigned p, int j) { return __int_as_float((int)(j ? p & 0xffff0000u : p << 16)); }
// Two float values rounded into a pair (one conversion from sm_80 on).
TH_INLINE unsigned th_pack_f16(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned p; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(p) : "f"(hi), "f"(lo)); return p;
#else
  return (unsigned)th_st_f16(lo) | ((unsigned)th_st_f16(hi) << 16);
#endif
}
TH_INLINE unsigned th_pack_bf16(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned p; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(p) : "f"(hi), "f"(lo)); return p;
#else
  return (unsigned)th_st_bf16_sw(lo) | ((unsigned)th_st_bf16_sw(hi) << 16);
#endif
}
// Packed sums, differences and products, each rounded once: what eager's float operation and
// rounding give for values of the dtype (see lane pairs in cuda_codegen.cpp). bf16 takes
// fma.rn.bf16x2 (a * 1 + b, b * -1 + a, a * b + -0). Without the instructions (older devices, the
// emulator): both lanes widened, the float operation, both rounded.
#define TH_HALF2_SW(name, h, op) TH_INLINE unsigned name(unsigned a, unsigned b) { \
  return th_pack_##h(th_half_##h(a, 0) op th_half_##h(b, 0), th_half_##h(a, 1) op th_half_##h(b, 1)); }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 530
#define TH_F16X2(name, ins, op) TH_INLINE unsigned name(unsigned a, unsigned b) { \
  unsigned d; asm(ins " %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b)); return d; }
#else
#define TH_F16X2(name, ins, op) TH_HALF2_SW(name, f16, op)
#endif
TH_F16X2(th_add2_f16, "add.rn.f16x2", +)
TH_F16X2(th_sub2_f16, "sub.rn.f16x2", -)
TH_F16X2(th_mul2_f16, "mul.rn.f16x2", *)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
TH_INLINE unsigned th_fma2_bf16(unsigned a, unsigned b, unsigned c) {
  unsigned d; asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c)); return d;
}
TH_INLINE unsigned th_add2_bf16(unsigned a, unsigned b) { return th_fma2_bf16(a, 0x3f803f80u, b); }
TH_INLINE unsigned th_sub2_bf16(unsigned a, unsigned b) { return th_fma2_bf16(b, 0xbf80bf80u, a); }
TH_INLINE unsigned th_mul2_bf16(unsigned a, unsigned b) { return th_fma2_bf16(a, b, 0x80008000u); }
#else
TH_HALF2_SW(th_add2_bf16, bf16, +)
TH_HALF2_SW(th_sub2_bf16, bf16, -)
TH_HALF2_SW(th_mul2_bf16, bf16, *)
#endif
#undef TH_F16X2
#undef TH_HALF2_SW
)" + std::string(cuda_helpers);
}

std::vector<std::pair<int64_t, int64_t>> access_runs(const std::vector<int>& axes,
                                                     const std::vector<int64_t>& strides,
                                                     const std::vector<int64_t>& sizes) {
  std::vector<std::pair<int64_t, int64_t>> runs;  // (size, stride)
  for (int a : axes) {
    const int64_t size = sizes[a], stride = strides[a];
    if (size == 1) continue;
    if (!runs.empty() && runs.back().second == stride * size) {
      runs.back() = {runs.back().first * size, stride};
      continue;
    }
    runs.emplace_back(size, stride);
  }
  return runs;
}

int64_t env_count(const char* name, int64_t fallback, int64_t least, const char* what) {
  const char* e = std::getenv(name);
  if (!e || !*e) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);
  if (*end != '\0' || v < least) {
    throw Error(std::string(name) + " must be a number of " + what +
                " >= " + std::to_string(least) + ", got '" + e + "'");
  }
  return v;
}

}  // namespace thunder::fuser
