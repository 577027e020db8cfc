// A tensor dimension. Today it always holds a known extent; it is a value type of its own so that a
// symbolic extent (a named size with constraints) can be added without changing any IR signature.
#pragma once

#include <cstdint>
#include <vector>

namespace thunder {

class Dim {
 public:
  constexpr Dim() = default;
  constexpr Dim(int64_t v) : value_(v) {}  // NOLINT: implicit, a Dim is used like an integer
  constexpr int64_t value() const { return value_; }
  constexpr bool is_static() const { return true; }
  constexpr operator int64_t() const { return value_; }  // NOLINT
  bool operator==(const Dim&) const = default;

 private:
  int64_t value_ = 0;
};

using Shape = std::vector<Dim>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (Dim d : s) n *= d.value();
  return n;
}

}  // namespace thunder
