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
