// torch.einsum(equation, *operands) as thunder's rule: sums over the subscripts only one operand
// needs, then pairwise contractions from the left, each a matmul of the operands permuted to
// (batch, free, contracted) and reshaped to three dims (a broadcast product where nothing is
// contracted), then the output's order. Subscripts repeated within one operand (diagonals) run as
// einsum's torch call (thunder/core/capture.py).
#include <algorithm>
#include <map>
#include <set>

#include "ops/nn_common.h"

namespace thunder {

namespace {

using Labels = std::vector<int>;  // per dim: A-Z 0..25, a-z 26..51, ellipsis dims 100 + k

struct Operand {
  TensorRef t;
  Labels labels;
};

int label_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  throw Error(std::string("einsum(): invalid subscript given in the equation: '") + c + "'");
}

std::string label_name(int l) {
  if (l >= 100) return "...";
  return std::string(1, static_cast<char>(l < 26 ? 'A' + l : 'a' + (l - 26)));
}

// One term's subscripts: letters, with "..." standing for `ellipsis` dims (right-aligned labels
// 100 + (width - ellipsis) ... 100 + width - 1).
Labels parse_term(const std::string& term, int64_t ellipsis, int64_t width) {
  Labels out;
  for (size_t i = 0; i < term.size(); ++i) {
    if (term.compare(i, 3, "...") == 0) {
      for (int64_t k = 0; k < ellipsis; ++k)
        out.push_back(static_cast<int>(100 + width - ellipsis + k));
      i += 2;
      continue;
    }
    out.push_back(label_of(term[i]));
  }
  return out;
}

int64_t letters_in(const std::string& term) {
  int64_t n = 0;
  for (size_t i = 0; i < term.size(); ++i) {
    if (term.compare(i, 3, "...") == 0) {
      i += 2;
      continue;
    }
    ++n;
  }
  return n;
}

// Sums `op` over its labels not in `keep`.
Operand sum_out(Builder& b, Operand op, const std::set<int>& keep) {
  std::vector<int64_t> dims;
  Labels rest;
  for (size_t d = 0; d < op.labels.size(); ++d) {
    if (keep.count(op.labels[d])) {
      rest.push_back(op.labels[d]);
    } else {
      dims.push_back(static_cast<int64_t>(d));
    }
  }
  if (dims.empty()) return op;
  op.t = b.call(ltorch_symbol("sum"), {Value(op.t), Value::ints(dims)}).as_tensor();
  op.labels = rest;
  return op;
}

// `op` permuted to `order` (labels it holds), then given size-1 dims for labels it lacks, so that
// its dims line up with `order` and `extra` (in that order); each dim expanded to its label's size
// where `expand` holds the label.
TensorRef aligned(Builder& b, const Operand& op, const Labels& order,
                  const std::map<int, int64_t>& size, const std::set<int>& expand) {
  std::vector<int64_t> perm;
  Shape shape;
  for (int l : order) {
    auto it = std::find(op.labels.begin(), op.labels.end(), l);
    if (it != op.labels.end()) perm.push_back(it - op.labels.begin());
  }
  TensorRef t = op.t;
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i)
    identity = identity && perm[i] == static_cast<int64_t>(i);
  if (!identity) t = lang::transpose(b, t, perm);
  Shape with_ones;
  size_t next = 0;
  for (int l : order) {
    const bool has = std::find(op.labels.begin(), op.labels.end(), l) != op.labels.end();
    with_ones.push_back(has ? t->shape()[next++] : Dim(1));
    shape.push_back(expand.count(l) ? Dim(size.at(l)) : with_ones.back());
  }
  if (with_ones != t->shape()) t = lang::reshape(b, t, with_ones);
  if (shape != t->shape()) t = lang::expand_to(b, t, shape);
  return t;
}

int64_t product(const Labels& ls, const std::map<int, int64_t>& size) {
  int64_t p = 1;
  for (int l : ls) p *= size.at(l);
  return p;
}

