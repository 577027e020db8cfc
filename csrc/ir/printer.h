// Printing values and traces as Python source. The printed trace is valid Python (a tested invariant).
#pragma once

#include <string>

#include "ir/value.h"

namespace thunder {

// A Python expression for the value (proxies print as their names).
std::string python_repr(const Value& v);

}  // namespace thunder
