// Building a kernel from primitives: dims become variables unified through the primitives (elementwise
// operands share dims, broadcasts map dims, reductions drop them); the classes of unified variables
// are the kernel's axes.
#include "fuser/kernel.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace thunder::fuser {

namespace {

// The columns a split full reduction's rows get: at least kSplitMinCols (a row wide enough for
// vector loads across a block), at most kSplitMaxCols; about the elements over kSplitRows (rows
// enough for every multiprocessor of a GPU a few times), within [kSplitCols, kSplitWideCols], where
// the sizes allow. On an H200 a 64M-element sum in rows of 4096 ran at 0.70 of eager's speed (the
// last block combining 16384 rows' values).
constexpr int64_t kSplitMinElements = int64_t{1} << 16;
constexpr int64_t kSplitMinCols = 1024, kSplitCols = 4096, kSplitWideCols = 32768,
                  kSplitMaxCols = 65536;
constexpr int64_t kSplitRows = 2048;
// Rows split only where few (at most kSplitMaxGroups: one block a row leaves most of a GPU idle)
// and long (at least kSplitLongRow elements).
constexpr int64_t kSplitMaxGroups = 256, kSplitLongRow = 16384;
// The innermost reduced elements from which a reduction over dims that are not all innermost is a
// row reduction read in runs (each kept point's elements) rather than a column reduction.
constexpr int64_t kRowRun = 64;

const std::unordered_set<std::string>& unary_ops() {
  static const std::unordered_set<std::string> s = {
      "abs",   "neg",   "exp",   "exp2",  "expm1", "log",        "log1p",       "log2",  "log10",
      "sqrt",  "rsqrt", "sin",   "cos",   "tan",   "tanh",       "sinh",        "cosh",  "asin",
      "acos",  "atan",  "asinh", "acosh", "atanh", "erf",        "erfc",        "lgamma",
      "reciprocal", "sign", "floor", "ceil", "round", "trunc", "bitwise_not", "isfinite",
      "signbit", "real"};
  return s;
}
const std::unordered_set<std::string>& binary_ops() {
  static const std::unordered_set<std::string> s = {
      "add", "sub", "mul", "div", "remainder", "fmod", "pow", "maximum", "minimum", "atan2",
      "bitwise_and", "bitwise_or", "bitwise_xor", "eq", "ne", "lt", "le", "gt", "ge"};
  return s;
}
bool is_float_only(const std::string& op) {
  static const std::unordered_set<std::string> s = {
      "exp",  "exp2", "expm1", "log",  "log1p", "log2",  "log10", "sqrt",  "rsqrt", "sin",
      "cos",  "tan",  "tanh",  "sinh", "cosh",  "asin",  "acos",  "atan",  "asinh", "acosh",
      "atanh", "erf", "erfc",  "lgamma", "reciprocal", "div", "remainder", "fmod", "pow", "atan2"};
  return s.count(op) != 0;
}
bool is_bitwise(const std::string& op) { return op.rfind("bitwise_", 0) == 0; }

bool dtype_ok(DType d) { return !is_complex(d); }

}  // namespace

bool is_reduce_op(const std::string& op) {
  return op == "sum" || op == "amax" || op == "amin" || op == "prod";
}

bool is_elementwise_op(const std::string& op) {
  return unary_ops().count(op) != 0 || binary_ops().count(op) != 0 || op == "where" ||
         op == "convert_element_type";
}

std::vector<int> available_from(const KernelDef& k) {
  std::vector<int> need(k.nodes.size(), 0);
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& n = k.nodes[i];
    int m = 0;
    for (int a : n.args) m = std::max(m, need[a]);
    need[i] = is_reduce_op(n.op) ? m + 1 : m;
  }
  return need;
}

std::vector<bool> over_rows_values(const std::vector<KNode>& nodes) {
  std::vector<bool> g(nodes.size(), false);
  for (size_t i = 0; i < nodes.size(); ++i) {
    g[i] = nodes[i].over_rows;
    for (int a : nodes[i].args) g[i] = g[i] || g[a];
  }
  return g;
}

std::vector<int> over_rows_reductions(const KernelDef& k) {
  std::vector<int> r;
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    if (k.nodes[i].over_rows) r.push_back(static_cast<int>(i));
  }
  return r;
}

bool columns_over_rows(const KernelDef& k) {
  for (const KNode& n : k.nodes) {
    if (n.over_rows && (n.axes & k.reduced) != 0) return true;
  }
  return false;
}

uint64_t used_axes(const KernelDef& k) {
  uint64_t used = k.reduced;
  auto use = [&](int a) {
    if (a >= 0) used |= uint64_t{1} << a;
  };
  for (const KNode& nd : k.nodes) {
    used |= nd.axes;
    for (int a : nd.dims) use(a);
    use(nd.gather_axis);
  }
  for (const std::vector<int>& dims : k.output_dims) {
    for (int a : dims) use(a);
  }
  return used;
}

int64_t over_rows_groups(const KernelDef& k) {
  int64_t g = 1;
  for (int a = 0; a < k.group_axes; ++a) g *= k.sizes[a];
  return g;
}

// True when `nodes` reduce in one pass (no reduction of a value computed from another), with no
// product and no index along the axes (iota, gather, random draws): what a split of a row kernel's
// rows into rows over the rows (split_reduction_rows) requires of them.
static bool one_pass_without_indices(const std::vector<KNode>& nodes) {
  std::vector<int> need(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const KNode& n = nodes[i];
    if (n.op == "iota" || n.op == "gather" || n.op == "rand" || n.op == "prod") return false;
    for (int a : n.args) need[i] = std::max(need[i], need[a]);
    if (is_reduce_op(n.op)) {
      if (need[i] > 0) return false;
      need[i] = 1;
    }
  }
  return true;
}

bool host_input(const KernelDef& k, size_t i) {
  for (const KNode& n : k.nodes) {
    if (n.op == "rand" && n.input == static_cast<int>(i)) return true;
  }
  return false;
}

// The most non-empty parts a fused cat takes: each is computed at every position of the result.
constexpr size_t kMaxCatParts = 4;

bool padded_load(const KNode& n) {
  if (n.op != "load") return false;
  for (const ViewOp& v : n.view) {
    if (v.kind == ViewOp::Kind::kPad) return true;
  }
  return false;
}

bool prim_fusible(const BoundSymbol& b) {
  if (!b.sym->is_prim()) return false;
  const std::string& op = b.sym->name;
  bool tensor_in = false;
  for (const Value& v : b.args) {
    bool bad = false;
    v.for_each_tensor([&](const TensorRef& t) {
      tensor_in = true;
      if (!dtype_ok(t->dtype()) || t->device().type == DeviceType::kMeta) bad = true;
    });
    if (bad) return false;
  }
  bool out_ok = true;
  b.output.for_each_tensor([&](const TensorRef& t) {
    if (!dtype_ok(t->dtype())) out_ok = false;
  });
  if (!out_ok || !b.output.is_tensor()) return false;
  const TensorRef& out = b.output.as_tensor();
  if (unary_ops().count(op) || binary_ops().count(op)) {
    if (!tensor_in) return false;
    for (const Value& v : b.args) {
      if (!v.is_tensor() && !v.is_number()) return false;
    }
    // Operand dtype (numbers take the tensor's).
    DType in = DType::kFloat32;
    for (const Value& v : b.args) {
      if (v.is_tensor()) in = v.as_tensor()->dtype();
    }
    if (is_float_only(op) && !is_floating(in)) return false;  // integer division raises in eager
    if (is_bitwise(op) && is_floating(in)) return false;
    if ((op == "add" || op == "sub" || op == "mul") && is_bool(in)) return false;
    if ((op == "round" || op == "sign" || op == "abs" || op == "neg") && is_bool(in)) return false;
    return true;
  }
  if (op == "where" || op == "convert_element_type") return true;
  if (op == "broadcast_in_dim" || op == "transpose" || op == "squeeze" || op == "reshape") {
    return true;
  }
  if (op == "slice") return b.args[0].is_tensor();
  // Constant pads (no interior padding, nothing cut off) and cats: indexing in pointwise kernels.
  if (op == "pad") {
    if (!b.args[1].is_number()) return false;
    for (const Value& c : b.args[2].items()) {
      std::vector<int64_t> v = c.as_int_list();
      if (v.size() != 3 || v[0] < 0 || v[1] < 0 || v[2] != 0) return false;
    }
    return true;
  }
  if (op == "cat") return b.args[0].is_seq();
  if (op == "sum" || op == "amax" || op == "amin" || op == "prod") {
    return !is_bool(out->dtype());
  }
  if (op == "var") return is_floating(out->dtype());
  if (op == "take_along_axis") {
    const TensorRef& a = b.args[0].as_tensor();
    const TensorRef& idx = b.args[1].as_tensor();
    int64_t dim = b.args[2].as_int();
    if (dim < 0) dim += a->rank();
    return is_integer(idx->dtype()) && idx->rank() == a->rank() && idx->shape()[dim].value() == 1;
  }
  if (op == "full") return b.args[1].is_number();
  if (op == "uniform_philox") return b.args[1].is_tensor();
  // Integer iota (floating aranges accumulate in float64 in torch, and stay there).
  if (op == "iota") {
    return is_integer(out->dtype()) && b.args[0].is_int() && b.args[1].is_int() &&
           b.args[2].is_int();
  }
  return false;
}

