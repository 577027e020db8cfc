// CPU code generation. One emitter walks the node DAG on demand: values that do not vary along the
// loop's axes are emitted once per row (hoisted), the others inside the loop body; each pass of a row
// reduction is one vectorised loop with lane-parallel accumulators.
#include "fuser/cpu_codegen.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "fuser/codegen_common.h"
#include "fuser/pass_split.h"

namespace thunder::fuser {

namespace {

bool is_expensive(const std::string& op) {
  static const std::unordered_set<std::string> s = {
      "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "tanh",
      "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh", "erf", "erfc",
      "lgamma", "pow", "atan2", "fmod", "remainder", "div", "sqrt", "rsqrt"};
  return s.count(op) != 0;
}

constexpr int kLanes = 16;  // lanes of a row reduction's accumulators (one 512-bit vector of floats)

// A lane loop's body (columns first .. first + kLanes - 1, `first` a multiple of kLanes) with the
// column `c` divided by multiples of kLanes (an access constant over runs of columns: group_norm's
// weight per channel along rows of channels x spatial elements) divided as `first` instead: the
// lanes share the quotient, one load instead of a gather; and `c` modulo such a multiple (a row
// read in runs) as the first lane's remainder plus the lane, contiguous. Unchanged when a divisor
// is not such a multiple.
std::string lanes_share_quotients(std::string code, const std::string& first) {
  static const std::string div = "((c) / ", rem = "(c) % ";
  for (const std::string& pat : {div, rem}) {
    for (size_t pos = code.find(pat); pos != std::string::npos; pos = code.find(pat, pos + 1)) {
      const int64_t d = std::strtoll(code.c_str() + pos + pat.size(), nullptr, 10);
      if (d <= 0 || d % kLanes != 0) return code;
    }
  }
  const std::string with = "((" + first + ") / ";
  for (size_t pos = code.find(div); pos != std::string::npos;
       pos = code.find(div, pos + with.size()))
    code.replace(pos, div.size(), with);
  // The remainder of the innermost run: the first lane's plus the lane (c - first).
  for (size_t pos = code.find(rem); pos != std::string::npos; pos = code.find(rem, pos + 1)) {
    const size_t end = code.find("LL", pos + rem.size());
    const std::string d = code.substr(pos + rem.size(), end - pos - rem.size());
    const std::string with_rem =
        "(c) - (" + first + ") + (" + first + ") % " + d;  // the caller's parentheses close it
    code.replace(pos, end - pos, with_rem);
    pos += with_rem.size();
  }
  return code;
}
constexpr int kUnroll = 4;  // vectors per step of a row reduction's main loop
constexpr int kSumBlock = 16;  // steps of the main loop a floating sum's accumulators take at once
constexpr int kColumnSumBlock = 16;  // rows a column's float sum takes before folding into a double
constexpr int64_t kPointwiseBlock = 16384;  // elements per work item of a pointwise kernel

class CpuGen {
 public:
  CpuGen(const KernelDef& k, const Layout& L)
      : k_(k), L_(L), n_(static_cast<int>(L.sizes.size())) {}

  std::string run() {
    std::ostringstream os;
    grid_reds_ = over_rows_reductions(k_);
    columns_over_rows_ = columns_over_rows(k_);
    os << prelude(Backend::kCpu) << "\n";
    // Row axes / column axes of the loop nest.
    if (k_.kind == KernelDef::Kind::kPointwise) {
      for (int a = 0; a + 1 < n_; ++a) row_axes_.push_back(a);
      if (n_ > 0) col_axes_.push_back(n_ - 1);
    } else {
      for (int a = 0; a < L_.num_outer; ++a) row_axes_.push_back(a);
      for (int a = L_.num_outer; a < n_; ++a) col_axes_.push_back(a);
    }
    rows_ = 1;
    cols_ = 1;
    for (int a : row_axes_) rows_ *= L_.sizes[a];
    for (int a : col_axes_) cols_ *= L_.sizes[a];
    for (int a : col_axes_) col_mask_ |= axis_mask(a);

    std::string body;
    int64_t items = 0, cost = 0;
    if (k_.kind == KernelDef::Kind::kPointwise) {
      body = pointwise(&items, &cost);
    } else if (k_.kind == KernelDef::Kind::kInner) {
      body = inner(&items, &cost);
    } else {
      body = outer(&items, &cost);
    }
    os << "extern \"C\" int64_t thunder_items() { return " << items << "LL; }\n";
    os << "extern \"C\" int64_t thunder_item_cost() { return " << cost << "LL; }\n";
    os << "extern \"C\" void thunder_kernel(int64_t begin, int64_t end, char** ptrs) {\n"
       << pointers() << body << "}\n";
    if (!grid_reds_.empty()) os << finish();
    return os.str();
  }

 private:
  struct Scope {
    std::string code;
    std::unordered_map<int, std::string> memo;
    std::string col;  // the column index variable
  };

  // The kernel's pointers, from `ptrs`: inputs, outputs, then (when it gathers) the index error
  // report, then (reductions over rows) the scratch memory of the rows' values.
  std::string pointers() const {
    std::ostringstream os;
    size_t ni = k_.inputs.size(), slot = ni + k_.tensor_outputs();
    for (size_t i = 0; i < ni; ++i) {
      os << "  const " << storage_type(k_.inputs[i]->dtype()) << "* __restrict in" << i << " = (const "
         << storage_type(k_.inputs[i]->dtype()) << "*)ptrs[" << i << "];\n";
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      // A cat's later parts store into the first part's tensor (elements no other part writes).
      const std::string at = k_.tensor_of(o) == o ? "ptrs[" + std::to_string(ni + o) + "]"
                                                  : "out" + std::to_string(k_.tensor_of(o));
      os << "  " << storage_type(k_.outputs[o]->dtype()) << "* __restrict out" << o << " = ("
         << storage_type(k_.outputs[o]->dtype()) << "*)" << at << ";\n";
    }
    bool gathers = false;
    for (const KNode& n : k_.nodes) gathers = gathers || n.op == "gather";
    if (gathers) os << "  int64_t* th_err = (int64_t*)ptrs[" << slot++ << "];\n";
    if (!grid_reds_.empty()) os << "  char* th_scratch = ptrs[" << slot << "]; (void)th_scratch;\n";
    return os.str();
  }

