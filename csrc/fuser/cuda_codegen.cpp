// CUDA code generation (see cuda_codegen.h). The generator walks the node DAG on demand, like the CPU
// generator: row-level values of a row reduction are computed once per row by every thread, the others
// per column chunk. A chunk is V consecutive elements along the innermost axis; the code of a chunk is
// emitted with V a literal, once with the kernel's vector width (16-byte accesses) and once with V = 1,
// and the kernel picks one at run time from the pointers' alignment.
#include "fuser/cuda_codegen.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "fuser/codegen_common.h"
#include "fuser/pass_split.h"

namespace thunder::fuser {

namespace {

// Pointwise chunks per thread per loop iteration, and threads per block. Chunks of 16 bytes of
// 4-byte elements: one chunk, 256 threads (fewer registers, more warps in flight; H200,
// gelu(x*w+b)*0.5+x on 64 MB fp32: 0.95 of a copy's bandwidth at 1 against 0.87 at 4). Chunks of 8
// elements (2-byte dtypes) carry twice the arithmetic per byte: four chunks, so that each thread
// has four loads in flight before it computes, and 128 threads (bf16: 0.78 against 0.70 at one
// chunk and 256 threads, 0.76 at two chunks; a plain x * 2 reaches the copy's bandwidth at either).
// 2-byte kernels under 4M elements keep one chunk and 256 threads: four chunks a thread leave too
// few threads to fill the device (bf16 chain, 64x4096: 3.1 us against 2.2; 2048x768: 4.8
// against 4.1; even at 8192x768; 8192x3072: 32 against 37). THUNDER_CUDA_UNROLL_NUMEL sets the
// threshold (elements).
constexpr int kUnroll = 1;
constexpr int kPointwiseThreads = 256;
constexpr int kUnrollNarrow = 4;
constexpr int kPointwiseThreadsNarrow = 128;
constexpr int64_t kNarrowMinNumel = int64_t{1} << 22;
// Rows a column kernel's thread reads ahead before computing them (THUNDER_CUDA_OUTER_ROWS sets
// it).
constexpr int kColRows = 4;
constexpr int kColFoldSteps = 4;  // steps of kColRows rows a column's float sum takes before a fold
int outer_rows() {
  return static_cast<int>(
      std::min<int64_t>(16, env_count("THUNDER_CUDA_OUTER_ROWS", kColRows, 1, "rows")));
}
// Column kernels whose rows are split over blocks: threads a block and the blocks aimed at, for
// kernels that only reduce and for those that also stream full-size outputs
// (THUNDER_CUDA_OUTER_THREADS, THUNDER_CUDA_OUTER_BLOCKS, THUNDER_CUDA_OUTER_STREAM_BLOCKS).
int outer_threads() {
  const int64_t b = env_count("THUNDER_CUDA_OUTER_THREADS", 256, 32, "threads");
  if (b > 1024 || (b & (b - 1)) != 0)
    throw Error("THUNDER_CUDA_OUTER_THREADS must be a power of two up to 1024, got " +
                std::to_string(b));
  return static_cast<int>(b);
}
int64_t outer_blocks(bool streams) {
  return streams ? env_count("THUNDER_CUDA_OUTER_STREAM_BLOCKS", 1024, 1, "blocks")
                 : env_count("THUNDER_CUDA_OUTER_BLOCKS", 256, 1, "blocks");
}

int64_t narrow_min_numel() {
  return env_count("THUNDER_CUDA_UNROLL_NUMEL", kNarrowMinNumel, 0, "elements");
}

// Rows of at most this many 16-byte chunks per lane run a warp per row (several rows a block, no
// block-wide barrier); longer rows a block per row. THUNDER_CUDA_WARP_ROW_CHUNKS sets it. H200,
// 8192 rows (layer_norm forward and backward, bf16 softmax; scripts/gpu_schedule_probe.py
// --warp-rows): 8 chunks is within 2 % of 4 at widths 768-4096, 16 and 32 are up to 2x slower from
// width 1600 on.
constexpr int64_t kWarpRowChunks = 4;

int64_t warp_row_chunks() {
  return env_count("THUNDER_CUDA_WARP_ROW_CHUNKS", kWarpRowChunks, 1, "chunks");
}
// 32-bit indices while every element count and offset stays below this (2^31 less room for a
// loop counter to step past the end).
constexpr int64_t kInt32Limit = (int64_t{1} << 31) - (int64_t{1} << 16);
// Reductions over rows per column: threads per block of the row kernel (THUNDER_CUDA_COLUMN_BLOCK
// sets it), the most blocks (partials per column) it runs, and the threads per column of the kernel
// that combines the partials.
constexpr int kColumnBlock = 512;
int column_block() {
  const int64_t b = env_count("THUNDER_CUDA_COLUMN_BLOCK", kColumnBlock, 32, "threads");
  if (b > 1024 || b % 32 != 0)
    throw Error("THUNDER_CUDA_COLUMN_BLOCK must be a multiple of 32 up to 1024, got " +
                std::to_string(b));
  return static_cast<int>(b);
}
constexpr int64_t kMaxColumnPartials = 512;
int64_t column_accumulators() {
  return env_count("THUNDER_CUDA_COLUMN_ACCUMULATORS", 32, 1, "accumulators");
}
// The kernel combining the row kernel's partials per column: rows of 32 threads a block (a column
// each) and the partials a thread loads at once, so that a resident grid's blocks (132-264 on an
// H200) are one batch. H200, the norms' training steps at 2048 x 4096 and 2048 x 8192
// (scripts/gpu_schedule_probe.py --column-sums): 2.5 and 3.3 us against 3.6 and 5.3 for 32 rows
// of 8 loads that read the block count from the workspace.
constexpr int kFinishRows = 16;
constexpr int kFinishLoads = 16;
// Blocks a group of rows runs on when a row kernel reduces over the rows of each group (their
// partials are combined by the group's last block, a thread each).
constexpr int64_t kMaxGroupBlocks = 256;
// Column accumulators in shared memory instead of registers (THUNDER_CUDA_COLUMN_SMEM=1): each
// thread owns its slots, so no barrier until the block combines its row groups.
bool column_smem() {
  const char* e = std::getenv("THUNDER_CUDA_COLUMN_SMEM");
  return e != nullptr && std::string(e) == "1";
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

int storage_bytes(DType d) {
  switch (d) {
    case DType::kBool:
    case DType::kUInt8:
    case DType::kInt8: return 1;
    case DType::kInt16:
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    case DType::kInt32:
    case DType::kFloat32: return 4;
    default: return 8;
  }
}

// A column scope: the code of one chunk of V elements starting at column `c`.
struct ColScope {
  int v = 1;
  std::string pre;   // before the lane loop (loads into per-chunk arrays)
  std::string lane;  // inside `for (int l = 0; l < V; ++l)`
  std::string post;  // after it (vector stores)
  std::string decl;  // store buffers, declared before `pre`
  bool split = false;  // loads go to members of a register struct `reg` (declared in `regs`)
  std::string reg = "r";
  std::string regs;
  std::unordered_map<int, std::string> memo;
  std::unordered_map<int, std::string> preloaded;  // loads already read into a named value
  bool cached = false;  // cached loads read `cache<id>[k]`
  // Pointwise chunks grouped over rows: loads the same in every row (same_in_every_row) go to
  // `pre_inv` and are read from the group's first register struct `r0`.
  bool grouped = false;
  std::string pre_inv;
  // Pointwise chunks of bf16/fp16 values (pairs_pay): each iteration of the lane loop computes
  // lanes l and l + 1. `j` is the lane col_value computes (l + j); `memo1` holds lane l + 1's
  // values, `pairs` values held as both lanes' halves in one 32-bit register (pair_value).
  bool paired = false;
  int j = 0;
  std::unordered_map<int, std::string> memo1, pairs;
  std::unordered_map<int, std::string> arrays;  // loads read into registers (load_array)
  // Column kernels: values that vary over no reduced axis are computed once per chunk, before the
  // row loop, in `hoist` (arrays `hv<id>` over the lanes, declared in `hoist_decl`).
  ColScope* hoist = nullptr;
  std::string hoist_decl;
};

class CudaGen {
 public:
  CudaGen(const KernelDef& k, const Layout& L, int smem_limit)
      : k_(k), L_(L), n_(static_cast<int>(L.sizes.size())), smem_limit_(smem_limit) {
    if (k_.kind == KernelDef::Kind::kPointwise) {
      for (int a = 0; a < n_; ++a) col_axes_.push_back(a);
    } else {
      for (int a = 0; a < L_.num_outer; ++a) row_axes_.push_back(a);
      for (int a = L_.num_outer; a < n_; ++a) col_axes_.push_back(a);
    }
    for (int a : row_axes_) rows_ *= L_.sizes[a];
    for (int a : col_axes_) cols_ *= L_.sizes[a];
    for (int a : col_axes_) col_mask_ |= uint64_t{1} << a;
    inner_ = col_axes_.empty() ? -1 : col_axes_.back();
    wide_ = needs_wide();
    vec_ = vector_width();
  }

  std::string run(CudaLaunch* launch) {
    std::ostringstream os;
    os << prelude(Backend::kCuda);
    os << "typedef " << (wide_ ? "long long" : "int") << " idx_t;\n";
    params_.clear();
    args_.clear();
    CudaLaunch l;
    name_ = kernel_name();
    for (size_t i = 0; i < k_.inputs.size(); ++i) {
      std::string st = storage_type(k_.inputs[i]->dtype());
      l.by_value.push_back(host_input(k_, i));
      params_ +=
          std::string(params_.empty() ? "" : ", ") +
          (l.by_value.back() ? "const th_rng_state in" : "const " + st + "* __restrict__ in") +
          std::to_string(i);
      args_ += std::string(args_.empty() ? "" : ", ") + "in" + std::to_string(i);
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      if (k_.tensor_of(o) != o) continue;  // a cat's later part: stored through its first's pointer
      std::string st = storage_type(k_.outputs[o]->dtype());
      params_ += std::string(params_.empty() ? "" : ", ") + st + "* __restrict__ out" + std::to_string(o);
      args_ += std::string(args_.empty() ? "" : ", ") + "out" + std::to_string(o);
    }
    if (k_.kind == KernelDef::Kind::kPointwise) {
      os << pointwise(&l);
    } else if (k_.kind == KernelDef::Kind::kInner) {
      os << inner(&l);
    } else {
      os << outer(&l);
    }
    l.name = name_;
    if (launch) *launch = l;
    return os.str();
  }

 private:
  // thunder_<schedule>_<operations>: the kernel's reductions, gathers, random draws and
  // transcendental operations in order of first use (others when it has none of those), at most 4.
  std::string kernel_name() const {
    static const std::unordered_set<std::string> plain = {
        "load", "const", "convert_element_type", "where", "iota", "neg", "eq", "ne", "lt", "le",
        "gt",   "ge"};
    static const std::unordered_set<std::string> notable = {
        "sum",  "amax",  "amin",  "prod",    "gather", "rand", "exp",
        "exp2", "expm1", "log",   "log1p",   "log2",   "erf",  "erfc",
        "tanh", "sqrt",  "rsqrt", "sigmoid", "sin",    "cos",  "pow"};
    auto pick = [&](bool only_notable) {
      std::vector<std::string> ops;
      for (const KNode& n : k_.nodes) {
        if (plain.count(n.op) || (only_notable && !notable.count(n.op))) continue;
        if (std::find(ops.begin(), ops.end(), n.op) == ops.end()) ops.push_back(n.op);
      }
      return ops;
    };
    std::vector<std::string> ops = pick(true);
    if (ops.empty()) ops = pick(false);
    std::string name = k_.kind == KernelDef::Kind::kPointwise ? "thunder_pointwise"
                       : k_.kind == KernelDef::Kind::kInner   ? "thunder_rows"
                                                              : "thunder_cols";
    for (size_t i = 0; i < ops.size() && i < 4; ++i) name += "_" + ops[i];
    return name;
  }

  // ---- analysis -----------------------------------------------------------------------------------

  bool needs_wide() const {
    int64_t numel = 1;
    for (int64_t s : L_.sizes) numel *= s;
    if (numel >= kInt32Limit) return true;
    auto check = [&](const Access& a) {
      if (a.strides.empty()) return false;
      int64_t m = std::abs(a.offset);
      for (int i = 0; i < n_; ++i) m += std::abs(a.strides[i]) * std::max<int64_t>(L_.sizes[i] - 1, 0);
      return m >= kInt32Limit;
    };
    for (const Access& a : L_.loads) {
      if (check(a)) return true;
    }
    for (const Access& a : L_.stores) {
      if (check(a)) return true;
    }
    return false;
  }

  // Whether a rand access's lanes 0..v-1 of every chunk are whole blocks of four consecutive
  // numbers (its chunks start at indexes divisible by 4).
  bool rand_blocks(const Access& a, int v) const {
    if (v % 4 != 0 || inner_ < 0 || a.strides[inner_] != 1 || a.offset % 4 != 0) return false;
    if (col_axes_.size() > 1 && L_.sizes[inner_] % 4 != 0) return false;
    for (int i = 0; i < n_; ++i) {
      if (i != inner_ && a.strides[i] % 4 != 0) return false;
    }
    return true;
  }

  // The widest V (a power of two, 16 bytes for the widest vector access) every access allows.
  int vector_width() const {
    if (inner_ < 0 || cols_ == 0) return 1;
    int max_bytes = 0;
    std::vector<std::pair<const Access*, int>> vec;  // (access, element bytes)
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (k_.nodes[i].op != "load" || L_.loads[i].strides.empty()) continue;
      if (L_.loads[i].strides[inner_] != 1) continue;
      vec.push_back({&L_.loads[i], storage_bytes(k_.nodes[i].dtype)});
      max_bytes = std::max(max_bytes, vec.back().second);
    }
    int column_bytes = 0;
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      if (L_.stores[o].strides[inner_] != 1) continue;
      vec.push_back({&L_.stores[o], storage_bytes(k_.outputs[o]->dtype())});
      // A column reduction's own outputs are written once per column, not per row: they do not
      // narrow the vectors of the rows it streams (bf16 rows beside a float32 bias gradient move
      // 16 bytes per access, not 8; the column store splits into two).
      if (k_.kind == KernelDef::Kind::kOuter && !per_row_output(o)) {
        column_bytes = std::max(column_bytes, vec.back().second);
      } else {
        max_bytes = std::max(max_bytes, vec.back().second);
      }
    }
    if (vec.empty()) return 1;
    if (max_bytes == 0) max_bytes = column_bytes;
    for (int v = std::min(8, 16 / max_bytes); v >= 2; v /= 2) {
      bool ok = true;
      // Chunks stay inside the innermost axis (a 1-D pointwise kernel handles the tail in scalars).
      bool one_d = k_.kind == KernelDef::Kind::kPointwise && n_ == 1;
      if (!one_d && L_.sizes[inner_] % v != 0) ok = false;
      for (auto& [a, b] : vec) {
        if (a->offset % v != 0) ok = false;
        for (int i = 0; i < n_; ++i) {
          if (i != inner_ && a->strides[i] % v != 0) ok = false;
        }
      }
      if (ok) return v;
    }
    return 1;
  }

  uint64_t varies(int id) {
    if (varies_.empty()) varies_ = varying_axes(k_, L_);
    return varies_[id];
  }

  uint64_t store_axes(size_t o) const { return fuser::store_axes(L_, o); }
  // A column reduction's output stored per row (full size), not once per column.
  bool per_row_output(size_t o) const { return (store_axes(o) & L_.reduced) != 0; }

  // ---- index expressions --------------------------------------------------------------------------

  std::string lit(int64_t v) const { return "((idx_t)" + std::to_string(v) + (wide_ ? "LL)" : ")"); }

  // The offset of an access over `axes` for the linear index `idx` over those axes.
  std::string unravel(const std::vector<int>& axes, const std::vector<int64_t>& strides,
                      const std::string& idx) const {
    const std::vector<std::pair<int64_t, int64_t>> runs = access_runs(axes, strides, L_.sizes);
    std::string e;
    int64_t inner = 1;
    for (size_t j = runs.size(); j-- > 0;) {
      const auto [size, stride] = runs[j];
      if (stride != 0) {
        std::string q = inner == 1 ? idx : "(" + idx + ") / " + lit(inner);
        if (j > 0) q = "(" + q + ") % " + lit(size);
        e += (e.empty() ? "" : " + ") + std::string("(") + q + ") * " + lit(stride);
      }
      inner *= size;
    }
    return e.empty() ? lit(0) : "(" + e + ")";
  }

