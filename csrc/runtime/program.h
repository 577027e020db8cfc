// A Program is a final trace lowered for execution: a flat list of instructions over value slots.
// Each instruction calls the Python callable of its symbol's implementation (a torch function, an
// executor's kernel, an opaque torch op) with arguments gathered from slots and constants, and stores
// the results into slots. Slots are released right after their last use, so intermediates are freed
// as early as eager mode frees them.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <string>
#include <vector>

#include "ir/trace.h"

namespace thunder::runtime {

namespace nb = nanobind;

class Program {
 public:
  // `impl_of` gives the Python callable running a bound symbol (executor and opaque symbols).
  static std::shared_ptr<Program> build(const Trace& trace);

  // Runs the program on its inputs (one per trace input, in order) and returns the output object.
  // The program holds its own reference to each input until the input's last use; the caller's
  // references keep the inputs alive past that.
  nb::object run(PyObject* const* inputs, size_t n) const;
  // Runs the program on the items of `inputs`, taking over the list's references and leaving it
  // empty: an input nobody else refers to is freed right after its last use (the backward program
  // frees each saved tensor as soon as the backward is done with it).
  nb::object run_consuming(nb::list inputs) const;
  size_t num_inputs() const { return num_inputs_; }
  size_t num_instructions() const { return instrs_.size(); }

 private:
  struct Arg {
    enum class Kind : uint8_t { kConst, kSlot, kTuple, kList, kDict } kind = Kind::kConst;
    int slot = -1;
    nb::object constant;           // kConst; kDict: the keys tuple
    std::vector<Arg> items;
  };
  struct Out {
    enum class Kind : uint8_t { kIgnore, kSlot, kSeq } kind = Kind::kIgnore;
    int slot = -1;
    std::vector<Out> items;
  };
  struct Instr {
    nb::object fn;
    std::vector<Arg> args;  // positional, then keyword values
    nb::object kwnames;     // tuple of names for the trailing keyword values, or null
    size_t num_positional = 0;
    Out out;
    std::vector<int> release;  // slots whose last use is this instruction
    std::string name;           // for error messages
  };

  nb::object run_owned(std::vector<PyObject*> inputs) const;  // steals the references
  static PyObject* materialize(const Arg& a, const std::vector<PyObject*>& slots);
  static void store(const Out& o, PyObject* value, std::vector<PyObject*>& slots, const std::string& name);

  nb::object grad_switch_;  // the callable of a set_grad_enabled instruction, when there is one
  size_t num_inputs_ = 0;
  std::vector<int> unread_inputs_;  // input slots no instruction reads (released on entry)
  size_t num_slots_ = 0;
  std::vector<Instr> instrs_;
  Arg output_;
};

// Host time per instruction, summed by the instruction's symbol while enabled: where a program's
// time goes between its kernels (the call of each implementation, its output stored, dead slots
// freed).
struct InstrTime {
  int64_t calls = 0;
  double seconds = 0;
};
void set_program_profiling(bool on);
// The sums since the last reset, by symbol name; `reset` clears them.
std::vector<std::pair<std::string, InstrTime>> program_profile(bool reset);

// A Python object for a constant value (a number, dtype, device, slice, sequence...).
nb::object constant_object(const Value& v);

}  // namespace thunder::runtime
