// Functionalization: in-place symbols become their decompositions, plus write-backs into inputs.
#include "transforms/functionalize.h"

#include <unordered_map>

#include "core/error.h"
#include "ir/builder.h"
#include "transforms/substitute.h"

namespace thunder {

Trace functionalize(const Trace& trace) {
  // The latest version of each tensor, keyed by the tensor it was mutated from (transitively rooted).
  std::unordered_map<const TensorProxy*, TensorRef> root_of;  // version -> root
  std::unordered_map<const TensorProxy*, TensorRef> latest;   // root -> latest version
  std::vector<BSymRef> out;
  for (const BSymRef& b : trace.bsyms) {
    // A leaf's update without history is the leaf's next version, like an in-place symbol's output.
    const bool leaf_update = b->sym == &prims::leaf_update();
    if (!leaf_update && (!b->sym->has_tag(kTagInplace) || b->sym->is_prim())) {
      out.push_back(b);
      continue;
    }
    const TensorRef& mutated = b->args.at(0).as_tensor();
    if (leaf_update) {
      out.push_back(b);
    } else {
      for (const BSymRef& s : b->subsymbols) out.push_back(s);
    }
    if (!b->output.is_tensor()) {
      throw Error(b->sym->qualname() + ": an in-place symbol must produce the updated tensor");
    }
    auto it = root_of.find(mutated.get());
    TensorRef root = it == root_of.end() ? mutated : it->second;
    root_of[b->output.as_tensor().get()] = root;
    latest[root.get()] = b->output.as_tensor();
  }
  Builder builder(trace);
  // The function returns an updated input (`x.add_(1); return x`): it returns the input itself, as
  // eager does (the write-back's result is the caller's tensor), not a copy of its new value.
  // Inputs that require grad keep the new value as the output (its history is the program's).
  ProxyMap returned;
  for (const TensorRef& in : trace.inputs) {
    auto it = latest.find(in.get());
    if (it == latest.end()) continue;
    Value written = builder.call(prims::copy_(), {Value(it->second), Value(in)});
    if (!in->requires_grad() && written.is_tensor())
      returned[it->second.get()] = written.as_tensor();
  }
  for (BSymRef& b : builder.take()) out.push_back(std::move(b));
  Trace result = trace.with_bsyms(std::move(out), "functionalize");
  if (!returned.empty()) result.output = substitute(result.output, returned);
  return result;
}

}  // namespace thunder
