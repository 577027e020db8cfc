// Trace printer: one line per bound symbol, sub-symbols as indented comments beneath it, each line
// annotated with its outputs' device, dtype and shape:
//   t3 = ltorch.linear(x, w, b)  # t3: "cpu f32[4, 2048]"
//     # t3 = prims.linear(x, w, b)  # t3: "cpu f32[4, 2048]"
#include "ir/printer.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>

#include "ir/trace.h"

namespace thunder {

namespace {

std::string string_repr(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "float('nan')";
  if (std::isinf(d)) return d > 0 ? "float('inf')" : "-float('inf')";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", d);
  std::string s(buf);
  // Prefer the shortest representation that round-trips.
  for (int prec = 1; prec < 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) {
      s = buf;
      break;
    }
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string opt_int(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "None"; }

std::string outputs_lhs(const Value& out) {
  if (out.is_tensor()) return out.as_tensor()->name();
  if (!out.is_seq()) return "_";
  const Seq& s = out.as_seq();
  if (s.kind == Seq::Kind::kDict) return "_";
  std::string r = "(";
  for (size_t i = 0; i < s.items.size(); ++i) {
    if (i) r += ", ";
    r += outputs_lhs(s.items[i]);
  }
  if (s.items.size() == 1) r += ",";
  return r + ")";
}

bool has_tensor(const Value& v) {
  bool found = false;
  v.for_each_tensor([&](const TensorRef&) { found = true; });
  return found;
}

std::string type_comment(const Value& out) {
  std::string c;
  out.for_each_tensor([&](const TensorRef& t) {
    if (!c.empty()) c += ", ";
    c += t->name() + ": \"" + t->type_string() + "\"";
  });
  return c;
}

// The registered extensions (register_module_import, set_custom_printer).
struct Extensions {
  std::mutex mu;
  std::map<std::string, std::string> imports;
  std::unordered_map<const Symbol*, CustomPrinter> printers;
};
Extensions& extensions() {
  static auto* e = new Extensions();
  return *e;
}

CustomPrinter custom_printer(const Symbol* sym) {
  Extensions& e = extensions();
  std::lock_guard<std::mutex> lock(e.mu);
  if (e.printers.empty()) return nullptr;
  auto it = e.printers.find(sym);
  if (it == e.printers.end() && sym->kind == SymbolKind::kExecutor && sym->implements) {
    it = e.printers.find(sym->implements);
  }
  return it == e.printers.end() ? nullptr : it->second;
}

// The call printed by a custom printer: positional and keyword argument texts as call_expr
// prints them.
std::string custom_call(const CustomPrinter& printer, const BoundSymbol& b, const std::string& lhs) {
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> kwargs;
  const auto& params = b.sym->signature.params();
  for (size_t i = 0; i < b.args.size(); ++i) {
    bool kw = i < params.size() && params[i].kw_only && !params[i].varargs;
    if (kw && params[i].default_value && *params[i].default_value == b.args[i]) continue;
    if (kw) {
      kwargs.emplace_back(params[i].name, python_repr(b.args[i]));
    } else {
      args.push_back(python_repr(b.args[i]));
    }
  }
  return printer(b, lhs, args, kwargs);
}

std::string call_expr(const BoundSymbol& b) {
  std::string s = b.sym->qualname() + "(";
  if (b.sym->kind == SymbolKind::kOpaque && b.args.size() == 2) {
    // Opaque calls hold (positional tuple, keyword dict): print them as the call that runs.
    bool first = true;
    for (const Value& v : b.args[0].items()) {
      s += (first ? "" : ", ") + python_repr(v);
      first = false;
    }
    const Seq& kw = b.args[1].as_seq();
    for (size_t i = 0; i < kw.items.size(); ++i) {
      s += (first ? "" : ", ") + kw.keys[i].as_string() + "=" + python_repr(kw.items[i]);
      first = false;
    }
    return s + ")";
  }
  const auto& params = b.sym->signature.params();
  bool first = true;
  for (size_t i = 0; i < b.args.size(); ++i) {
    bool kw = i < params.size() && params[i].kw_only && !params[i].varargs;
    // Keyword-only arguments left at their default are not printed: the call means the same.
    if (kw && params[i].default_value && *params[i].default_value == b.args[i]) continue;
    if (!first) s += ", ";
    first = false;
    if (kw) s += params[i].name + "=";
    s += python_repr(b.args[i]);
  }
  return s + ")";
}

void print_bsym(std::ostringstream& os, const BoundSymbol& b, int indent, bool comment,
                bool subsymbols) {
  std::string pad(indent * 2, ' ');
  bool named = has_tensor(b.output) || (b.output.is_seq() &&
                                        b.output.as_seq().kind != Seq::Kind::kDict &&
                                        !b.output.as_seq().items.empty());
  std::string c = type_comment(b.output);
  if (CustomPrinter printer = custom_printer(b.sym)) {
    std::string text = custom_call(printer, b, named ? outputs_lhs(b.output) : "");
    while (!text.empty() && text.back() == '\n') text.pop_back();
    std::istringstream lines(text);
    std::string line;
    bool first = true;
    while (std::getline(lines, line)) {
      if (!first) os << "\n";
      first = false;
      os << pad << (comment ? "# " : "") << line;
    }
    if (!c.empty()) os << "  # " << c;
    os << "\n";
    if (subsymbols) {
      for (const BSymRef& s : b.subsymbols) print_bsym(os, *s, indent + 1, true, true);
    }
    return;
  }
  os << pad << (comment ? "# " : "");
  if (named) os << outputs_lhs(b.output) << " = ";
  os << call_expr(b);
  if (!c.empty()) os << "  # " << c;
  os << "\n";
  if (subsymbols) {
    for (const BSymRef& s : b.subsymbols) print_bsym(os, *s, indent + 1, true, true);
  }
}

// The modules the trace's calls are prefixed with. `namespaces` gets the prefixes of executor
// symbols (executor name -> executor), which are importable only when registered as such.
void collect_modules(const BoundSymbol& b, std::set<std::string>& mods,
                     std::map<std::string, std::string>& namespaces) {
  const Symbol& s = *b.sym;
  if (!s.module.empty()) {
    bool executor_kind = s.kind == SymbolKind::kExecutor || s.kind == SymbolKind::kCustom ||
                         s.kind == SymbolKind::kFusion;
    if (executor_kind) {
      namespaces.emplace(s.module, s.executor.empty() ? s.module : s.executor);
    } else {
      mods.insert(s.module);
    }
  }
  for (const BSymRef& sub : b.subsymbols) collect_modules(*sub, mods, namespaces);
}

}  // namespace

std::string python_repr(const Value& v) {
  struct Visitor {
    std::string operator()(const NoneT&) const { return "None"; }
    std::string operator()(bool b) const { return b ? "True" : "False"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return float_repr(d); }
    std::string operator()(const std::string& s) const { return string_repr(s); }
    std::string operator()(DType d) const { return std::string("torch.") + dtype_name(d); }
    std::string operator()(Device d) const { return "torch.device('" + d.str() + "')"; }
    std::string operator()(const Slice& s) const {
      return "slice(" + opt_int(s.start) + ", " + opt_int(s.stop) + ", " + opt_int(s.step) + ")";
    }
    std::string operator()(const EllipsisT&) const { return "..."; }
    std::string operator()(const SeqPtr& p) const {
      const Seq& s = *p;
      std::string r;
      if (s.kind == Seq::Kind::kDict) {
        r = "{";
        for (size_t i = 0; i < s.items.size(); ++i) {
          if (i) r += ", ";
          r += python_repr(s.keys[i]) + ": " + python_repr(s.items[i]);
        }
        return r + "}";
      }
      bool tuple = s.kind == Seq::Kind::kTuple;
      r = tuple ? "(" : "[";
      for (size_t i = 0; i < s.items.size(); ++i) {
        if (i) r += ", ";
        r += python_repr(s.items[i]);
      }
      if (tuple && s.items.size() == 1) r += ",";
      return r + (tuple ? ")" : "]");
    }
    std::string operator()(const TensorRef& t) const { return t->name(); }
    std::string operator()(const Opaque& o) const { return o.repr; }
  };
  return std::visit(Visitor{}, v.variant());
}

std::string Trace::python(bool include_subsymbols) const {
  static const std::map<std::string, std::string> kImports = {
      {"ltorch", "import thunder.torch as ltorch"},
      {"prims", "import thunder.prims as prims"},
      {"torchex", "import thunder.executors.torchex as torchex"},
      {"torch", "import torch"},
  };
  std::set<std::string> mods = {"torch"};
  std::map<std::string, std::string> namespaces;
  for (const BSymRef& b : bsyms) collect_modules(*b, mods, namespaces);
  std::map<std::string, std::string> registered;
  {
    Extensions& e = extensions();
    std::lock_guard<std::mutex> lock(e.mu);
    registered = e.imports;
  }
  std::vector<std::pair<std::string, std::string>> not_importable;
  for (const auto& [ns, executor] : namespaces) {
    // torch.nn.functional and the like: their root module is imported.
    if (kImports.count(ns) || registered.count(ns) || kImports.count(ns.substr(0, ns.find('.')))) {
      mods.insert(ns);
    } else {
      not_importable.emplace_back(ns, executor);
    }
  }
  std::ostringstream os;
  os << "# Constructed by thunder (stage: " << (stage.empty() ? "unnamed" : stage) << ")\n";
  std::set<std::string> printed;
  for (const std::string& m : mods) {
    auto it = kImports.find(m);
    auto reg = registered.find(m);
    std::string line;
    if (it != kImports.end()) {
      line = it->second;
    } else if (reg != registered.end()) {
      line = reg->second;
    } else if (m.rfind("autocast_", 0) == 0) {
      // thunder.core.autocast.Under: a torch callable run under the autocast state it names.
      line = "# " + m + ": not a Python module; its calls run the torch function of that name " +
             "under that autocast state";
    } else {
      std::string root = m.substr(0, m.find('.'));
      if (!kImports.count(root)) line = "import " + root;
    }
    if (!line.empty() && printed.insert(line).second) os << line << "\n";
  }
  for (const auto& [ns, executor] : not_importable) {
    os << "# " << ns << ": not a Python module; its calls run the callables registered with "
       << "executor '" << executor << "'\n";
  }
  os << "\n\ndef " << name << "(";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i) os << ", ";
    os << inputs[i]->name();
  }
  os << "):\n";
  for (const TensorRef& t : inputs) os << "  # " << t->name() << ": \"" << t->type_string() << "\"\n";
  for (const BSymRef& b : bsyms) print_bsym(os, *b, 1, false, include_subsymbols);
  os << "  return " << python_repr(output) << "\n";
  return os.str();
}

void register_module_import(const std::string& module, const std::string& import_statement) {
  Extensions& e = extensions();
  std::lock_guard<std::mutex> lock(e.mu);
  e.imports[module] = import_statement;
}

void set_custom_printer(const Symbol* sym, CustomPrinter printer) {
  Extensions& e = extensions();
  std::lock_guard<std::mutex> lock(e.mu);
  if (printer) {
    e.printers[sym] = std::move(printer);
  } else {
    e.printers.erase(sym);
  }
}

Trace Trace::with_bsyms(std::vector<BSymRef> new_bsyms, std::string new_stage) const {
  Trace t;
  t.name = name;
  t.inputs = inputs;
  t.bsyms = std::move(new_bsyms);
  t.output = output;
  t.stage = std::move(new_stage);
  return t;
}

}  // namespace thunder
