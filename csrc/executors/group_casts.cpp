#include "executors/group_casts.h"

#include <map>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "ops/registry.h"

namespace thunder {

namespace {

// A top-level call whose only work is one prims.convert_element_type to another dtype on the same
// device (not a fused region).
bool is_cast(const BoundSymbol& b) {
  if (b.sym->kind == SymbolKind::kFusion) return false;
  const BoundSymbol* leaf = &b;
  while (leaf->subsymbols.size() == 1) leaf = leaf->subsymbols[0].get();
  if (!leaf->subsymbols.empty() || leaf->sym != &prims::convert_element_type()) return false;
  std::vector<TensorRef> ins = b.input_tensors(), outs = b.output_tensors();
  if (ins.size() != 1 || outs.size() != 1) return false;
  const TensorRef& x = ins[0];
  const TensorRef& y = outs[0];
  return x->dtype() != y->dtype() && x->device() == y->device() && x->shape() == y->shape();
}

int64_t bytes_of(const TensorRef& t) {
  int64_t n = dtype_size(t->dtype());
  for (Dim d : t->shape()) n *= d.value();
  return n;
}

}  // namespace

Trace group_input_casts(const Trace& trace, const std::vector<const Executor*>& executors,
                        int64_t max_bytes) {
  std::unordered_set<const TensorProxy*> inputs(trace.inputs.size());
  for (const TensorRef& t : trace.inputs) inputs.insert(t.get());
  // Tensors read by some symbol (those only returned are not).
  std::unordered_set<const TensorProxy*> read;
  for (const BSymRef& b : trace.bsyms) {
    for (const TensorRef& t : b->input_tensors()) read.insert(t.get());
  }
  // Groups in program order, keyed while open by (kind, device, dtype). Kind 0: casts of inputs,
  // emitted where their first member was; kind 1: casts whose results are only returned, emitted
  // where their last member was.
  struct Group {
    int kind = 0;
    std::vector<size_t> members;
    int64_t bytes = 0;
  };
  std::vector<Group> groups;
  std::map<std::tuple<int, std::string, int>, size_t> open;
  std::vector<int> group_of(trace.bsyms.size(), -1);
  for (size_t i = 0; i < trace.bsyms.size(); ++i) {
    const BoundSymbol& b = *trace.bsyms[i];
    if (!is_cast(b)) continue;
    const TensorRef x = b.input_tensors()[0];
    const TensorRef y = b.output_tensors()[0];
    int kind = inputs.count(x.get()) ? 0 : !read.count(y.get()) ? 1 : -1;
    if (kind < 0) continue;
    auto key = std::make_tuple(kind, y->device().str(), static_cast<int>(y->dtype()));
    auto it = open.find(key);
    if (it == open.end() || groups[it->second].bytes + bytes_of(y) > max_bytes) {
      groups.push_back(Group{kind, {}, 0});
      it = open.insert_or_assign(key, groups.size() - 1).first;
    }
    groups[it->second].members.push_back(i);
    groups[it->second].bytes += bytes_of(y);
    group_of[i] = static_cast<int>(it->second);
  }
  const Symbol& convert = ltorch_symbol("convert_tensors");
  std::vector<BSymRef> out;
  bool changed = false;
  for (size_t i = 0; i < trace.bsyms.size(); ++i) {
    int g = group_of[i];
    if (g < 0 || groups[g].members.size() < 2) {
      out.push_back(trace.bsyms[i]);
      continue;
    }
    const Group& grp = groups[g];
    if ((grp.kind == 0 ? grp.members.front() : grp.members.back()) != i) continue;
    std::vector<Value> xs, ys;
    std::vector<BSymRef> members;
    for (size_t m : grp.members) {
      const BSymRef& b = trace.bsyms[m];
      xs.push_back(Value(b->input_tensors()[0]));
      ys.push_back(Value(b->output_tensors()[0]));
      members.push_back(b);
    }
    DType dtype = trace.bsyms[i]->output_tensors()[0]->dtype();
    BSymRef grouped = BoundSymbol::make(&convert, {Value::tuple(std::move(xs)), Value(dtype)},
                                        Value::tuple(std::move(ys)), std::move(members));
    std::vector<BSymRef> claimed;
    claim_bsym(grouped, executors, claimed);
    if (claimed.size() == 1 && claimed[0]->sym->kind == SymbolKind::kExecutor) {
      out.push_back(claimed[0]);
      changed = true;
    } else {  // no executor runs the grouped form: the casts stay (here, which is still in order)
      for (size_t m : grp.members) out.push_back(trace.bsyms[m]);
    }
  }
  if (!changed) return trace;
  return trace.with_bsyms(std::move(out), "group_casts");
}

}  // namespace thunder
