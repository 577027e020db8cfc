// Lowering a final trace to a Program, and running it.
#include "runtime/program.h"

#include <nanobind/stl/string.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <unordered_map>

#include "core/error.h"
#include "ir/printer.h"
#include "ops/registry.h"
#include "runtime/objects.h"
#include "runtime/output_check.h"

namespace thunder::runtime {

nb::object constant_object(const Value& v) {
  struct Visitor {
    nb::object operator()(const NoneT&) const { return nb::none(); }
    nb::object operator()(bool b) const { return nb::bool_(b); }
    nb::object operator()(int64_t i) const { return nb::int_(i); }
    nb::object operator()(double d) const { return nb::float_(d); }
    nb::object operator()(const std::string& s) const { return nb::str(s.c_str(), s.size()); }
    nb::object operator()(DType d) const { return dtype_object(d); }
    nb::object operator()(Device d) const { return device_object(d); }
    nb::object operator()(const Slice& s) const {
      auto opt = [](const std::optional<int64_t>& x) -> nb::object {
        return x ? nb::object(nb::int_(*x)) : nb::none();
      };
      return nb::steal(PySlice_New(opt(s.start).ptr(), opt(s.stop).ptr(), opt(s.step).ptr()));
    }
    nb::object operator()(const EllipsisT&) const { return nb::borrow(Py_Ellipsis); }
    nb::object operator()(const SeqPtr& p) const {
      const Seq& s = *p;
      if (s.kind == Seq::Kind::kDict) {
        nb::dict d;
        for (size_t i = 0; i < s.items.size(); ++i) d[constant_object(s.keys[i])] = constant_object(s.items[i]);
        return d;
      }
      nb::list l;
      for (const Value& item : s.items) l.append(constant_object(item));
      if (s.kind == Seq::Kind::kTuple) return nb::tuple(l);
      return l;
    }
    nb::object operator()(const TensorRef& t) const {
      throw Error("internal: tensor proxy " + t->name() + " used as a constant");
    }
    nb::object operator()(const Opaque& o) const { return nb::borrow(object(o.handle)); }
  };
  return std::visit(Visitor{}, v.variant());
}

namespace {

struct Lowering {
  std::unordered_map<const TensorProxy*, int> slot_of;
  int next_slot = 0;

