// Custom operators and checked implementations.
#include "executors/custom_op.h"

#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "ir/builder.h"

namespace thunder {

namespace {

std::mutex g_mu;

std::unordered_map<const Symbol*, const Symbol*>& like_of() {
  static auto* m = new std::unordered_map<const Symbol*, const Symbol*>();
  return *m;
}

std::deque<std::unique_ptr<Symbol>>& impls() {
  static auto* d = new std::deque<std::unique_ptr<Symbol>>();
  return *d;
}

// Fresh proxies, made by `b`, with the metadata of the tensors in `v`.
Value remake(Builder& b, const Value& v) {
  if (v.is_tensor()) {
    const TensorRef& t = v.as_tensor();
    return Value(b.new_tensor(t->shape(), t->dtype(), t->device(), t->requires_grad()));
  }
  if (!v.is_seq()) return v;
  const Seq& s = v.as_seq();
  std::vector<Value> items;
  for (const Value& i : s.items) items.push_back(remake(b, i));
  if (s.kind == Seq::Kind::kList) return Value::list(std::move(items));
  if (s.kind == Seq::Kind::kTuple) return Value::tuple(std::move(items));
  return Value::dict(s.keys, std::move(items));
}

Value like_meta(Builder& b, const BoundArgs& args) {
  const Symbol* like;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    like = like_of().at(&args.symbol());
  }
  Builder scratch;
  Value out = like->meta(scratch, BoundArgs(*like, args.values()));
  return remake(b, out);
}

}  // namespace

const Symbol* make_custom_op(const std::string& module, const std::string& name, Signature signature,
                             MetaFn meta) {
  if (name.empty()) throw ValueError("an operator needs a non-empty name");
  if (SymbolTable::instance().find(module, name)) {
    // `module` is the executor's name, or the module= the operator is printed with.
    throw ValueError(
        "an operator printed as '" + module + "." + name +
        "' is already registered (by this executor, or under the same module= by another "
        "one); traces call operators by that name, so this one needs another name");
  }
  Symbol s;
  s.name = name;
  s.module = module;
  s.kind = SymbolKind::kCustom;
  s.signature = std::move(signature);
  s.meta = meta;
  return SymbolTable::instance().add(std::move(s));
}

const Symbol* make_custom_op_like(const std::string& module, const std::string& name,
                                  const Symbol& like) {
  if (!like.meta) throw ValueError(like.qualname() + " has no meta function to borrow");
  const Symbol* s = make_custom_op(module, name, like.signature, like_meta);
  std::lock_guard<std::mutex> lock(g_mu);
  like_of()[s] = &like;
  return s;
}

const Symbol* make_checked_impl(const Symbol& implements, const std::string& executor,
                                const std::string& module, const std::string& name, int64_t callable) {
  auto s = std::make_unique<Symbol>();
  s->name = name;
  s->module = module;
  s->kind = SymbolKind::kExecutor;
  s->signature = implements.signature;
  s->tags = implements.tags | kTagCheckOutputs;
  s->callable = callable;
  s->implements = &implements;
  s->executor = executor;
  std::lock_guard<std::mutex> lock(g_mu);
  impls().push_back(std::move(s));
  return impls().back().get();
}

}  // namespace thunder