namespace {

struct VInfo {
  int node = -1;
  std::vector<int> vars;  // per dim: variable, -1 for size 1
  std::vector<int64_t> shape;
  int input = -1;               // a view of this region input, when >= 0
  std::vector<ViewOp> chain;    // the views applied to it
};

// True when reshaping `from` to `to` only splits dims (and adds or drops dims of one element):
// each dim of `to` lies within one dim of `from`.
bool splits_only(const std::vector<int64_t>& from, const std::vector<int64_t>& to) {
  std::vector<int64_t> f, t;
  for (int64_t s : from) {
    if (s != 1) f.push_back(s);
  }
  for (int64_t s : to) {
    if (s != 1) t.push_back(s);
  }
  size_t j = 0;
  for (int64_t s : f) {
    int64_t p = 1;
    while (p < s && j < t.size()) p *= t[j++];
    if (p != s) return false;
  }
  return j == t.size();
}

class Builder {
 public:
  // split_cats: a cat no later primitive of the kernel reads is written in parts (see
  // KernelDef::output_parts) where its parts have one size along the cat's dim.
  Builder(const std::vector<TensorRef>& inputs, bool split_cats)
      : inputs_(inputs), split_cats_on_(split_cats) {
    for (size_t i = 0; i < inputs.size(); ++i) input_index_[inputs[i].get()] = static_cast<int>(i);
  }

  std::optional<KernelDef> build(const std::vector<BSymRef>& prims,
                                 const std::vector<TensorRef>& outputs, std::string* why) {
    try {
      for (const BSymRef& b : prims) add(*b);
      return finish(outputs);
    } catch (const Reject& r) {
      if (why) *why = r.why;
      return std::nullopt;
    }
  }

 private:
  struct Reject {
    std::string why;
  };
  [[noreturn]] static void reject(std::string why) { throw Reject{std::move(why)}; }

  int new_var(int64_t size) {
    parent_.push_back(static_cast<int>(parent_.size()));
    var_size_.push_back(size);
    return parent_.back();
  }
  int find(int v) {
    while (parent_[v] != v) v = parent_[v] = parent_[parent_[v]];
    return v;
  }
  int unite(int a, int b) {
    if (a < 0) return b;
    if (b < 0) return a;
    a = find(a);
    b = find(b);
    if (var_size_[a] != var_size_[b]) reject("dims of different sizes meet");
    if (a != b) parent_[b] = a;
    return a;
  }

  int add_node(KNode n) {
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }

  std::vector<int> fresh_vars(const std::vector<int64_t>& shape) {
    std::vector<int> v;
    for (int64_t s : shape) v.push_back(s == 1 ? -1 : new_var(s));
    return v;
  }

  int make_load(int input, std::vector<ViewOp> chain, const std::vector<int64_t>& shape,
                const std::vector<int>& vars) {
    KNode n;
    n.op = "load";
    n.input = input;
    n.dtype = inputs_[input]->dtype();
    n.view = std::move(chain);
    n.view_shape = shape;
    int id = add_node(std::move(n));
    load_vars_[id] = vars;
    return id;
  }

  VInfo& info(const TensorRef& t) {
    auto it = values_.find(t.get());
    if (it != values_.end()) return it->second;
    if (split_cats_.count(t.get())) reject("a cat written in parts is read by the kernel");
    auto in = input_index_.find(t.get());
    if (in == input_index_.end()) reject("internal: " + t->name() + " is neither computed nor an input");
    VInfo v;
    for (Dim d : t->shape()) v.shape.push_back(d.value());
    v.vars = fresh_vars(v.shape);
    v.input = in->second;
    v.node = make_load(v.input, {}, v.shape, v.vars);
    return values_[t.get()] = std::move(v);
  }

  int const_node(double f, int64_t i, bool is_float, DType dtype) {
    char key[96];
    std::snprintf(key, sizeof(key), "const %a %lld %d %d", f,
                  is_float ? 0LL : static_cast<long long>(i), is_float ? 1 : 0,
                  static_cast<int>(dtype));
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
    KNode n;
    n.op = "const";
    n.fvalue = f;
    n.ivalue = i;
    n.is_float_const = is_float;
    n.dtype = dtype;
    return memo_[key] = add_node(std::move(n));
  }
  int const_of(const Value& v, DType dtype) {
    if (v.is_float()) return const_node(v.as_double(), 0, true, dtype);
    return const_node(static_cast<double>(v.as_int()), v.as_int(), false, dtype);
  }

  // Equal operations of equal operands are one node (decompositions repeat subexpressions, e.g.
  // layer_norm's mean and the mean inside its variance).
  int op_node(std::string op, DType dtype, std::vector<int> args, const std::string& extra = "") {
    std::string key = op + " " + std::to_string(static_cast<int>(dtype)) + " " + extra;
    for (int a : args) key.append(" ").append(std::to_string(a));
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
    KNode n;
    n.op = std::move(op);
    n.dtype = dtype;
    n.args = std::move(args);
    return memo_[key] = add_node(std::move(n));
  }

  void define(const Value& out, VInfo v) { values_[out.as_tensor().get()] = std::move(v); }

  static std::vector<int64_t> shape_of(const TensorRef& t) {
    std::vector<int64_t> s;
    for (Dim d : t->shape()) s.push_back(d.value());
    return s;
  }

  // A padded load's fill value (a pad's number).
  void set_fill(int load, const Value& v) {
    KNode& n = nodes_[load];
    const int64_t i = v.is_float() ? 0 : v.is_bool() ? int64_t{v.as_bool()} : v.as_int();
    n.is_float_const = v.is_float();
    n.fvalue = v.is_float() ? v.as_double() : static_cast<double>(i);
    n.ivalue = i;
  }

  // Load `to` reads the fill value of load `from`'s padding.
  void copy_fill(int to, const KNode& from) {
    KNode& n = nodes_[to];
    n.fvalue = from.fvalue;
    n.ivalue = from.ivalue;
    n.is_float_const = from.is_float_const;
  }

  // An int64 index along var `v` (0, 1, ...).
  int index_along(int v) {
    KNode n;
    n.op = "iota";
    n.dtype = DType::kInt64;
    n.ivalue = 0;
    n.step = 1;
    const int id = add_node(std::move(n));
    load_vars_[id] = {v};
    return id;
  }

  // True when node `id` varies over var root `from` (through its loads).
  bool varies_over(int id, int from, std::unordered_map<int, bool>& memo) {
    auto it = memo.find(id);
    if (it != memo.end()) return it->second;
    bool r = false;
    auto lv = load_vars_.find(id);
    if (lv != load_vars_.end()) {
      for (int v : lv->second) r = r || (v >= 0 && find(v) == from);
    }
    for (int a : nodes_[id].args) r = r || varies_over(a, from, memo);
    return memo[id] = r;
  }

  // A pad (lo, hi) or a slice (start, stop, step) of one dim, applied to the loads a computed
  // value is read from.
  struct DimView {
    ViewOp::Kind kind;
    int64_t a, b, c;
  };

  // Node `id`'s value through `dv` along the dim that lies on var root `from`: every load that
  // varies over `from` reads through `dv` on that dim, which lies on var `to` (-1: one element)
  // after it (a pad's positions outside the value's own read the pad's fill, which the caller
  // does not select). Nodes that do not vary over `from` are shared; element-wise nodes are
  // rebuilt over their operands' values; anything else that varies over `from` (a reduction's
  // result, an index, random numbers) is refused.
  struct ReindexMemo {
    std::unordered_map<int, int> nodes;    // node -> its value through the view
    std::unordered_map<int, bool> varies;  // node -> whether it varies over `from`
  };
  int reindex(int id, int from, int to, const DimView& dv, ReindexMemo& memo) {
    auto it = memo.nodes.find(id);
    if (it != memo.nodes.end()) return it->second;
    if (!varies_over(id, from, memo.varies)) return memo.nodes[id] = id;
    const KNode n = nodes_[id];
    int r;
    if (n.op == "load") {
      const std::vector<int> vars = load_vars_.at(id);
      std::vector<int64_t> shape = n.view_shape;
      std::vector<int64_t> a, b, c;
      std::vector<int> nv = vars;
      for (size_t d = 0; d < vars.size(); ++d) {
        const bool on = vars[d] >= 0 && find(vars[d]) == from;
        if (dv.kind == ViewOp::Kind::kPad) {
          a.push_back(on ? dv.a : 0);
          b.push_back(on ? dv.b : 0);
          if (on) shape[d] += dv.a + dv.b;
        } else {
          a.push_back(on ? dv.a : 0);
          b.push_back(on ? dv.b : shape[d]);
          c.push_back(on ? dv.c : 1);
          if (on) shape[d] = dv.b > dv.a ? (dv.b - dv.a + dv.c - 1) / dv.c : 0;
        }
        if (on) nv[d] = to;
      }
      std::vector<ViewOp> chain = n.view;
      chain.push_back({dv.kind, a, b, c});
      r = make_load(n.input, std::move(chain), shape, nv);
      copy_fill(r, n);
    } else if (unary_ops().count(n.op) || binary_ops().count(n.op) || n.op == "where" ||
               n.op == "convert_element_type") {
      std::vector<int> args;
      for (int x : n.args) args.push_back(reindex(x, from, to, dv, memo));
      r = op_node(n.op, n.dtype, std::move(args));
    } else {
      reject("a view of a value computed by " + n.op);
    }
    return memo.nodes[id] = r;
  }

  // A view primitive on a view of an input becomes a new load; on a computed value it is refused.
  void view_load(const BoundSymbol& b, const VInfo& a, ViewOp op) {
    if (a.input < 0) reject(b.sym->name + " of a computed value is not indexing");
    VInfo v;
    v.shape = shape_of(b.output.as_tensor());
    v.vars = fresh_vars(v.shape);
    v.input = a.input;
    v.chain = a.chain;
    v.chain.push_back(std::move(op));
    v.node = make_load(v.input, v.chain, v.shape, v.vars);
    // A view of a padded view reads the pad's fill too.
    if (nodes_[a.node].op == "load") copy_fill(v.node, nodes_[a.node]);
    define(b.output, std::move(v));
  }