  // Work items of a row kernel: rows, or blocks of kColumnRowsBlock rows (reductions over rows per
  // column).
  int64_t row_items() const {
    return columns_over_rows_ ? (rows_ + kColumnRowsBlock - 1) / kColumnRowsBlock : rows_;
  }

  // The scratch slot of reduction over rows number j: 8 bytes per row, or per column of each work
  // item (reductions over rows per column).
  int64_t scratch_slot_bytes() const {
    return std::max<int64_t>(row_items(), 1) * (columns_over_rows_ ? cols_ : 1) * 8;
  }
  std::string scratch(size_t j) const {
    return "((" + compute_type(k_.nodes[grid_reds_[j]].dtype) + "*)(th_scratch + " +
           std::to_string(static_cast<int64_t>(j) * scratch_slot_bytes()) + "LL))";
  }

  // Reductions over rows, after the parallel loop (thunder_finish, called once): the rows' values
  // combined in row order, then the scalars computed from them; per column, the items' partials in
  // item order, then the column's outputs.
  std::string finish() {
    std::ostringstream os;
    os << "extern \"C\" int64_t thunder_scratch_bytes() { return "
       << static_cast<int64_t>(grid_reds_.size()) * scratch_slot_bytes() << "LL; }\n"
       << "extern \"C\" void thunder_finish(char** ptrs) {\n"
       << pointers();
    const bool per_column = columns_over_rows_;
    // Per group of rows (KernelDef::group_axes): its rows' values, then its outputs.
    const int64_t groups = over_rows_groups(k_);
    const bool grouped = groups > 1;
    const int64_t per_group = grouped ? rows_ / groups : rows_;
    if (grouped) {
      os << "  for (int64_t grp = 0; grp < " << groups << "LL; ++grp) {\n"
         << "  const int64_t row = grp * " << per_group << "LL;\n";
    } else {
      os << "  const int64_t row = 0; (void)row;\n";
    }
    const std::string in = per_column || grouped ? "    " : "  ";
    const std::string at = per_column ? "[i * " + std::to_string(cols_) + "LL + c]"
                           : grouped  ? "[row + i]"
                                      : "[i]";
    if (per_column) os << "  for (int64_t c = 0; c < " << cols_ << "LL; ++c) {\n";
    for (size_t j = 0; j < grid_reds_.size(); ++j) {
      const KNode& n = k_.nodes[grid_reds_[j]];
      std::string a = "gfin" + std::to_string(grid_reds_[j]);
      const std::string items = std::to_string(per_column ? row_items() : per_group) + "LL";
      if (float_sum(n)) {
        // Thousands of partials added in order: in double, as one float sum would lose digits.
        os << in << "double " << a << "_d = 0;\n"
           << in << "for (int64_t i = 0; i < " << items << "; ++i) " << a
           << "_d += " << scratch(j) + at << ";\n"
           << in << compute_type(n.dtype) << " " << a << " = (" << compute_type(n.dtype) << ")" << a
           << "_d;\n";
      } else {
        os << in << compute_type(n.dtype) << " " << a << " = "
           << reduce_identity(n.op, n.dtype, Backend::kCpu) << ";\n"
           << in << "for (int64_t i = 0; i < " << items << "; ++i) " << a << " = "
           << reduce_combine(n.op, n.dtype, a, scratch(j) + at) << ";\n";
      }
      reduced_[grid_reds_[j]] = a;
    }
    row_.memo.clear();
    row_.code.clear();
    bases_.clear();
    Scope col;
    col.col = "c";
    std::string stores;
    for (size_t o : grid_outputs_) {
      std::string v = value(k_.output_nodes[o], col);
      stores += per_column ? store_stmt(o, v, "c")
                : grouped
                    ? store_stmt(o, v, "")
                    : "  out" + std::to_string(o) + "[" + std::to_string(L_.stores[o].offset) +
                          "LL] = " + store_expr(k_.outputs[o]->dtype(), v) + ";\n";
    }
    os << row_.code << col.code << stores << (per_column || grouped ? "  }\n" : "") << "}\n";
    row_.code.clear();
    return os.str();
  }

  static uint64_t axis_mask(int a) { return uint64_t{1} << a; }

  // The axes a node varies over, in merged-layout axes (from the load strides and stores).
  uint64_t varies(int id) {
    if (varies_.empty()) varies_ = varying_axes(k_, L_);
    return varies_[id];
  }

  // The axes output o extends over (nonzero store strides).
  uint64_t store_axes(size_t o) const { return fuser::store_axes(L_, o); }

  std::string tmp() { return "v" + std::to_string(counter_++); }

  // Offset of an access over the given axes, for index variable `idx`.
  std::string unravel(const std::vector<int>& axes, const std::vector<int64_t>& strides,
                      const std::string& idx) {
    const std::vector<std::pair<int64_t, int64_t>> runs = access_runs(axes, strides, L_.sizes);
    // The index is below the product of the axes' sizes: the outermost run takes no remainder.
    std::string e;
    int64_t inner = 1;
    for (size_t j = runs.size(); j-- > 0;) {
      const auto [size, stride] = runs[j];
      if (stride != 0) {
        std::string q = inner == 1 ? idx : "(" + idx + ") / " + std::to_string(inner) + "LL";
        if (j > 0) q = "(" + q + ") % " + std::to_string(size) + "LL";
        e += (e.empty() ? "" : " + ") + std::string("(") + q + ") * " + std::to_string(stride) +
             "LL";
      }
      inner *= size;
    }
    return e.empty() ? "0" : "(" + e + ")";
  }

