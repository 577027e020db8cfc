// CSE keyed on the printed call (symbol and arguments, proxies by identity after substitution).
#include "transforms/cse.h"

#include <unordered_map>

#include "ir/printer.h"
#include "transforms/substitute.h"

namespace thunder {

namespace {

bool mergeable(const BoundSymbol& b) {
  const Symbol& s = *b.sym;
  if (s.has_tag(kTagRandom) || s.has_tag(kTagInplace) || s.has_tag(kTagDontDce)) return false;
  if (s.kind == SymbolKind::kOpaque) return false;
  bool has_out = false;
  b.output.for_each_tensor([&](const TensorRef&) { has_out = true; });
  return has_out;
}

std::string key_of(const BoundSymbol& b) {
  std::string k = std::to_string(b.sym->id) + "|" + std::to_string(reinterpret_cast<uintptr_t>(b.sym));
  for (const Value& a : b.args) k += "|" + python_repr(a);
  return k;
}

void map_outputs(const Value& from, const Value& to, ProxyMap& map) {
  if (from.is_tensor() && to.is_tensor()) {
    map[from.as_tensor().get()] = to.as_tensor();
  } else if (from.is_seq() && to.is_seq()) {
    const auto& a = from.as_seq().items;
    const auto& b = to.as_seq().items;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) map_outputs(a[i], b[i], map);
  }
}

// A switch of grad mode (torch.no_grad() inside the traced function), claimed or not.
bool grad_switch(const BoundSymbol& b) {
  return b.sym == &prims::set_grad_enabled() || b.sym->implements == &prims::set_grad_enabled();
}

}  // namespace

Trace cse(const Trace& trace) {
  ProxyMap replaced;
  std::unordered_map<std::string, BSymRef> seen;
  std::vector<BSymRef> out;
  // The grad mode the calls run in: a call under torch.no_grad() gives a result without autograd
  // history, so it is merged only with calls in the same mode ("?" until the first switch: the
  // caller's mode).
  std::string mode = "?";
  for (const BSymRef& original : trace.bsyms) {
    BSymRef b = substitute(original, replaced);
    if (grad_switch(*b) && !b->args.empty()) mode = python_repr(b->args[0]);
    if (mergeable(*b)) {
      std::string key = mode + "|" + key_of(*b);
      auto it = seen.find(key);
      if (it != seen.end()) {
        map_outputs(b->output, it->second->output, replaced);
        continue;
      }
      seen.emplace(std::move(key), b);
    }
    out.push_back(std::move(b));
  }
  Trace t = trace.with_bsyms(std::move(out), "cse");
  t.output = substitute(trace.output, replaced);
  return t;
}

}  // namespace thunder