  void add(const BoundSymbol& b) {
    const std::string& op = b.sym->name;
    const TensorRef& out = b.output.as_tensor();
    std::vector<int64_t> oshape = shape_of(out);
    if (unary_ops().count(op) || binary_ops().count(op) || op == "where" ||
        op == "convert_element_type") {
      std::vector<Value> operands(b.args.begin(), b.args.end());
      if (op == "convert_element_type") operands.resize(1);
      DType operand_dtype = out->dtype();
      for (size_t i = (op == "where" ? 1 : 0); i < operands.size(); ++i) {
        if (operands[i].is_tensor()) {
          operand_dtype = operands[i].as_tensor()->dtype();
          break;
        }
      }
      if (op == "where" && !operands[1].is_tensor() && !operands[2].is_tensor()) {
        operand_dtype = out->dtype();
      }
      std::vector<int> args;
      std::vector<int> vars(oshape.size(), -1);
      for (size_t i = 0; i < operands.size(); ++i) {
        const Value& v = operands[i];
        if (v.is_tensor()) {
          VInfo& vi = info(v.as_tensor());
          args.push_back(vi.node);
          if (vi.vars.size() != vars.size()) reject("operands of " + op + " differ in rank");
          for (size_t d = 0; d < vars.size(); ++d) vars[d] = unite(vars[d], vi.vars[d]);
        } else if (v.is_number()) {
          DType cd = (op == "where" && i == 0) ? DType::kBool : operand_dtype;
          args.push_back(const_of(v, cd));
        } else {
          reject(op + " takes a non-tensor, non-number argument");
        }
      }
      for (int& v : vars) v = v < 0 ? v : find(v);
      VInfo r;
      // A conversion to the dtype a tensor has already is its value (a saved row maximum's
      // `convert_element_type(m, float32)` must not hide the maximum from the online softmax).
      const bool no_op = op == "convert_element_type" && operands[0].is_tensor() &&
                         operands[0].as_tensor()->dtype() == out->dtype();
      r.node = no_op ? args[0] : op_node(op, out->dtype(), std::move(args));
      copies_ = copies_ || no_op;
      r.vars = std::move(vars);
      r.shape = oshape;
      define(b.output, std::move(r));
      return;
    }
    if (op == "broadcast_in_dim") {
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int64_t> bdims = b.args[2].as_int_list();
      VInfo r;
      r.node = a.node;
      r.shape = oshape;
      r.vars.assign(oshape.size(), -2);
      for (size_t i = 0; i < bdims.size(); ++i) {
        int64_t j = bdims[i];
        r.vars[j] = (a.shape[i] == oshape[j] && oshape[j] != 1) ? a.vars[i] : -2;
      }
      for (size_t j = 0; j < oshape.size(); ++j) {
        if (oshape[j] == 1) {
          r.vars[j] = -1;
        } else if (r.vars[j] == -2) {
          r.vars[j] = new_var(oshape[j]);
        }
      }
      if (a.input >= 0) {
        r.input = a.input;
        r.chain = a.chain;
        r.chain.push_back({ViewOp::Kind::kBroadcast, oshape, bdims, {}});
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "transpose" || op == "squeeze") {
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int64_t> p = b.args[1].as_int_list();
      VInfo r;
      r.node = a.node;
      r.shape = oshape;
      if (op == "transpose") {
        for (int64_t d : p) r.vars.push_back(a.vars[d]);
      } else {
        std::set<int64_t> drop;
        for (int64_t d : p) drop.insert(d < 0 ? d + static_cast<int64_t>(a.shape.size()) : d);
        for (size_t d = 0; d < a.vars.size(); ++d) {
          if (!drop.count(static_cast<int64_t>(d))) r.vars.push_back(a.vars[d]);
        }
      }
      if (a.input >= 0) {
        r.input = a.input;
        r.chain = a.chain;
        r.chain.push_back({op == "transpose" ? ViewOp::Kind::kTranspose : ViewOp::Kind::kSqueeze,
                           p, {}, {}});
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "reshape") {
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int> av, ov;
      std::vector<int64_t> as, os;
      for (size_t d = 0; d < a.shape.size(); ++d) {
        if (a.shape[d] != 1) as.push_back(a.shape[d]), av.push_back(a.vars[d]);
      }
      for (int64_t s : oshape) {
        if (s != 1) os.push_back(s);
      }
      if (as == os) {  // only size-1 dims change
        VInfo r;
        r.node = a.node;
        r.shape = oshape;
        size_t k = 0;
        for (int64_t s : oshape) r.vars.push_back(s == 1 ? -1 : av[k++]);
        if (a.input >= 0) {
          r.input = a.input;
          r.chain = a.chain;
          r.chain.push_back({ViewOp::Kind::kReshape, oshape, {}, {}});
        }
        define(b.output, std::move(r));
        return;
      }
      // A reshape that is indexing: of an input directly (viewable, or made contiguous at call
      // time), or one that only splits dims (q sliced from a qkv projection, its heads split):
      // viewable whatever the strides before it.
      bool plain = true, padded = false;
      for (const ViewOp& v : a.chain) {
        plain = plain && (v.kind == ViewOp::Kind::kReshape || v.kind == ViewOp::Kind::kSqueeze);
        padded = padded || v.kind == ViewOp::Kind::kPad;
      }
      if (!plain && (padded || !splits_only(a.shape, oshape)))
        reject("reshape of a transposed, sliced or broadcast input");
      view_load(b, a, {ViewOp::Kind::kReshape, oshape, {}, {}});
      return;
    }
    if (op == "slice") {
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int64_t> start = b.args[1].as_int_list(), stop = b.args[2].as_int_list();
      std::vector<int64_t> step = b.args[3].is_none() ? std::vector<int64_t>(start.size(), 1)
                                                      : b.args[3].as_int_list();
      if (a.input >= 0) {
        view_load(b, a, {ViewOp::Kind::kSlice, start, stop, step});
        return;
      }
      // A slice of a computed value: the value computed from loads sliced alike.
      VInfo r;
      r.shape = oshape;
      r.vars = a.vars;
      r.node = a.node;
      for (size_t d = 0; d < start.size(); ++d) {
        if (start[d] == 0 && stop[d] == a.shape[d] && step[d] == 1) continue;
        const int to = oshape[d] == 1 ? -1 : new_var(oshape[d]);
        if (a.vars[d] >= 0) {
          ReindexMemo memo;
          r.node = reindex(r.node, find(a.vars[d]), to,
                           {ViewOp::Kind::kSlice, start[d], stop[d], step[d]}, memo);
        }
        r.vars[d] = to;
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "pad") {
      // A constant pad: of a view of an input, a load that reads its fill value outside the
      // input; of a computed value, the value computed from loads padded alike, its fill selected
      // outside.
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int64_t> lo, hi;
      for (const Value& c : b.args[2].items()) {
        std::vector<int64_t> v = c.as_int_list();
        lo.push_back(v[0]);
        hi.push_back(v[1]);
      }
      if (a.input >= 0) {
        view_load(b, a, {ViewOp::Kind::kPad, lo, hi, {}});
        set_fill(values_.at(out.get()).node, b.args[1]);
        return;
      }
      VInfo r;
      r.shape = oshape;
      r.vars = a.vars;
      r.node = a.node;
      const int fill = const_of(b.args[1], out->dtype());
      for (size_t d = 0; d < lo.size(); ++d) {
        if (lo[d] == 0 && hi[d] == 0) continue;
        const int to = new_var(oshape[d]);
        if (a.vars[d] >= 0) {
          ReindexMemo memo;
          r.node =
              reindex(r.node, find(a.vars[d]), to, {ViewOp::Kind::kPad, lo[d], hi[d], 0}, memo);
        }
        // Outside [lo, lo + n) along the dim: the fill.
        const int i = index_along(to);
        const int below =
            op_node("lt", DType::kBool, {i, const_node(0, lo[d], false, DType::kInt64)});
        const int inside = op_node("lt", DType::kBool,
                                   {i, const_node(0, lo[d] + a.shape[d], false, DType::kInt64)});
        r.node = op_node("where", out->dtype(),
                         {below, fill, op_node("where", out->dtype(), {inside, r.node, fill})});
        r.vars[d] = to;
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "cat") {
      // Each operand computed from loads padded to the whole dim (its part in place), the part an
      // index along the dim falls in selected.
      const auto& items = b.args[0].items();
      const int64_t dim = b.args[1].as_int() < 0
                              ? b.args[1].as_int() + static_cast<int64_t>(oshape.size())
                              : b.args[1].as_int();
      if (split_cats_on_ && split_cat(items, dim, out)) return;
      const int64_t total = oshape[dim];
      const int to = total == 1 ? -1 : new_var(total);
      std::vector<int> parts;
      std::vector<int64_t> ends;
      std::vector<int> vars;
      int64_t off = 0;
      for (const Value& v : items) {
        const VInfo a = info(v.as_tensor());
        const int64_t n = a.shape[dim];
        if (n == 0) continue;
        if (vars.empty()) {
          vars = a.vars;
        } else {
          for (size_t d = 0; d < vars.size(); ++d) {
            if (static_cast<int64_t>(d) != dim) vars[d] = unite(vars[d], a.vars[d]);
          }
        }
        int node = a.node;
        if (a.vars[dim] >= 0 && to >= 0) {
          ReindexMemo memo;
          node = reindex(node, find(a.vars[dim]), to, {ViewOp::Kind::kPad, off, total - off - n, 0},
                         memo);
        }
        parts.push_back(node);
        off += n;
        ends.push_back(off);
      }
      if (parts.empty()) reject("cat of empty tensors");
      // Every part is computed at every position (the index selects one): a few parts only.
      if (parts.size() > kMaxCatParts)
        reject("a cat of more than " + std::to_string(kMaxCatParts) + " parts");
      VInfo r;
      r.shape = oshape;
      r.vars = vars;
      for (int& v : r.vars) v = v < 0 ? v : find(v);
      r.vars[dim] = to;
      r.node = parts.back();
      if (parts.size() > 1) {
        const int i = index_along(to);
        for (size_t p = parts.size() - 1; p-- > 0;) {
          const int before =
              op_node("lt", DType::kBool, {i, const_node(0, ends[p], false, DType::kInt64)});
          r.node = op_node("where", out->dtype(), {before, parts[p], r.node});
        }
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "sum" || op == "amax" || op == "amin" || op == "prod" || op == "var") {
      const VInfo a = info(b.args[0].as_tensor());
      std::vector<int64_t> dims = b.args[1].as_int_list();
      std::set<int64_t> red;
      for (int64_t d : dims) red.insert(d < 0 ? d + static_cast<int64_t>(a.shape.size()) : d);
      std::vector<int> out_vars, red_vars;
      int64_t count = 1;
      for (size_t d = 0; d < a.vars.size(); ++d) {
        if (red.count(static_cast<int64_t>(d))) {
          count *= a.shape[d];
          if (a.vars[d] >= 0) red_vars.push_back(a.vars[d]);
        } else {
          out_vars.push_back(a.vars[d]);
        }
      }
      auto reduce = [&](const std::string& rop, int operand) {
        if (red_vars.empty()) return operand;  // only size-1 dims reduced
        if (!reductions_.empty() && over_rows_candidate(red_vars, out_vars)) {
          // After a row reduction, a reduction of every remaining dim of a value that does not vary
          // along the rows (cross-entropy's mean of the rows' losses): over the kernel's rows. On
          // an H200 the 2048x4096 cross-entropy forward's calls, back to back, take 12.9 us each
          // against 33.5 as two kernels (one output allocation and launch fewer); its kernel alone
          // takes 2.3 us longer (the last block's combination of the blocks' partials).
          int n = op_node(rop, out->dtype(), {operand}, "over rows");
          nodes_[n].over_rows = true;
          return n;
        }
        std::string over = "over";  // a reduction is the same node only over the same dims
        for (int v : red_vars) over += " " + std::to_string(find(v));
        int n = op_node(rop, out->dtype(), {operand}, over);
        if (!reductions_.empty() && reductions_[0].second.size() == red_vars.size()) {
          // Reductions over unrelated dims of equal sizes iterate together (an output that would then
          // hold two dims on one axis is refused later).
          bool same_sizes = true;
          for (size_t i = 0; i < red_vars.size(); ++i) {
            same_sizes = same_sizes && var_size_[find(red_vars[i])] == var_size_[find(reductions_[0].second[i])];
          }
          if (same_sizes) {
            for (size_t i = 0; i < red_vars.size(); ++i) unite(reductions_[0].second[i], red_vars[i]);
            // Operands of one shape reduced over the same dims (a weight's and a bias's gradient)
            // iterate together along the kept dims too.
            const std::vector<int>& fv = first_reduction_operand_.first;
            bool same_shape = fv.size() == a.vars.size() && first_reduction_operand_.second == red;
            for (size_t d = 0; same_shape && d < fv.size(); ++d) {
              int64_t s1 = fv[d] < 0 ? 1 : var_size_[find(fv[d])],
                      s2 = a.vars[d] < 0 ? 1 : var_size_[find(a.vars[d])];
              same_shape = s1 == s2;
            }
            for (size_t d = 0; same_shape && d < fv.size(); ++d) {
              if (fv[d] >= 0 && a.vars[d] >= 0) unite(fv[d], a.vars[d]);
            }
          }
        }
        if (reductions_.empty()) first_reduction_operand_ = {a.vars, red};
        reductions_.push_back({n, red_vars});
        if (first_reduction_vars_.empty()) {
          // Whether the reduced dims are the operand's innermost (ignoring size-1 dims), or its
          // innermost dims are reduced over at least kRowRun elements: then each kept point is a
          // row read in runs (group_norm's weight gradient, summed over the samples and the
          // spatial dims of each channel), not a column whose elements lie a run apart.
          // The innermost run of reduced dims: its elements, and its dims against all reduced.
          int64_t trailing = 1;
          size_t in_run = 0, reduced_dims = 0;
          bool open = true;
          for (size_t d = a.vars.size(); d-- > 0;) {
            if (a.vars[d] < 0) continue;
            const bool r = red.count(static_cast<int64_t>(d)) != 0;
            reduced_dims += r ? 1 : 0;
            open = open && r;
            if (open) {
              trailing *= var_size_[find(a.vars[d])];
              ++in_run;
            }
          }
          reduced_innermost_ = in_run == reduced_dims || trailing >= kRowRun;
          trailing_reduction_ = in_run == reduced_dims;
          first_reduction_vars_ = red_vars;
        }
        return n;
      };
      VInfo r;
      r.shape = oshape;
      r.vars = out_vars;
      if (op != "var") {
        r.node = reduce(op, a.node);
      } else {
        double correction = b.args[2].as_double();
        DType dt = out->dtype();
        int s = reduce("sum", a.node);
        int mean = op_node("div", dt, {s, const_node(static_cast<double>(count), count, true, dt)});
        int diff = op_node("sub", dt, {a.node, mean});
        int sq = op_node("mul", dt, {diff, diff});
        int ss = reduce("sum", sq);
        // The corrected two-pass form: the squares' sum less (sum of differences)^2 / n, which
        // takes out the error of the rounded mean (the differences' sum is one more add in the
        // same pass, and the norms' corrected mean reads it too). A constant row's variance is 0
        // exactly, as eager's Welford variance: its differences are one value of a few ulps and
        // both terms are exact. Never below 0.
        int sd = reduce("sum", diff);
        int sd2 = op_node("mul", dt, {sd, sd});
        int corr =
            op_node("div", dt, {sd2, const_node(static_cast<double>(count), count, true, dt)});
        int m2 =
            op_node("maximum", dt, {op_node("sub", dt, {ss, corr}), const_node(0.0, 0, true, dt)});
        double denom = std::max(static_cast<double>(count) - correction, 0.0);
        r.node = op_node("div", dt, {m2, const_node(denom, 0, true, dt)});
      }
      define(b.output, std::move(r));
      return;
    }
    if (op == "take_along_axis") {
      const VInfo a = info(b.args[0].as_tensor());
      const VInfo idx = info(b.args[1].as_tensor());
      int64_t dim = b.args[2].as_int();
      if (dim < 0) dim += static_cast<int64_t>(a.shape.size());
      if (a.vars[dim] < 0) reject("take_along_axis along a size-1 dim");
      VInfo r;
      r.shape = oshape;
      r.vars.assign(oshape.size(), -1);
      for (size_t d = 0; d < oshape.size(); ++d) {
        if (static_cast<int64_t>(d) == dim) continue;
        r.vars[d] = unite(a.vars[d], idx.vars[d]);
      }
      KNode n;
      n.op = "gather";
      n.dtype = out->dtype();
      n.args = {a.node, idx.node};
      r.node = add_node(std::move(n));
      gathers_.push_back({r.node, a.vars[dim]});
      define(b.output, std::move(r));
      return;
    }
    if (op == "iota") {
      // Indexing like a load of a contiguous 1-D tensor: the layout gives it stride 1 along its
      // axis.
      KNode n;
      n.op = "iota";
      n.dtype = out->dtype();
      n.ivalue = b.args[1].as_int();
      n.step = b.args[2].as_int();
      VInfo r;
      r.shape = oshape;
      r.vars = fresh_vars(oshape);
      r.node = add_node(std::move(n));
      load_vars_[r.node] = r.vars;
      define(b.output, std::move(r));
      return;
    }
    if (op == "uniform_philox") {
      // Indexing like iota over the whole shape: element i draws from the state's stream at i.
      auto in = input_index_.find(b.args[1].as_tensor().get());
      if (in == input_index_.end()) reject("uniform_philox of a computed state");
      KNode n;
      n.op = "rand";
      n.dtype = DType::kFloat32;
      n.input = in->second;
      n.view_shape = oshape;
      VInfo r;
      r.shape = oshape;
      r.vars = fresh_vars(oshape);
      r.node = add_node(std::move(n));
      load_vars_[r.node] = r.vars;
      rng_states_.insert(in->second);
      define(b.output, std::move(r));
      return;
    }
    if (op == "full") {
      VInfo r;
      r.shape = oshape;
      r.vars = fresh_vars(oshape);
      r.node = const_of(b.args[1], out->dtype());
      define(b.output, std::move(r));
      return;
    }
    reject(b.sym->qualname() + " is not fusible");
  }

  // True when reducing `red_vars` after a row reduction over other dims leaves no dim (`out_vars`
  // all size 1) or only the row reduction's dims: a reduction over the kernel's rows, to a scalar
  // (a mean of the rows' losses) or to a value per column (layer_norm's weight gradient). Dims of
  // the same sizes as the row reduction's, leaving no dim, are not: those reductions iterate
  // together (below).
  bool over_rows_candidate(const std::vector<int>& red_vars, const std::vector<int>& out_vars) {
    if (!reduced_innermost_) return false;
    const std::vector<int>& first = reductions_[0].second;
    std::set<int> row_red;
    for (int v : first) row_red.insert(find(v));
    bool per_column = false;
    for (int v : out_vars) {
      if (v < 0) continue;
      if (!row_red.count(find(v))) return false;
      per_column = true;
    }
    if (!per_column && first.size() == red_vars.size()) {
      bool same_sizes = true;
      for (size_t i = 0; i < red_vars.size(); ++i) {
        same_sizes = same_sizes && var_size_[find(red_vars[i])] == var_size_[find(first[i])];
      }
      if (same_sizes) return false;
    }
    for (int v : red_vars) {
      if (row_red.count(find(v))) return false;
    }
    // A scalar of few long rows (a mean of per-sample losses) is left to a kernel of its own: the
    // rows' kernel is then split into groups of rows (split_reduction_rows), which a reduction over
    // its rows would forbid.
    if (!per_column && one_pass_without_indices(nodes_)) {
      int64_t rows = 1, row = 1;
      for (int v : red_vars) rows *= var_size_[find(v)];
      for (int v : first) row *= var_size_[find(v)];
      if (rows <= kSplitMaxGroups && row >= kSplitLongRow && rows * row >= kSplitMinElements)
        return false;
    }
    return true;
  }


  // The dim variables of every value and load: what axes a merge or a union may not make collide.
  std::vector<const std::vector<int>*> all_vars() const {
    std::vector<const std::vector<int>*> all;
    for (const auto& [t, v] : values_) all.push_back(&v.vars);
    for (const auto& [n, vars] : load_vars_) all.push_back(&vars);
    return all;
  }

  bool distinct_roots(const std::vector<int>& vars) {
    std::set<int> seen;
    for (int v : vars) {
      if (v >= 0 && !seen.insert(find(v)).second) return false;
    }
    return true;
  }

  // A row kernel (one reduced dim) iterates a kept dim of the reduced dim's size on the reduced
  // axis when no value varies over both: a row's mean broadcast back to the row's shape (the
  // backward of mean) meets the row's elements only through later operations, and without this the
  // kernel would loop over the row once per element.
  void merge_row_axes() {
    if (!reduced_innermost_ || reductions_.empty() || !gathers_.empty()) return;
    std::set<int> red;
    for (int v : reductions_[0].second) red.insert(find(v));
    if (red.size() != 1) return;
    int r = *red.begin();
    std::vector<const std::vector<int>*> all = all_vars();
    std::set<int> candidates;
    for (const auto* vars : all) {
      for (int v : *vars) {
        if (v >= 0 && find(v) != r && var_size_[find(v)] == var_size_[r])
          candidates.insert(find(v));
      }
    }
    for (int c : candidates) {
      r = find(r);
      c = find(c);
      bool together = false;
      for (const auto* vars : all) {
        bool has_r = false, has_c = false;
        for (int v : *vars) {
          if (v < 0) continue;
          has_r = has_r || find(v) == r;
          has_c = has_c || find(v) == c;
        }
        together = together || (has_r && has_c);
      }
      if (!together) unite(r, c);
    }
  }

  std::optional<KernelDef> finish(const std::vector<TensorRef>& outputs) {
    KernelDef k;
    k.inputs = inputs_;
    k.outputs = outputs;
    k.device = outputs.empty() ? Device::cpu() : outputs[0]->device();
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const TensorRef& t = inputs_[i];
      if (rng_states_.count(static_cast<int>(i))) {
        // A random state: host values the kernel takes as arguments, read by nothing else.
        for (const KNode& n : nodes_) {
          if (n.op == "load" && n.input == static_cast<int>(i))
            reject("a random state read as data");
        }
        continue;
      }
      if (!(t->device() == k.device)) reject("tensors on different devices");
    }
    for (const TensorRef& t : outputs) {
      if (!(t->device() == k.device)) reject("tensors on different devices");
    }
    if (reductions_.empty()) unite_independent_outputs(outputs);
    merge_row_axes();
    // Uniting dims of equal sizes (reductions over unrelated dims) must not put two dims of one
    // value on one axis: `x.sum(1), x.sum(0)` of a square x would read its diagonal.
    for (const std::vector<int>* vars : all_vars()) {
      if (!distinct_roots(*vars)) reject("two dims of one value would share an axis");
    }
    // Axes: the classes of every variable still in use.
    std::vector<int> roots;
    auto note = [&](int v) {
      if (v < 0) return;
      v = find(v);
      if (std::find(roots.begin(), roots.end(), v) == roots.end()) roots.push_back(v);
    };
    // Reference order: the output (or reduction operand) with the most distinct axes.
    std::vector<const std::vector<int>*> candidates;
    std::vector<VInfo*> outs;
    std::vector<KernelDef::OutputPart> parts(outputs.size()), later_parts;
    std::vector<TensorRef> later;
    std::vector<VInfo*> later_outs;
    for (size_t o = 0; o < outputs.size(); ++o) {
      const TensorRef& t = outputs[o];
      auto sc = split_cats_.find(t.get());
      if (sc != split_cats_.end()) {
        // The first part stands for the cat's tensor; the others follow every other output.
        SplitCat& c = sc->second;
        for (size_t p = 0; p < c.parts.size(); ++p) {
          KernelDef::OutputPart part{p == 0 ? -1 : static_cast<int>(o), static_cast<int>(c.dim),
                                     c.starts[p]};
          if (p == 0) {
            parts[o] = part;
            outs.push_back(&c.parts[p]);
          } else {
            later_parts.push_back(part);
            later.push_back(t);
            later_outs.push_back(&c.parts[p]);
          }
          candidates.push_back(&c.parts[p].vars);
        }
        continue;
      }
      auto it = values_.find(t.get());
      if (it == values_.end()) reject("an output is not computed by the kernel");
      outs.push_back(&it->second);
      candidates.push_back(&it->second.vars);
    }
    if (!split_cats_.empty()) {
      k.outputs.insert(k.outputs.end(), later.begin(), later.end());
      outs.insert(outs.end(), later_outs.begin(), later_outs.end());
      parts.insert(parts.end(), later_parts.begin(), later_parts.end());
      k.output_parts = std::move(parts);
    }
    for (auto& [n, vars] : load_vars_) candidates.push_back(&vars);
    size_t best = 0;
    int best_count = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      std::set<int> s;
      for (int v : *candidates[i]) {
        if (v >= 0) s.insert(find(v));
      }
      if (static_cast<int>(s.size()) > best_count) best = i, best_count = static_cast<int>(s.size());
    }
    if (!candidates.empty()) {
      for (int v : *candidates[best]) note(v);
    }
    for (auto* c : candidates) {
      for (int v : *c) note(v);
    }
    for (auto& [n, vars] : reductions_) {
      for (int v : vars) note(v);
    }
    for (auto& [n, v] : gathers_) note(v);
    if (roots.size() > 60) reject("too many axes");
    // The reduced set, identical for every reduction.
    std::set<int> reduced;
    for (size_t i = 0; i < reductions_.size(); ++i) {
      std::set<int> s;
      for (int v : reductions_[i].second) s.insert(find(v));
      if (i == 0) {
        reduced = s;
      } else if (s != reduced) {
        reject("reductions over different axes");
      }
    }
    std::vector<int> kept_roots, red_roots;
    for (int r : roots) {
      if (!reduced.count(r)) kept_roots.push_back(r);
    }
    for (int v : first_reduction_vars_) {
      int r = find(v);
      if (std::find(red_roots.begin(), red_roots.end(), r) == red_roots.end()) red_roots.push_back(r);
    }
    if (reduced.empty()) {
      k.kind = KernelDef::Kind::kPointwise;
    } else {
      k.kind = reduced_innermost_ ? KernelDef::Kind::kInner : KernelDef::Kind::kOuter;
      // The code generators bound padded loads in pointwise kernels only.
      for (const KNode& n : nodes_) {
        if (padded_load(n)) reject("a pad or cat beside a reduction");
      }
      if (!split_cats_.empty()) reject("a cat written in parts beside a reduction");
    }
    std::vector<int> order = kept_roots;
    if (k.kind == KernelDef::Kind::kOuter) {
      order = red_roots;
      order.insert(order.end(), kept_roots.begin(), kept_roots.end());
    } else {
      order.insert(order.end(), red_roots.begin(), red_roots.end());
    }
    std::unordered_map<int, int> axis_of;
    for (size_t i = 0; i < order.size(); ++i) {
      axis_of[order[i]] = static_cast<int>(i);
      k.sizes.push_back(var_size_[order[i]]);
      if (reduced.count(order[i])) k.reduced |= uint64_t{1} << i;
    }
    auto axis = [&](int v) { return v < 0 ? -1 : axis_of.at(find(v)); };
    uint64_t all = order.size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << order.size()) - 1;
    uint64_t kept = all & ~k.reduced;
    if (!gathers_.empty()) {
      if (k.kind != KernelDef::Kind::kInner) reject("take_along_axis outside a row reduction");
      for (auto& [n, v] : gathers_) {
        if (k.reduced != (uint64_t{1} << axis(v))) reject("take_along_axis along a kept axis");
      }
    }
    // Axes each node varies over.
    for (size_t i = 0; i < nodes_.size(); ++i) {
      KNode& n = nodes_[i];
      if (n.op == "load" || n.op == "iota" || n.op == "rand") {
        for (int v : load_vars_.at(static_cast<int>(i))) n.dims.push_back(axis(v));
        for (int a : n.dims) {
          if (a >= 0) n.axes |= uint64_t{1} << a;
        }
      } else if (n.op == "const") {
        n.axes = 0;
      } else if (n.over_rows) {
        n.axes = nodes_[n.args[0]].axes & k.reduced;
      } else if (n.op == "sum" || n.op == "amax" || n.op == "amin" || n.op == "prod") {
        n.axes = nodes_[n.args[0]].axes & ~k.reduced;
      } else if (n.op == "gather") {
        for (auto& [g, v] : gathers_) {
          if (g == static_cast<int>(i)) n.gather_axis = axis(v);
        }
        n.axes = (nodes_[n.args[0]].axes & ~k.reduced) | nodes_[n.args[1]].axes;
        if (nodes_[n.args[1]].axes & k.reduced) reject("take_along_axis index varies over the row");
      } else {
        for (int a : n.args) n.axes |= nodes_[a].axes;
      }
    }
    check_over_rows(k, kept);
    const std::vector<bool> grid = over_rows_values(nodes_);
    for (size_t o = 0; o < outs.size(); ++o) {
      std::vector<int> dims;
      uint64_t oaxes = 0;
      for (int v : outs[o]->vars) {
        int a = axis(v);
        if (a >= 0 && (oaxes >> a & 1)) reject("an output has two dims on one axis");
        if (a >= 0) oaxes |= uint64_t{1} << a;
        dims.push_back(a);
      }
      const KNode& n = nodes_[outs[o]->node];
      if ((n.axes & ~oaxes) != 0) reject("an output drops an axis its value varies over");
      if (grid[outs[o]->node] && (oaxes & kept) != 0) {
        reject("an output of a reduction over rows extends over the rows");
      }
      (void)kept;  // outputs that do not vary over some kept axis are written once along it
      if (k.kind != KernelDef::Kind::kPointwise && (oaxes & k.reduced) != 0 &&
          (oaxes & k.reduced) != k.reduced) {
        reject("an output varies over part of the reduced axes");
      }
      k.output_nodes.push_back(outs[o]->node);
      k.output_dims.push_back(std::move(dims));
    }
    k.nodes = std::move(nodes_);
    // A column kernel whose reductions need others (batch_norm's statistics over a channels_last
    // tensor's few spatial points), or whose full-size outputs need its reductions, runs as one
    // kernel per pass (fuser/pass_split.h): a column kernel itself accumulates in one pass.
    k.contiguous_outputs = copies_ || (k.kind == KernelDef::Kind::kInner && trailing_reduction_);
    return k;
  }

  // Reductions over rows: in row kernels, of values that vary over every kept axis (each row
  // counted once), not of one another; what is computed from them does not vary over the rows. They
  // reduce to scalars or to a value per column (varying over every reduced axis), not both in one
  // kernel, and per column only for rows of at most kMaxColumnsOverRows elements (the code
  // generators keep a column's partial result per thread).
  void check_over_rows(const KernelDef& k, uint64_t kept) {
    std::vector<bool> grid = over_rows_values(nodes_);
    bool scalars = false, columns = false;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const KNode& n = nodes_[i];
      if (n.over_rows) {
        if (k.kind != KernelDef::Kind::kInner) reject("a reduction over rows outside a row kernel");
        if (grid[n.args[0]]) reject("a reduction over rows of a reduction over rows");
        if ((nodes_[n.args[0]].axes & kept) != kept)
          reject("a reduction over rows of a value that does not vary over every row");
        if (n.axes != 0 && n.axes != k.reduced)
          reject("a reduction over rows of a value that varies over part of the row");
        (n.axes != 0 ? columns : scalars) = true;
      }
    }
    if (scalars && columns) reject("reductions over rows to scalars and to columns in one kernel");
    // THUNDER_FUSION_COLUMNS_OVER_ROWS=0 leaves column sums to column kernels (to compare).
    const char* off = std::getenv("THUNDER_FUSION_COLUMNS_OVER_ROWS");
    if (columns && off && std::string(off) == "0")
      reject("reductions over rows per column are off");
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (grid[i] && (nodes_[i].axes & (columns ? kept : ~uint64_t{0})) != 0)
        reject("a value computed from a reduction over rows varies over the rows");
    }
    if (columns) {
      int64_t width = 1;
      for (int a = 0; a < k.num_axes(); ++a) {
        if (k.reduced >> a & 1) width *= k.sizes[a];
      }
      if (width > kMaxColumnsOverRows) reject("a reduction over rows of rows wider than 16384");
    }
  }