  // The condition under which output o is written at this index: along axes it does not vary over,
  // only at index 0.
  std::string guard(size_t o, const std::vector<int>& axes, const std::string& idx) const {
    std::string g;
    int64_t inner = 1;
    for (int j = static_cast<int>(axes.size()) - 1; j >= 0; --j) {
      int a = axes[j];
      if (L_.stores[o].strides[a] == 0 && L_.sizes[a] > 1) {
        std::string q = inner == 1 ? idx : "(" + idx + ") / " + lit(inner);
        g += (g.empty() ? "" : " && ") + std::string("(") + q + ") % " + lit(L_.sizes[a]) + " == 0";
      }
      inner *= L_.sizes[a];
    }
    return g;
  }

  // (Appended, not "v" + to_string: g++ 12 reports a false overlap in that operator+ inlined here.)
  std::string tmp() {
    std::string v = "v";
    v += std::to_string(counter_++);
    return v;
  }

  // Offset of a load's row: a variable of the row scope (row reductions), or an expression.
  std::string row_part(int id) {
    const Access& a = L_.loads[id];
    if (k_.kind == KernelDef::Kind::kInner) {
      auto it = bases_.find(id);
      if (it != bases_.end()) return it->second;
      std::string v = "rb" + std::to_string(id);
      row_code_ += "    const idx_t " + v + " = " + lit(a.offset) + " + " + unravel(row_axes_, a.strides, "r") + ";\n";
      return bases_[id] = v;
    }
    if (k_.kind == KernelDef::Kind::kOuter) return lit(a.offset) + " + " + unravel(row_axes_, a.strides, "r");
    return lit(a.offset);
  }

  // ---- values -------------------------------------------------------------------------------------

  bool row_level(int id) {
    return k_.kind == KernelDef::Kind::kInner && (varies(id) & col_mask_) == 0;
  }

  // A value in the row scope (computed per row by every thread).
  std::string row_value(int id) {
    auto m = row_memo_.find(id);
    if (m != row_memo_.end()) return m->second;
    const KNode& n = k_.nodes[id];
    if (is_reduce_op(n.op)) {
      auto r = reduced_.find(id);
      if (r == reduced_.end()) throw Error("internal: reduction used before its pass");
      return r->second;
    }
    std::string v = tmp();
    std::string ct = compute_type(n.dtype);
    std::string e;
    if (n.op == "load") {
      std::string base = row_part(id);
      e = load_expr(n.dtype, "in" + std::to_string(n.input) + "[" + base + "]");
    } else if (n.op == "iota") {
      e = iota_expr(n, row_part(id));
    } else if (n.op == "rand") {
      std::string in = "in" + std::to_string(n.input);
      e = rand_expr(in + ".seed", in + ".offset", row_part(id));
    } else if (n.op == "const") {
      e = const_expr(n, Backend::kCuda);
    } else if (n.op == "gather") {
      std::string gi = gather_index(id);
      ColScope g;
      g.v = 1;
      auto pre = gathered_.find(id);
      if (pre != gathered_.end()) g.preloaded = pre->second;
      std::string inner = col_value(n.args[0], g, gi);
      std::string bad =
          is_floating(n.dtype) ? "        if (" + gi + "_bad) " + v + " = th_nan();\n" : "";
      row_code_ += "    " + ct + " " + v + ";\n    { const idx_t c = " + gi + ";\n" + g.pre +
                   "      { const int l = 0; (void)l;\n" + g.lane + "        " + v + " = " + inner +
                   ";\n" + bad + "      }\n    }\n";
      row_memo_[id] = v;
      return v;
    } else {
      std::vector<std::string> args;
      std::vector<DType> dts;
      for (int a : n.args) {
        args.push_back(row_value(a));
        dts.push_back(k_.nodes[a].dtype);
      }
      e = op_expr(n, args, dts);
    }
    row_code_ += "    const " + ct + " " + v + " = " + e + ";\n";
    row_memo_[id] = v;
    return v;
  }

  // The index of the lane col_value computes: l, or l + 1 for the second lane of a pair.
  static std::string lane_index(const ColScope& s) { return s.j ? "(l + 1)" : "l"; }

  // The index along column axis `axis` of column index `c`.
  std::string axis_index(int axis, const std::string& c) const {
    int64_t inner = 1;
    for (size_t j = col_axes_.size(); j-- > 0 && col_axes_[j] != axis;)
      inner *= L_.sizes[col_axes_[j]];
    return "((" + c + ") / " + lit(inner) + " % " + lit(L_.sizes[axis]) + ")";
  }

  // Where a padded load reads memory, at column index `c` (pointwise kernels: the element's).
  std::string mask_cond(const Access& a, const std::string& c) const {
    return bounds_cond(
        a, [&](int axis) { return axis_index(axis, c); }, [&](int64_t v) { return lit(v); });
  }

  // True when load `id`'s registers hold a value per lane: it varies along the innermost axis
  // (its stride, or the bounds of its padding).
  bool lane_array(int id) const {
    const Access& a = L_.loads[id];
    if (inner_ >= 0 && a.strides[inner_] != 0) return true;
    for (const AxisMask& m : a.masks) {
      if (m.axis == inner_) return true;
    }
    return false;
  }

  // The registers load `id` is read into for the chunk at column `c` (an array over the lanes, or
  // one value where it does not vary along the innermost axis), reading them on first use. A
  // padded load reads its fill value outside its bounds: decided once for a chunk of 16-byte
  // loads whose bounds along the innermost axis fall on chunk edges, per lane otherwise.
  std::string load_array(int id, ColScope& s, const std::string& c) {
    auto it = s.arrays.find(id);
    if (it != s.arrays.end()) return it->second;
    const KNode& n = k_.nodes[id];
    const Access& a = L_.loads[id];
    std::string st = storage_type(n.dtype);
    std::string ptr = "in" + std::to_string(n.input);
    int64_t is = inner_ >= 0 ? a.strides[inner_] : 0;
    std::string ld = "ld" + std::to_string(id);
    std::string addr = row_part(id) + " + " + unravel(col_axes_, a.strides, c);
    std::string vs = std::to_string(s.v);
    std::string nm = s.split ? s.reg + "." + ld : ld;
    std::string arr = lane_array(id) ? "[" + vs + "]" : "";
    if (s.split) {
      s.regs += "  " + st + " " + ld + arr + ";\n";
    } else {
      s.pre += "      " + st + " " + ld + arr + ";\n";
    }
    if (a.masked()) {
      if (k_.kind != KernelDef::Kind::kPointwise)
        throw Error("internal: a padded load outside a pointwise kernel");
      bool chunk_edges = true;
      for (const AxisMask& m : a.masks) {
        if (m.axis == inner_ && (m.step != 1 || m.start % s.v != 0 || m.size % s.v != 0))
          chunk_edges = false;
      }
      const std::string fill = store_expr(n.dtype, fill_expr(n, Backend::kCuda));
      if (arr.empty()) {
        s.pre += "      " + nm + " = " + mask_cond(a, c) + " ? " + ptr + "[" + addr +
                 "] : " + fill + ";\n";
      } else if (is == 1 && chunk_edges) {
        s.pre += "      if (" + mask_cond(a, c) + ") " + ldv() + "<" + st + ", " + vs + ">(" + ptr +
                 " + " + addr + ", " + nm +
                 ");\n      else {\n#pragma unroll\n        for (int l = 0; l < " + vs + "; ++l) " +
                 nm + "[l] = " + fill + ";\n      }\n";
      } else {
        s.pre += "#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) " + nm +
                 "[l] = " + mask_cond(a, "(" + c + " + l)") + " ? " + ptr + "[" + addr +
                 " + (idx_t)l * " + lit(is) + "] : " + fill + ";\n";
      }
      return s.arrays[id] = nm;
    }
    const bool inv = s.grouped && same_in_every_row(id);
    std::string& pre = inv ? s.pre_inv : s.pre;
    if (is == 1) {
      pre +=
          "      " + ldv() + "<" + st + ", " + vs + ">(" + ptr + " + " + addr + ", " + nm + ");\n";
      if (smem_cached_.count(id) && c == "c") {
        // The first pass that reads the load also keeps the chunk for the later passes.
        s.pre +=
            "      " + stv() + "<" + st + ", " + vs + ">(" + smem_ptr(id) + " + c, " + nm + ");\n";
        smem_filling_.insert(id);
      }
    } else if (is == 0) {
      pre += "      " + nm + " = " + ptr + "[" + addr + "];\n";
    } else {
      pre += "#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) " + nm + "[l] = " + ptr +
             "[" + addr + " + (idx_t)l * " + lit(is) + "];\n";
    }
    return s.arrays[id] = inv ? "r0." + ld : nm;
  }

  // A value in a column scope, for lane `l` (lane_index) of the chunk at column `c`.
  std::string col_value(int id, ColScope& s, const std::string& c = "c") {
    if (row_level(id)) return row_value(id);
    auto& memo = s.j ? s.memo1 : s.memo;
    auto m = memo.find(id);
    if (m != memo.end()) return m->second;
    const KNode& n = k_.nodes[id];
    std::string ct = compute_type(n.dtype);
    if (s.hoist != nullptr && (varies(id) & L_.reduced) == 0 && n.op != "const" &&
        !is_reduce_op(n.op)) {
      // The same in every row (a per-column shift, a weight): once per chunk, not per row.
      const std::string h = "hv" + std::to_string(id), val = col_value(id, *s.hoist, c);
      s.hoist_decl += "    " + ct + " " + h + "[" + std::to_string(s.v) + "];\n";
      s.hoist->lane += "        " + h + "[l] = " + val + ";\n";
      return memo[id] = h + "[" + lane_index(s) + "]";
    }
    std::string v = tmp();
    std::string e;
    const std::string li = lane_index(s);
    if (s.paired && pair_first(id)) {
      e = "th_half_" + half_name(n.dtype) + "(" + pair_value(id, n.dtype, s, c) + ", " +
          std::to_string(s.j) + ")";
    } else if (n.op == "load") {
      std::string st = storage_type(n.dtype);
      std::string ld = "ld" + std::to_string(id);
      if (s.preloaded.count(id)) {
        e = load_expr(n.dtype, s.preloaded.at(id));
      } else if (s.cached && cached_.count(id)) {
        e = load_expr(n.dtype, "cache" + std::to_string(id) + "[k][l]");
      } else if (s.cached && hoisted_.count(id)) {
        e = load_expr(n.dtype, "hw" + std::to_string(id) + "[k][l]");
      } else if (smem_cached_.count(id) && c == "c" && smem_filled_.count(id)) {
        std::string vs = std::to_string(s.v);
        s.pre += "      " + st + " " + ld + "[" + vs + "];\n      " + ldv() + "<" + st + ", " + vs +
                 ">(" + smem_ptr(id) + " + c, " + ld + ");\n";
        e = load_expr(n.dtype, ld + "[l]");
      } else {
        e = load_expr(n.dtype, load_array(id, s, c) + (lane_array(id) ? "[" + li + "]" : ""));
      }
    } else if (n.op == "iota" || n.op == "rand") {
      const Access& a = L_.loads[id];
      int64_t is = inner_ >= 0 ? a.strides[inner_] : 0;
      std::string at = row_part(id) + " + " + unravel(col_axes_, a.strides, c);
      std::string idx = is == 0   ? at
                        : is == 1 ? at + " + (idx_t)" + li
                                  : at + " + (idx_t)" + li + " * " + lit(is);
      std::string in = "in" + std::to_string(n.input);
      if (n.op == "rand" && rand_blocks(a, s.v)) {
        // Lane 0 starts a block of four: one Philox block per four lanes, drawn before the lanes.
        std::string q = "rq" + std::to_string(id), vs = std::to_string(s.v);
        std::string nm = s.split ? s.reg + "." + q : q;
        if (s.arrays.emplace(id, nm).second) {
          if (s.split) {
            s.regs += "  float " + q + "[" + vs + "];\n";
          } else {
            s.pre += "      float " + q + "[" + vs + "];\n";
          }
          s.pre += "      { const int64_t g = (int64_t)(" + at + ") >> 2;\n#pragma unroll\n" +
                   "        for (int k = 0; k < " + std::to_string(s.v / 4) + "; ++k) {\n" +
                   "          uint32_t w[4];\n          th_rand_block(" + in + ".seed, " + in +
                   ".offset, g + k, w);\n#pragma unroll\n          for (int j = 0; j < 4; ++j) " +
                   nm + "[4 * k + j] = th_u01(w[j]);\n        }\n      }\n";
        }
        e = nm + "[" + li + "]";
      } else {
        e = n.op == "iota" ? iota_expr(n, idx) : rand_expr(in + ".seed", in + ".offset", idx);
      }
    } else if (n.op == "const") {
      e = const_expr(n, Backend::kCuda);
    } else if (is_reduce_op(n.op)) {
      auto r = reduced_.find(id);
      if (r == reduced_.end()) throw Error("internal: reduction used before its pass");
      return r->second;
    } else if (n.op == "gather") {
      throw Error("internal: gather outside a row reduction");
    } else if (exp_of_row_excess(k_, id)) {
      e = "th_exp_nonpos(" + col_value(n.args[0], s, c) + ")";
    } else if (n.op == "erf" && erf_offset_by_unit(k_, id) && erf_rounded_to_half(k_, id, true)) {
      e = erf_plus_one(id, s, c);
    } else if (erf_rounded_to_half(k_, id, false)) {
      e = "th_erf_lp(" + col_value(n.args[0], s, c) + ")";
    } else if (n.op == "div" && is_floating(n.dtype) && row_level(n.args[1])) {
      // Division by a row-level value: one reciprocal per row, a multiply per element (as eager's
      // softmax and normalization kernels do).
      std::string num = col_value(n.args[0], s, c);
      e = "((" + ct + ")(" + num + " * " + reciprocal(n.args[1], ct) + "))";
    } else {
      std::vector<std::string> args;
      std::vector<DType> dts;
      for (int a : n.args) {
        args.push_back(col_value(a, s, c));
        dts.push_back(k_.nodes[a].dtype);
      }
      e = op_expr(n, args, dts);
    }
    s.lane += "        const " + ct + " " + v + " = " + e + ";\n";
    memo[id] = v;
    return v;
  }

  // Reduction `r`'s accumulator `acc` combined with its operand's value for the lane: a float sum
  // of a product read by it alone is one multiply-add (see sum_of_single_use_product), where the
  // product is computed per element (one hoisted out of a column kernel's row loop stays apart).
  std::string accumulate(int r, const std::string& acc, ColScope& s, const std::string& c = "c") {
    const KNode& n = k_.nodes[r];
    const int a = n.args[0];
    if (sum_of_single_use_product(k_, r) && !row_level(a) &&
        (s.hoist == nullptr || (varies(a) & L_.reduced) != 0)) {
      const KNode& m = k_.nodes[a];
      const std::string x = col_value(m.args[0], s, c), y = col_value(m.args[1], s, c);
      return fma_expr(Backend::kCuda, x, y, acc);
    }
    return reduce_combine(n.op, n.dtype, acc, col_value(a, s, c));
  }