  // The index along `axis` of row `row` and column `col`.
  std::string axis_index(int axis, const std::string& col) const {
    const bool in_row = std::find(row_axes_.begin(), row_axes_.end(), axis) != row_axes_.end();
    const std::vector<int>& axes = in_row ? row_axes_ : col_axes_;
    int64_t inner = 1;
    for (size_t j = axes.size(); j-- > 0 && axes[j] != axis;) inner *= L_.sizes[axes[j]];
    return "((" + std::string(in_row ? "row" : col) + ") / " + std::to_string(inner) + "LL % " +
           std::to_string(L_.sizes[axis]) + "LL)";
  }

  // Where a padded load reads memory (its bounds at row `row`, column `col`).
  std::string mask_cond(const Access& a, const std::string& col) const {
    return bounds_cond(
        a, [&](int axis) { return axis_index(axis, col); },
        [](int64_t v) { return std::to_string(v) + "LL"; });
  }

  // Per-row base offset variable of node `id`'s load (emitted into the row scope once).
  std::string load_base(int id) {
    auto it = bases_.find(id);
    if (it != bases_.end()) return it->second;
    std::string v = "rb" + std::to_string(id);
    row_.code += "    const int64_t " + v + " = " + std::to_string(L_.loads[id].offset) + "LL + " +
                 unravel(row_axes_, L_.loads[id].strides, "row") + ";\n";
    return bases_[id] = v;
  }

  std::string value(int id, Scope& cur) {
    const KNode& n = k_.nodes[id];
    bool row_level = (varies(id) & col_mask_) == 0;
    Scope& s = row_level ? row_ : cur;
    auto m = s.memo.find(id);
    if (m != s.memo.end()) return m->second;
    // Outside any loop (row scope): only row-level values.
    std::string ct = compute_type(n.dtype);
    std::string v = tmp();
    std::string e;
    if (n.op == "rand" && !row_level && k_.kind == KernelDef::Kind::kPointwise &&
        col_axes_.size() == 1 && L_.loads[id].strides[col_axes_[0]] == 1 && s.col == "c") {
      // Contiguous along the loop: the item's numbers are drawn before it, one Philox block per
      // four elements (a block per element would compute each block four times).
      std::string base = load_base(id), in = "in" + std::to_string(n.input);
      std::string q = "rq" + std::to_string(id), g = q + "g";
      row_.code += "    float " + q + "[" + std::to_string(kPointwiseBlock + 8) + "];\n";
      row_.code += "    const int64_t " + g + " = (" + base + " + c0) >> 2;\n";
      row_.code += "#pragma omp simd\n";
      row_.code +=
          "    for (int64_t j = 0; j < ((" + base + " + c1 + 3) >> 2) - " + g + "; ++j) {\n";
      row_.code += "      uint32_t w[4];\n";
      row_.code += "      th_rand_block(" + in + "[0], " + in + "[1], " + g + " + j, w);\n";
      row_.code += "      for (int k = 0; k < 4; ++k) " + q + "[4 * j + k] = th_u01(w[k]);\n";
      row_.code += "    }\n";
      e = q + "[" + base + " + c - 4 * " + g + "]";
    } else if (n.op == "load" || n.op == "iota" || n.op == "rand") {
      // iota and rand index like a load.
      std::string base = load_base(id);
      std::string idx = row_level ? base : base + " + " + unravel(col_axes_, L_.loads[id].strides, s.col);
      std::string in = "in" + std::to_string(n.input);
      e = n.op == "iota"   ? iota_expr(n, idx)
          : n.op == "rand" ? rand_expr(in + "[0]", in + "[1]", idx)
                           : load_expr(n.dtype, in + "[" + idx + "]");
      if (n.op == "load" && L_.loads[id].masked()) {
        e = "(" + mask_cond(L_.loads[id], s.col) + " ? " + e + " : " + fill_expr(n, Backend::kCpu) +
            ")";
      }
    } else if (n.op == "const") {
      e = const_expr(n, Backend::kCpu);
    } else if (is_reduce_op(n.op)) {
      auto r = reduced_.find(id);
      if (r == reduced_.end()) throw Error("internal: reduction used before its pass");
      return r->second;
    } else if (n.op == "gather") {
      std::string idxv = value(n.args[1], row_);
      std::string gi = "g" + std::to_string(id);
      // An index out of range is reported through th_err (the caller raises IndexError, as eager
      // does); the kernel reads index 0 meanwhile.
      row_.code += "    int64_t " + gi + " = (int64_t)" + idxv + ";\n    if (" + gi + " < 0 || " +
                   gi + " >= " + std::to_string(cols_) + "LL) { __atomic_store_n(&th_err[1], " +
                   gi +
                   ", __ATOMIC_RELAXED); __atomic_store_n(&th_err[0], 1LL, __ATOMIC_RELAXED); " +
                   gi + " = 0; }\n";
      Scope g;
      g.col = gi;
      std::string inner_v = value(n.args[0], g);
      row_.code += g.code;
      e = inner_v;
    } else if (exp_of_row_excess(k_, id)) {
      e = "th_exp_nonpos(" + value(n.args[0], s) + ")";
    } else if (n.op == "div" && !row_level && is_floating(n.dtype) &&
               is_floating(k_.nodes[n.args[1]].dtype) && (varies(n.args[1]) & col_mask_) == 0) {
      // Division by a row-level value: one reciprocal per row, a multiply per element (as eager's
      // softmax and normalization kernels do).
      std::string num = value(n.args[0], s);
      e = "((" + ct + ")(" + num + " * " + reciprocal(n.args[1], ct) + "))";
    } else {
      std::vector<std::string> args;
      std::vector<DType> dts;
      for (int a : n.args) {
        args.push_back(value(a, s));
        dts.push_back(k_.nodes[a].dtype);
      }
      e = op_expr(n, args, dts);
    }
    s.code += "    const " + ct + " " + v + " = " + e + ";\n";
    s.memo[id] = v;
    if (row_level && buffered_.count(id) == 0) return v;
    auto b = buffered_.find(id);
    if (b != buffered_.end() && !row_level) {
      s.code += "    " + b->second + "[" + s.col + "] = " + v + ";\n";
    }
    return v;
  }

