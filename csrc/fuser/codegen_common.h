// What the CPU and CUDA code generators share: C types of dtypes, the expression of each operation
// over already-named operands, reduction identities and combiners, and the helper prelude (bf16/fp16
// conversions, NaN-propagating max/min, Python-style remainder) each backend defines in its own way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "fuser/kernel.h"
#include "fuser/layout.h"

namespace thunder::fuser {

enum class Backend { kCpu, kCuda };

// The type computations happen in: float for bf16/fp16/fp32, double, bool, or the integer type.
std::string compute_type(DType d);
// A sum accumulated in float (bf16/fp16/fp32): the code generators fold its long runs into doubles.
bool float_sum(const KNode& n);
// The type a tensor element is stored as (bf16 and fp16 as unsigned short).
std::string storage_type(DType d);
// A stored element (an lvalue expression) as its compute type, and a compute value as stored type.
std::string load_expr(DType d, const std::string& element);
std::string store_expr(DType d, const std::string& value);
// A constant node in its compute type.
std::string const_expr(const KNode& n, Backend be);
// A padded load's fill value (KNode::fvalue / ivalue) in its compute type.
std::string fill_expr(const KNode& load, Backend be);
// Where a padded load reads memory: every bound of `a` met ("false" for a load that never does),
// `index(axis)` the element's index along an axis, `lit` a backend's integer literal.
std::string bounds_cond(const Access& a, const std::function<std::string(int)>& index,
                        const std::function<std::string(int64_t)>& lit);
// The value of an iota node at element offset `idx` (an integer expression).
std::string iota_expr(const KNode& n, const std::string& idx);
// uniform_philox's value at element index `idx` of its stream (seed, offset).
std::string rand_expr(const std::string& seed, const std::string& offset, const std::string& idx);
// The expression of an elementwise node over operand expressions (with the operands' dtypes).
std::string op_expr(const KNode& n, const std::vector<std::string>& args,
                    const std::vector<DType>& arg_dtypes);
// True for exp(a - amax(a)) in float: the argument is at most 0 (or NaN), where th_exp_nonpos is
// within 2^-21 of the exact value (softmax's numerators, log_softmax's sums).
bool exp_of_row_excess(const KernelDef& k, int id);
// True for an erf in float whose every use ends, through element-wise arithmetic alone, in a
// rounding to bf16 (a conversion, or a bf16 output), or with `fp16_too` to bf16 or fp16: gelu of
// bf16 or fp16 values. Such uses need no more than bf16's precision, which th_erf_lp gives (CUDA).
// fp16 takes th_erf_as, and only where the erf is added to 1 (erf_offset_by_unit, gelu's form):
// over every fp16 input, the gelu it gives is erff's in all but 0.05 % of inputs in [-3, 3] (one
// unit), and differs by up to 3 units only below -4, where erff's own result is up to 2 units from
// the exact one (1 + erf(x) cancels there). th_erf_lp's relative error would show in about 1 % of
// fp16 results.
bool erf_rounded_to_half(const KernelDef& k, int id, bool fp16_too);
// True for an erf whose every use adds a constant of magnitude at least 1 to it (gelu's 1 + erf):
// th_erf_as's absolute error is then relative to the sums, and the small-argument polynomial of
// th_erf_lp has nothing to add.
bool erf_offset_by_unit(const KernelDef& k, int id);
// Multiply-adds. Kernels compile without contraction (--fmad=false, -ffp-contract=off): every
// element-wise operation rounds as eager's kernel for it does (x * 0.1 + 0.5 rounds twice, as two
// eager calls do), so that element-wise results are eager's bit for bit. Sums differ from eager's
// in their order of addition anyway: a float sum of a product read by that sum alone accumulates
// by one fused multiply-add (the product unrounded), as eager's own reductions over products do
// (layer_norm's backward, a dot product).
// True for a float sum whose operand is a float multiply of float operands read by it alone.
bool sum_of_single_use_product(const KernelDef& k, int reduction);
// acc + x * y rounded once.
std::string fma_expr(Backend be, const std::string& x, const std::string& y,
                     const std::string& acc);
// Reductions: the identity, and acc (+) v.
std::string reduce_identity(const std::string& op, DType d, Backend be);
std::string reduce_combine(const std::string& op, DType d, const std::string& acc,
                           const std::string& v);
// The (size, stride) runs an access walks over `axes` (outermost first) of a layout with these
// sizes: neighbours the access walks contiguously (the outer's stride the inner's times its size,
// zero strides too) are one run, and size-1 axes are dropped. A tensor read whole along a row whose
// other loads do not merge its axes (group_norm's x beside its weight per channel) then indexes
// the row as one run.
std::vector<std::pair<int64_t, int64_t>> access_runs(const std::vector<int>& axes,
                                                     const std::vector<int64_t>& strides,
                                                     const std::vector<int64_t>& sizes);
// Helpers every generated source starts with.
std::string prelude(Backend be);
// An integer schedule setting from the environment variable `name` (`fallback` when unset); Error
// when it is not a number of `what` of at least `least`.
int64_t env_count(const char* name, int64_t fallback, int64_t least, const char* what);

}  // namespace thunder::fuser