// The contraction of two operands keeping the labels in `keep` (the output's and later operands').
Operand contract(Builder& b, Operand x, Operand y, const std::set<int>& keep,
                 const std::map<int, int64_t>& size) {
  std::set<int> in_x(x.labels.begin(), x.labels.end()), in_y(y.labels.begin(), y.labels.end());
  std::set<int> keep_x = keep, keep_y = keep;
  keep_x.insert(in_y.begin(), in_y.end());
  keep_y.insert(in_x.begin(), in_x.end());
  x = sum_out(b, x, keep_x);
  y = sum_out(b, y, keep_y);
  Labels batch, free_x, free_y, summed;
  for (int l : x.labels) {
    if (in_y.count(l)) {
      (keep.count(l) ? batch : summed).push_back(l);
    } else {
      free_x.push_back(l);
    }
  }
  for (int l : y.labels) {
    if (!in_x.count(l)) free_y.push_back(l);
  }
  std::set<int> shared(batch.begin(), batch.end());
  shared.insert(summed.begin(), summed.end());
  Operand out;
  out.labels = batch;
  out.labels.insert(out.labels.end(), free_x.begin(), free_x.end());
  out.labels.insert(out.labels.end(), free_y.begin(), free_y.end());
  if (summed.empty()) {  // a broadcast product
    TensorRef px = aligned(b, x, out.labels, size, {});
    TensorRef py = aligned(b, y, out.labels, size, {});
    out.t = b.call(ltorch_symbol("mul"), {Value(px), Value(py)}).as_tensor();
    return out;
  }
  Labels order_x = batch, order_y = batch;
  order_x.insert(order_x.end(), free_x.begin(), free_x.end());
  order_x.insert(order_x.end(), summed.begin(), summed.end());
  order_y.insert(order_y.end(), summed.begin(), summed.end());
  order_y.insert(order_y.end(), free_y.begin(), free_y.end());
  const int64_t nb = product(batch, size), nx = product(free_x, size), ny = product(free_y, size),
                ns = product(summed, size);
  TensorRef mx = lang::reshape(b, aligned(b, x, order_x, size, shared), {nb, nx, ns});
  TensorRef my = lang::reshape(b, aligned(b, y, order_y, size, shared), {nb, ns, ny});
  TensorRef r = b.call(ltorch_symbol("matmul"), {Value(mx), Value(my)}).as_tensor();
  Shape shape;
  for (int l : out.labels) shape.push_back(Dim(size.at(l)));
  out.t = lang::reshape(b, r, shape);
  return out;
}

