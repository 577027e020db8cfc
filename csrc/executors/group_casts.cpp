#include "executors/group_casts.h"

#include <map>
#include <unordered_set>

#include "core/error.h"
#include "ops/registry.h"

namespace thunder {

namespace {

// The input a top-level cast of a program input converts, or null: an executor's call whose only
// work is one prims.convert_element_type of a trace input to another dtype on the same device.
TensorRef input_cast(const BoundSymbol& b, const std::unordered_set<const TensorProxy*>& inputs) {
  if (b.sym->kind == SymbolKind::kFusion) return nullptr;
  const BoundSymbol* leaf = &b;
  while (leaf->subsymbols.size() == 1) leaf = leaf->subsymbols[0].get();
  if (!leaf->subsymbols.empty() || leaf->sym != &prims::convert_element_type()) return nullptr;
  std::vector<TensorRef> ins = b.input_tensors(), outs = b.output_tensors();
  if (ins.size() != 1 || outs.size() != 1 || !inputs.count(ins[0].get())) return nullptr;
  const TensorRef& x = ins[0];
  const TensorRef& y = outs[0];
  if (x->dtype() == y->dtype() || !(x->device() == y->device()) || x->shape() != y->shape())
    return nullptr;
  return x;
}

int64_t bytes_of(const TensorRef& t) {
  int64_t n = dtype_size(t->dtype());
  for (Dim d : t->shape()) n *= d.value();
  return n;
}

}  // namespace

Trace group_input_casts(const Trace& trace, const std::vector<const Executor*>& executors,
                        int64_t max_bytes) {
  std::unordered_set<const TensorProxy*> inputs;
  for (const TensorRef& t : trace.inputs) inputs.insert(t.get());
  // Groups in program order: members (indices into bsyms), keyed while open by (device, dtype).
  std::vector<std::vector<size_t>> groups;
  std::vector<int64_t> group_bytes;
  std::map<std::pair<std::string, int>, size_t> open;
  std::vector<int> group_of(trace.bsyms.size(), -1);
  for (size_t i = 0; i < trace.bsyms.size(); ++i) {
    const BoundSymbol& b = *trace.bsyms[i];
    TensorRef x = input_cast(b, inputs);
    if (!x) continue;
    const TensorRef y = b.output_tensors()[0];
    auto key = std::make_pair(y->device().str(), static_cast<int>(y->dtype()));
    auto it = open.find(key);
    if (it == open.end() || group_bytes[it->second] + bytes_of(y) > max_bytes) {
      groups.emplace_back();
      group_bytes.push_back(0);
      it = open.insert_or_assign(key, groups.size() - 1).first;
    }
    groups[it->second].push_back(i);
    group_bytes[it->second] += bytes_of(y);
    group_of[i] = static_cast<int>(it->second);
  }
  const Symbol& convert = ltorch_symbol("convert_tensors");
  std::vector<BSymRef> out;
  bool changed = false;
  for (size_t i = 0; i < trace.bsyms.size(); ++i) {
    int g = group_of[i];
    if (g < 0 || groups[g].size() < 2) {
      out.push_back(trace.bsyms[i]);
      continue;
    }
    if (groups[g].front() != i) continue;  // emitted with its group's first member
    std::vector<Value> xs, ys;
    std::vector<BSymRef> members;
    for (size_t m : groups[g]) {
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
    } else {  // no executor runs the grouped form: the casts stay as they were
      for (size_t m : groups[g]) out.push_back(trace.bsyms[m]);
    }
  }
  if (!changed) return trace;
  return trace.with_bsyms(std::move(out), "group_casts");
}

}  // namespace thunder