  // Reduction `r`'s accumulator `acc` combined with its operand's value in scope `s`: a float sum
  // of a product read by it alone, computed per element and kept in no row buffer, is one
  // multiply-add (see sum_of_single_use_product).
  std::string accumulate(int r, const std::string& acc, Scope& s) {
    const KNode& n = k_.nodes[r];
    const int a = n.args[0];
    if (sum_of_single_use_product(k_, r) && (varies(a) & col_mask_) != 0 &&
        buffered_.count(a) == 0) {
      const KNode& m = k_.nodes[a];
      const std::string x = value(m.args[0], s), y = value(m.args[1], s);
      return fma_expr(Backend::kCpu, x, y, acc);
    }
    return reduce_combine(n.op, n.dtype, acc, value(a, s));
  }

  // 1 / value(id), a row-level value, emitted once per row.
  std::string reciprocal(int id, const std::string& ct) {
    auto it = reciprocals_.find(id);
    if (it != reciprocals_.end()) return it->second;
    std::string den = value(id, row_);
    std::string r = "rcp" + std::to_string(id);
    row_.code += "    const " + ct + " " + r + " = ((" + ct + ")1) / (" + ct + ")(" + den + ");\n";
    return reciprocals_[id] = r;
  }

  // Written once along axes the output does not vary over: only where their index is 0.
  std::string store_guard(size_t o, const std::vector<int>& axes, const std::string& idx) {
    std::string g;
    int64_t inner = 1;
    for (int j = static_cast<int>(axes.size()) - 1; j >= 0; --j) {
      int a = axes[j];
      if (L_.stores[o].strides[a] == 0 && L_.sizes[a] > 1) {
        g += (g.empty() ? "" : " && ") + std::string("((") + idx + ") / " + std::to_string(inner) +
             "LL) % " + std::to_string(L_.sizes[a]) + "LL == 0";
      }
      inner *= L_.sizes[a];
    }
    return g;
  }

  std::string store_stmt(size_t o, const std::string& v, const std::string& col) {
    std::string idx = std::to_string(L_.stores[o].offset) + "LL + " + unravel(row_axes_, L_.stores[o].strides, "row");
    std::string guard = store_guard(o, row_axes_, "row");
    if (!col.empty()) {
      idx += " + " + unravel(col_axes_, L_.stores[o].strides, col);
      std::string cg = store_guard(o, col_axes_, col);
      if (!cg.empty()) guard += (guard.empty() ? "" : " && ") + cg;
    }
    std::string st = "out" + std::to_string(o) + "[" + idx + "] = " + store_expr(k_.outputs[o]->dtype(), v) + ";";
    if (!guard.empty()) st = "if (" + guard + ") " + st;
    return "    " + st + "\n";
  }

  std::string item_prologue() {
    std::string s = row_.code;
    row_.code.clear();
    return s;
  }

  std::string pointwise(int64_t* items, int64_t* cost) {
    const int64_t block = kPointwiseBlock;
    int64_t per_row = std::max<int64_t>(1, (cols_ + block - 1) / block);
    *items = cols_ == 0 ? 0 : rows_ * per_row;
    *cost = std::min(cols_, block);
    Scope body;
    body.col = "c";
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      std::string v = value(k_.output_nodes[o], body);
      body.code += store_stmt(o, v, "c");
    }
    std::ostringstream os;
    os << "  for (int64_t item = begin; item < end; ++item) {\n"
       << "    const int64_t row = item / " << per_row << "LL;\n"
       << "    const int64_t c0 = (item % " << per_row << "LL) * " << block << "LL;\n"
       << "    const int64_t c1 = c0 + " << block << "LL < " << cols_ << "LL ? c0 + " << block
       << "LL : " << cols_ << "LL;\n"
       << item_prologue() << "#pragma omp simd\n"
       << "    for (int64_t c = c0; c < c1; ++c) {\n" << body.code << "    }\n  }\n";
    return os.str();
  }

