// Proxy substitution in values and bound symbols.
#include "transforms/substitute.h"

namespace thunder {

Value substitute(const Value& v, const ProxyMap& map) {
  if (map.empty()) return v;
  return map_tensors(v, [&](const TensorRef& t) -> Value {
    auto it = map.find(t.get());
    return it == map.end() ? Value(t) : Value(it->second);
  });
}

BSymRef substitute(const BSymRef& b, const ProxyMap& map) {
  if (map.empty()) return b;
  bool touched = false;
  for (const TensorRef& t : b->input_tensors()) touched = touched || map.count(t.get());
  for (const TensorRef& t : b->output_tensors()) touched = touched || map.count(t.get());
  if (!touched) return b;
  std::vector<Value> args;
  args.reserve(b->args.size());
  for (const Value& a : b->args) args.push_back(substitute(a, map));
  std::vector<BSymRef> subs;
  subs.reserve(b->subsymbols.size());
  for (const BSymRef& s : b->subsymbols) subs.push_back(substitute(s, map));
  return BoundSymbol::make(b->sym, std::move(args), substitute(b->output, map), std::move(subs),
                           b->source);
}

}  // namespace thunder
