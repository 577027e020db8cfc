// The fixture of the op-family meta tests: a Builder, inputs, calls of torch-level symbols by name,
// and the primitives a call decomposed into.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "ir/bound_symbol.h"
#include "ir/builder.h"
#include "ops/registry.h"

namespace thunder::testing {

class OpFixture : public ::testing::Test {
 protected:
  void SetUp() override { ensure_builtin_ops(); }
  TensorRef in(Shape shape, DType dt = DType::kFloat32) {
    return b.new_tensor(std::move(shape), dt, Device::cpu(), false);
  }
  Value call(const char* op, std::vector<Value> args,
             std::vector<std::pair<std::string, Value>> kwargs = {}) {
    return b.call(ltorch_symbol(op), std::move(args), std::move(kwargs));
  }
  static Shape shape_of(const Value& v) { return v.as_tensor()->shape(); }
  static DType dtype_of(const Value& v) { return v.as_tensor()->dtype(); }
  // The symbols the last recorded op decomposed into, by name: its direct sub-symbols, or
  // (`recursive`) the primitives at the leaves of its decomposition.
  std::vector<std::string> last_prims(bool recursive = false) {
    std::vector<BSymRef> all = b.take();
    std::vector<std::string> out;
    if (!all.empty()) collect(all.back(), recursive, out);
    return out;
  }
  Builder b;

 private:
  static void collect(const BSymRef& s, bool recursive, std::vector<std::string>& out) {
    for (const BSymRef& sub : s->subsymbols) {
      if (!recursive || sub->sym->is_prim()) {
        out.push_back(sub->sym->name);
      } else {
        collect(sub, recursive, out);
      }
    }
  }
};

}  // namespace thunder::testing