  // Outputs of one shape computed apart (q's and k's rotary embeddings, each from its own slice of
  // one projection) iterate together: one domain, one kernel, instead of a domain over both
  // outputs' axes (which the segmentation cuts into two kernels). Each dim pair must be one axis
  // already or two axes neither output has elsewhere, so that no value lies along two of its own
  // dims (an output and its transpose stay apart).
  // Only outputs computed from one input at least as large as each (q and k from one projection):
  // two tensors read in different memory orders (one transposed) keep a kernel each, each in its
  // own order, whatever small tensors (a bias) they share.
  void unite_independent_outputs(const std::vector<TensorRef>& outputs) {
    std::vector<const std::vector<int>*> done;
    std::vector<std::set<int>> done_inputs;
    for (const TensorRef& t : outputs) {
      auto it = values_.find(t.get());
      if (it == values_.end()) continue;  // a cat written in parts, or not computed (rejected later)
      const std::vector<int>& vars = it->second.vars;
      int64_t numel = 1;
      for (int64_t n : it->second.shape) numel *= n;
      std::set<int> inputs;
      for (int i : inputs_read(it->second.node)) {
        if (inputs_[static_cast<size_t>(i)]->numel() >= numel) inputs.insert(i);
      }
      for (size_t j = 0; j < done.size(); ++j) {
        const std::vector<int>* other = done[j];
        if (other->size() != vars.size()) continue;
        bool shared = false;
        for (int i : inputs) shared = shared || done_inputs[j].count(i) != 0;
        if (!shared) continue;
        bool same = true;
        std::set<int> mine, theirs;
        for (size_t d = 0; d < vars.size() && same; ++d) {
          const int64_t a = vars[d] < 0 ? 1 : var_size_[find(vars[d])];
          const int64_t b = (*other)[d] < 0 ? 1 : var_size_[find((*other)[d])];
          same = a == b && (vars[d] < 0) == ((*other)[d] < 0);
          if (vars[d] >= 0) mine.insert(find(vars[d]));
          if ((*other)[d] >= 0) theirs.insert(find((*other)[d]));
        }
        // Dim by dim: already one axis, or two axes neither output has elsewhere.
        for (size_t d = 0; d < vars.size() && same; ++d) {
          if (vars[d] < 0) continue;
          const int r1 = find(vars[d]), r2 = find((*other)[d]);
          same = r1 == r2 || (!theirs.count(r1) && !mine.count(r2));
        }
        if (!same) continue;
        for (size_t d = 0; d < vars.size(); ++d) unite(vars[d], (*other)[d]);
        break;
      }
      done.push_back(&vars);
      done_inputs.push_back(std::move(inputs));
    }
  }

