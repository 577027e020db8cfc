// Printing values and traces as Python source. The printed trace is valid Python (a tested invariant).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ir/value.h"

namespace thunder {

// A Python expression for the value (proxies print as their names).
std::string python_repr(const Value& v);

struct BoundSymbol;
struct Symbol;

// Extension points for operators defined at run time (thunder.extend). The printer imports the
// modules it knows (ltorch, prims, torchex, torch, and those registered here); the prefix of an
// executor's operator that names no importable module (an executor's name) gets a comment line
// saying what it is instead of an import that would fail.
void register_module_import(const std::string& module, const std::string& import_statement);

// Prints a bound symbol of `sym` as the statement(s) it returns, given the printed left-hand side
// (empty when the call has no outputs to name), positional argument texts and keyword argument
// texts (keyword-only arguments left at their default are omitted). Applies to `sym` and to the
// executor symbols implementing it. The type comment is appended to the last line.
using CustomPrinter = std::function<std::string(
    const BoundSymbol& b, const std::string& lhs, const std::vector<std::string>& args,
    const std::vector<std::pair<std::string, std::string>>& kwargs)>;
void set_custom_printer(const Symbol* sym, CustomPrinter printer);

}  // namespace thunder