  int slot(const TensorRef& t, const std::string& where) {
    auto it = slot_of.find(t.get());
    if (it == slot_of.end()) {
      throw Error("internal: " + where + " reads " + t->name() + " before it is defined");
    }
    return it->second;
  }
  int define(const TensorRef& t) {
    int s = next_slot++;
    slot_of[t.get()] = s;
    return s;
  }
};

bool has_tensor(const Value& v) {
  bool found = false;
  v.for_each_tensor([&](const TensorRef&) { found = true; });
  return found;
}

}  // namespace

std::shared_ptr<Program> Program::build(const Trace& trace) {
  auto p = std::make_shared<Program>();
  Lowering low;
  for (const TensorRef& in : trace.inputs) low.define(in);
  p->num_inputs_ = trace.inputs.size();

  // Builds an argument template, recording every slot it reads.
  std::vector<std::vector<int>> reads;
  std::function<Arg(const Value&, std::vector<int>&, const std::string&)> arg_of =
      [&](const Value& v, std::vector<int>& used, const std::string& where) -> Arg {
    Arg a;
    if (v.is_tensor()) {
      a.kind = Arg::Kind::kSlot;
      a.slot = low.slot(v.as_tensor(), where);
      used.push_back(a.slot);
    } else if (v.is_seq() && has_tensor(v)) {
      const Seq& s = v.as_seq();
      a.kind = s.kind == Seq::Kind::kList    ? Arg::Kind::kList
               : s.kind == Seq::Kind::kTuple ? Arg::Kind::kTuple
                                             : Arg::Kind::kDict;
      for (const Value& item : s.items) a.items.push_back(arg_of(item, used, where));
      if (s.kind == Seq::Kind::kDict) {
        nb::list keys;
        for (const Value& k : s.keys) keys.append(constant_object(k));
        a.constant = nb::tuple(keys);
      }
    } else {
      a.kind = Arg::Kind::kConst;
      a.constant = constant_object(v);
    }
    return a;
  };
  std::function<Out(const Value&)> out_of = [&](const Value& v) -> Out {
    Out o;
    if (v.is_tensor()) {
      o.kind = Out::Kind::kSlot;
      o.slot = low.define(v.as_tensor());
    } else if (v.is_seq() && has_tensor(v) && v.as_seq().kind != Seq::Kind::kDict) {
      o.kind = Out::Kind::kSeq;
      for (const Value& item : v.as_seq().items) o.items.push_back(out_of(item));
    }
    return o;
  };

  for (const BSymRef& b : trace.bsyms) {
    const Symbol& sym = *b->sym;
    if (sym.callable < 0) {
      throw NotImplementedError("internal: " + sym.qualname() +
                                " reached execution without an executor");
    }
    Instr ins;
    ins.fn = nb::borrow(object(sym.callable));
    if (sym.has_tag(kTagCheckOutputs)) ins.fn = checked_callable(ins.fn, b->output, sym.qualname());
    if (sym.implements == &prims::set_grad_enabled()) p->grad_switch_ = ins.fn;
    ins.name = sym.qualname();
    std::vector<int> used;
    std::vector<std::string> kwnames;
    if (sym.kind == SymbolKind::kOpaque) {
      for (const Value& v : b->args.at(0).items()) ins.args.push_back(arg_of(v, used, ins.name));
      ins.num_positional = ins.args.size();
      const Seq& kw = b->args.at(1).as_seq();
      for (size_t i = 0; i < kw.items.size(); ++i) {
        kwnames.push_back(kw.keys[i].as_string());
        ins.args.push_back(arg_of(kw.items[i], used, ins.name));
      }
    } else {
      const auto& params = sym.signature.params();
      // Positional parameters, without trailing ones that equal their defaults.
      size_t last_pos = 0;
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].kw_only && !params[i].varargs) continue;
        if (!(params[i].default_value && *params[i].default_value == b->args[i])) last_pos = i + 1;
      }
      for (size_t i = 0; i < last_pos; ++i) {
        if (params[i].kw_only && !params[i].varargs) continue;
        ins.args.push_back(arg_of(b->args[i], used, ins.name));
      }
      ins.num_positional = ins.args.size();
      for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i].kw_only || params[i].varargs) continue;
        if (params[i].default_value && *params[i].default_value == b->args[i]) continue;
        kwnames.push_back(params[i].name);
        ins.args.push_back(arg_of(b->args[i], used, ins.name));
      }
    }
    if (!kwnames.empty()) {
      nb::list names;
      for (const std::string& n : kwnames) names.append(nb::str(n.c_str()));
      ins.kwnames = nb::tuple(names);
    }
    ins.out = out_of(b->output);
    reads.push_back(std::move(used));
    p->instrs_.push_back(std::move(ins));
  }
  std::vector<int> out_used;
  p->output_ = arg_of(trace.output, out_used, "the output");
  p->num_slots_ = static_cast<size_t>(low.next_slot);

  // Release each slot after its last read (never the ones the output returns); an input nothing
  // reads is released before the first instruction, an output nothing reads right after the
  // instruction that stores it.
  std::vector<int> last_read(p->num_slots_, -1);
  for (size_t i = 0; i < reads.size(); ++i) {
    for (int s : reads[i]) last_read[s] = static_cast<int>(i);
  }
  for (int s : out_used) last_read[s] = -2;
  for (size_t s = 0; s < p->num_inputs_; ++s) {
    if (last_read[s] == -1) p->unread_inputs_.push_back(static_cast<int>(s));
  }
  std::function<void(const Out&, int)> unread_outputs = [&](const Out& o, int i) {
    if (o.kind == Out::Kind::kSlot && last_read[o.slot] == -1) last_read[o.slot] = i;
    for (const Out& item : o.items) unread_outputs(item, i);
  };
  for (size_t i = 0; i < p->instrs_.size(); ++i) unread_outputs(p->instrs_[i].out, static_cast<int>(i));
  for (size_t s = p->num_inputs_; s < p->num_slots_; ++s) {
    if (last_read[s] >= 0) p->instrs_[last_read[s]].release.push_back(static_cast<int>(s));
  }
  for (size_t s = 0; s < p->num_inputs_; ++s) {
    if (last_read[s] >= 0) p->instrs_[last_read[s]].release.push_back(static_cast<int>(s));
  }
  return p;
}

PyObject* Program::materialize(const Arg& a, const std::vector<PyObject*>& slots) {
  switch (a.kind) {
    case Arg::Kind::kConst: {
      PyObject* o = a.constant.ptr();
      Py_INCREF(o);
      return o;
    }
    case Arg::Kind::kSlot: {
      PyObject* o = slots[a.slot];
      if (!o) throw Error("internal: a released value was read");
      Py_INCREF(o);
      return o;
    }
    case Arg::Kind::kTuple:
    case Arg::Kind::kList: {
      bool tuple = a.kind == Arg::Kind::kTuple;
      PyObject* seq = tuple ? PyTuple_New(a.items.size()) : PyList_New(a.items.size());
      for (size_t i = 0; i < a.items.size(); ++i) {
        PyObject* item = materialize(a.items[i], slots);
        if (tuple) {
          PyTuple_SET_ITEM(seq, i, item);
        } else {
          PyList_SET_ITEM(seq, i, item);
        }
      }
      return seq;
    }
    case Arg::Kind::kDict: {
      PyObject* d = PyDict_New();
      for (size_t i = 0; i < a.items.size(); ++i) {
        PyObject* item = materialize(a.items[i], slots);
        PyDict_SetItem(d, PyTuple_GET_ITEM(a.constant.ptr(), i), item);
        Py_DECREF(item);
      }
      return d;
    }
  }
  return nullptr;
}

