// Replacing proxies inside bound symbols (shared by passes that merge or rename values).
#pragma once

#include <unordered_map>

#include "ir/bound_symbol.h"

namespace thunder {

using ProxyMap = std::unordered_map<const TensorProxy*, TensorRef>;

Value substitute(const Value& v, const ProxyMap& map);
// A copy of `b` with arguments (and sub-symbols' arguments and outputs) substituted; `b` itself when
// nothing changes.
BSymRef substitute(const BSymRef& b, const ProxyMap& map);

}  // namespace thunder
