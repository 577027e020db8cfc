// Torch-level reduction ops.
#include "ops/lang.h"
#include "ops/registry.h"

namespace thunder {

void register_reduction_ops(SymbolTable& table) {
  std::vector<OpDef> defs = {};
  register_ops(table, defs);
}

}  // namespace thunder