void Program::store(const Out& o, PyObject* value, std::vector<PyObject*>& slots,
                    const std::string& name) {
  switch (o.kind) {
    case Out::Kind::kIgnore: return;
    case Out::Kind::kSlot:
      Py_INCREF(value);
      Py_XDECREF(slots[o.slot]);
      slots[o.slot] = value;
      return;
    case Out::Kind::kSeq: {
      PyObject* fast = PySequence_Fast(value, "expected a sequence");
      if (!fast) throw nb::python_error();
      Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
      if (static_cast<size_t>(n) != o.items.size()) {
        Py_DECREF(fast);
        throw Error(name + " returned " + std::to_string(n) + " values, expected " +
                    std::to_string(o.items.size()));
      }
      for (Py_ssize_t i = 0; i < n; ++i) store(o.items[i], PySequence_Fast_GET_ITEM(fast, i), slots, name);
      Py_DECREF(fast);
      return;
    }
  }
}

nb::object Program::run(PyObject* const* inputs, size_t n) const {
  if (n != num_inputs_) {
    throw Error("internal: program expects " + std::to_string(num_inputs_) + " inputs, got " +
                std::to_string(n));
  }
  std::vector<PyObject*> owned(inputs, inputs + n);
  for (PyObject* o : owned) Py_INCREF(o);
  return run_owned(std::move(owned));
}

nb::object Program::run_consuming(nb::list inputs) const {
  size_t n = static_cast<size_t>(PyList_GET_SIZE(inputs.ptr()));
  if (n != num_inputs_) {
    throw Error("internal: program expects " + std::to_string(num_inputs_) + " inputs, got " +
                std::to_string(n));
  }
  std::vector<PyObject*> owned(n);
  for (size_t i = 0; i < n; ++i) {
    owned[i] = PyList_GET_ITEM(inputs.ptr(), i);
    Py_INCREF(owned[i]);
  }
  if (PyList_SetSlice(inputs.ptr(), 0, static_cast<Py_ssize_t>(n), nullptr) != 0) {
    for (PyObject* o : owned) Py_DECREF(o);
    throw nb::python_error();
  }
  return run_owned(std::move(owned));
}

namespace {

std::atomic<bool> g_profiling{false};

// Guarded by the GIL: instructions are timed and summed with it held.
std::unordered_map<std::string, InstrTime>& profile_sums() {
  static auto* m = new std::unordered_map<std::string, InstrTime>();
  return *m;
}

}  // namespace

void set_program_profiling(bool on) { g_profiling.store(on); }

std::vector<std::pair<std::string, InstrTime>> program_profile(bool reset) {
  std::vector<std::pair<std::string, InstrTime>> out(profile_sums().begin(), profile_sums().end());
  if (reset) profile_sums().clear();
  return out;
}

nb::object Program::run_owned(std::vector<PyObject*> inputs) const {
  std::vector<PyObject*> slots(num_slots_, nullptr);
  struct Cleanup {
    std::vector<PyObject*>& s;
    ~Cleanup() {
      for (PyObject* o : s) Py_XDECREF(o);
    }
  } cleanup{slots};
  for (size_t i = 0; i < inputs.size(); ++i) slots[i] = inputs[i];
  for (int s : unread_inputs_) {
    Py_DECREF(slots[s]);
    slots[s] = nullptr;
  }
  // A program that switches grad mode (torch.no_grad() inside the function) restores the caller's
  // mode if an operation raises.
  bool grad_at_entry = grad_switch_ ? grad_enabled() : true;
  struct GradRestore {
    const nb::object& fn;
    bool mode;
    bool armed = true;
    ~GradRestore() {
      if (armed && fn) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject* r = PyObject_CallOneArg(fn.ptr(), mode ? Py_True : Py_False);
        Py_XDECREF(r);
        PyErr_Restore(type, value, tb);
      }
    }
  } restore{grad_switch_, grad_at_entry};
  PyObject* stack[64];
  const bool profiling = g_profiling.load(std::memory_order_relaxed);
  using Clock = std::chrono::steady_clock;
  for (const Instr& ins : instrs_) {
    Clock::time_point t0;
    if (profiling) t0 = Clock::now();
    size_t nargs = ins.args.size();
    std::vector<PyObject*> big;
    PyObject** argv = stack;
    if (nargs > 64) {
      big.resize(nargs);
      argv = big.data();
    }
    for (size_t i = 0; i < nargs; ++i) argv[i] = materialize(ins.args[i], slots);
    PyObject* r = PyObject_Vectorcall(ins.fn.ptr(), argv, ins.num_positional, ins.kwnames.ptr());
    for (size_t i = 0; i < nargs; ++i) Py_DECREF(argv[i]);
    if (!r) throw nb::python_error();
    try {
      store(ins.out, r, slots, ins.name);
    } catch (...) {
      Py_DECREF(r);
      throw;
    }
    Py_DECREF(r);
    for (int s : ins.release) {
      Py_XDECREF(slots[s]);
      slots[s] = nullptr;
    }
    if (profiling) {
      InstrTime& t = profile_sums()[ins.name];
      t.calls += 1;
      t.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
  }
  restore.armed = false;
  return nb::steal(materialize(output_, slots));
}

}  // namespace thunder::runtime