  // The region inputs node `id`'s value is computed from.
  std::set<int> inputs_read(int id) const {
    std::set<int> in;
    std::vector<int> stack = {id};
    std::set<int> seen;
    while (!stack.empty()) {
      const int n = stack.back();
      stack.pop_back();
      if (!seen.insert(n).second) continue;
      if (nodes_[n].op == "load") in.insert(nodes_[n].input);
      for (int a : nodes_[n].args) stack.push_back(a);
    }
    return in;
  }

  // A cat written in parts: each non-empty part's value, over the parts' dims (united), written at
  // its place along `dim`. False when the parts differ in size along the dim, or there is one.
  struct SplitCat {
    int64_t dim = 0;
    std::vector<VInfo> parts;
    std::vector<int64_t> starts;
  };
  bool split_cat(const std::vector<Value>& items, int64_t dim, const TensorRef& out) {
    SplitCat sc;
    sc.dim = dim;
    int64_t off = 0;
    for (const Value& v : items) {
      const int64_t n = v.as_tensor()->shape()[static_cast<size_t>(dim)].value();
      if (n == 0) continue;
      if (!sc.parts.empty() && n != sc.parts[0].shape[static_cast<size_t>(dim)]) return false;
      sc.parts.push_back(info(v.as_tensor()));
      sc.starts.push_back(off);
      off += n;
    }
    if (sc.parts.size() < 2) return false;
    for (size_t p = 1; p < sc.parts.size(); ++p) {
      for (size_t d = 0; d < sc.parts[0].vars.size(); ++d)
        unite(sc.parts[0].vars[d], sc.parts[p].vars[d]);
    }
    split_cats_[out.get()] = std::move(sc);
    return true;
  }

