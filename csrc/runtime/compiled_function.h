// The callable `thunder.jit` returns. A call checks the cached entries' guards in C++ and runs the first
// matching entry's program; on a miss it asks the Python front end to capture and compile a new entry.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/guard.h"
#include "runtime/program.h"

namespace thunder::runtime {

namespace nb = nanobind;

// Where each program input comes from on a call.
struct InputSource {
  enum class Kind : uint8_t { kTensor, kConstant } kind = Kind::kTensor;
  int index = 0;      // kTensor: position among the call's tensors (args, kwargs, then parameters)
  nb::object value;   // kConstant: a tensor the function closes over
};

struct CacheEntry {
  Guard guard;
  std::shared_ptr<Program> program;
  std::vector<InputSource> sources;
  nb::object info;  // the front end's record of this entry (traces, timings)
  int64_t calls = 0;
  // Plain module attributes (numbers, strings, None) the program may have read, by value: a change
  // (`m.scale = 2.0`) recompiles instead of running a stale program.
  // dict[key] is value, or a closure cell (key: its name) holds value; with `identity`, the same
  // object (a tensor the program holds) rather than an equal one.
  struct AttrGuard {
    nb::object dict, key, value;
    bool identity = false;
  };
  std::vector<AttrGuard> attr_guards;
  // The sizes of a module's dicts of submodules, parameters, buffers and hooks, and of torch's
  // global hook dicts: a submodule, parameter or hook added or removed recompiles.
  struct SizeGuard {
    nb::object dict;
    Py_ssize_t size;
  };
  std::vector<SizeGuard> size_guards;
  bool attributes_match() const;
  // The inputs (indices into the call's tensors) the program updates in place, and how many of the
  // call's tensors are arguments (the rest are parameters and buffers). The program treats its
  // inputs as separate memory: a call where an updated input shares memory with an argument or
  // another updated input does not match (thunder compiles again, and refuses it clearly).
  std::vector<int> updated_inputs;
  int arg_tensors = 0;
  bool inputs_alias(const std::vector<PyObject*>& tensors) const;
};

enum class CacheMode : uint8_t { kConstantValues = 0, kSameInput = 1, kNoCaching = 2 };

// The first (updated, other) pair of indices among tensors[0, limit) whose tensors overlap in
// memory (the same storage, overlapping spans of bytes), where `updated` lists the tensors a
// program updates in place; nullopt when there is none.
std::optional<std::pair<int, int>> overlapping_update(const std::vector<PyObject*>& tensors,
                                                      const std::vector<int>& updated, int limit);

// The number of functions being traced now (set by the capture; a jitted function called while it
// is positive traces its wrapped function inline).
void set_tracing_depth(int depth);

class CompiledFunction {
 public:
  // `compile` is called as compile(args, kwargs) on a miss and returns a CacheEntry. `param_sources` is
  // a list of (dict, key) pairs read on every call (a module's _parameters/_buffers entries);
  // `flag_sources` a list of module __dict__s whose 'training' flag joins the cache key.
  CompiledFunction(nb::object compile, nb::list param_sources, nb::list flag_sources,
                   CacheMode mode);

  nb::object call(nb::args args, nb::kwargs kwargs);
  // Reads the current parameters and flags as the guard sees them (used when compiling).
  nb::list current_params() const;
  nb::list current_flags() const;

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  CacheMode mode() const { return mode_; }
  const std::vector<std::shared_ptr<CacheEntry>>& entries() const { return entries_; }
  std::shared_ptr<CacheEntry> last_entry() const { return last_; }
  void clear() { entries_.clear(); last_.reset(); }

 private:
  nb::object run_entry(CacheEntry& e, const std::vector<PyObject*>& tensors, int64_t autocast = 0);

  nb::object compile_;
  std::vector<std::pair<nb::object, nb::object>> param_sources_;
  std::vector<nb::object> flag_sources_;
  CacheMode mode_;
  std::vector<std::shared_ptr<CacheEntry>> entries_;
  std::shared_ptr<CacheEntry> last_;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace thunder::runtime