  // An erf rounded to bf16 or fp16 and added only to 1 (gelu; see erf_rounded_to_half): th_erf_as
  // of the argument times sqrt(log2 e), or of y times c sqrt(log2 e) for an argument y * c with c
  // a positive constant (gelu's 1/sqrt(2)): one multiply for both scales.
  // Where a use rounds to fp16, th_erf_as_lin: erf's linear term near 0.
  std::string erf_plus_one(int id, ColScope& s, const std::string& c) {
    const KNode& n = k_.nodes[id];
    const std::string fn = erf_rounded_to_half(k_, id, false) ? "th_erf_as(" : "th_erf_as_lin(";
    constexpr double kScale = 1.2011224087864498;  // sqrt(log2 e)
    auto as = [&](int y, double scale) {
      char lit[64];
      std::snprintf(lit, sizeof(lit), "%a", static_cast<double>(static_cast<float>(scale)));
      return fn + col_value(y, s, c) + " * " + lit + "f)";
    };
    const KNode& m = k_.nodes[n.args[0]];
    if (m.op == "mul" && m.args.size() == 2 && compute_type(m.dtype) == "float") {
      for (int i = 0; i < 2; ++i) {
        const KNode& k = k_.nodes[m.args[i]];
        const double v = k.number();
        if (k.op == "const" && std::isfinite(v) && v > 0 &&
            compute_type(k_.nodes[m.args[1 - i]].dtype) == "float") {
          return as(m.args[1 - i], v * kScale);
        }
      }
    }
    return as(n.args[0], kScale);
  }

  // ---- lane pairs (bf16 and fp16 pointwise chunks) ----------------------------------------------
  //
  // A pointwise chunk of 2-byte floating values computes lanes l and l + 1 in one iteration of its
  // lane loop, so that a value can be held as both lanes' halves in one 32-bit register: packed
  // instructions then do the work of two lanes where they give eager's results.
  //   - A rounding to bf16/fp16 of the sum, difference or product of two values of that dtype (or
  //     constants it represents exactly) is one packed instruction (`add.rn.f16x2`,
  //     `fma.rn.bf16x2`). Its one rounding gives what eager's float operation and rounding give:
  //     float's 24 bits hold at least 2p + 2 of the p bits of either dtype, so rounding to float
  //     first never changes the final rounding (the double rounding of +, -, * is innocuous).
  //   - A rounding of other float values to fp16 converts both lanes in one instruction (widening a
  //     lane back is one more, where the single rounding took two).
  //   - bf16/fp16 outputs are stored from the pair.

  static bool half_dtype(DType d) { return d == DType::kFloat16 || d == DType::kBFloat16; }
  static std::string half_name(DType d) { return d == DType::kFloat16 ? "f16" : "bf16"; }

  // Whether a pointwise chunk of width v computes lane pairs: some value or output is bf16/fp16.
  bool pairs_pay(int v) const {
    if (v < 2 || v % 2 != 0 || k_.kind != KernelDef::Kind::kPointwise) return false;
    for (const KNode& n : k_.nodes) {
      if (half_dtype(n.dtype)) return true;
    }
    for (const TensorRef& t : k_.outputs) {
      if (half_dtype(t->dtype())) return true;
    }
    return false;
  }

