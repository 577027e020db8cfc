// Errors raised by the core. Each maps to one Python exception type in the bindings.
#pragma once

#include <stdexcept>
#include <string>

namespace thunder {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class TypeError : public Error {
 public:
  using Error::Error;
};
class ValueError : public Error {
 public:
  using Error::Error;
};
class IndexError : public Error {
 public:
  using Error::Error;
};
class NotImplementedError : public Error {
 public:
  using Error::Error;
};

#define THUNDER_CHECK(cond, ExcType, msg) \
  do {                                    \
    if (!(cond)) throw ExcType(msg);      \
  } while (0)

}  // namespace thunder
