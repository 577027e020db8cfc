// Bound symbols and typed argument access.
#include "ir/bound_symbol.h"

#include <unordered_set>

#include "core/error.h"

namespace thunder {

BSymRef BoundSymbol::make(const Symbol* sym, std::vector<Value> args, Value output,
                          std::vector<BSymRef> subsymbols, std::string source) {
  auto b = std::make_shared<BoundSymbol>();
  b->sym = sym;
  b->args = std::move(args);
  b->output = std::move(output);
  b->subsymbols = std::move(subsymbols);
  b->source = std::move(source);
  return b;
}

namespace {
std::vector<TensorRef> unique_tensors(const std::vector<const Value*>& values) {
  std::vector<TensorRef> out;
  std::unordered_set<const TensorProxy*> seen;
  for (const Value* v : values) {
    v->for_each_tensor([&](const TensorRef& t) {
      if (seen.insert(t.get()).second) out.push_back(t);
    });
  }
  return out;
}
}  // namespace

std::vector<TensorRef> BoundSymbol::input_tensors() const {
  std::vector<const Value*> vs;
  for (const Value& v : args) vs.push_back(&v);
  return unique_tensors(vs);
}

std::vector<TensorRef> BoundSymbol::output_tensors() const { return unique_tensors({&output}); }

bool shape_only(const BoundSymbol& b) {
  if (b.sym->kind == SymbolKind::kPrim) return b.sym->has_tag(kTagShape);
  if (b.subsymbols.empty()) return false;
  for (const BSymRef& s : b.subsymbols) {
    if (!shape_only(*s)) return false;
  }
  return true;
}

std::unordered_set<const TensorProxy*> compared_for_equality(const std::vector<BSymRef>& bsyms) {
  std::unordered_set<const TensorProxy*> out;
  for (auto it = bsyms.rbegin(); it != bsyms.rend(); ++it) {
    const BoundSymbol& b = **it;
    std::vector<TensorRef> ins = b.input_tensors();
    bool compare = (b.sym == &prims::eq() || b.sym == &prims::ne()) && ins.size() == 2;
    if (!compare && shape_only(b)) {
      b.output.for_each_tensor(
          [&](const TensorRef& t) { compare = compare || out.count(t.get()); });
    }
    if (compare) {
      for (const TensorRef& t : ins) out.insert(t.get());
    }
  }
  return out;
}

std::vector<BSymRef> first_definitions(const std::vector<BSymRef>& bsyms) {
  std::vector<BSymRef> out;
  std::unordered_set<const TensorProxy*> defined;
  for (const BSymRef& b : bsyms) {
    bool fresh = false;
    for (const TensorRef& t : b->output_tensors()) fresh = defined.insert(t.get()).second || fresh;
    if (fresh || b->output_tensors().empty()) out.push_back(b);
  }
  return out;
}

void BoundArgs::bad(size_t i, const char* expected) const {
  const auto& params = sym_.signature.params();
  std::string pname = i < params.size() ? params[i].name : std::to_string(i);
  throw TypeError(sym_.qualname() + ": argument '" + pname + "' must be " + expected + ", got " +
                  values_[i].type_name());
}

const TensorRef& BoundArgs::tensor(size_t i) const {
  if (!values_[i].is_tensor()) bad(i, "a Tensor");
  return values_[i].as_tensor();
}

int64_t BoundArgs::int_(size_t i) const {
  if (!values_[i].is_int() && !values_[i].is_bool()) bad(i, "an int");
  return values_[i].as_int();
}

double BoundArgs::number(size_t i) const {
  if (!values_[i].is_number()) bad(i, "a number");
  return values_[i].as_double();
}

bool BoundArgs::bool_(size_t i) const {
  if (values_[i].is_bool()) return values_[i].as_bool();
  if (values_[i].is_int()) return values_[i].as_int() != 0;
  bad(i, "a bool");
}

std::vector<int64_t> BoundArgs::ints(size_t i) const {
  if (!values_[i].is_int() && !values_[i].is_seq()) bad(i, "an int or a sequence of ints");
  return values_[i].as_int_list();
}

std::optional<DType> BoundArgs::optional_dtype(size_t i) const {
  if (values_[i].is_none()) return std::nullopt;
  if (!values_[i].is_dtype()) bad(i, "a torch.dtype or None");
  return values_[i].as_dtype();
}

}  // namespace thunder