  const std::vector<TensorRef>& inputs_;
  bool split_cats_on_ = false;
  std::unordered_map<const TensorProxy*, SplitCat> split_cats_;
  std::unordered_map<const TensorProxy*, int> input_index_;
  std::unordered_map<const TensorProxy*, VInfo> values_;
  std::vector<KNode> nodes_;
  std::unordered_map<std::string, int> memo_;  // op_node / const_node
  std::unordered_map<int, std::vector<int>> load_vars_;
  std::vector<std::pair<int, std::vector<int>>> reductions_;
  std::vector<std::pair<int, int>> gathers_;
  std::set<int> rng_states_;  // inputs read by rand nodes
  std::vector<int> first_reduction_vars_;
  std::pair<std::vector<int>, std::set<int64_t>>
      first_reduction_operand_;  // its vars, reduced dims
  bool reduced_innermost_ = true;
  bool copies_ = false;              // a conversion to the dtype a tensor has (contiguous())
  bool trailing_reduction_ = false;  // the first reduction's reduced dims are its operand's last
  std::vector<int> parent_;
  std::vector<int64_t> var_size_;
};

// A row's sum of where(iota == idx, v, 0), with idx and v the same along the row (the one-hot of a
// class index, nll_loss's gradient, summed by log_softmax's backward), is v where 0 <= idx < n and
// 0 elsewhere: a row-level value instead of a pass over the row. neg, conversions and
// multiplications by row-level values between the sum and the where move outside it (the sum has
// one nonzero term, so each rounds as before). A kernel left with no reduction and only full-size
// outputs is pointwise.
void fold_one_hot_sums(KernelDef& k) {
  if (k.kind != KernelDef::Kind::kInner || std::popcount(k.reduced) != 1) return;
  const uint64_t red = k.reduced;
  const int64_t n = k.sizes[std::countr_zero(red)];
  auto row_level = [&](int id) { return (k.nodes[id].axes & red) == 0; };
  auto is_zero = [&](int id) {
    const KNode& z = k.nodes[id];
    return z.op == "const" && z.fvalue == 0 && !std::signbit(z.fvalue) && z.ivalue == 0;  // +0
  };
  auto is_index = [&](int id) {
    const KNode& z = k.nodes[id];
    return z.op == "iota" && z.axes == red && z.ivalue == 0 && z.step == 1;
  };
  struct Fold {
    int where, idx;
    // neg / convert / mul nodes between the sum and the where, outermost first
    std::vector<int> wraps;
  };
  std::unordered_map<int, Fold> folds;
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& s = k.nodes[i];
    if (s.op != "sum" || s.args.size() != 1 || s.over_rows) continue;
    Fold f{-1, -1, {}};
    int x = s.args[0];
    for (;;) {
      const KNode& w = k.nodes[x];
      if (w.op == "neg" || w.op == "convert_element_type") {
        f.wraps.push_back(x);
        x = w.args[0];
      } else if (w.op == "mul" && row_level(w.args[1]) != row_level(w.args[0])) {
        f.wraps.push_back(x);
        x = row_level(w.args[1]) ? w.args[0] : w.args[1];
      } else {
        break;
      }
    }
    const KNode& w = k.nodes[x];
    if (w.op != "where" || !is_zero(w.args[2]) || !row_level(w.args[1])) continue;
    const KNode& c = k.nodes[w.args[0]];
    if (c.op != "eq") continue;
    int idx = is_index(c.args[0]) ? c.args[1] : is_index(c.args[1]) ? c.args[0] : -1;
    if (idx < 0 || !row_level(idx) || !is_integer(k.nodes[idx].dtype)) continue;
    f.where = x;
    f.idx = idx;
    folds.emplace(static_cast<int>(i), std::move(f));
  }
  if (folds.empty()) return;
  std::vector<KNode> out;
  std::vector<int> remap(k.nodes.size(), -1);
  auto push = [&](std::string op, DType dt, std::vector<int> args) {
    KNode nd;
    nd.op = std::move(op);
    nd.dtype = dt;
    for (int a : args) nd.axes |= out[a].axes;
    nd.args = std::move(args);
    out.push_back(std::move(nd));
    return static_cast<int>(out.size()) - 1;
  };
  auto constant = [&](int64_t v, DType dt) {
    KNode nd;
    nd.op = "const";
    nd.dtype = dt;
    nd.is_float_const = is_floating(dt);
    nd.fvalue = static_cast<double>(v);
    nd.ivalue = v;
    out.push_back(std::move(nd));
    return static_cast<int>(out.size()) - 1;
  };
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    auto it = folds.find(static_cast<int>(i));
    if (it == folds.end()) {
      KNode nd = k.nodes[i];
      for (int& a : nd.args) a = remap[a];
      out.push_back(std::move(nd));
      remap[i] = static_cast<int>(out.size()) - 1;
      continue;
    }
    const Fold& f = it->second;
    const KNode& w = k.nodes[f.where];
    const DType it_dt = k.nodes[f.idx].dtype;
    int idx = remap[f.idx];
    int in = push("bitwise_and", DType::kBool,
                  {push("ge", DType::kBool, {idx, constant(0, it_dt)}),
                   push("lt", DType::kBool, {idx, constant(n, it_dt)})});
    int r = push("where", w.dtype, {in, remap[w.args[1]], constant(0, w.dtype)});
    for (auto wi = f.wraps.rbegin(); wi != f.wraps.rend(); ++wi) {
      const KNode& wn = k.nodes[*wi];
      if (wn.op == "neg" || wn.op == "convert_element_type") {
        r = push(wn.op, wn.dtype, {r});
      } else {
        int factor = row_level(wn.args[1]) ? wn.args[1] : wn.args[0];
        r = push("mul", wn.dtype, {r, remap[factor]});
      }
    }
    const DType sdt = k.nodes[i].dtype;
    if (out[r].dtype != sdt) r = push("convert_element_type", sdt, {r});
    // One nonzero term: a sum of -0.0 is +0.0 (0 + -0), so is this.
    if (is_floating(sdt)) r = push("add", sdt, {r, constant(0, sdt)});
    remap[i] = r;
  }
  k.nodes = std::move(out);
  for (int& o : k.output_nodes) o = remap[o];
  bool reduces = false;
  for (const KNode& nd : k.nodes) reduces = reduces || is_reduce_op(nd.op) || nd.op == "gather";
  bool full = true;
  for (int o : k.output_nodes) full = full && (k.nodes[o].axes & red) != 0;
  for (const auto& dims : k.output_dims) {
    full = full && static_cast<int>(std::count_if(dims.begin(), dims.end(),
                                                  [](int a) { return a >= 0; })) == k.num_axes();
  }
  if (!reduces && full) {
    k.kind = KernelDef::Kind::kPointwise;
    k.reduced = 0;
  }
}

