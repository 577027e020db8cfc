// Signature parsing and binding, and the interned symbol table.
#include "ir/symbol.h"

#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace thunder {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Value parse_default(std::string_view t) {
  if (t == "None") return Value();
  if (t == "True") return Value(true);
  if (t == "False") return Value(false);
  if (t == "()") return Value::tuple({});
  if (t.size() >= 2 && (t.front() == '\'' || t.front() == '"')) {
    return Value(std::string(t.substr(1, t.size() - 2)));
  }
  std::string s(t);
  char* end = nullptr;
  if (s.find_first_of(".eE") == std::string::npos || s == "-inf" || s == "inf") {
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (end && *end == '\0') return Value(static_cast<int64_t>(v));
  }
  double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0') return Value(d);
  throw ValueError("bad default value '" + s + "' in a signature");
}

}  // namespace

Signature Signature::parse(std::string_view text) {
  Signature sig;
  bool kw_only = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = trim(text.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) {
      if (comma >= text.size()) break;
      continue;
    }
    if (item == "*") {
      kw_only = true;
      continue;
    }
    Param p;
    p.kw_only = kw_only;
    if (item.front() == '*') {
      p.varargs = true;
      item.remove_prefix(1);
      kw_only = true;
    }
    if (auto eq = item.find('='); eq != std::string_view::npos) {
      p.name = std::string(trim(item.substr(0, eq)));
      p.default_value = parse_default(trim(item.substr(eq + 1)));
    } else {
      p.name = std::string(item);
    }
    sig.params_.push_back(std::move(p));
  }
  return sig;
}

int Signature::index_of(std::string_view name) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<Value> Signature::bind(std::string_view op, std::vector<Value> args,
                                   std::vector<std::pair<std::string, Value>> kwargs) const {
  std::vector<std::optional<Value>> slots(params_.size());
  size_t next = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    while (next < params_.size() && params_[next].kw_only && !params_[next].varargs) ++next;
    if (next >= params_.size()) {
      throw TypeError(std::string(op) + "() takes " + std::to_string(next) +
                      " positional arguments but " + std::to_string(args.size()) + " were given");
    }
    const Param& p = params_[next];
    if (p.varargs) {
      // One sequence, or all remaining positionals.
      if (i + 1 == args.size() && args[i].is_seq()) {
        const Seq& s = args[i].as_seq();
        slots[next] = Value::tuple(s.items);
      } else {
        std::vector<Value> rest(args.begin() + static_cast<long>(i), args.end());
        slots[next] = Value::tuple(std::move(rest));
      }
      ++next;
      break;
    }
    slots[next++] = std::move(args[i]);
  }
  for (auto& [name, v] : kwargs) {
    int idx = index_of(name);
    if (idx < 0) {
      throw TypeError(std::string(op) + "() got an unexpected keyword argument '" + name + "'");
    }
    if (slots[idx]) {
      throw TypeError(std::string(op) + "() got multiple values for argument '" + name + "'");
    }
    if (params_[idx].varargs && !v.is_seq()) v = Value::tuple({v});
    slots[idx] = std::move(v);
  }
  std::vector<Value> out;
  out.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (slots[i]) {
      out.push_back(std::move(*slots[i]));
    } else if (params_[i].default_value) {
      out.push_back(*params_[i].default_value);
    } else if (params_[i].varargs) {
      out.push_back(Value::tuple({}));
    } else {
      throw TypeError(std::string(op) + "() missing required argument '" + params_[i].name + "'");
    }
  }
  return out;
}

SymbolTable::SymbolTable() = default;

SymbolTable& SymbolTable::instance() {
  static SymbolTable* table = new SymbolTable();  // never destroyed: symbols outlive everything
  return *table;
}

const Symbol* SymbolTable::add(Symbol s) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = s.module + "." + s.name;
  if (by_name_.count(key)) throw ValueError("a symbol named '" + key + "' already exists");
  s.id = static_cast<int>(symbols_.size());
  symbols_.push_back(std::make_unique<Symbol>(std::move(s)));
  const Symbol* p = symbols_.back().get();
  by_name_.emplace(std::move(key), p);
  return p;
}

const Symbol* SymbolTable::find(std::string_view module, std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(std::string(module) + "." + std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const Symbol* SymbolTable::by_id(int id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (id < 0 || id >= static_cast<int>(symbols_.size())) return nullptr;
  return symbols_[id].get();
}

std::vector<const Symbol*> SymbolTable::all() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Symbol*> out;
  for (auto& s : symbols_) out.push_back(s.get());
  return out;
}

}  // namespace thunder
