#!/usr/bin/env bash
# The accuracy of the vector math functions the CPU kernels call (glibc's libmvec, through the
# declarations of the generated code's prelude) against the scalar libm functions on this machine,
# compiled with the CPU kernels' flags: the largest difference in units in the last place per function
# over ranges of arguments. Usage: scripts/libmvec_accuracy.sh [compiler]
set -euo pipefail
CXX=${1:-${CXX:-c++}}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/vec.cpp" <<'SRC'
extern "C" {
#define TH_SIMD noexcept __attribute__((simd("notinbranch")))
float expf(float) TH_SIMD; float logf(float) TH_SIMD; float erff(float) TH_SIMD; float tanhf(float) TH_SIMD;
float expm1f(float) TH_SIMD; float log1pf(float) TH_SIMD; float sinf(float) TH_SIMD; float cosf(float) TH_SIMD;
float exp2f(float) TH_SIMD; float log2f(float) TH_SIMD; float log10f(float) TH_SIMD; float erfcf(float) TH_SIMD;
}
#define VEC(name) extern "C" void v_##name(const float* x, float* y, long n) { \
  _Pragma("omp simd") for (long i = 0; i < n; ++i) y[i] = name(x[i]); }
VEC(expf) VEC(logf) VEC(erff) VEC(tanhf) VEC(expm1f) VEC(log1pf) VEC(sinf) VEC(cosf) VEC(exp2f)
VEC(log2f) VEC(log10f) VEC(erfcf)
SRC
cat >"$dir/main.cpp" <<'SRC'
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <vector>
#define DECL(name) extern "C" void v_##name(const float*, float*, long);
DECL(expf) DECL(logf) DECL(erff) DECL(tanhf) DECL(expm1f) DECL(log1pf) DECL(sinf) DECL(cosf)
DECL(exp2f) DECL(log2f) DECL(log10f) DECL(erfcf)
static double ulps(float a, double ref) {
  if (std::isnan(a) && std::isnan(ref)) return 0;
  if (std::isinf(ref) || std::isinf(a)) return (float)ref == a ? 0 : 1e9;
  float r = (float)ref;
  double u = std::fabs(std::nextafter(r, INFINITY) - r);
  if (u == 0 || !std::isfinite(u)) u = 1e-45;
  return std::fabs(a - ref) / u;
}
int main() {
  struct F { const char* name; void (*v)(const float*, float*, long); double (*ref)(double); float lo, hi; };
  F fs[] = {{"expf", v_expf, std::exp, -104, 89}, {"expf(80..89)", v_expf, std::exp, 80, 89},
            {"logf", v_logf, std::log, 1e-30f, 1e30f}, {"erff", v_erff, std::erf, -6, 6},
            {"tanhf", v_tanhf, std::tanh, -12, 12}, {"expm1f", v_expm1f, std::expm1, -20, 88},
            {"log1pf", v_log1pf, std::log1p, -0.999f, 1e6f}, {"sinf", v_sinf, std::sin, -1e4f, 1e4f},
            {"cosf", v_cosf, std::cos, -1e4f, 1e4f}, {"exp2f", v_exp2f, std::exp2, -140, 128},
            {"log2f", v_log2f, std::log2, 1e-30f, 1e30f}, {"log10f", v_log10f, std::log10, 1e-30f, 1e30f},
            {"erfcf", v_erfcf, std::erfc, -4, 10}};
  const long n = 1 << 20;
  std::vector<float> x(n), y(n);
  for (const F& f : fs) {
    bool geometric = f.lo > 0 && f.hi / f.lo > 1e6;
    for (long i = 0; i < n; ++i) {
      double t = (i + 0.5) / n;
      x[i] = geometric ? (float)(f.lo * std::pow((double)f.hi / f.lo, t)) : (float)(f.lo + (f.hi - f.lo) * t);
    }
    f.v(x.data(), y.data(), n);
    double worst = 0; float at = 0, got = 0;
    for (long i = 0; i < n; ++i) {
      double u = ulps(y[i], f.ref((double)x[i]));
      if (u > worst) { worst = u; at = x[i]; got = y[i]; }
    }
    std::printf("%-14s max %.3g ulp at x=%.9g (got %.9g, want %.9g)\n", f.name, worst, at, got, f.ref((double)at));
  }
}
SRC
ifma=$(grep -q avx512ifma /proc/cpuinfo && echo "-mprefer-vector-width=512" || true)
flags="-O2 -march=native -fopenmp-simd -fno-math-errno -fno-trapping-math -ffp-contract=off $ifma"
echo "$("$CXX" --version | head -1); $(ldd --version | head -1); flags: $flags"
grep -m1 "model name" /proc/cpuinfo
"$CXX" $flags -c "$dir/vec.cpp" -o "$dir/vec.o"
"$CXX" -O2 "$dir/main.cpp" "$dir/vec.o" -o "$dir/check" -lmvec -lm
nm "$dir/vec.o" | grep -o "_ZGV[A-Za-z0-9_]*" | sort -u | tr '\n' ' '; echo
"$dir/check"