// Nodes no output needs are dropped, and then the axes nothing lies on: a load of an input in the
// shape it had before a reshape the kernel took in as indexing (group_norm's x viewed as
// (n, g, c / g, spatial)) would otherwise leave that shape's axes in the kernel's domain, whose
// rows a row kernel would loop over.
void drop_dead_nodes(KernelDef& k) {
  std::vector<bool> live(k.nodes.size(), false);
  for (int o : k.output_nodes) live[o] = true;
  for (size_t i = k.nodes.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (int a : k.nodes[i].args) live[a] = true;
  }
  if (std::find(live.begin(), live.end(), false) != live.end()) {
    std::vector<int> remap(k.nodes.size(), -1);
    std::vector<KNode> out;
    for (size_t i = 0; i < k.nodes.size(); ++i) {
      if (!live[i]) continue;
      KNode nd = std::move(k.nodes[i]);
      for (int& a : nd.args) a = remap[a];
      remap[i] = static_cast<int>(out.size());
      out.push_back(std::move(nd));
    }
    k.nodes = std::move(out);
    for (int& o : k.output_nodes) o = remap[o];
  }
  const int n = k.num_axes();
  const uint64_t used = used_axes(k);
  if (n >= 64 || used == (uint64_t{1} << n) - 1) return;
  std::vector<int> axis(static_cast<size_t>(n), -1);
  std::vector<int64_t> sizes;
  for (int a = 0; a < n; ++a) {
    if (!(used >> a & 1)) continue;
    axis[static_cast<size_t>(a)] = static_cast<int>(sizes.size());
    sizes.push_back(k.sizes[static_cast<size_t>(a)]);
  }
  auto mask = [&](uint64_t m) {
    uint64_t out = 0;
    for (int a = 0; a < n; ++a) {
      if (m >> a & 1) out |= uint64_t{1} << axis[static_cast<size_t>(a)];
    }
    return out;
  };
  auto renumber = [&](int& a) {
    if (a >= 0) a = axis[static_cast<size_t>(a)];
  };
  for (KNode& nd : k.nodes) {
    nd.axes = mask(nd.axes);
    for (int& a : nd.dims) renumber(a);
    renumber(nd.gather_axis);
  }
  for (std::vector<int>& dims : k.output_dims) {
    for (int& a : dims) renumber(a);
  }
  k.reduced = mask(k.reduced);
  k.sizes = std::move(sizes);
}

// Equal nodes (the same operation of the same operands) become one. The builder's memo keys a
// reduction by the dims it reduces when it is built, and dims unified later leave equal reductions
// apart (cross-entropy's count of non-ignored targets, once for the mean and once saved for the
// backward): each would be accumulated on its own. Loads and random draws stay as built.
void merge_equal_nodes(KernelDef& k) {
  std::unordered_map<std::string, int> seen;
  std::vector<int> remap(k.nodes.size(), -1);
  std::vector<KNode> out;
  out.reserve(k.nodes.size());
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    KNode nd = k.nodes[i];
    for (int& a : nd.args) a = remap[a];
    if (nd.op != "load" && nd.op != "rand") {
      char buf[160];
      std::snprintf(buf, sizeof(buf), " %d %llx %a %lld %d %lld %d %d", static_cast<int>(nd.dtype),
                    static_cast<unsigned long long>(nd.axes), nd.fvalue,
                    static_cast<long long>(nd.ivalue), nd.is_float_const ? 1 : 0,
                    static_cast<long long>(nd.step), nd.gather_axis, nd.over_rows ? 1 : 0);
      std::string key = nd.op + buf;
      for (int a : nd.args) key.append(" ").append(std::to_string(a));
      auto [it, fresh] = seen.emplace(std::move(key), static_cast<int>(out.size()));
      if (!fresh) {
        remap[i] = it->second;
        continue;
      }
    }
    remap[i] = static_cast<int>(out.size());
    out.push_back(std::move(nd));
  }
  if (out.size() == k.nodes.size()) return;
  k.nodes = std::move(out);
  for (int& o : k.output_nodes) o = remap[o];
}