  std::string inner(int64_t* items, int64_t* cost) {
    *items = row_items();
    *cost = std::max<int64_t>(cols_, 1) * (columns_over_rows_ ? kColumnRowsBlock : 1);
    std::vector<int> need = available_from(k_);
    int passes = 0;
    std::vector<std::vector<int>> pass_reductions(1), pass_outputs(1);
    auto grow = [&](int p) {
      passes = std::max(passes, p);
      if (static_cast<int>(pass_reductions.size()) <= p) {
        pass_reductions.resize(p + 1);
        pass_outputs.resize(p + 1);
      }
    };
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (is_reduce_op(k_.nodes[i].op) && !k_.nodes[i].over_rows) {
        grow(need[i]);
        pass_reductions[need[i]].push_back(static_cast<int>(i));
      }
    }
    std::vector<size_t> row_outputs;
    std::vector<bool> grid = over_rows_values(k_.nodes);
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      int id = k_.output_nodes[o];
      if (grid[id]) {
        grid_outputs_.push_back(o);
      } else if ((store_axes(o) & col_mask_) == 0) {
        row_outputs.push_back(o);
      } else {
        grow(need[id] + 1);
        pass_outputs[need[id] + 1].push_back(static_cast<int>(o));
      }
    }
    // Reductions over rows per column accumulate in the last pass (or the first their operand is
    // available in).
    int column_pass = 0;
    if (columns_over_rows_) {
      column_pass = passes;
      for (int g : grid_reds_) column_pass = std::max(column_pass, need[k_.nodes[g].args[0]] + 1);
      grow(column_pass);
    }
    // The values pass p computes from: its reductions' operands, its outputs, the column sums'
    // operands in their pass.
    auto pass_roots = [&](int p) {
      std::vector<int> roots;
      for (int r : pass_reductions[p]) roots.push_back(k_.nodes[r].args[0]);
      for (int o : pass_outputs[p]) roots.push_back(k_.output_nodes[o]);
      if (columns_over_rows_ && p == column_pass) {
        for (int g : grid_reds_) roots.push_back(k_.nodes[g].args[0]);
      }
      return roots;
    };
    // Expensive full-level values needed by more than one pass are kept in a row buffer.
    std::vector<std::unordered_set<int>> uses(passes + 1);
    std::function<void(int, int)> visit = [&](int id, int p) {
      if ((varies(id) & col_mask_) == 0 || uses[p].count(id)) return;
      uses[p].insert(id);
      for (int a : k_.nodes[id].args) visit(a, p);
    };
    for (int p = 1; p <= passes; ++p) {
      for (int root : pass_roots(p)) visit(root, p);
    }
    std::string buffers;
    // The last pass's one output, when it is stored like a buffer's values (float32 from float32
    // compute) and contiguous along the row, holds that buffer: the pass that fills the buffer
    // writes the output's row, so the stores to fresh memory overlap that pass's arithmetic (exp in
    // softmax), and the last pass rescales the row in place while it is in cache.
    // Not with sums over rows per column, which may read the buffer after the store.
    int in_output = -1;
    if (passes >= 2 && pass_outputs[passes].size() == 1 && pass_reductions[passes].empty() &&
        col_axes_.size() == 1 && !columns_over_rows_) {
      const int o = pass_outputs[passes][0];
      const Access& st = L_.stores[o];
      if (st.strides[col_axes_[0]] == 1 && store_guard(o, row_axes_, "row").empty()) in_output = o;
    }
    if (cols_ <= 16384) {
      // A kept value is read from its buffer by the passes after the first that computes it, so
      // its operands are not computed there: later values are decided first, and a value counts
      // only the passes that still compute it (group_norm's silu backward keeps the sigmoid, and
      // the exponential under it is needed only in the pass that fills that buffer).
      std::vector<int> first(k_.nodes.size(), 0);
      for (size_t i = 0; i < k_.nodes.size(); ++i) {
        for (int p = passes; p >= 1; --p) {
          if (uses[p].count(static_cast<int>(i))) first[i] = p;
        }
      }
      std::unordered_set<int> kept;
      auto passes_computing = [&](int target) {
        int count = 0;
        for (int p = 1; p <= passes; ++p) {
          if (!uses[p].count(target)) continue;
          std::unordered_set<int> seen;
          std::function<bool(int)> walk = [&](int id) -> bool {
            if (id == target) return true;
            if ((varies(id) & col_mask_) == 0 || !seen.insert(id).second) return false;
            if (kept.count(id) && first[id] < p) return false;
            return std::any_of(k_.nodes[id].args.begin(), k_.nodes[id].args.end(), walk);
          };
          const std::vector<int> roots = pass_roots(p);
          count += std::any_of(roots.begin(), roots.end(), walk) ? 1 : 0;
        }
        return count;
      };
      for (int i = static_cast<int>(k_.nodes.size()) - 1; i >= 0; --i) {
        if (is_expensive(k_.nodes[i].op) && passes_computing(i) > 1) kept.insert(i);
      }
      for (size_t i = 0; i < k_.nodes.size(); ++i) {
        if (kept.count(static_cast<int>(i))) {
          std::string b = "buf" + std::to_string(i);
          buffered_[static_cast<int>(i)] = b;
          const std::string ct = compute_type(k_.nodes[i].dtype);
          if (in_output >= 0 && storage_type(k_.outputs[in_output]->dtype()) == ct) {
            // A pointer based on the output's (restrict) pointer: the same object, legitimately.
            buffers += "    " + ct + "* " + b + " = out" + std::to_string(in_output) + " + (" +
                       std::to_string(L_.stores[in_output].offset) + "LL + " +
                       unravel(row_axes_, L_.stores[in_output].strides, "row") + ");\n";
            in_output = -1;
          } else {
            buffers += "    " + ct + " " + b + "[" + std::to_string(cols_) + "];\n";
          }
        }
      }
    }
    // Nodes the passes after the second read themselves (not through a row buffer filled before).
    std::unordered_set<int> read_late;
    std::function<void(int, int)> late = [&](int id, int p) {
      if ((varies(id) & col_mask_) == 0 || read_late.count(id)) return;
      if (buffered_.count(id)) {
        for (int q = 1; q < p; ++q) {
          if (uses[q].count(id)) return;
        }
      }
      read_late.insert(id);
      for (int a : k_.nodes[id].args) late(a, p);
    };
    for (int p = 3; p <= passes; ++p) {
      for (int r : pass_reductions[p]) late(k_.nodes[r].args[0], p);
      for (int o : pass_outputs[p]) late(k_.output_nodes[o], p);
    }
    std::ostringstream os;
    if (columns_over_rows_) {
      // A work item's rows in order, its partials per column in its scratch slots.
      os << "  for (int64_t item = begin; item < end; ++item) {\n";
      for (size_t j = 0; j < grid_reds_.size(); ++j) {
        const KNode& n = k_.nodes[grid_reds_[j]];
        std::string cp = "cp" + std::to_string(grid_reds_[j]);
        os << "  " << compute_type(n.dtype) << "* " << cp << " = " << scratch(j) << " + item * "
           << cols_ << "LL;\n  for (int64_t c = 0; c < " << cols_ << "LL; ++c) " << cp
           << "[c] = " << reduce_identity(n.op, n.dtype, Backend::kCpu) << ";\n";
      }
      os << "  for (int64_t row = item * " << kColumnRowsBlock << "LL; row < (item + 1) * "
         << kColumnRowsBlock << "LL && row < " << rows_ << "LL; ++row) {\n"
         << buffers;
    } else {
      os << "  for (int64_t row = begin; row < end; ++row) {\n" << buffers;
    }
    std::unordered_set<int> computed;
    for (int p = 1; p <= passes; ++p) {
      Scope body;
      body.col = "c";
      for (auto& [id, b] : buffered_) {
        if (computed.count(id)) body.memo[id] = b + "[c]";
      }
      std::string accs, combine_lanes, tail_combine;
      std::string lane_body, tail_body;
      for (int r : pass_reductions[p]) {
        const KNode& n = k_.nodes[r];
        std::string ct = compute_type(n.dtype);
        std::string acc = "acc" + std::to_string(r);
        accs += "    " + ct + " " + acc + "[" + std::to_string(kLanes) + "];\n    for (int l = 0; l < " +
                std::to_string(kLanes) + "; ++l) " + acc + "[l] = " + reduce_identity(n.op, n.dtype, Backend::kCpu) + ";\n";
        body.code += "    " + acc + "[LANE] = " + accumulate(r, acc + "[LANE]", body) + ";\n";
        std::string res = "red" + std::to_string(r);
        combine_lanes += "    " + ct + " " + res + " = " + acc + "[0];\n    for (int l = 1; l < " +
                         std::to_string(kLanes) + "; ++l) " + res + " = " +
                         reduce_combine(n.op, n.dtype, res, acc + "[l]") + ";\n";
      }
      for (int o : pass_outputs[p]) {
        std::string v = value(k_.output_nodes[o], body);
        body.code += store_stmt(static_cast<size_t>(o), v, "c");
      }
      if (columns_over_rows_ && p == column_pass) {
        for (int g : grid_reds_) {
          std::string cp = "cp" + std::to_string(g) + "[c]";
          body.code += "    " + cp + " = " + accumulate(g, cp, body) + ";\n";
        }
      }
      for (auto& [id, b] : buffered_) {
        if (body.memo.count(id)) computed.insert(id);
      }
      os << item_prologue() << accs;
      auto replace_lane = [](std::string s, const std::string& with) {
        for (size_t pos; (pos = s.find("[LANE]")) != std::string::npos;) s.replace(pos, 6, "[" + with + "]");
        return s;
      };
      if (!pass_reductions[p].empty()) {
        std::string cb = "cb" + std::to_string(p);
        os << "    int64_t " << cb << " = 0;\n";
        if (cols_ >= kUnroll * kLanes) {
          // kUnroll vectors per step, each into its own accumulators: independent dependency chains
          // (a chain of max or add through one vector register is latency-bound).
          std::string decl, merge;
          for (int r : pass_reductions[p]) {
            const KNode& n = k_.nodes[r];
            std::string acc = "acc" + std::to_string(r);
            for (int u = 1; u < kUnroll; ++u) {
              std::string au = acc + "_" + std::to_string(u);
              decl += "    " + compute_type(n.dtype) + " " + au + "[" + std::to_string(kLanes) + "];\n    for (int l = 0; l < " +
                      std::to_string(kLanes) + "; ++l) " + au + "[l] = " + reduce_identity(n.op, n.dtype, Backend::kCpu) + ";\n";
              merge += "    for (int l = 0; l < " + std::to_string(kLanes) + "; ++l) " + acc + "[l] = " +
                       reduce_combine(n.op, n.dtype, acc + "[l]", au + "[l]") + ";\n";
            }
          }
          // Floating sums over long rows: the accumulators are folded into double totals every
          // kSumBlock steps (one float accumulator adding 60 000 values lost 6e-4 of a 4M-element
          // float sum; eager's cascade sum 6e-8).
          std::vector<int> blocked;
          for (int r : pass_reductions[p]) {
            const KNode& n = k_.nodes[r];
            if (n.op == "sum" && is_floating(n.dtype) && cols_ > 2 * kSumBlock * kUnroll * kLanes) {
              blocked.push_back(r);
            }
          }
          std::string totals, fold, unfold;
          for (int r : blocked) {
            const KNode& n = k_.nodes[r];
            std::string acc = "acc" + std::to_string(r), tot = "tot" + std::to_string(r);
            totals += "    double " + tot + "[" + std::to_string(kLanes) + "] = {};\n";
            std::string sum = acc + "[l]";
            std::string reset = acc + "[l] = 0";
            for (int u = 1; u < kUnroll; ++u) {
              std::string au = acc + "_" + std::to_string(u) + "[l]";
              sum = "(" + sum + " + " + au + ")";
              reset += ", " + au + " = 0";
            }
            fold += "      for (int l = 0; l < " + std::to_string(kLanes) + "; ++l) { " + tot +
                    "[l] += " + sum + "; " + reset + "; }\n";
            unfold += "    for (int l = 0; l < " + std::to_string(kLanes) + "; ++l) " + acc +
                      "[l] = (" + compute_type(n.dtype) + ")" + tot + "[l];\n";
          }
          os << decl << totals;
          const int64_t step = kUnroll * kLanes;
          if (!blocked.empty()) {
            os << "    for (; " << cb << " + " << step << " <= " << cols_ << "LL;) {\n"
               << "    const int64_t cend = " << cb << " + " << kSumBlock * step << " <= " << cols_
               << "LL ? " << cb << " + " << kSumBlock * step << " : " << cols_ << "LL;\n";
          }
          os << "    for (; " << cb << " + " << step
             << " <= " << (blocked.empty() ? std::to_string(cols_) + "LL" : std::string("cend"))
             << "; " << cb << " += " << step << ") {\n";
          if (p == 2 && passes >= 3) os << next_row_prefetch(uses[1], read_late, cb, pass_outputs);
          for (int u = 0; u < kUnroll; ++u) {
            std::string code = body.code;
            if (u > 0) {
              for (int r : pass_reductions[p]) {
                std::string from = "acc" + std::to_string(r) + "[LANE]";
                std::string to = "acc" + std::to_string(r) + "_" + std::to_string(u) + "[LANE]";
                for (size_t pos = 0; (pos = code.find(from, pos)) != std::string::npos; pos += to.size()) {
                  code.replace(pos, from.size(), to);
                }
              }
            }
            os << "#pragma omp simd\n"
               << "      for (int l = 0; l < " << kLanes << "; ++l) {\n"
               << "    const int64_t c = " << cb << " + " << u * kLanes << " + l;\n"
               << lanes_share_quotients(replace_lane(code, "l"), cb + " + " + std::to_string(u * kLanes))
               << "      }\n";
          }
          os << "    }\n";
          if (!blocked.empty()) os << fold << "    }\n" << unfold;
          os << merge;
        }
        os << "    for (; " << cb << " + " << kLanes << " <= " << cols_ << "LL; " << cb << " += " << kLanes << ") {\n"
           << "#pragma omp simd\n"
           << "      for (int l = 0; l < " << kLanes << "; ++l) {\n"
           << "    const int64_t c = " << cb << " + l;\n"
           << lanes_share_quotients(replace_lane(body.code, "l"), cb) << "      }\n    }\n"
           << "    for (int64_t c = " << cb << "; c < " << cols_ << "LL; ++c) {\n" << replace_lane(body.code, "0")
           << "    }\n" << combine_lanes;
      } else if (std::string shared = lanes_share_quotients(body.code, "cbe");
                 shared != body.code && cols_ >= kLanes) {
        os << "    int64_t cbe = 0;\n    for (; cbe + " << kLanes << " <= " << cols_ << "LL; cbe += "
           << kLanes << ") {\n#pragma omp simd\n      for (int l = 0; l < " << kLanes
           << "; ++l) {\n    const int64_t c = cbe + l;\n"
           << shared << "      }\n    }\n    for (int64_t c = cbe; c < " << cols_ << "LL; ++c) {\n"
           << body.code << "    }\n";
      } else {
        os << "#pragma omp simd\n    for (int64_t c = 0; c < " << cols_ << "LL; ++c) {\n" << body.code << "    }\n";
      }
      for (int r : pass_reductions[p]) reduced_[r] = "red" + std::to_string(r);
    }
    Scope none;
    none.col = "c";
    std::string stores;
    for (size_t o : row_outputs) {
      std::string v = value(k_.output_nodes[o], none);
      stores += store_stmt(o, v, "");
    }
    // Reductions over rows: each row leaves its value in the scratch memory (thunder_finish).
    for (size_t j = 0; j < grid_reds_.size() && !columns_over_rows_; ++j) {
      stores +=
          "    " + scratch(j) + "[row] = " + value(k_.nodes[grid_reds_[j]].args[0], none) + ";\n";
    }
    os << item_prologue() << stores << "  }\n";
    if (columns_over_rows_) os << "  }\n";
    return os.str();
  }

  // The second of three or more passes over a row reads it from cache while the arithmetic runs:
  // it also brings the next row's first-pass loads into cache, which the first pass would otherwise
  // wait for from memory. Loads the later passes do not read again go to every level (softmax's
  // input, whose last pass reads the row of exponentials: 1024x4096 fp32, 2 threads, 0.59-0.64x
  // eager against 0.68-0.72x). Loads a later pass reads again (log_softmax's and layer_norm's
  // input) are prefetched to L2 only (hint 2, prefetcht1), where they cannot evict the row that
  // pass reads from L1: to every level, log_softmax was 8 % slower on an Intel host; on an AMD
  // EPYC host (whose prefetches fill L1 whatever the hint) the prefetch made layer_norm's and
  // log_softmax's kernels 8-10 % faster. Lines of the kUnroll * kLanes columns at `cb`, for loads
  // contiguous along the row that vary by row. The next row's lines of the outputs a later pass
  // stores are prefetched for writing (prefetchw where the target has it): the stores then find
  // them in cache instead of each waiting for its line's read for ownership (AMD EPYC host,
  // 1024x4096 fp32 layer_norm kernel, scripts/cpu_kernel_probe.py, three alternations: 1.82-1.88 ->
  // 1.54-1.65 ms on one thread, 1.00-1.05 -> 0.89-0.93 on two; softmax's unchanged).
  // THUNDER_CPU_PREFETCH_OUTPUTS=0 leaves them out (a schedule to compare by benchmark).
  std::string next_row_prefetch(const std::unordered_set<int>& first,
                                const std::unordered_set<int>& read_late, const std::string& cb,
                                const std::vector<std::vector<int>>& pass_outputs) {
    if (col_axes_.size() != 1) return "";
    // The lines of the next row's kUnroll * kLanes elements at `cb` of `ptr` (access a): read (rw
    // 0) with locality `hint`, or written (rw 1).
    auto lines = [&](const std::string& ptr, const Access& a, DType dtype, int rw, int hint) {
      const int64_t bytes = int64_t{kUnroll} * kLanes * dtype_size(dtype);
      return "      for (int64_t q = 0; q < " + std::to_string(bytes) +
             "LL; q += 64) __builtin_prefetch((" + (rw ? "char*)(" : "const char*)(") + ptr +
             " + " + std::to_string(a.offset) + "LL + " +
             unravel(row_axes_, a.strides, "(row + 1)") + " + " + cb + ") + q, " +
             std::to_string(rw) + ", " + std::to_string(hint) + ");\n";
    };
    std::vector<int> ids(first.begin(), first.end());
    std::sort(ids.begin(), ids.end());
    std::string code;
    for (int id : ids) {
      const KNode& n = k_.nodes[id];
      if (n.op != "load" || (varies(id) & ~col_mask_) == 0) continue;
      const Access& a = L_.loads[id];
      if (a.strides[col_axes_[0]] != 1) continue;
      code += lines("in" + std::to_string(n.input), a, n.dtype, 0, read_late.count(id) ? 2 : 3);
    }
    const char* e = std::getenv("THUNDER_CPU_PREFETCH_OUTPUTS");
    for (size_t p = 2; p < pass_outputs.size() && (!e || std::string(e) != "0"); ++p) {
      for (int o : pass_outputs[p]) {
        const Access& a = L_.stores[o];
        if (a.strides[col_axes_[0]] != 1 || k_.tensor_of(o) != static_cast<size_t>(o)) continue;
        code += lines("out" + std::to_string(o), a, k_.outputs[o]->dtype(), 1, 3);
      }
    }
    return code.empty() ? "" : "      if (row + 1 < end) {\n" + code + "      }\n";
  }

  std::string outer(int64_t* items, int64_t* cost) {
    const int64_t block = 256;
    // Row axes (reduced) are iterated sequentially; items are blocks of columns.
    std::vector<int> red_axes = row_axes_;
    int64_t red = rows_;
    *items = cols_ == 0 ? 0 : (cols_ + block - 1) / block;
    *cost = std::max<int64_t>(red, 1) * std::min(cols_, block);
    std::ostringstream os;
    Scope body;
    body.col = "c";
    std::string accs, post;
    std::vector<int> reds;
    for (size_t i = 0; i < k_.nodes.size(); ++i) {
      if (is_reduce_op(k_.nodes[i].op)) reds.push_back(static_cast<int>(i));
    }
    // Float sums over many rows: each column's accumulator is folded into a double total every
    // kColumnSumBlock rows (one float adding 65536 rows of 0.1 lost 6e-4; eager's 1.5e-7).
    std::string fold, unfold;
    for (int r : reds) {
      const KNode& n = k_.nodes[r];
      std::string acc = "acc" + std::to_string(r);
      accs += "    " + compute_type(n.dtype) + " " + acc + "[" + std::to_string(block) + "];\n    for (int64_t j = 0; j < " +
              std::to_string(block) + "; ++j) " + acc + "[j] = " + reduce_identity(n.op, n.dtype, Backend::kCpu) + ";\n";
      body.code += "    " + acc + "[c - c0] = " + accumulate(r, acc + "[c - c0]", body) + ";\n";
      if (float_sum(n) && red > 2 * kColumnSumBlock) {
        std::string tot = "tot" + std::to_string(r);
        accs += "    double " + tot + "[" + std::to_string(block) + "] = {};\n";
        fold += "      for (int64_t j = 0; j < " + std::to_string(block) + "; ++j) { " + tot +
                "[j] += " + acc + "[j]; " + acc + "[j] = 0; }\n";
        unfold += "    for (int64_t j = 0; j < " + std::to_string(block) + "; ++j) " + acc +
                  "[j] = (float)(" + tot + "[j] + " + acc + "[j]);\n";
      }
    }
    if (!fold.empty()) {
      fold = "      if ((row + 1) % " + std::to_string(kColumnSumBlock) + " == 0) {\n" + fold +
             "      }\n";
    }
    std::vector<size_t> col_outputs;
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      int id = k_.output_nodes[o];
      if ((store_axes(o) & L_.reduced) != 0) {
        body.code += store_stmt(o, value(id, body), "c");
      } else {
        col_outputs.push_back(o);
      }
    }
    std::string loop_pro = item_prologue();
    // Epilogue: column-level values from the accumulators.
    Scope epi;
    epi.col = "c";
    for (int r : reds) reduced_[r] = "acc" + std::to_string(r) + "[c - c0]";
    bases_.clear();
    row_.memo.clear();
    reciprocals_.clear();
    for (size_t o : col_outputs) epi.code += store_stmt(o, value(k_.output_nodes[o], epi), "c");
    std::string epi_pro = item_prologue();
    os << "  for (int64_t item = begin; item < end; ++item) {\n"
       << "    const int64_t c0 = item * " << block << "LL;\n"
       << "    const int64_t c1 = c0 + " << block << "LL < " << cols_ << "LL ? c0 + " << block
       << "LL : " << cols_ << "LL;\n"
       << accs << "    for (int64_t row = 0; row < " << red << "LL; ++row) {\n"
       << loop_pro << "#pragma omp simd\n    for (int64_t c = c0; c < c1; ++c) {\n"
       << body.code << "    }\n"
       << fold << "    }\n"
       << unfold << "    { const int64_t row = 0; (void)row;\n"
       << epi_pro << "    for (int64_t c = c0; c < c1; ++c) {\n"
       << epi.code << "    }\n    }\n  }\n";
    (void)red_axes;
    return os.str();
  }

  const KernelDef& k_;
  const Layout& L_;
  int n_;
  std::vector<int> row_axes_, col_axes_;
  int64_t rows_ = 1, cols_ = 1;
  uint64_t col_mask_ = 0;
  Scope row_;
  std::vector<int> grid_reds_;        // reductions over rows
  std::vector<size_t> grid_outputs_;  // values computed from them (scalars, or per column)
  bool columns_over_rows_ = false;    // they reduce to values per column
  int counter_ = 0;
  std::vector<uint64_t> varies_;  // per node: the axes it varies over
  std::unordered_map<int, std::string> bases_;
  std::unordered_map<int, std::string> reduced_;
  std::unordered_map<int, std::string> buffered_;
  std::unordered_map<int, std::string> reciprocals_;
};

}  // namespace

std::string cpu_source(const KernelDef& k, const Layout& layout) {
  if (needs_passes(k))
    throw Error("internal: a column kernel that needs passes has no kernel of its own");
  return CpuGen(k, layout).run();
}

}  // namespace thunder::fuser