  // The bits of `v` in dtype h when h represents it exactly (finite values only).
  static std::optional<uint16_t> half_bits(double v, DType h) {
    if (!std::isfinite(v)) return std::nullopt;
    const int p = h == DType::kFloat16 ? 11 : 8;         // significand bits
    const int emin = h == DType::kFloat16 ? -14 : -126;  // smallest normal exponent
    const int bias = h == DType::kFloat16 ? 15 : 127;
    const double maxv = h == DType::kFloat16 ? 65504.0 : 0x1.fep127;
    const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    const double a = std::fabs(v);
    if (a == 0) return sign;
    if (a > maxv) return std::nullopt;
    int e = 0;
    std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
    const int exp = std::max(e - 1, emin);
    const double units = std::ldexp(a, p - 1 - exp);  // a in units of the last place
    if (units != std::floor(units)) return std::nullopt;
    const auto u = static_cast<uint32_t>(units);
    if (e - 1 < emin) return static_cast<uint16_t>(sign | u);  // subnormal
    const uint32_t frac = u - (uint32_t{1} << (p - 1));
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exp + bias) << (p - 1)) | frac);
  }

  // Operand `a` of a packed operation in dtype h: a widened value that h holds exactly (a load of
  // h, a rounding to h), or a constant h represents exactly.
  bool half_operand(int a, DType h) const {
    const KNode& x = k_.nodes[a];
    if (x.op == "const") return is_floating(x.dtype) && half_bits(x.number(), h).has_value();
    if (x.op != "convert_element_type" || x.dtype != DType::kFloat32) return false;
    const KNode& y = k_.nodes[x.args[0]];
    if (y.dtype != h) return false;
    return y.op == "load" || (y.op == "convert_element_type" && k_.nodes[y.args[0]].dtype != h);
  }

  // A rounding to bf16/fp16 of a float add, sub or mul of two half_operands.
  bool packed_op(int id) const {
    const KNode& n = k_.nodes[id];
    if (n.op != "convert_element_type" || !half_dtype(n.dtype)) return false;
    const KNode& p = k_.nodes[n.args[0]];
    if (p.dtype != DType::kFloat32 || p.args.size() != 2) return false;
    if (p.op != "add" && p.op != "sub" && p.op != "mul") return false;
    return half_operand(p.args[0], n.dtype) && half_operand(p.args[1], n.dtype);
  }

  // Values of a paired chunk computed as pairs first (their lanes widened from the pair).
  bool pair_first(int id) const {
    const KNode& n = k_.nodes[id];
    if (packed_op(id)) return true;
    return n.op == "convert_element_type" && n.dtype == DType::kFloat16 &&
           k_.nodes[n.args[0]].dtype == DType::kFloat32;
  }

  // Node `id`'s lanes l and l + 1 rounded to dtype h (bf16 or fp16), in one 32-bit register: the
  // low half lane l.
  std::string pair_value(int id, DType h, ColScope& s, const std::string& c) {
    const KNode& n = k_.nodes[id];
    const bool own = h == n.dtype;
    if (own) {
      auto m = s.pairs.find(id);
      if (m != s.pairs.end()) return m->second;
    }
    const std::string hn = half_name(h);
    std::string e;
    const int64_t is = n.op == "load" && inner_ >= 0 ? L_.loads[id].strides[inner_] : -1;
    if (own && n.op == "load" && is >= 0 && !s.preloaded.count(id) && !s.cached) {
      const std::string arr = load_array(id, s, c);
      e = lane_array(id) ? "th_pair(" + arr + ", l)" : "th_pair_dup(" + arr + ")";
    } else if (own && packed_op(id)) {
      const KNode& p = k_.nodes[n.args[0]];
      auto operand = [&](int a) {
        const KNode& x = k_.nodes[a];
        if (x.op != "const") return pair_value(x.args[0], h, s, c);
        const unsigned b = *half_bits(x.number(), h);
        char buf[32];
        std::snprintf(buf, sizeof(buf), "0x%08xu", (b << 16) | b);
        return std::string(buf);
      };
      e = "th_" + p.op + "2_" + hn + "(" + operand(p.args[0]) + ", " + operand(p.args[1]) + ")";
    } else {
      // Both lanes converted in one instruction: a rounding's operand, or the value itself (exact
      // when it is of dtype h already).
      const int src =
          own && n.op == "convert_element_type" && k_.nodes[n.args[0]].dtype == DType::kFloat32
              ? n.args[0]
              : id;
      const int j = s.j;
      s.j = 0;
      const std::string lo = col_value(src, s, c);
      s.j = 1;
      const std::string hi = col_value(src, s, c);
      s.j = j;
      e = "th_pack_" + hn + "((float)(" + lo + "), (float)(" + hi + "))";
    }
    const std::string v = "pk" + std::to_string(counter_++);
    s.lane += "        const unsigned " + v + " = " + e + ";\n";
    if (own) s.pairs[id] = v;
    return v;
  }

  // 1 / value(id) for a row-level value, computed once per row.
  std::string reciprocal(int id, const std::string& ct) {
    auto it = reciprocals_.find(id);
    if (it != reciprocals_.end()) return it->second;
    std::string den = row_value(id);
    std::string r = "rcp" + std::to_string(id);
    row_code_ += "    const " + ct + " " + r + " = ((" + ct + ")1) / (" + ct + ")(" + den + ");\n";
    return reciprocals_[id] = r;
  }

  // Output o's value for lane l of the chunk at column `c`, as col_store takes it: a conversion to
  // the output's bf16/fp16 dtype is left to the store (one rounding instead of a rounding, a
  // widening and the store's rounding again).
  std::string stored_value(size_t o, ColScope& s, const std::string& c = "c") {
    const int id = k_.output_nodes[o];
    const KNode& n = k_.nodes[id];
    const DType d = k_.outputs[o]->dtype();
    if (n.op == "convert_element_type" && n.dtype == d &&
        (d == DType::kBFloat16 || d == DType::kFloat16) && !row_level(id) &&
        is_floating(k_.nodes[n.args[0]].dtype)) {
      return col_value(n.args[0], s, c);
    }
    return col_value(id, s, c);
  }

  // Stores output o's value for lane l of the chunk at column `c` (row `r` for row kernels); in a
  // paired chunk, for lanes l and l + 1 (a bf16/fp16 output with the innermost stride 1 from the
  // pair of its lanes).
  void col_store(size_t o, ColScope& s, const std::string& c = "c") {
    const Access& a = L_.stores[o];
    const DType d = k_.outputs[o]->dtype();
    std::string st = storage_type(d);
    std::string ptr = "out" + std::to_string(k_.tensor_of(o));
    std::string row = row_axes_.empty() ? "" : " + " + unravel(row_axes_, a.strides, "r");
    std::string rg = row_axes_.empty() ? "" : guard(o, row_axes_, "r");
    int64_t is = inner_ >= 0 ? a.strides[inner_] : 0;
    const bool pair = s.paired && is == 1 && half_dtype(d);
    std::vector<std::string> vals;  // per lane of the iteration
    for (int j = 0; j < (s.paired && !pair ? 2 : 1); ++j) {
      s.j = j;
      vals.push_back(pair ? pair_value(k_.output_nodes[o], d, s, c) : stored_value(o, s, c));
    }
    s.j = 0;
    if (is == 1) {
      std::string sv = "so" + std::to_string(o) + "_" + std::to_string(counter_++);
      s.decl += "      " + st + " " + sv + "[" + std::to_string(s.v) + "];\n";
      // bf16/fp16 values rounded two at a time: the packing conversion (F2FP) issues at a higher
      // rate than the one-value conversion (F2F), and takes two values.
      const bool halves = d == DType::kBFloat16 || d == DType::kFloat16;
      const std::string pack = d == DType::kBFloat16 ? "th_pack_bf16(" : "th_pack_f16(";
      std::string pack_post;
      if (pair) {
        s.lane += "        th_st_pair(" + sv + ", l, " + vals[0] + ");\n";
      } else if (halves && vals.size() == 2) {
        s.lane += "        th_st_pair(" + sv + ", l, " + pack + vals[0] + ", " + vals[1] + "));\n";
      } else if (halves && s.v % 2 == 0) {
        // A lane a iteration: the chunk's float values, rounded in pairs after the lane loop.
        const std::string sf = sv + "f";
        s.decl += "      float " + sf + "[" + std::to_string(s.v) + "];\n";
        s.lane += "        " + sf + "[l] = " + vals[0] + ";\n";
        pack_post = "#pragma unroll\n      for (int l = 0; l < " + std::to_string(s.v) +
                    "; l += 2) th_st_pair(" + sv + ", l, " + pack + sf + "[l], " + sf +
                    "[l + 1]));\n";
      } else {
        for (size_t j = 0; j < vals.size(); ++j) {
          s.lane += "        " + sv + "[" + (j ? "l + 1" : "l") + "] = " + store_expr(d, vals[j]) +
                    ";\n";
        }
      }
      std::string g = guard(o, col_axes_, c);  // lane-invariant: the inner axis has stride 1
      if (!rg.empty()) g = g.empty() ? rg : rg + " && " + g;
      std::string stmt = stv() + "<" + st + ", " + std::to_string(s.v) + ">(" + ptr + " + " +
                         lit(a.offset) + row + " + " + unravel(col_axes_, a.strides, c) + ", " +
                         sv + ");";
      s.post += pack_post + "      " + (g.empty() ? stmt : "if (" + g + ") " + stmt) + "\n";
    } else {
      for (size_t j = 0; j < vals.size(); ++j) {
        std::string cl = "(" + c + " + (idx_t)" + (j ? "(l + 1)" : "l") + ")";
        std::string g = guard(o, col_axes_, cl);
        if (!rg.empty()) g = g.empty() ? rg : rg + " && " + g;
        std::string stmt = ptr + "[" + lit(a.offset) + row + " + " +
                           unravel(col_axes_, a.strides, cl) + "] = " + store_expr(d, vals[j]) +
                           ";";
        s.lane += "        " + (g.empty() ? stmt : "if (" + g + ") " + stmt) + "\n";
      }
    }
  }

  // A chunk's code: its loads (unless they go to a register struct filled elsewhere), the lane loop
  // (a pair of lanes an iteration in a paired chunk), then its vector stores.
  static std::string lane_loop(const ColScope& s) {
    return s.decl + (s.split ? "" : s.pre) + "#pragma unroll\n      for (int l = 0; l < " +
           std::to_string(s.v) + "; " + (s.paired ? "l += 2" : "++l") + ") {\n" + s.lane +
           "      }\n" + s.post;
  }

  void reset() {
    row_code_.clear();
    row_memo_.clear();
    gather_indexed_.clear();
    gathered_.clear();
    reciprocals_.clear();
    bases_.clear();
    reduced_.clear();
  }

  std::string alignment_check() {
    // Pointers read or written with vector accesses must be aligned to V elements.
    std::string cond;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      const KNode& n = k_.nodes[i];
      if (n.op != "load" || L_.loads[i].strides.empty() || L_.loads[i].strides[inner_] != 1) continue;
      cond += std::string(cond.empty() ? "" : " | ") + "((unsigned long long)in" + std::to_string(n.input) + " & " +
              std::to_string(vec_ * storage_bytes(n.dtype) - 1) + "ull)";
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      if (L_.stores[o].strides[inner_] != 1 || k_.tensor_of(o) != o) continue;
      cond += std::string(cond.empty() ? "" : " | ") + "((unsigned long long)out" + std::to_string(o) + " & " +
              std::to_string(vec_ * storage_bytes(k_.outputs[o]->dtype()) - 1) + "ull)";
    }
    return cond.empty() ? "true" : "(" + cond + ") == 0ull";
  }

  // ---- pointwise ----------------------------------------------------------------------------------

  // Chunk functions for width V: th_load<V> fills a register struct, th_store<V> computes and
  // stores. Grouped over rows: th_loadv<V> loads only what varies between rows, and th_store<V>
  // reads the rest from the group's first struct r0.
  std::string pointwise_chunk(int v, bool grouped) {
    reset();
    ColScope s;
    s.v = v;
    s.split = true;
    s.grouped = grouped;
    s.paired = pairs_pay(v);
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      col_store(o, s, "e");
    }
    std::string vs = std::to_string(v);
    std::string lname = "th_load" + vs, sname = "th_store" + vs, rname = "th_regs" + vs;
    std::ostringstream os;
    os << "struct " << rname << " {\n" << (s.regs.empty() ? "  char unused;\n" : s.regs) << "};\n";
    os << "TH_INLINE void " << lname << "(" << rname << "& r, " << params_ << ", const idx_t e) {\n"
       << s.pre_inv << s.pre << "}\n";
    if (grouped) {
      os << "TH_INLINE void th_loadv" << vs << "(" << rname << "& r, " << params_
         << ", const idx_t e) {\n"
         << s.pre << "}\n";
    }
    os << "TH_INLINE void " << sname << "(const " << rname << "& r, "
       << (grouped ? "const " + rname + "& r0, " : "") << params_ << ", const idx_t e) {\n"
       << lane_loop(s) << "}\n";
    return os.str();
  }

  // A load that reads the same elements in every row of a pointwise kernel (a bias, a weight): it
  // varies over no axis but the innermost (row kernels' twin: row_invariant).
  bool same_in_every_row(int id) {
    if (L_.loads[id].strides.empty() || inner_ < 0) return false;
    return (varies(id) & ~(uint64_t{1} << inner_)) == 0;
  }

  // Rows of the innermost axis, grouped `unroll` at a time for a pointwise kernel whose chunks of
  // vec_ elements stay inside rows and which reads a load the same in every row beside loads that
  // vary: each thread takes one chunk column in `unroll` rows, and loads and widens those values
  // once for them all (bias and weight vectors).
  bool group_rows(int unroll) {
    if (unroll < 2 || vec_ < 2 || n_ < 2 || L_.sizes[inner_] % vec_ != 0) return false;
    bool invariant = false, varying = false;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (k_.nodes[i].op != "load" || L_.loads[i].strides.empty()) continue;
      (same_in_every_row(static_cast<int>(i)) ? invariant : varying) = true;
    }
    return invariant && varying;
  }

  std::string pointwise(CudaLaunch* launch) {
    int64_t numel = 1;
    for (int64_t s : L_.sizes) numel *= s;
    // Padded loads take registers for both sides of their bounds: one chunk a thread (H200, bf16
    // rotary embedding over 8x32x2048x128: 0.89 of a copy's bandwidth against 0.56 at four).
    bool padded = false;
    for (const Access& a : L_.loads) padded = padded || a.masked();
    const bool narrow = vec_ >= 8 && numel >= narrow_min_numel() && !padded;
    const int unroll = narrow ? kUnrollNarrow : kUnroll;
    const int threads = narrow ? kPointwiseThreadsNarrow : kPointwiseThreads;
    const bool grouped = numel > 0 && group_rows(unroll);
    const std::string us = std::to_string(unroll);
    std::ostringstream os;
    os << pointwise_chunk(1, false);
    if (vec_ > 1) os << pointwise_chunk(vec_, grouped);
    auto run = [&](int v) {
      std::string vs = std::to_string(v);
      return "TH_INLINE void th_run" + vs + "(" + params_ +
             ", const long long e0, const long long n) {\n" +
             "  const long long step = (long long)gridDim.x * blockDim.x * " + us + ";\n" +
             "  for (long long b = (long long)blockIdx.x * blockDim.x * " + us +
             " + threadIdx.x; b < n; b += step) {\n" + "    th_regs" + vs + " r[" + us + "];\n" +
             "#pragma unroll\n    for (int u = 0; u < " + us + "; ++u) {\n" +
             "      const long long q = b + (long long)u * blockDim.x;\n" +
             "      if (q < n) th_load" + vs + "(r[u], " + args_ + ", (idx_t)(e0 + q * " + vs +
             "));\n    }\n" + "#pragma unroll\n    for (int u = 0; u < " + us + "; ++u) {\n" +
             "      const long long q = b + (long long)u * blockDim.x;\n" +
             "      if (q < n) th_store" + vs + "(r[u], " + args_ + ", (idx_t)(e0 + q * " + vs +
             "));\n    }\n" + "  }\n}\n";
    };
    // Grouped rows (group_rows: an innermost axis exists and holds whole chunks).
    const int64_t row_len = grouped ? L_.sizes[inner_] : 1, rows = numel / row_len;
    const int64_t chunks = row_len / vec_, groups = ceil_div(rows, unroll);
    os << run(1);
    if (grouped) {
      // Thread q takes chunk q % chunks of rows unroll * (q / chunks) and the next unroll - 1
      // (those before `rows`); a warp's chunks are consecutive in each row.
      const std::string vs = std::to_string(vec_), cl = std::to_string(chunks) + "LL";
      os << "TH_INLINE void th_run" << vs << "(" << params_ << ") {\n"
         << "  const long long step = (long long)gridDim.x * blockDim.x;\n"
         << "  for (long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x; q < "
         << groups * chunks << "LL; q += step) {\n"
         << "    const long long g = q / " << cl << ", e = g * " << unroll * row_len
         << "LL + (q - g * " << cl << ") * " << vs << "LL;\n"
         << "    th_regs" << vs << " r[" << us << "];\n"
         << "    th_load" << vs << "(r[0], " << args_ << ", (idx_t)e);\n"
         << "#pragma unroll\n    for (int u = 1; u < " << us << "; ++u) {\n"
         << "      if (g * " << unroll << "LL + u < " << rows << "LL) th_loadv" << vs << "(r[u], "
         << args_ << ", (idx_t)(e + (long long)u * " << row_len << "LL));\n    }\n"
         << "#pragma unroll\n    for (int u = 0; u < " << us << "; ++u) {\n"
         << "      if (g * " << unroll << "LL + u < " << rows << "LL) th_store" << vs
         << "(r[u], r[0], " << args_ << ", (idx_t)(e + (long long)u * " << row_len
         << "LL));\n    }\n"
         << "  }\n}\n";
    } else if (vec_ > 1) {
      os << run(vec_);
    }
    os << "extern \"C\" __global__ void __launch_bounds__(" << threads << ") " << name_ << "("
       << params_ << ") {\n";
    if (grouped) {
      os << "  if (" << alignment_check() << ") {\n"
         << "    th_run" << vec_ << "(" << args_ << ");\n"
         << "  } else {\n    th_run1(" << args_ << ", 0LL, " << numel << "LL);\n  }\n";
    } else if (vec_ > 1) {
      int64_t nv = numel / vec_;
      os << "  if (" << alignment_check() << ") {\n"
         << "    th_run" << vec_ << "(" << args_ << ", 0LL, " << nv << "LL);\n";
      if (nv * vec_ < numel) {
        os << "    th_run1(" << args_ << ", " << nv * vec_ << "LL, " << numel - nv * vec_ << "LL);\n";
      }
      os << "  } else {\n    th_run1(" << args_ << ", 0LL, " << numel << "LL);\n  }\n";
    } else {
      os << "  th_run1(" << args_ << ", 0LL, " << numel << "LL);\n";
    }
    os << "}\n";
    launch->block = threads;
    const int64_t work = grouped ? groups * chunks : ceil_div(ceil_div(numel, vec_), unroll);
    launch->grid = numel == 0 ? 0 : ceil_div(work, int64_t{threads});
    launch->shared_bytes = 0;
    return os.str();
  }

  // ---- row reductions (kInner) --------------------------------------------------------------------

  struct RowPlan {
    bool warp_mode = false;
    int threads = 0;       // threads per row
    int rows_per_block = 1;
    std::vector<std::vector<int>> pass_reductions, pass_outputs;
    std::vector<size_t> row_outputs;
    std::vector<size_t> grid_outputs;  // values computed from reductions over rows
    int passes = 0;
    // Reductions over rows per column: each thread accumulates its columns over its rows in pass
    // `column_pass`; block mode runs `groups` rows at a time per block (warp mode: rows_per_block).
    bool columns = false;
    int groups = 1;
    bool doubled = false;  // twice the column accumulators, for two row groups (plan_rows)
    int column_pass = 0;
    // The column accumulators in dynamic shared memory (per row group, slot (k * V + l) * threads +
    // tid for chunk k and lane l: a warp's accesses fall in distinct banks) rather than registers.
    bool column_smem = false;
    // Online softmax: sum(exp(a - amax(a))) computed in amax's pass, the running sum rescaled when
    // the running maximum grows (per chunk of V elements). Maps the sum to its amax.
    std::unordered_map<int, int> online;
  };

  // The sum reductions of the form sum(exp(a - amax(a))) (softmax, log_softmax, cross-entropy),
  // with the pass each node is available from when those sums run in their amax's pass.
  std::vector<int> plan_online(std::unordered_map<int, int>* online) const {
    std::vector<int> need = available_from(k_);
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      const KNode& n = k_.nodes[i];
      if (n.op != "sum" || !is_floating(n.dtype)) continue;
      const KNode& e = k_.nodes[n.args[0]];
      if (e.op != "exp" || e.dtype != n.dtype) continue;
      const KNode& d = k_.nodes[e.args[0]];
      if (d.op != "sub" || d.dtype != n.dtype) continue;
      const KNode& m = k_.nodes[d.args[1]];
      if (m.op != "amax" || m.dtype != n.dtype || m.args[0] != d.args[0]) continue;
      (*online)[static_cast<int>(i)] = d.args[1];
    }
    if (online->empty()) return need;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      const KNode& n = k_.nodes[i];
      int m = 0;
      for (int a : n.args) m = std::max(m, need[a]);
      auto it = online->find(static_cast<int>(i));
      need[i] = it != online->end() ? need[it->second] : (is_reduce_op(n.op) ? m + 1 : m);
    }
    return need;
  }

  // A reduction over rows, after the row loop: the block's rows combined (in warp mode, its warps'
  // in order), the block's partial written to the workspace, and the last block to finish (an
  // atomic count, after a fence that publishes the block's partials) combines the partials in a
  // fixed order (deterministic for a device's grid), read from L2 (__ldcg), and stores the scalars
  // computed from them. It leaves the count at 0 for the next kernel on the stream.
  // Reductions over the rows of each group (group_blocks > 0 blocks a group): the count, the
  // partials combined and the outputs stored are the group's.
  std::string over_rows_epilogue(const RowPlan& p, const std::vector<int64_t>& ws_offset,
                                 int64_t count_offset, int64_t group_blocks) {
    std::vector<int> reds = over_rows_reductions(k_);
    std::ostringstream os;
    const bool grouped = group_blocks > 0;
    const std::string nb = std::to_string(group_blocks) + "u";
    const std::string counter = "((unsigned*)(th_ws + " + std::to_string(count_offset) + ")" +
                                (grouped ? " + blockIdx.x / " + nb : std::string()) + ")";
    if (p.warp_mode) {
      for (int g : reds) {
        os << "  if ((threadIdx.x & 31) == 0) gsm" << g << "[threadIdx.x >> 5] = gacc" << g
           << ";\n";
      }
      os << "  __syncthreads();\n  if (threadIdx.x == 0) {\n";
      for (int g : reds) {
        const KNode& n = k_.nodes[g];
        os << "    for (int w = 1; w < " << p.rows_per_block << "; ++w) gacc" << g << " = "
           << reduce_combine(n.op, n.dtype, "gacc" + std::to_string(g),
                             "gsm" + std::to_string(g) + "[w]")
           << ";\n";
      }
      os << "  }\n";
    }
    os << "  if (threadIdx.x == 0) {\n";
    for (size_t j = 0; j < reds.size(); ++j) {
      std::string ct = compute_type(k_.nodes[reds[j]].dtype);
      os << "    ((" << ct << "*)(th_ws + " << ws_offset[j] << "))[blockIdx.x * (8 / sizeof(" << ct
         << "))] = gacc" << reds[j] << ";\n";
    }
    os << "    __threadfence();\n"
       << "    th_last = atomicAdd(" << counter
       << ", 1u) == " << (grouped ? nb : std::string("gridDim.x")) << " - 1u;\n"
       << "  }\n  __syncthreads();\n  if (th_last) {\n";
    // The partials of every reduction in one loop of 16-byte loads, all in flight together: this is
    // the kernel's critical path (a loop of 4-byte loads per reduction and a fence before them made
    // a 2048x4096 cross-entropy forward's kernel 16 us against 7 without them). Partials are 8
    // bytes apart (2 per 16 bytes); the odd last one is read alone.
    std::string vec_loop =
        "#pragma unroll 4\n    for (unsigned b = threadIdx.x; b < gridDim.x / 2; b += blockDim.x) "
        "{";
    std::string tail = "    if (threadIdx.x == 0 && (gridDim.x & 1u)) {";
    for (size_t j = 0; j < reds.size(); ++j) {
      const KNode& n = k_.nodes[reds[j]];
      std::string ct = compute_type(n.dtype), a = "gfin" + std::to_string(reds[j]);
      std::string ws = "((const " + ct + "*)(th_ws + " + std::to_string(ws_offset[j]) + "))";
      std::string t = "pt" + std::to_string(reds[j]);
      os << "    " << ct << " " << a << " = " << reduce_identity(n.op, n.dtype, Backend::kCuda)
         << ";\n";
      vec_loop += " " + ct + " " + t + "[16 / sizeof(" + ct + ")]; th_ldcg16(" + ws +
                  " + 2 * b * (8 / sizeof(" + ct + ")), " + t + "); " + a + " = " +
                  reduce_combine(n.op, n.dtype, a, t + "[0]") + "; " + a + " = " +
                  reduce_combine(n.op, n.dtype, a, t + "[8 / sizeof(" + ct + ")]") + ";";
      tail +=
          " " + a + " = " +
          reduce_combine(n.op, n.dtype, a, ws + "[(gridDim.x - 1) * (8 / sizeof(" + ct + "))]") +
          ";";
    }
    if (grouped) {
      // The group's few partials (at most kMaxGroupBlocks), a thread each.
      os << "    for (unsigned b = threadIdx.x; b < " << nb << "; b += blockDim.x) {\n"
         << "      const unsigned q = blockIdx.x / " << nb << " * " << nb << " + b;\n";
      for (size_t j = 0; j < reds.size(); ++j) {
        const KNode& n = k_.nodes[reds[j]];
        std::string ct = compute_type(n.dtype), a = "gfin" + std::to_string(reds[j]);
        os << "      " << a << " = "
           << reduce_combine(n.op, n.dtype, a,
                             "__ldcg((const " + ct + "*)(th_ws + " + std::to_string(ws_offset[j]) +
                                 ") + q * (8 / sizeof(" + ct + ")))")
           << ";\n";
      }
      os << "    }\n";
    } else {
      os << vec_loop << " }\n" << tail << " }\n";
    }
    for (int g : reds)
      os << shuffle_reduce(k_.nodes[g].op, k_.nodes[g].dtype, "gfin" + std::to_string(g));
    os << "    __syncthreads();\n";
    for (int g : reds)
      os << "    if ((threadIdx.x & 31) == 0) gsm" << g << "[threadIdx.x >> 5] = gfin" << g
         << ";\n";
    os << "    __syncthreads();\n    if (threadIdx.x == 0) {\n";
    for (int g : reds) {
      const KNode& n = k_.nodes[g];
      std::string a = "gfin" + std::to_string(g);
      os << "      " << a << " = gsm" << g << "[0];\n"
         << "      for (unsigned w = 1; w < blockDim.x / 32; ++w) " << a << " = "
         << reduce_combine(n.op, n.dtype, a, "gsm" + std::to_string(g) + "[w]") << ";\n";
      reduced_[g] = a;
    }
    // The scalars computed from the reductions, in a scope of their own.
    row_memo_.clear();
    bases_.clear();
    row_code_.clear();
    std::string stores;
    for (size_t o : p.grid_outputs) {
      std::string val = row_value(k_.output_nodes[o]);
      stores += "      out" + std::to_string(k_.tensor_of(o)) + "[" + lit(L_.stores[o].offset) +
                (grouped ? " + " + unravel(row_axes_, L_.stores[o].strides, "r") : "") +
                "] = " + store_expr(k_.outputs[o]->dtype(), val) + ";\n";
    }
    // The group's first row: values over the group's axes are read and written at it.
    os << "      const idx_t r = "
       << (grouped ? "(idx_t)(blockIdx.x / " + nb + ") * " + lit(rows_ / over_rows_groups(k_))
                   : std::string("0"))
       << "; (void)r;\n"
       << row_code_ << stores << "      *" << counter << " = 0u;\n    }\n  }\n";
    row_code_.clear();
    return os.str();
  }

  // True for a load of weights: the same values for every row (its row stays in cache anyway).
  bool row_invariant(int id) {
    return (varies(id) & ~col_mask_) == 0 && k_.kind == KernelDef::Kind::kInner && rows_ > 1;
  }

  // The shared-memory bytes one row of load `id` takes (16-byte aligned).
  int64_t smem_row_bytes(int id) const {
    return (cols_ * storage_bytes(k_.nodes[id].dtype) + 15) / 16 * 16;
  }

  // Shared memory left for row caches: the reductions' static arrays take the rest.
  int64_t smem_for_rows() const { return smem_limit_ - 1024; }

  // The bytes of one row of every row-varying load (what a shared-memory cache would hold).
  int64_t row_bytes() {
    int64_t b = 0;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      int id = static_cast<int>(i);
      if (k_.nodes[i].op != "load" || (varies(id) & col_mask_) == 0 || row_invariant(id)) continue;
      b += smem_row_bytes(id);
    }
    return b;
  }

  RowPlan plan_rows() {
    RowPlan p;
    int64_t nq = ceil_div(cols_, vec_);
    if (nq <= 32 * warp_row_chunks()) {
      p.warp_mode = true;
      p.threads = 32;
      p.rows_per_block = 8;
    } else {
      p.threads = static_cast<int>(
          std::min<int64_t>(1024, std::max<int64_t>(128, pow2_ceil(ceil_div(nq, 8)))));
    }
    p.columns = columns_over_rows(k_);
    if (p.columns) {
      // At most 32 column accumulators a thread, shared by the column sums (registers: layer_norm's
      // two sums 4 chunks of fp32 or 2 of bf16 a thread, rms_norm's one 8 or 4), several rows a
      // block of kColumnBlock threads (a block's partials are combined before they are written).
      // H200 (scripts/gpu_schedule_probe.py --column-sums, PROBE_COLUMN_ACCUMULATORS): per sum, 8
      // is worse at bf16 (0.45-0.75 of a copy), 32 better for bf16 rms_norm (0.79-0.90 against
      // 0.73-0.80) and worse for bf16 layer_norm at 4096 wide (0.56-0.60 against 0.69-0.78), fp32
      // within 0.05. THUNDER_CUDA_COLUMN_ACCUMULATORS sets the budget. A warp per row keeps its
      // chunks (up to 4): bf16 layer_norm at 8192x768 reached 0.87-0.88 on a warp a row (24
      // accumulators a sum), 0.78 on 64 threads a row (16).
      const int block = column_block();
      if (p.warp_mode) {
        p.rows_per_block = block / 32;
      } else {
        const int64_t sums = static_cast<int64_t>(over_rows_reductions(k_).size());
        int64_t chunks = std::max<int64_t>(1, column_accumulators() / sums / vec_);
        auto threads_for = [&](int64_t c) {
          return static_cast<int>(
              std::min<int64_t>(1024, std::max<int64_t>(128, pow2_ceil(ceil_div(nq, c)))));
        };
        p.threads = threads_for(chunks);
        // Where two or more sums leave one row a block (a block a multiprocessor: its row's
        // reductions stall it whole), twice the accumulators give two row groups. H200, 2048 x 8192
        // layer_norm step (scripts/gpu_schedule_probe.py --column-sums, PROBE_COLUMN_ACCUMULATORS):
        // bf16 0.47 -> 0.54 of a copy, fp32 0.75 -> 0.74; rows that had two groups lose with more
        // (bf16 layer_norm at 4096 wide 0.69 -> 0.56, rms_norm's one sum at 8192 0.74 -> 0.53).
        if (sums >= 2 && p.threads == block && !std::getenv("THUNDER_CUDA_COLUMN_ACCUMULATORS") &&
            threads_for(chunks * 2) < p.threads) {
          chunks *= 2;
          p.threads = threads_for(chunks);
          p.doubled = true;
        }
        p.groups = std::max(1, block / p.threads);
        if (column_smem() && p.threads < 1024) {
          // Registers no longer bound the chunks a thread: the plan above keeps its threads a row;
          // the groups a block are those whose accumulators fit the shared memory.
          int64_t group_bytes = 0;
          for (int g : over_rows_reductions(k_))
            group_bytes += ceil_div(nq, p.threads) * p.threads * vec_ * compute_bytes(g);
          const int fit = static_cast<int>(std::min<int64_t>(p.groups, smem_for_rows() / group_bytes));
          if (fit >= 1) {
            p.column_smem = true;
            p.groups = fit;
          }
        }
      }
    }
    // Online softmax only for 1024-thread rows that would otherwise be read from memory once per
    // pass (shared memory cannot hold them), or be held in shared memory only for a later pass that
    // writes nothing but per-row values (cross-entropy's loss: one pass, no cache). Elsewhere its
    // per-chunk rescaling costs more than a second pass over registers or shared memory.
    bool row_outputs_only = true;
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      row_outputs_only = row_outputs_only && (store_axes(o) & col_mask_) == 0;
    }
    std::vector<int> need = p.threads >= 1024 && (row_outputs_only || row_bytes() > smem_for_rows())
                                ? plan_online(&p.online)
                                : available_from(k_);
    p.pass_reductions.resize(1);
    p.pass_outputs.resize(1);
    auto grow = [&](int q) {
      p.passes = std::max(p.passes, q);
      if (static_cast<int>(p.pass_reductions.size()) <= q) {
        p.pass_reductions.resize(q + 1);
        p.pass_outputs.resize(q + 1);
      }
    };
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (is_reduce_op(k_.nodes[i].op) && !k_.nodes[i].over_rows) {
        grow(need[i]);
        p.pass_reductions[need[i]].push_back(static_cast<int>(i));
      }
    }
    std::vector<bool> grid = over_rows_values(k_.nodes);
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      int id = k_.output_nodes[o];
      if (grid[id]) {
        p.grid_outputs.push_back(o);
      } else if ((store_axes(o) & col_mask_) == 0) {
        p.row_outputs.push_back(o);
      } else {
        grow(need[id] + 1);
        p.pass_outputs[need[id] + 1].push_back(static_cast<int>(o));
      }
    }
    if (p.columns) {
      // In the last pass (or the first their operands are available in).
      p.column_pass = p.passes;
      for (int g : over_rows_reductions(k_))
        p.column_pass = std::max(p.column_pass, need[k_.nodes[g].args[0]] + 1);
      grow(p.column_pass);
    }
    // One pass that writes only per-row values (cross-entropy's loss) caches nothing: wide rows run
    // on 256 threads, several rows per multiprocessor, so one row's reductions overlap other rows'
    // loads (H200, 2048x50304 fp32 cross-entropy forward: 0.54 of a copy's bandwidth on 1024
    // threads, 0.75 on 512, 0.84 on 256).
    if (row_outputs_only && p.passes <= 1 && p.threads > 256) p.threads = 256;
    return p;
  }

  // Loads of row data read by more than one pass, kept in registers when they fit.
  void choose_cache(const RowPlan& p, int v) {
    cached_.clear();
    smem_cached_.clear();
    smem_bytes_ = 0;
    if (inner_ < 0) return;
    int64_t k = ceil_div(ceil_div(cols_, v), p.threads);
    std::unordered_map<int, int> uses;
    for (int q = 1; q <= p.passes; ++q) {
      std::unordered_set<int> seen;
      std::vector<int> stack;
      for (int r : p.pass_reductions[q]) stack.push_back(k_.nodes[r].args[0]);
      for (int o : p.pass_outputs[q]) stack.push_back(k_.output_nodes[o]);
      if (p.columns && q == p.column_pass) {
        for (int g : over_rows_reductions(k_)) stack.push_back(k_.nodes[g].args[0]);
      }
      while (!stack.empty()) {
        int id = stack.back();
        stack.pop_back();
        if (seen.count(id) || (varies(id) & col_mask_) == 0) continue;
        seen.insert(id);
        if (k_.nodes[id].op == "load") ++uses[id];
        for (int a : k_.nodes[id].args) stack.push_back(a);
      }
    }
    std::vector<int> candidates;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      int id = static_cast<int>(i);
      if (uses[id] < 2 || L_.loads[i].strides[inner_] != 1) continue;
      if (row_invariant(id)) continue;
      candidates.push_back(id);
    }
    if (p.threads >= 1024) {
      // Rows of 1024 threads: in registers they would leave one block per multiprocessor idling
      // through each row's reductions. In dynamic shared memory (each thread reads back only the
      // chunks it stored, so no barrier), when the row fits; otherwise they are re-read through L2.
      for (int id : candidates) {
        int64_t bytes = smem_row_bytes(id);
        if (smem_bytes_ + bytes > smem_for_rows()) continue;
        smem_cached_[id] = smem_bytes_;
        smem_bytes_ += bytes;
      }
      return;
    }
    int64_t budget = 48;  // 32-bit registers per thread
    int64_t used = 0;
    for (int id : candidates) {
      int64_t regs = ceil_div(k * v * storage_bytes(k_.nodes[id].dtype), 4);
      if (used + regs > budget) continue;
      used += regs;
      cached_.insert(id);
    }
  }

  // Loads the same in every row (weights) that each thread reads at the same chunks of every row,
  // loaded into registers once, before the row loop, instead of in each pass of each row (from L1):
  // in row kernels summing columns in registers with at least 32 accumulators a thread (past 64
  // registers, so one block a multiprocessor already), while the loads take at most
  // THUNDER_CUDA_HOIST_REGS (default 8) 32-bit registers a thread together. H200, the bf16
  // layer_norm backward at 2048 x 4096 (scripts/gpu_schedule_probe.py --column-sums, two runs):
  // 21.5 -> 20.3 us. 16 registers lost up to 2x where the kernels reach 128 registers (bf16
  // rms_norm and layer_norm at 8192 wide); 8 lost a fifth in a kernel they pushed past 64 registers
  // (fp32 layer_norm backward 8192 x 768, 16 accumulators: two blocks a multiprocessor before).
  void choose_hoist(const RowPlan& p, int v) {
    hoisted_.clear();
    if (inner_ < 0 || rows_ <= 1 || !p.columns || p.column_smem) return;
    const int64_t k = ceil_div(ceil_div(cols_, v), p.threads);
    const int64_t sums = static_cast<int64_t>(over_rows_reductions(k_).size());
    if (k * v * sums < 32) return;
    const int64_t budget = env_count("THUNDER_CUDA_HOIST_REGS", 8, 0, "registers");
    int64_t used = 0;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      const int id = static_cast<int>(i);
      if (k_.nodes[i].op != "load" || !row_invariant(id) || L_.loads[i].masked() ||
          L_.loads[i].strides[inner_] != 1)
        continue;
      const int64_t regs = ceil_div(k * v * storage_bytes(k_.nodes[i].dtype), 4);
      if (used + regs > budget) continue;
      used += regs;
      hoisted_.insert(id);
    }
  }

  // The hoisted loads (choose_hoist), before the row loop of th_rows<v>.
  std::string hoist_code(const RowPlan& p, int v) {
    std::string code;
    for (int id : sorted(hoisted_)) {
      const std::string addr =
          lit(L_.loads[id].offset) + " + " + unravel(col_axes_, L_.loads[id].strides, "c");
      code += chunks_into("  ", "hw" + std::to_string(id), id, addr, p.threads, v);
    }
    return code;
  }

  // Declares `name`[kmax][v] (load id's storage type) and fills it with the chunks thread tid
  // reads of a row (chunk tid + k * threads at element offset `addr` of column index c).
  std::string chunks_into(const std::string& in, const std::string& name, int id,
                          const std::string& addr, int threads, int v) {
    const int64_t nq = ceil_div(cols_, v), kmax = ceil_div(nq, threads);
    const std::string st = storage_type(k_.nodes[id].dtype), vs = std::to_string(v);
    const std::string ks = std::to_string(kmax);
    return in + st + " " + name + "[" + ks + "][" + vs + "];\n#pragma unroll\n" + in +
           "for (int k = 0; k < " + ks + "; ++k) {\n" + in +
           "  const idx_t q = (idx_t)tid + (idx_t)k * " + std::to_string(threads) + ";\n" + in +
           "  if (q < " + lit(nq) + ") { const idx_t c = q * " + vs + "; " + ldv() + "<" + st +
           ", " + vs + ">(in" + std::to_string(k_.nodes[id].input) + " + " + addr + ", " + name +
           "[k]); }\n" + in + "}\n";
  }

  // An online pair's chunk update: the chunk's maximum, then the running sum rescaled to the new
  // maximum plus the chunk's exponentials. A maximum of -inf adds nothing (exp(-inf - -inf) would
  // be NaN where eager's terms are 0); NaN and +inf propagate as in eager.
  void online_chunk(int sum, int amax, ColScope& s) {
    const KNode& n = k_.nodes[sum];
    std::string ct = compute_type(n.dtype);
    std::string a = col_value(k_.nodes[amax].args[0], s);
    std::string oa = "oa" + std::to_string(sum), as = "acc" + std::to_string(sum),
                am = "acc" + std::to_string(amax);
    std::string vs = std::to_string(s.v);
    s.decl += "      " + ct + " " + oa + "[" + vs + "];\n";
    s.lane += "        " + oa + "[l] = " + a + ";\n";
    s.post += "      { " + ct + " cm = " + oa +
              "[0];\n#pragma unroll\n        for (int l = 1; l < " + vs +
              "; ++l) cm = th_max(cm, " + oa + "[l]);\n        const " + ct + " mn = th_max(" + am +
              ", cm);\n        if (mn != (" + ct + ")-th_inf()) {\n          " + ct +
              " t = 0;\n#pragma unroll\n        for (int l = 0; l < " + vs +
              "; ++l) t += " + exp_of(ct, oa + "[l] - mn") + ";\n          " + as + " = (" + am +
              " == mn ? " + as + " : " + as + " * " + exp_of(ct, am + " - mn") +
              ") + t;\n        }\n        " + am + " = mn;\n      }\n";
  }

  // Combines an online pair's accumulators with another (m2, s2), read once each.
  std::string online_combine(int sum, int amax, const std::string& m2, const std::string& s2) {
    std::string ct = compute_type(k_.nodes[sum].dtype);
    std::string as = "acc" + std::to_string(sum), am = "acc" + std::to_string(amax);
    return "const " + ct + " om = " + m2 + ", os = " + s2 + "; const " + ct + " mn = th_max(" + am +
           ", om); " + as + " = mn == (" + ct + ")-th_inf() ? " + as + " : (" + am + " == mn ? " +
           as + " : " + as + " * " + exp_of(ct, am + " - mn") + ") + (om == mn ? os : os * " +
           exp_of(ct, "om - mn") + "); " + am + " = mn;";
  }

  // The exponentials of online pairs take values minus a maximum: at most 0 (or NaN).
  static std::string exp_of(const std::string& ct, const std::string& x) {
    return (ct == "double" ? "exp(" : "th_exp_nonpos(") + x + ")";
  }

  // Every lane of the warp must execute each shuffle: the partner's value is taken first, then
  // combined (an integer max is a conditional that would evaluate a shuffle in some lanes only).
  std::string shuffle_reduce(const std::string& op, DType d, const std::string& acc) {
    return "#pragma unroll\n    for (int m = 16; m > 0; m >>= 1) { const " + compute_type(d) + " o = th_shfl(" + acc +
           ", m); " + acc + " = " + reduce_combine(op, d, acc, "o") + "; }\n";
  }

  // The body of the row loop for chunk width v.
  std::string rows_body(const RowPlan& p, int v, bool use_cache) {
    reset();
    if (use_cache) {
      choose_cache(p, v);
      choose_hoist(p, v);
    } else {
      cached_.clear();
      hoisted_.clear();
      smem_cached_.clear();
      smem_bytes_ = 0;
    }
    smem_filled_.clear();
    smem_filling_.clear();
    const int t = p.threads;
    int64_t nq = ceil_div(cols_, v);
    int64_t kmax = ceil_div(nq, t);
    std::string vs = std::to_string(v);
    std::ostringstream os;
    // Cached loads, read once per row.
    std::string cache_code;
    for (int id : sorted(cached_)) {
      std::string addr = row_part(id) + " + " + unravel(col_axes_, L_.loads[id].strides, "c");
      cache_code += chunks_into("    ", "cache" + std::to_string(id), id, addr, t, v);
    }
    // Rows kept in shared memory arrive by asynchronous 16-byte copies issued for the whole row at
    // once: every load of the row is in flight together and passes through no registers (H200,
    // fp32 softmax 50304 wide: 0.74 -> 0.95 of a copy). Each thread copies the chunks it reads back
    // later, so its own wait suffices.
    std::vector<int> smem_ids;
    for (const auto& e : smem_cached_) smem_ids.push_back(e.first);
    std::sort(smem_ids.begin(), smem_ids.end());
    bool async_fill = !smem_ids.empty();
    for (int id : smem_ids) async_fill = async_fill && v * storage_bytes(k_.nodes[id].dtype) == 16;
    if (async_fill) {
      for (int id : smem_ids) {
        std::string addr = row_part(id) + " + " + unravel(col_axes_, L_.loads[id].strides, "c");
        cache_code += "    for (idx_t q = (idx_t)tid; q < " + lit(nq) +
                      "; q += " + std::to_string(t) + ") { const idx_t c = q * " + vs +
                      "; th_cp_async16(" + smem_ptr(id) + " + c, in" +
                      std::to_string(k_.nodes[id].input) + " + " + addr + "); }\n";
        smem_filled_.insert(id);
      }
      cache_code += "    th_cp_async_wait();\n";
    }
    // The row's tail values that no reduction feeds (cross-entropy's target index): their loads go
    // out before the row's, their arithmetic after, so a load from another tensor waits alongside
    // the row's loads instead of after the reductions.
    std::vector<int> early_gathers;
    std::vector<int> early = early_row_values(p, &early_gathers);
    for (int id : early) {
      for (int l : early_loads(id)) row_value(l);
    }
    os << row_code_;  // row bases of the cached loads, the early loads
    row_code_.clear();
    os << cache_code;
    for (int id : early) row_value(id);
    os << row_code_;
    row_code_.clear();
    for (int q = 1; q <= p.passes; ++q) {
      ColScope s;
      s.v = v;
      s.cached = !cached_.empty() || !hoisted_.empty();
      std::string init, fold;
      std::unordered_set<int> paired;  // the amax and sum of online pairs
      for (int r : p.pass_reductions[q]) {
        auto it = p.online.find(r);
        if (it != p.online.end()) paired.insert({r, it->second});
      }
      for (int r : p.pass_reductions[q]) {
        const KNode& n = k_.nodes[r];
        std::string acc = "acc" + std::to_string(r);
        init += "    " + compute_type(n.dtype) + " " + acc + " = " + reduce_identity(n.op, n.dtype, Backend::kCuda) + ";\n";
        if (paired.count(r)) continue;
        s.lane += "        " + acc + " = " + accumulate(r, acc, s) + ";\n";
      }
      for (int r : p.pass_reductions[q]) {
        auto it = p.online.find(r);
        if (it != p.online.end()) online_chunk(r, it->second, s);
      }
      for (int o : p.pass_outputs[q]) {
        col_store(static_cast<size_t>(o), s);
      }
      const bool column_pass = p.columns && q == p.column_pass;
      if (column_pass) {
        for (int g : over_rows_reductions(k_)) {
          std::string acc = "cacc" + std::to_string(g) +
                            (p.column_smem ? "[(k * " + vs + " + l) * " + std::to_string(t) + " + tid]"
                                           : "[k][l]");
          s.lane += "        " + acc + " = " + accumulate(g, acc, s) + ";\n";
        }
      }
      os << row_code_;
      row_code_.clear();
      os << init;
      bool uses_cache = column_pass;  // the column accumulators are indexed by the chunk k
      for (int id : cached_) uses_cache = uses_cache || s.memo.count(id);
      for (int id : hoisted_) uses_cache = uses_cache || s.memo.count(id);
      if (uses_cache) {
        os << "#pragma unroll\n    for (int k = 0; k < " << kmax << "; ++k) {\n      const idx_t q = (idx_t)tid + (idx_t)k * "
           << t << ";\n      if (q < " << lit(nq) << ") {\n      const idx_t c = q * " << vs << ";\n"
           << lane_loop(s) << "      }\n    }\n";
      } else {
        os << "#pragma unroll 2\n    for (idx_t q = (idx_t)tid; q < " << lit(nq) << "; q += " << t << ") {\n"
           << "      const idx_t c = q * " << vs << ";\n" << lane_loop(s) << "    }\n";
      }
      // Combine the threads' partial results: warp shuffles, then (block mode) one shared-memory round.
      for (int r : p.pass_reductions[q]) {
        const KNode& n = k_.nodes[r];
        auto it = p.online.find(r);
        if (it != p.online.end()) {
          fold += "#pragma unroll\n    for (int m = 16; m > 0; m >>= 1) { " +
                  online_combine(r, it->second, "th_shfl(acc" + std::to_string(it->second) + ", m)",
                                 "th_shfl(acc" + std::to_string(r) + ", m)") +
                  " }\n";
        } else if (!paired.count(r)) {
          fold += shuffle_reduce(n.op, n.dtype, "acc" + std::to_string(r));
        }
      }
      if (!p.warp_mode && !p.pass_reductions[q].empty()) {
        for (int r : p.pass_reductions[q]) {
          fold += "    if ((tid & 31) == 0) sm" + std::to_string(r) + "[tid >> 5] = acc" + std::to_string(r) + ";\n";
        }
        fold += "    " + row_sync(p) + "\n";
        for (int r : p.pass_reductions[q]) {
          fold += "    acc" + std::to_string(r) + " = sm" + std::to_string(r) + "[0];\n";
        }
        for (int r : p.pass_reductions[q]) {
          const KNode& n = k_.nodes[r];
          std::string acc = "acc" + std::to_string(r), sm = "sm" + std::to_string(r);
          auto it = p.online.find(r);
          if (it != p.online.end()) {
            std::string smm = "sm" + std::to_string(it->second);
            fold += "    for (int w = 1; w < " + std::to_string(t / 32) + "; ++w) { " +
                    online_combine(r, it->second, smm + "[w]", sm + "[w]") + " }\n";
          } else if (!paired.count(r)) {
            fold += "    for (int w = 1; w < " + std::to_string(t / 32) + "; ++w) " + acc + " = " +
                    reduce_combine(n.op, n.dtype, acc, sm + "[w]") + ";\n";
          }
        }
      }
      if (q == p.passes) {
        early_gather_loads(early_gathers);
        os << row_code_;
        row_code_.clear();
      }
      os << fold;
      for (int r : p.pass_reductions[q]) reduced_[r] = "acc" + std::to_string(r);
      smem_filled_.insert(smem_filling_.begin(), smem_filling_.end());
      smem_filling_.clear();
    }
    // Row outputs: one thread writes them.
    std::string stores;
    for (size_t o : p.row_outputs) {
      std::string val = row_value(k_.output_nodes[o]);
      const Access& a = L_.stores[o];
      std::string g = guard(o, row_axes_, "r");
      std::string stmt = "out" + std::to_string(k_.tensor_of(o)) + "[" + lit(a.offset) + " + " +
                         unravel(row_axes_, a.strides, "r") +
                         "] = " + store_expr(k_.outputs[o]->dtype(), val) + ";";
      stores += "      " + (g.empty() ? stmt : "if (" + g + ") " + stmt) + "\n";
    }
    // Reductions over rows: the row's first thread combines its value, like the row outputs it
    // stores (so that the row's tail, a gather load and a log in cross-entropy's loss, is that
    // thread's alone).
    if (!p.columns) {
      for (int g : over_rows_reductions(k_)) {
        const KNode& n = k_.nodes[g];
        std::string acc = "gacc" + std::to_string(g);
        stores += "      " + acc + " = " +
                  reduce_combine(n.op, n.dtype, acc, row_value(n.args[0])) + ";\n";
      }
    }
    os << row_code_;
    row_code_.clear();
    if (!stores.empty()) os << "    if (tid == 0) {\n" << stores << "    }\n";
    return os.str();
  }

  // The index of gather `id`, checked: emitted once per row. An index out of range reads index 0
  // and gives NaN (floating values): a loud result where eager raises a device-side assert; the CPU
  // kernels raise IndexError.
  std::string gather_index(int id) {
    std::string gi = "g" + std::to_string(id);
    if (!gather_indexed_.insert(id).second) return gi;
    std::string iv = row_value(k_.nodes[id].args[1]);
    row_code_ += "    idx_t " + gi + " = (idx_t)" + iv + ";\n    const bool " + gi +
                 "_bad = " + gi + " < 0 || " + gi + " >= " + lit(cols_) + ";\n    if (" + gi +
                 "_bad) " + gi + " = 0;\n";
    return gi;
  }

  // The row's tail gathers whose index no reduction feeds (cross-entropy's target logit; listed by
  // early_row_values): their loads are issued after the last pass's loop, before its reductions
  // combine the threads' values, so that the load's latency passes under theirs instead of after
  // them.
  void early_gather_loads(const std::vector<int>& gathers) {
    for (int id : gathers) {
      std::string gi = gather_index(id);
      std::set<int> loads, seen;
      std::function<void(int)> col = [&](int a) {
        if (!seen.insert(a).second || row_level(a)) return;
        if (k_.nodes[a].op == "load") loads.insert(a);
        for (int b : k_.nodes[a].args) col(b);
      };
      col(k_.nodes[id].args[0]);
      auto& pre = gathered_[id];
      for (int l : loads) {
        const std::string v = "gl" + std::to_string(id) + "_" + std::to_string(l);
        row_code_ += "    const " + storage_type(k_.nodes[l].dtype) + " " + v + " = in" +
                     std::to_string(k_.nodes[l].input) + "[" + row_part(l) + " + " +
                     unravel(col_axes_, L_.loads[l].strides, gi) + "];\n";
        pre[l] = v;
      }
    }
  }

  // The largest row-level values no reduction feeds (available before the first pass:
  // available_from) among those the row's tail computes (its row outputs and its terms of
  // reductions over rows), in node order.
  // `gathers` receives the tail's gathers whose index is among them (early_gather_loads).
  std::vector<int> early_row_values(const RowPlan& p, std::vector<int>* gathers) {
    const std::vector<int> need = available_from(k_);
    std::vector<int> roots;
    for (size_t o : p.row_outputs) roots.push_back(k_.output_nodes[o]);
    for (int g : over_rows_reductions(k_)) roots.push_back(k_.nodes[g].args[0]);
    std::set<int> early, seen, gathered;
    std::function<void(int)> walk = [&](int id) {
      if (!seen.insert(id).second || !row_level(id)) return;
      const KNode& n = k_.nodes[id];
      if (need[id] == 0) {
        if (n.op != "const") early.insert(id);
        return;
      }
      if (n.op == "gather") {
        walk(n.args[1]);  // the index; the gathered row values are column-level
        if (need[n.args[1]] == 0) gathered.insert(id);
        return;
      }
      for (int a : n.args) walk(a);
    };
    for (int r : roots) walk(r);
    gathers->assign(gathered.begin(), gathered.end());
    return {early.begin(), early.end()};
  }

  // The loads value `id` (row-level) computes from, in node order.
  std::vector<int> early_loads(int id) {
    std::set<int> loads, seen;
    std::function<void(int)> walk = [&](int i) {
      if (!seen.insert(i).second) return;
      const KNode& n = k_.nodes[i];
      if (n.op == "load") loads.insert(i);
      for (int a : n.args) walk(a);
    };
    walk(id);
    return {loads.begin(), loads.end()};
  }

  // The row of a load kept in dynamic shared memory, as a pointer of its storage type.
  std::string smem_ptr(int id) const {
    return "((" + storage_type(k_.nodes[id].dtype) + "*)(th_smem + " +
           std::to_string(smem_cached_.at(id)) + "))";
  }

  static std::vector<int> sorted(const std::unordered_set<int>& s) {
    std::vector<int> v(s.begin(), s.end());
    std::sort(v.begin(), v.end());
    return v;
  }

  std::string inner(CudaLaunch* launch) {
    RowPlan p = plan_rows();
    words_ = p.columns && !p.doubled;
    std::ostringstream os;
    std::string smem_params, smem_args, smem_decls;
    const std::string group_of = "(threadIdx.x / " + std::to_string(p.threads) + ")";
    if (!p.warp_mode) {
      for (int q = 1; q <= p.passes; ++q) {
        for (int r : p.pass_reductions[q]) {
          std::string ct = compute_type(k_.nodes[r].dtype), sm = "sm" + std::to_string(r);
          smem_params += ", " + ct + "* " + sm;
          // A row group's own 32 slots.
          smem_args += ", " + sm + (p.groups > 1 ? " + " + group_of + " * 32" : "");
          smem_decls +=
              "  __shared__ " + ct + " " + sm + "[" + std::to_string(32 * p.groups) + "];\n";
        }
      }
    }
    std::vector<int> grid_reds = over_rows_reductions(k_);
    const int row_groups = p.warp_mode ? p.rows_per_block : p.groups;  // rows a block runs at once
    // A reduction over no rows still stores its scalars (a sum of nothing is 0) or its columns:
    // one block.
    int64_t grid = rows_ == 0 ? (grid_reds.empty() ? 0 : 1) : ceil_div(rows_, row_groups);
    if (p.columns) grid = std::min(grid, kMaxColumnPartials);
    // Reductions over the rows of each group (KernelDef::group_axes): a fixed number of blocks a
    // group, each looping over its share of the group's rows; a count of finished blocks a group.
    const int64_t groups = over_rows_groups(k_);
    int64_t group_blocks = 0;
    if (groups > 1 && !grid_reds.empty()) {
      group_blocks = std::clamp<int64_t>(ceil_div(rows_ / groups, row_groups), 1, kMaxGroupBlocks);
      grid = groups * group_blocks;
    }
    std::string grid_decls;
    std::vector<int64_t> ws_offset;
    // The counts of finished blocks, then the blocks' partials (column sums: the partials alone).
    const int64_t count_offset = 0;
    int64_t ws_bytes =
        grid_reds.empty() || p.columns ? 0 : ceil_div(4 * std::max<int64_t>(groups, 1), 16) * 16;
    const int64_t counters = ws_bytes;
    for (int g : grid_reds) {
      std::string ct = compute_type(k_.nodes[g].dtype);
      ws_offset.push_back(ws_bytes);
      if (p.columns) {
        ws_bytes += ceil_div(grid * cols_ * compute_bytes(g), 16) * 16;
        continue;
      }
      std::string acc = "gacc" + std::to_string(g);
      smem_params += ", " + ct + "& " + acc;
      smem_args += ", " + acc;
      grid_decls += "  " + ct + " " + acc + " = " +
                    reduce_identity(k_.nodes[g].op, k_.nodes[g].dtype, Backend::kCuda) +
                    ";\n  __shared__ " + ct + " gsm" + std::to_string(g) + "[32];\n";
      ws_bytes += ceil_div(grid * 8, 16) * 16;  // a partial per block, 8 bytes apart
    }
    if (p.columns) {
      smem_params += ", unsigned char* __restrict__ th_ws";
      smem_args += ", th_ws";
    } else if (!grid_reds.empty()) {
      grid_decls += "  __shared__ unsigned th_last;\n";
    }
    auto fn = [&](int v, bool use_cache) {
      std::string body = rows_body(p, v, use_cache);
      std::ostringstream f;
      f << "TH_INLINE void th_rows" << v << "(" << params_ << smem_params << ") {\n";
      const std::string rows = std::to_string(rows_) + "LL";
      if (group_blocks > 0) {
        // Block b of group g: the group's rows b * R + i, b * R + i + B * R, ... (R rows a block
        // at once, row group i).
        const std::string per = std::to_string(rows_ / groups) + "LL";
        const std::string at_once = std::to_string(row_groups);
        const std::string nb = std::to_string(group_blocks);
        // (Kernels of groups of rows sum no columns: a row group is a warp or the whole block.)
        f << (p.warp_mode ? "  const int tid = threadIdx.x & 31, grp = threadIdx.x >> 5;\n"
                          : "  const int tid = threadIdx.x, grp = 0; (void)grp;\n")
          << "  const long long th_g0 = (long long)(blockIdx.x / " << nb << "u) * " << per
          << ", th_g1 = th_g0 + " << per << ";\n"
          << "  for (long long row = th_g0 + (long long)(blockIdx.x % " << nb << "u) * " << at_once
          << " + grp; row < th_g1; row += " << group_blocks * row_groups << "LL) {\n";
      } else if (p.warp_mode) {
        f << "  const int tid = threadIdx.x & 31;\n"
          << column_init(p, v) << hoist_code(p, v)
          << "  for (long long row = (long long)blockIdx.x * " << p.rows_per_block
          << " + (threadIdx.x >> 5); row < " << rows << "; row += (long long)gridDim.x * "
          << p.rows_per_block << ") {\n";
      } else if (p.groups > 1) {
        f << "  const int grp = " << group_of << ", tid = threadIdx.x % " << p.threads << ";\n"
          << column_init(p, v) << hoist_code(p, v)
          << "  for (long long row = (long long)blockIdx.x * " << p.groups << " + grp; row < "
          << rows << "; row += (long long)gridDim.x * " << p.groups << ") {\n";
      } else {
        f << "  const int tid = threadIdx.x;\n"
          << column_init(p, v) << hoist_code(p, v) << "  for (long long row = blockIdx.x; row < "
          << rows << "; row += gridDim.x) {\n";
      }
      f << "    const idx_t r = (idx_t)row; (void)r;\n" << body;
      if (!p.warp_mode) f << "    " << row_sync(p) << "\n";
      f << "  }\n" << column_partials(p, v, ws_offset) << "}\n";
      return f.str();
    };
    // The vector path is generated last: its shared-memory row cache sizes the launch.
    std::string scalar_rows = fn(1, vec_ == 1);
    int64_t scalar_smem = smem_bytes_;
    std::string vector_rows = vec_ > 1 ? fn(vec_, true) : "";
    int64_t smem = std::max(scalar_smem, vec_ > 1 ? smem_bytes_ : int64_t{0});
    if (smem > 0) os << "extern __shared__ __align__(16) unsigned char th_smem[];\n";
    os << scalar_rows << vector_rows;
    int block = p.threads * row_groups;
    // 1024-thread rows re-read through L2 run two blocks per multiprocessor; with the row in shared
    // memory, one (two blocks of bf16 rows 50304 wide, 100 KB each, measured the same on an H200).
    // Column accumulators in shared memory leave the registers of two blocks a multiprocessor.
    const bool two_blocks =
        (block >= 1024 && smem == 0) || (p.column_smem && block <= 512 && 2 * smem <= smem_limit_);
    // THUNDER_CUDA_COLUMN_MIN_BLOCKS: the blocks a multiprocessor must hold at once for kernels
    // summing columns in registers (their register bound; a schedule to compare by benchmark).
    const int64_t min_blocks =
        p.columns && !p.column_smem && std::getenv("THUNDER_CUDA_COLUMN_MIN_BLOCKS")
            ? env_count("THUNDER_CUDA_COLUMN_MIN_BLOCKS", 1, 1, "blocks")
            : (two_blocks ? 2 : 1);
    os << "extern \"C\" __global__ void __launch_bounds__(" << block
       << (min_blocks > 1 ? ", " + std::to_string(min_blocks) : std::string()) << ") " << name_
       << "(" << params_ << (grid_reds.empty() ? "" : ", unsigned char* __restrict__ th_ws")
       << ") {\n"
       << smem_decls << grid_decls;
    os << vector_or_scalar("th_rows", args_ + smem_args);
    if (!p.columns && !grid_reds.empty()) {
      os << over_rows_epilogue(p, ws_offset, count_offset, group_blocks);
    }
    os << "}\n";
    launch->block = block;
    launch->grid = grid;
    launch->exact_grid = group_blocks > 0;
    launch->shared_bytes = static_cast<int>(smem);
    launch->workspace_bytes = ws_bytes;
    launch->counter_bytes = ws_bytes > 0 && !p.columns ? counters : 0;
    if (p.columns) {
      os << column_finish(ws_offset);
      launch->finish_name = name_ + "_finish";
      launch->finish_grid = ceil_div(cols_, 32);
      launch->finish_block = 32 * kFinishRows;
      launch->resident_grid = true;
    }
    return os.str();
  }

  // The row barrier of block mode: the block's, or its row group's (a named barrier per group).
  static std::string row_sync(const RowPlan& p) {
    return p.groups > 1 ? "th_bar_sync(1 + grp, " + std::to_string(p.threads) + ");"
                        : "__syncthreads();";
  }

  // The bytes of node id's compute type (compute_type).
  int compute_bytes(int id) const {
    const DType d = k_.nodes[id].dtype;
    return static_cast<int>(
        dtype_size(is_floating(d) && d != DType::kFloat64 ? DType::kFloat32 : d));
  }

  // Reductions over rows per column: each thread's accumulators, per chunk k it computes (chunk
  // tid + k * threads of the row) and lane.
  std::string column_init(const RowPlan& p, int v) {
    if (!p.columns) return "";
    const int64_t kmax = ceil_div(ceil_div(cols_, v), p.threads);
    std::string init;
    if (p.column_smem) {
      // After the rows kept in shared memory (rows_body sized them): each sum's slots for every
      // row group, the thread's own zeroed.
      const std::string slots = std::to_string(kmax * v * p.threads), t = std::to_string(p.threads);
      column_smem_offset_.clear();
      for (int g : over_rows_reductions(k_)) {
        const KNode& n = k_.nodes[g];
        const std::string ct = compute_type(n.dtype), id = std::to_string(g);
        smem_bytes_ = ceil_div(smem_bytes_, 16) * 16;
        column_smem_offset_.push_back(smem_bytes_);
        smem_bytes_ += int64_t{p.groups} * kmax * v * p.threads * compute_bytes(g);
        init += "  " + ct + "* const cacc" + id + " = (" + ct + "*)(th_smem + " +
                std::to_string(column_smem_offset_.back()) + ") + " +
                (p.groups > 1 ? "grp * " + slots : std::string("0")) + ";\n  for (int k = 0; k < " +
                slots + "; k += " + t + ") cacc" + id + "[k + tid] = " +
                reduce_identity(n.op, n.dtype, Backend::kCuda) + ";\n";
      }
      return init;
    }
    for (int g : over_rows_reductions(k_)) {
      const KNode& n = k_.nodes[g];
      std::string acc = "cacc" + std::to_string(g);
      init += "  " + compute_type(n.dtype) + " " + acc + "[" + std::to_string(kmax) + "][" +
              std::to_string(v) + "];\n#pragma unroll\n  for (int k = 0; k < " +
              std::to_string(kmax) + "; ++k)\n#pragma unroll\n    for (int l = 0; l < " +
              std::to_string(v) + "; ++l) " + acc +
              "[k][l] = " + reduce_identity(n.op, n.dtype, Backend::kCuda) + ";\n";
    }
    return init;
  }

  // After the row loop: the block's partial per column, its row groups' accumulators combined in
  // group order through shared memory, written to the workspace row of the block.
  std::string column_partials(const RowPlan& p, int v, const std::vector<int64_t>& ws_offset) {
    if (!p.columns) return "";
    const int t = p.threads;
    const int groups = p.warp_mode ? p.rows_per_block : p.groups;
    const int64_t kmax = ceil_div(ceil_div(cols_, v), t);
    const std::string ks = std::to_string(kmax), vs = std::to_string(v), tv = std::to_string(t * v);
    std::vector<int> reds = over_rows_reductions(k_);
    std::string code;
    // Sum j's workspace row of this block.
    auto partial_row = [&](size_t j, const std::string& ct) {
      return "((" + ct + "*)(th_ws + " + std::to_string(ws_offset[j]) + ") + (idx_t)blockIdx.x * " +
             lit(cols_) + ")";
    };
    if (p.column_smem) {
      // Each thread of the block takes whole chunks (V columns) of every sum: the groups' slots in
      // group order (a warp reads consecutive slots), then the chunk's columns written together.
      const std::string slots = std::to_string(kmax * v * t), ts = std::to_string(t);
      code += "  __syncthreads();\n";
      for (size_t j = 0; j < reds.size(); ++j) {
        const KNode& n = k_.nodes[reds[j]];
        const std::string ct = compute_type(n.dtype);
        const std::string base =
            "((const " + ct + "*)(th_smem + " + std::to_string(column_smem_offset_[j]) + "))";
        const std::string part = partial_row(j, ct);
        code += "  for (int u = threadIdx.x; u < " + std::to_string(kmax * t) +
                "; u += blockDim.x) {\n    const int k = u / " + ts + ", s = (k * " + vs +
                ") * " + ts + " + u % " + ts + ";\n#pragma unroll\n    for (int l = 0; l < " + vs +
                "; ++l) {\n      " + ct + " a = " + base + "[s + l * " + ts +
                "];\n      for (int g = 1; g < " + std::to_string(groups) + "; ++g) a = " +
                reduce_combine(n.op, n.dtype, "a", base + "[g * " + slots + " + s + l * " + ts + "]") +
                ";\n      const idx_t c = (idx_t)u * " + vs + " + l;\n      if (c < " + lit(cols_) +
                ") " + part + "[c] = a;\n    }\n  }\n";
      }
      return code;
    }
    int64_t buf_bytes = 0;
    for (int g : reds)
      buf_bytes = std::max<int64_t>(buf_bytes, int64_t{groups} * t * v * compute_bytes(g));
    if (groups > 1) {
      code += "  __shared__ double th_cb[" + std::to_string(ceil_div(buf_bytes, 8)) +
              "];  // 8-byte aligned\n  __syncthreads();\n";
    }
    for (size_t j = 0; j < reds.size(); ++j) {
      const KNode& n = k_.nodes[reds[j]];
      const std::string ct = compute_type(n.dtype), acc = "cacc" + std::to_string(reds[j]);
      const std::string part = partial_row(j, ct);
      if (groups == 1) {
        code += "#pragma unroll\n  for (int k = 0; k < " + ks +
                "; ++k) {\n#pragma unroll\n    for (int l = 0; l < " + vs +
                "; ++l) {\n      const idx_t c = ((idx_t)k * " + std::to_string(t) + " + tid) * " +
                vs + " + l;\n      if (c < " + lit(cols_) + ") " + part + "[c] = " + acc +
                "[k][l];\n    }\n  }\n";
        continue;
      }
      const std::string grp = p.warp_mode ? "(threadIdx.x >> 5)" : "grp";
      code += "  {\n    " + ct + "* cb = (" + ct +
              "*)th_cb;\n#pragma unroll\n    for (int k = 0; k < " + ks +
              "; ++k) {\n#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) cb[(" + grp +
              " * " + std::to_string(t) + " + tid) * " + vs + " + l] = " + acc +
              "[k][l];\n      __syncthreads();\n" + "      for (int e = threadIdx.x; e < " + tv +
              "; e += blockDim.x) {\n        " + ct + " a = cb[e];\n        for (int g = 1; g < " +
              std::to_string(groups) +
              "; ++g) a = " + reduce_combine(n.op, n.dtype, "a", "cb[g * " + tv + " + e]") +
              ";\n        const idx_t c = (idx_t)k * " + tv + " + e;\n        if (c < " +
              lit(cols_) + ") " + part + "[c] = a;\n      }\n      __syncthreads();\n    }\n  }\n";
    }
    return code;
  }

  // The second kernel of reductions over rows per column: per column (32 a block, each on
  // kFinishRows threads that take every kFinishRows-th block's partial), the blocks' partials in
  // block order, then the column's outputs. th_nb is the row kernel's block count (its launch's
  // grid). A thread loads kFinishLoads partials at once, each predicated on that count: a loop over
  // the count itself went one L2 round trip a partial.
  std::string column_finish(const std::vector<int64_t>& ws_offset) {
    reset();
    std::vector<int> reds = over_rows_reductions(k_);
    const std::string fr = std::to_string(kFinishRows), fl = std::to_string(kFinishLoads);
    std::ostringstream os;
    os << "extern \"C\" __global__ void __launch_bounds__(" << 32 * kFinishRows << ") " << name_
       << "_finish(" << params_ << ", unsigned char* __restrict__ th_ws, const unsigned th_nb) {\n"
       << "  const int x = threadIdx.x & 31, y = threadIdx.x >> 5;\n"
       << "  const idx_t c = (idx_t)blockIdx.x * 32 + x;\n";
    std::string init, load, step, keep;
    for (size_t j = 0; j < reds.size(); ++j) {
      const KNode& n = k_.nodes[reds[j]];
      const std::string ct = compute_type(n.dtype), g = std::to_string(reds[j]);
      const std::string id = reduce_identity(n.op, n.dtype, Backend::kCuda);
      os << "  __shared__ " << ct << " fsm" << g << "[" << fr << "][32];\n";
      init += "  " + ct + " a" + g + " = " + id + ";\n";
      load += "      " + ct + " p" + g + "[" + fl +
              "];\n#pragma unroll\n      for (int j = 0; j < " + fl + "; ++j) p" + g +
              "[j] = b0 + j * " + fr + " < th_nb ? __ldcg((const " + ct + "*)(th_ws + " +
              std::to_string(ws_offset[j]) + ") + (idx_t)(b0 + j * " + fr + ") * " + lit(cols_) +
              " + c) : " + id + ";\n";
      step += "        if (b0 + j * " + fr + " < th_nb) a" + g + " = " +
              reduce_combine(n.op, n.dtype, "a" + g, "p" + g + "[j]") + ";\n";
      keep += "  fsm" + g + "[y][x] = a" + g + ";\n";
    }
    os << init << "  if (c < " << lit(cols_)
       << ") {\n    for (unsigned b0 = y; b0 < th_nb; b0 += " << kFinishRows * kFinishLoads
       << ") {\n"
       << load << "#pragma unroll\n      for (int j = 0; j < " << fl << "; ++j) {\n"
       << step << "      }\n    }\n  }\n"
       << keep << "  __syncthreads();\n  if (y == 0 && c < " << lit(cols_) << ") {\n";
    for (int r : reds) {
      const KNode& n = k_.nodes[r];
      const std::string g = std::to_string(r), a = "gfin" + g;
      os << "    " << compute_type(n.dtype) << " " << a << " = fsm" << g << "[0][x];\n"
         << "    for (int w = 1; w < " << fr << "; ++w) " << a << " = "
         << reduce_combine(n.op, n.dtype, a, "fsm" + g + "[w][x]") << ";\n";
      reduced_[r] = a;
    }
    ColScope e;
    e.v = 1;
    const std::vector<bool> grid = over_rows_values(k_.nodes);
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      if (grid[k_.output_nodes[o]]) col_store(o, e);
    }
    os << "    const idx_t r = 0; (void)r;\n" << row_code_ << lane_loop(e) << "  }\n}\n";
    row_code_.clear();
    return os.str();
  }

  // ---- column reductions (kOuter) -----------------------------------------------------------------

  std::string outer(CudaLaunch* launch) {
    std::vector<int> reds;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (is_reduce_op(k_.nodes[i].op)) reds.push_back(static_cast<int>(i));
    }
    int64_t nq = ceil_div(cols_, vec_);
    // Columns per block: 32 vectors, fewer (down to 8: 128 bytes of a row per warp row) while the
    // columns give fewer than 128 blocks (4096 bf16 columns are 16 blocks of 32 vectors: most SMs
    // would idle); the block's rows then split the column more ways.
    int tx = static_cast<int>(std::min<int64_t>(32, pow2_ceil(std::max<int64_t>(nq, 1))));
    while (tx > 8 && ceil_div(nq, tx) < 128) tx /= 2;
    int64_t tiles = ceil_div(nq, tx);
    // Too few column tiles to occupy the device (768 bf16 columns are 12 tiles) and rows enough:
    // the rows are split over blocks of 256 threads (below), each thread summing several rows.
    const int split_threads = std::max(outer_threads(), tx);
    const int col_rows = outer_rows();
    const bool split_rows = tiles < 128 && rows_ >= int64_t{8} * (split_threads / tx);
    int threads = split_rows ? split_threads : tiles < 256 ? 1024 : 512;
    int ty = threads / tx;
    // A reduction's slot in shared memory and in the workspace: 8 bytes for 8-byte accumulators,
    // else 4.
    auto item_bytes = [&](int r) -> int64_t {
      const std::string ct = compute_type(k_.nodes[r].dtype);
      return ct == "double" || ct == "int64_t" ? 8 : 4;
    };
    auto smem_bytes = [&](int v, int y) {
      int64_t b = 0;
      for (int r : reds) b += int64_t{y} * tx * v * item_bytes(r);
      return b;
    };
    // With split rows, the last block's combination buffer too (8 bytes a thread and lane), which
    // shares the reductions' buffers: it is filled only after their trees are read. (Two float64
    // sums of bf16 columns, batch_norm's statistics, kept 128 threads a block with the buffers
    // apart.)
    while (ty > 1 &&
           std::max(smem_bytes(vec_, ty), split_rows ? int64_t{ty} * tx * vec_ * 8 : 0) > 40000)
      ty /= 2;
    threads = tx * ty;
    // Split rows: about 256 blocks in all, at least 4 rows per thread. Each block writes its
    // partial results to a workspace; the last block of a tile to finish (an atomic count per tile)
    // combines the partials in split order (deterministic) and runs the epilogue. A kernel that
    // also writes full-size outputs (gelu's backward beside its bias gradient) streams several
    // tensors per row: about 1024 blocks, so that enough loads are in flight (8 blocks of 256
    // threads per multiprocessor of an H100).
    bool streams_rows = false;
    for (size_t o = 0; o < k_.outputs.size(); ++o) streams_rows = streams_rows || per_row_output(o);
    int64_t splits = 1;
    if (split_rows) {
      const int64_t target = outer_blocks(streams_rows);
      splits = std::max<int64_t>(1, std::min(ceil_div(target, tiles), rows_ / (int64_t{4} * ty)));
    }
    const int64_t rows_per_split = ceil_div(rows_, splits);
    // The workspace: the tiles' counters (as many as the scalar variant has tiles), then per
    // reduction its partials [splits][cols].
    std::vector<int64_t> ws_offset;
    int64_t ws_bytes = 0, count_bytes = 0;
    if (splits > 1) {
      count_bytes = ceil_div(4 * ceil_div(cols_, tx), 16) * 16;
      ws_bytes = count_bytes;
      for (int r : reds) {
        ws_offset.push_back(ws_bytes);
        ws_bytes += ceil_div(splits * cols_ * item_bytes(r), 16) * 16;
      }
    }
    const std::string kparams = params_ + (splits > 1 ? ", unsigned char* __restrict__ th_ws" : "");
    const std::string kargs = args_ + (splits > 1 ? ", th_ws" : "");
    std::ostringstream os;
    auto fn = [&](int v) {
      reset();
      std::string vs = std::to_string(v);
      int64_t nqv = ceil_div(cols_, v);
      int64_t tile_cols = int64_t{tx} * v;
      ColScope s;
      s.v = v;
      // Each thread reads kColRows of its rows into registers, then computes them (their loads in
      // flight together, as a pointwise thread's four chunks are). H200, GPT-2's gelu backward
      // (8192x3072 bf16, two full-size outputs beside the bias gradient): 80 -> 67 us against a
      // loop of one row at a time unrolled 4 times; a plain bf16 column sum 18.4 -> 17.0 us.
      s.split = true;
      s.reg = "R[u]";
      ColScope hoisted;
      hoisted.v = v;
      s.hoist = &hoisted;
      std::string init, store_acc, tree, combine, epilogue_code, fold, unfold;
      for (int r : reds) {
        const KNode& n = k_.nodes[r];
        std::string acc = "acc" + std::to_string(r), ct = compute_type(n.dtype);
        init += "    " + ct + " " + acc + "[" + vs + "];\n#pragma unroll\n    for (int l = 0; l < " + vs + "; ++l) " + acc +
                "[l] = " + reduce_identity(n.op, n.dtype, Backend::kCuda) + ";\n";
        if (float_sum(n)) {
          // A thread's float sum over hundreds of rows: folded into a double every kColFoldSteps
          // steps of kColRows rows (65536 rows of 0.1 summed to 2.5e-6 of their value,
          // eager's 5.2e-7).
          std::string tot = "tot" + std::to_string(r);
          init += "    double " + tot + "[" + vs + "];\n#pragma unroll\n    for (int l = 0; l < " +
                  vs + "; ++l) " + tot + "[l] = 0.0;\n";
          fold += "#pragma unroll\n        for (int l = 0; l < " + vs + "; ++l) { " + tot +
                  "[l] += " + acc + "[l]; " + acc + "[l] = 0.0f; }\n";
          unfold += "#pragma unroll\n    for (int l = 0; l < " + vs + "; ++l) " + acc +
                    "[l] = (float)(" + tot + "[l] + " + acc + "[l]);\n";
        }
        s.lane += "        " + acc + "[l] = " + accumulate(r, acc + "[l]", s) + ";\n";
        std::string sm = "sm" + std::to_string(r);
        store_acc += "#pragma unroll\n    for (int l = 0; l < " + vs + "; ++l) " + sm + "[ty * " + std::to_string(tile_cols) +
                     " + tx * " + vs + " + l] = " + acc + "[l];\n";
        // A tree over the block's rows (ty is a power of two), in a fixed order.
        std::string here = sm + "[ty * " + std::to_string(tile_cols) + " + tx * " + vs + " + l]";
        std::string there =
            sm + "[(ty + h) * " + std::to_string(tile_cols) + " + tx * " + vs + " + l]";
        tree += "      if (ty < h) {\n#pragma unroll\n        for (int l = 0; l < " + vs +
                "; ++l) " + here + " = " + reduce_combine(n.op, n.dtype, here, there) +
                ";\n      }\n";
        combine += "#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) " + acc +
                   "[l] = " + sm + "[tx * " + vs + " + l];\n";
      }
      std::vector<size_t> col_outputs;
      for (size_t o = 0; o < k_.outputs.size(); ++o) {
        if (per_row_output(o)) {
          col_store(o, s);
        } else {
          col_outputs.push_back(o);
        }
      }
      ColScope e;
      e.v = v;
      for (int r : reds) reduced_[r] = "acc" + std::to_string(r) + "[l]";
      for (size_t o : col_outputs) col_store(o, e);
      std::ostringstream f;
      std::string smp;
      for (int r : reds) smp += ", " + compute_type(k_.nodes[r].dtype) + "* sm" + std::to_string(r);
      if (splits > 1) smp += ", double* th_comb";
      const int64_t ntiles = ceil_div(nqv, tx);
      const std::string rname = "th_cregs" + vs, us = std::to_string(col_rows);
      f << "struct " << rname << " {\n" << (s.regs.empty() ? "  char unused;\n" : s.regs) << "};\n";
      f << "TH_INLINE void th_cols" << v << "(" << kparams << smp << ") {\n"
        << "  const int tx = threadIdx.x % " << tx << ", ty = threadIdx.x / " << tx << ";\n";
      if (splits == 1) {
        f << "  for (long long tile = blockIdx.x; tile < " << ntiles << "LL; tile += gridDim.x) {\n"
          << "    const idx_t r0 = 0, r1 = " << lit(rows_) << ";\n";
      } else {
        f << "  __shared__ unsigned th_last;\n"
          << "  for (long long b = blockIdx.x; b < " << ntiles * splits << "LL; b += gridDim.x) {\n"
          << "    const long long tile = b % " << ntiles << "LL, split = b / " << ntiles << "LL;\n"
          << "    const idx_t r0 = (idx_t)split * " << lit(rows_per_split) << ";\n"
          << "    const idx_t r1 = r0 + " << lit(rows_per_split) << " < " << lit(rows_)
          << " ? r0 + " << lit(rows_per_split) << " : " << lit(rows_) << ";\n";
      }
      f << "    const idx_t q = (idx_t)tile * " << tx << " + tx;\n"
        << "    const idx_t c = q * " << vs << ";\n"
        << init << "    if (q < " << lit(nqv) << ") {\n"
        << (hoisted.lane.empty() ? std::string() : s.hoist_decl + lane_loop(hoisted))
        << "    for (idx_t rb = r0 + ty; rb < r1; rb += " << int64_t{ty} * col_rows << ") {\n"
        << "      " << rname << " R[" << us << "];\n"
        << "#pragma unroll\n      for (int u = 0; u < " << us << "; ++u) {\n"
        << "        const idx_t r = rb + (idx_t)u * " << ty << ";\n"
        << "        if (r < r1) {\n"
        << s.pre << "        }\n      }\n"
        << "#pragma unroll\n      for (int u = 0; u < " << us << "; ++u) {\n"
        << "        const idx_t r = rb + (idx_t)u * " << ty << ";\n"
        << "        if (r < r1) {\n"
        << lane_loop(s) << "        }\n      }\n"
        << (fold.empty() ? std::string()
                         : "      if ((rb - r0 - ty) % " +
                               std::to_string(int64_t{ty} * col_rows * kColFoldSteps) + " == " +
                               std::to_string(int64_t{ty} * col_rows * (kColFoldSteps - 1)) +
                               ") {\n" + fold + "      }\n")
        << "    }\n    }\n"
        << unfold << store_acc << "    __syncthreads();\n"
        << "    for (int h = " << ty / 2 << "; h > 0; h >>= 1) {\n"
        << tree << "      __syncthreads();\n    }\n";
      if (splits == 1) {
        f << "    if (ty == 0 && q < " << lit(nqv) << ") {\n" << combine;
      } else {
        // This block's partials, then the count of the tile's finished blocks. The last block
        // combines the partials with all its threads: thread (tx, ty) takes splits ty, ty + TY, ...
        // of its columns (float sums in double), then a tree over ty in shared memory, in a fixed
        // order. (One thread a column walking every split, each load an L2 round trip, took about
        // 20 us at 256 splits: more than the column sums of a 16 MB tensor.)
        std::string write, gather;
        const std::string tys = std::to_string(ty), tile_s = std::to_string(tile_cols);
        for (size_t j = 0; j < reds.size(); ++j) {
          const KNode& n = k_.nodes[reds[j]];
          std::string acc = "acc" + std::to_string(reds[j]), ct = compute_type(n.dtype);
          std::string ws = "((" + ct + "*)(th_ws + " + std::to_string(ws_offset[j]) + "))";
          write += "#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) " + ws +
                   "[split * " + lit(cols_) + " + c + l] = " + acc + "[l];\n";
          const std::string part =
              "((volatile " + ct + "*)" + ws + ")[sp * " + lit(cols_) + " + c + l]";
          const std::string gt = float_sum(n) ? "double" : ct;
          const std::string cb = "((" + gt + "*)th_comb)";
          const std::string here = cb + "[ty * " + tile_s + " + tx * " + vs + " + l]";
          const std::string there = cb + "[(ty + h) * " + tile_s + " + tx * " + vs + " + l]";
          const std::string id =
              float_sum(n) ? "0.0" : reduce_identity(n.op, n.dtype, Backend::kCuda);
          const std::string comb =
              float_sum(n) ? "g + " + part : reduce_combine(n.op, n.dtype, "g", part);
          const std::string tree =
              float_sum(n) ? here + " + " + there : reduce_combine(n.op, n.dtype, here, there);
          gather += "#pragma unroll\n      for (int l = 0; l < " + vs + "; ++l) {\n        " + gt +
                    " g = " + id + ";\n        if (q < " + lit(nqv) +
                    ")\n          for (long long sp = ty; sp < " + std::to_string(splits) +
                    "LL; sp += " + tys + ") g = " + comb + ";\n        " + here +
                    " = g;\n      }\n      __syncthreads();\n      for (int h = " +
                    std::to_string(ty / 2) +
                    "; h > 0; h >>= 1) {\n        if (ty < h) {\n#pragma unroll\n          for "
                    "(int l = 0; l < " +
                    vs + "; ++l) " + here + " = " + tree +
                    ";\n        }\n        __syncthreads();\n      }\n" +
                    "      if (ty == 0 && q < " + lit(nqv) +
                    ") {\n#pragma unroll\n        for (int l = 0; l < " + vs + "; ++l) " + acc +
                    "[l] = (" + ct + ")" + cb + "[tx * " + vs + " + l];\n      }\n" +
                    "      __syncthreads();\n";
        }
        f << "    if (ty == 0 && q < " << lit(nqv) << ") {\n"
          << combine << write << "    }\n"
          << "    __threadfence();\n    __syncthreads();\n"
          << "    if (threadIdx.x == 0) th_last = atomicAdd((unsigned*)th_ws + tile, 1u) == "
          << splits - 1 << "u;\n"
          << "    __syncthreads();\n"
          << "    if (th_last && threadIdx.x == 0) ((unsigned*)th_ws)[tile] = 0u;  // for the next "
             "kernel\n"
          << "    if (th_last) {\n"
          << "      __threadfence();\n"
          << gather << "    }\n"
          << "    if (th_last && ty == 0 && q < " << lit(nqv) << ") {\n";
      }
      f << "      const idx_t r = 0; (void)r;\n"
        << lane_loop(e) << "    }\n"
        << "    __syncthreads();\n  }\n}\n";
      return f.str();
    };
    os << fn(1);
    if (vec_ > 1) os << fn(vec_);
    // One pool: each reduction's tree buffer, and over them the last block's combination of the
    // splits' partials (8-byte slots).
    std::string sargs;
    int64_t pool = 0;
    for (int r : reds) {
      sargs += ", (" + compute_type(k_.nodes[r].dtype) + "*)((unsigned char*)th_pool + " +
               std::to_string(pool) + ")";
      pool += int64_t{ty} * tx * vec_ * item_bytes(r);
    }
    if (splits > 1) {
      pool = std::max(pool, int64_t{ty} * tx * vec_ * 8);
      sargs += ", th_pool";
    }
    const std::string decls =
        pool == 0 ? ""
                  : "  __shared__ double th_pool[" + std::to_string(ceil_div(pool, 8)) + "];\n";
    os << "extern \"C\" __global__ void __launch_bounds__(" << threads << ") " << name_ << "("
       << kparams << ") {\n"
       << decls;
    os << vector_or_scalar("th_cols", kargs + sargs) << "}\n";
    launch->block = threads;
    launch->grid = cols_ == 0 ? 0 : tiles * splits;
    launch->shared_bytes = 0;
    launch->workspace_bytes = ws_bytes;
    launch->counter_bytes = count_bytes;
    return os.str();
  }

  // The kernel body calling `fn`<vec_>(args) when every access is aligned for vector access, else
  // `fn`1(args).
  std::string vector_or_scalar(const std::string& fn, const std::string& args) {
    if (vec_ <= 1) return "  " + fn + "1(" + args + ");\n";
    return "  if (" + alignment_check() + ") " + fn + std::to_string(vec_) + "(" + args + ");\n  else " +
           fn + "1(" + args + ");\n";
  }

  const KernelDef& k_;
  const Layout& L_;
  int n_;
  std::vector<int> row_axes_, col_axes_;
  int64_t rows_ = 1, cols_ = 1;
  uint64_t col_mask_ = 0;
  int inner_ = -1;
  bool wide_ = false;
  int vec_ = 1;
  std::string params_, args_;
  // 2-byte vectors through 32-bit words (th_ldw / th_stw): row kernels summing columns over their
  // rows (the norms' backward), but those taking twice the accumulators (RowPlan::doubled). H200,
  // bf16 (scripts/gpu_schedule_probe.py --column-sums, two runs): rms_norm's backward 2048x8192
  // 33.3-33.5 -> 31.4-31.7 us, 2048x4096 16.8 -> 16.0-16.2, layer_norm's 8192x768 12.9-13.1 ->
  // 12.4, 2048x4096 21.6-21.7 -> 21.5-21.6. Elsewhere the form lost: the doubled layer_norm
  // 2048x8192 backward 51-53 -> 56-60 us, the layer_norm forward 2048x4096 10.5 -> 11.9, a bf16
  // residual-dropout step (pointwise) 0.80 -> 0.71 of a copy.
  bool words_ = false;
  std::string ldv() const { return words_ ? "th_ldw" : "th_ldv"; }
  std::string stv() const { return words_ ? "th_stw" : "th_stv"; }
  std::string name_;  // set by run()
  std::string row_code_;
  std::unordered_map<int, std::string> row_memo_;
  std::unordered_map<int, std::string> reciprocals_;
  std::unordered_map<int, std::string> bases_;
  std::unordered_map<int, std::string> reduced_;
  std::unordered_set<int> cached_;
  std::unordered_set<int> hoisted_;  // loads read once before the row loop (choose_hoist)
  int smem_limit_ = kDefaultSmemLimit;
  std::unordered_map<int, int64_t> smem_cached_;        // load -> byte offset of its row in th_smem
  std::unordered_set<int> smem_filled_, smem_filling_;  // stored by an earlier pass; by this one
  int64_t smem_bytes_ = 0;
  std::vector<int64_t> column_smem_offset_;  // per column sum, its slots' offset in th_smem
  std::set<int> gather_indexed_;  // gathers whose index is emitted
  std::unordered_map<int, std::unordered_map<int, std::string>>
      gathered_;                  // gather: its loads read early
  std::vector<uint64_t> varies_;  // per node: the axes it varies over
  int counter_ = 0;
};

}  // namespace

std::string cuda_source(const KernelDef& k, const Layout& layout, CudaLaunch* launch,
                        int smem_limit) {
  if (needs_passes(k))
    throw Error("internal: a column kernel that needs passes has no kernel of its own");
  return CudaGen(k, layout, smem_limit).run(launch);
}

}  // namespace thunder::fuser