// A kernel that reduces every axis to scalars in one pass (x.sum(), a mean squared error) is a row
// kernel over one row: a single block on a GPU (16 MB summed at 43 GB/s on an H200), a single
// thread on the CPU. Likewise a few long rows (per-sample losses, `x.mean(dim=(1, 2, 3))` of an
// image batch: a block each). The reduced axes are split into rows and columns instead, each
// reduction becoming the row reduction of its operand then the reduction of the rows' values over
// the rows of its group (KNode::over_rows; KernelDef::group_axes: the kept axes, none for a full
// reduction), which the backends spread over blocks (threads) and combine in a fixed order. The
// split falls between axes where their sizes allow, else inside one axis (its loads and outputs
// get a reshape: an axis of n elements becomes n / d rows of d). Kernels with more than one pass,
// a product, or indices along the axes (iota, gathers, random draws) keep their rows.
void split_reduction_rows(KernelDef& k) {
  const int n = k.num_axes();
  if (k.kind != KernelDef::Kind::kInner || n == 0 || n >= 63 || k.group_axes != 0) return;
  // THUNDER_FUSION_SPLIT_ROWS=0 keeps the rows as they are (to compare).
  const char* off = std::getenv("THUNDER_FUSION_SPLIT_ROWS");
  if (off && std::string(off) == "0") return;
  int first = 0;  // the kept axes lead (a row kernel's layout)
  while (first < n && !(k.reduced >> first & 1)) ++first;
  if (k.reduced != (((uint64_t{1} << n) - 1) & ~((uint64_t{1} << first) - 1))) return;
  int64_t total = 1, groups = 1;
  for (int a = 0; a < n; ++a) total *= k.sizes[a];
  for (int a = 0; a < first; ++a) groups *= k.sizes[a];
  if (total < kSplitMinElements || groups > kSplitMaxGroups) return;
  const int64_t row = groups == 0 ? 0 : total / groups;
  if (first > 0 && row < kSplitLongRow) return;
  // prod keeps its single row: float products of values near 1 lose more per row (a row's 4000
  // products of 1 + 1e-4 * randn lost 1.8e-2, eager's whole product 2.2e-3).
  if (!one_pass_without_indices(k.nodes)) return;
  const std::vector<int> need = available_from(k);
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    const KNode& nd = k.nodes[i];
    if (nd.over_rows) return;
    // A value per element computed from a reduction (a second pass).
    if (need[i] > 0 && (nd.axes & k.reduced) != 0) return;
  }
  // An output computed from a reduction written along the reduced axes (a row's sum broadcast to
  // the row's shape): the rows' reductions over rows store a value a group, once.
  for (size_t o = 0; o < k.output_nodes.size(); ++o) {
    if (need[k.output_nodes[o]] == 0) continue;
    for (int a : k.output_dims[o]) {
      if (a >= 0 && (k.reduced >> a & 1)) return;
    }
  }
  // The split: the axes before j and the outer m / d of axis j's m elements are rows; its inner d
  // and the axes after it are columns (d == m: the split falls before axis j; d == 1: after it).
  const int64_t cols_wanted = std::clamp(total / kSplitRows, kSplitCols, kSplitWideCols);
  if (first > 0 && cols_wanted * 2 > row) return;
  int j = n - 1;
  int64_t after = 1;  // the elements of the axes after j
  while (j > first && after * k.sizes[j] <= cols_wanted) after *= k.sizes[j--];
  const int64_t m = k.sizes[j];
  const int64_t target = std::max<int64_t>(cols_wanted / after, 1);
  int64_t d = 0;
  for (int64_t delta = 0; d == 0; ++delta) {
    const int64_t lo = target - delta, hi = target + delta;
    if (lo < 1 && hi > m) return;  // no divisor of m gives columns within bounds
    for (int64_t c : {lo, hi}) {
      if (c >= 1 && c <= m && m % c == 0 && c * after >= kSplitMinCols &&
          c * after <= kSplitMaxCols && (c < m || j > first)) {
        d = c;
        break;
      }
    }
  }
  if (d == 1) {  // axis j is all rows: the split falls after it
    after *= m;
    ++j;
  }
  const bool inside = d != 1 && d != m;
  // Old axis a -> new axis; with `inside`, axis j becomes axes j (rows) and j + 1 (columns).
  auto axis = [&](int a) { return inside && a > j ? a + 1 : a; };
  auto remap = [&](uint64_t mask) {
    uint64_t out = 0;
    for (int a = 0; a < n; ++a) {
      if (!(mask >> a & 1)) continue;
      out |= uint64_t{1} << axis(a);
      if (inside && a == j) out |= uint64_t{1} << (j + 1);
    }
    return out;
  };
  std::vector<int64_t> sizes;
  for (int a = 0; a < n; ++a) {
    if (inside && a == j) {
      sizes.push_back(m / d);
      sizes.push_back(d);
    } else {
      sizes.push_back(k.sizes[a]);
    }
  }
  // The dims of a load's view or an output (their axes, and their sizes by `size_of(v)`) through
  // the split: a dim on axis j becomes two, of m / d and d.
  auto split_dims = [&](std::vector<int>& dims, std::vector<int64_t>& shape, auto size_of) {
    std::vector<int> new_dims;
    std::vector<int64_t> new_shape;
    for (size_t v = 0; v < dims.size(); ++v) {
      const int a = dims[v];
      if (inside && a == j) {
        new_dims.insert(new_dims.end(), {j, j + 1});
        new_shape.insert(new_shape.end(), {m / d, d});
      } else {
        new_dims.push_back(a < 0 ? a : axis(a));
        new_shape.push_back(size_of(v));
      }
    }
    const bool split = new_dims.size() != dims.size();
    dims = std::move(new_dims);
    shape = std::move(new_shape);
    return split;
  };
  const int rows_end = inside ? j + 1 : j;  // new axes [0, rows_end) are rows
  const uint64_t rows = (uint64_t{1} << rows_end) - 1;
  const uint64_t cols = ((uint64_t{1} << sizes.size()) - 1) & ~rows;
  std::vector<KNode> out;
  std::vector<int> index(k.nodes.size());
  for (size_t i = 0; i < k.nodes.size(); ++i) {
    KNode nd = k.nodes[i];
    for (int& a : nd.args) a = index[a];
    nd.axes = remap(nd.axes);
    if (nd.op == "load") {
      if (split_dims(nd.dims, nd.view_shape, [&](size_t v) { return nd.view_shape[v]; }))
        nd.view.push_back({ViewOp::Kind::kReshape, nd.view_shape, {}, {}});
    }
    if (is_reduce_op(nd.op)) {
      KNode per_row = nd;  // over the columns, per row
      per_row.axes = out[nd.args[0]].axes & rows;
      out.push_back(std::move(per_row));
      nd.args = {static_cast<int>(out.size()) - 1};
      nd.over_rows = true;  // its axes: the kept ones (a value per group of rows)
    }
    index[i] = static_cast<int>(out.size());
    out.push_back(std::move(nd));
  }
  for (int& o : k.output_nodes) o = index[o];
  k.output_shapes.resize(k.output_dims.size());
  for (size_t o = 0; o < k.output_dims.size(); ++o) {
    // An output over axis j (a per-element value the kernel also writes) is written through the
    // same split.
    std::vector<int64_t> shape;
    const Shape& own = k.outputs[o]->shape();
    if (!split_dims(k.output_dims[o], shape, [&](size_t v) { return own[v].value(); })) {
      shape.clear();  // its own shape
    }
    k.output_shapes[o] = std::move(shape);
  }
  k.nodes = std::move(out);
  k.sizes = std::move(sizes);
  k.reduced = cols;
  k.group_axes = first;
}

}  // namespace

std::optional<KernelDef> build_kernel(const std::vector<BSymRef>& prims,
                                      const std::vector<TensorRef>& inputs,
                                      const std::vector<TensorRef>& outputs, std::string* why) {
  // A cat no operation of the kernel reads is written in parts, each where it is computed; where
  // that cannot be (the kernel reads the cat, or its parts differ in size), each part is computed
  // from loads padded to the whole cat.
  std::optional<KernelDef> k;
  const bool cats = std::any_of(prims.begin(), prims.end(),
                                [](const BSymRef& p) { return p->sym->name == "cat"; });
  if (cats) k = Builder(inputs, true).build(prims, outputs, why);
  if (!k) k = Builder(inputs, false).build(prims, outputs, why);
  if (k) {
    merge_equal_nodes(*k);
    fold_one_hot_sums(*k);
    drop_dead_nodes(*k);
    split_reduction_rows(*k);
  }
  return k;
}

std::string KernelDef::str() const {
  std::ostringstream os;
  const char* kinds[] = {"pointwise", "inner", "outer"};
  os << kinds[static_cast<int>(kind)] << " axes [";
  for (size_t i = 0; i < sizes.size(); ++i) {
    os << (i ? ", " : "") << sizes[i] << ((reduced >> i & 1) ? "r" : "");
  }
  os << "]";
  if (group_axes > 0) os << " groups over " << group_axes;
  os << "\n";
  for (size_t i = 0; i < nodes.size(); ++i) {
    const KNode& n = nodes[i];
    os << "  n" << i << " = " << n.op << (n.over_rows ? "_rows" : "");
    if (n.op == "load" || n.op == "rand") os << " in" << n.input;
    if (padded_load(n)) os << " padded " << n.number();
    if (n.op == "const") os << " " << (n.is_float_const ? n.fvalue : static_cast<double>(n.ivalue));
    if (n.op == "iota") os << " " << n.ivalue << " step " << n.step;
    for (int a : n.args) os << " n" << a;
    os << "  : " << dtype_short_name(n.dtype) << " axes=" << n.axes << "\n";
  }
  for (size_t o = 0; o < output_nodes.size(); ++o) {
    os << "  out" << o << " = n" << output_nodes[o];
    if (const OutputPart* p = part(o)) {
      os << " (part at " << p->start << " along dim " << p->dim << " of out" << tensor_of(o) << ")";
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace thunder::fuser