Value einsum_meta(Builder& b, const BoundArgs& a) {
  std::string eq;
  for (char c : a[0].as_string()) {
    if (c != ' ') eq += c;
  }
  std::vector<Value> items = a[1].items();
  if (items.size() == 1 && items[0].is_seq()) items = items[0].items();
  std::vector<TensorRef> ts;
  for (const Value& v : items) {
    if (!v.is_tensor()) throw TypeError("einsum(): operands must be tensors, got " + v.type_name());
    ts.push_back(v.as_tensor());
  }
  if (ts.empty()) throw Error("einsum(): must provide at least one operand");
  const size_t arrow = eq.find("->");
  const std::string lhs = arrow == std::string::npos ? eq : eq.substr(0, arrow);
  std::vector<std::string> terms(1);
  for (char c : lhs) {
    if (c == ',') {
      terms.emplace_back();
    } else {
      terms.back() += c;
    }
  }
  if (terms.size() < ts.size())
    throw Error("einsum(): more operands were provided than specified in the equation");
  if (terms.size() > ts.size())
    throw Error("einsum(): fewer operands were provided than specified in the equation");
  // The ellipsis's width: the most dims any operand's "..." covers.
  int64_t width = 0;
  std::vector<int64_t> ell(ts.size(), 0);
  for (size_t i = 0; i < ts.size(); ++i) {
    const int64_t n = letters_in(terms[i]);
    const bool has = terms[i].find("...") != std::string::npos;
    if (has ? ts[i]->rank() < n : ts[i]->rank() != n) {
      throw Error("einsum(): the number of subscripts in the equation (" + std::to_string(n) +
                  ") " + (has ? "is more than" : "does not match") + " the number of dimensions (" +
                  std::to_string(ts[i]->rank()) + ") for operand " + std::to_string(i) +
                  (has ? "" : " and no ellipsis was given"));
    }
    ell[i] = has ? ts[i]->rank() - n : 0;
    width = std::max(width, ell[i]);
  }
  DType dtype = ts[0]->dtype();
  std::vector<Operand> ops;
  std::map<int, int64_t> size;
  std::map<int, int> count;  // operands a label appears in
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i]->dtype() != dtype) {
      throw Error(std::string("einsum(): operands must have the same dtype, got ") +
                  dtype_name(dtype) + " and " + dtype_name(ts[i]->dtype()));
    }
    Operand op{ts[i], parse_term(terms[i], ell[i], width)};
    std::set<int> seen;
    for (size_t d = 0; d < op.labels.size(); ++d) {
      const int l = op.labels[d];
      if (!seen.insert(l).second) {
        throw NotImplementedError("einsum(): subscript " + label_name(l) +
                                  " repeated within operand " + std::to_string(i) +
                                  " (a diagonal) has no thunder rule");
      }
      const int64_t s = ts[i]->shape()[d].value();
      auto it = size.find(l);
      if (it == size.end() || it->second == 1) {
        size[l] = s;
      } else if (s != 1 && s != it->second) {
        throw Error("einsum(): operands do not broadcast: subscript " + label_name(l) +
                    " has size " + std::to_string(it->second) + " and size " + std::to_string(s) +
                    " (operand " + std::to_string(i) + ")");
      }
      ++count[l];
    }
    ops.push_back(std::move(op));
  }
  Labels output;
  if (arrow != std::string::npos) {
    const std::string rhs = eq.substr(arrow + 2);
    output = parse_term(rhs, rhs.find("...") != std::string::npos ? width : 0, width);
    std::set<int> seen;
    for (int l : output) {
      if (!seen.insert(l).second) {
        throw Error("einsum(): output subscript " + label_name(l) +
                    " appears more than once in the output");
      }
      if (!count.count(l)) {
        throw Error("einsum(): output subscript " + label_name(l) +
                    " does not appear in the equation for any input operand");
      }
    }
  } else {  // the ellipsis's dims, then the subscripts appearing once, in order
    for (int64_t k = 0; k < width; ++k) output.push_back(static_cast<int>(100 + k));
    for (const auto& [l, n] : count) {
      if (l < 100 && n == 1) output.push_back(l);
    }
  }
  std::set<int> keep(output.begin(), output.end());
  // Later operands' labels are kept through earlier contractions.
  std::vector<std::set<int>> later(ops.size() + 1);
  for (size_t i = ops.size(); i-- > 0;) {
    later[i] = later[i + 1];
    later[i].insert(ops[i].labels.begin(), ops[i].labels.end());
  }
  std::set<int> keep0 = keep;
  keep0.insert(later[1].begin(), later[1].end());
  Operand acc = sum_out(b, ops[0], keep0);
  for (size_t i = 1; i < ops.size(); ++i) {
    std::set<int> k = keep;
    k.insert(later[i + 1].begin(), later[i + 1].end());
    acc = contract(b, acc, ops[i], k, size);
  }
  acc = sum_out(b, acc, keep);
  TensorRef y = aligned(b, acc, output, size, keep);
  if (y == ts[0]) y = lang::call_t(b, prims::convert_element_type(), {Value(y), Value(y->dtype())});
  return y;
}

}  // namespace

void register_einsum_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {
      {"einsum", "equation, *operands", einsum_meta, {"torch.einsum"}},
  };
  register_ops(table, defs);
}

}  // namespace thunder
