// Guard construction and checking with the Python C API (no torch C++ headers are needed).
#include "runtime/guard.h"

#include <cmath>

#include <nanobind/stl/string.h>

#include "core/error.h"
#include "runtime/objects.h"

namespace thunder::runtime {

namespace {

struct Names {
  PyObject* shape = PyUnicode_InternFromString("shape");
  PyObject* dtype = PyUnicode_InternFromString("dtype");
  PyObject* requires_grad = PyUnicode_InternFromString("requires_grad");
  PyObject* get_device = PyUnicode_InternFromString("get_device");
  PyObject* is_contiguous = PyUnicode_InternFromString("is_contiguous");
  PyObject* stride = PyUnicode_InternFromString("stride");
};
const Names& names() {
  static Names* n = new Names();
  return *n;
}

// Reads the metadata the guard compares. Returns false (with no Python error set) if unreadable.
bool read_tensor(PyObject* o, Guard::Node& n) {
  const Names& s = names();
  nb::object shape = nb::steal(PyObject_GetAttr(o, s.shape));
  nb::object dtype = nb::steal(PyObject_GetAttr(o, s.dtype));
  nb::object rg = nb::steal(PyObject_GetAttr(o, s.requires_grad));
  nb::object dev = nb::steal(PyObject_CallMethodNoArgs(o, s.get_device));
  nb::object contig = nb::steal(PyObject_CallMethodNoArgs(o, s.is_contiguous));
  if (!shape || !dtype || !rg || !dev || !contig) {
    PyErr_Clear();
    return false;
  }
  Py_ssize_t r = PyTuple_GET_SIZE(shape.ptr());
  n.shape.resize(r);
  for (Py_ssize_t i = 0; i < r; ++i) n.shape[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape.ptr(), i));
  n.dtype = dtype.ptr();
  n.requires_grad = rg.ptr() == Py_True;
  n.device = static_cast<int>(PyLong_AsLong(dev.ptr()));
  n.contiguous = contig.ptr() == Py_True;
  return true;
}

// o.stride() as integers; false (no Python error set) if unreadable.
bool read_strides(PyObject* o, std::vector<int64_t>& out) {
  nb::object st = nb::steal(PyObject_CallMethodNoArgs(o, names().stride));
  if (!st || !PyTuple_Check(st.ptr())) {
    PyErr_Clear();
    return false;
  }
  out.resize(PyTuple_GET_SIZE(st.ptr()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(st.ptr(), i));
  return true;
}

}  // namespace

bool same_value(PyObject* v, PyObject* snapshot) {
  if (v == snapshot) return true;
  if (Py_TYPE(v) != Py_TYPE(snapshot)) return false;
  if (PyFloat_CheckExact(v)) return same_float(PyFloat_AS_DOUBLE(v), PyFloat_AS_DOUBLE(snapshot));
  if (PyTuple_CheckExact(v) || PyList_CheckExact(v)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    if (n != PySequence_Fast_GET_SIZE(snapshot)) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      if (!same_value(PySequence_Fast_GET_ITEM(v, i), PySequence_Fast_GET_ITEM(snapshot, i))) {
        return false;
      }
    }
    return true;
  }
  int eq = PyObject_RichCompareBool(v, snapshot, Py_EQ);
  if (eq < 0) throw nb::python_error();
  return eq != 0;
}

Guard::Node Guard::build_node(nb::handle h, bool strides) {
  PyObject* o = h.ptr();
  Node n;
  if (is_tensor(o)) {
    n.kind = Node::Kind::kTensor;
    if (!read_tensor(o, n)) throw Error("cannot read a tensor's metadata");
    if (strides && !n.contiguous && !read_strides(o, n.strides)) {
      throw Error("cannot read a tensor's strides");
    }
  } else if (o == Py_None) {
    n.kind = Node::Kind::kNone;
  } else if (PyBool_Check(o)) {
    n.kind = Node::Kind::kBool;
    n.i = o == Py_True;
  } else if (PyLong_CheckExact(o)) {
    n.kind = Node::Kind::kInt;
    n.i = PyLong_AsLongLong(o);
    if (PyErr_Occurred()) throw nb::python_error();
  } else if (PyFloat_CheckExact(o)) {
    n.kind = Node::Kind::kFloat;
    n.f = PyFloat_AS_DOUBLE(o);
  } else if (PyUnicode_CheckExact(o)) {
    n.kind = Node::Kind::kStr;
    n.obj = nb::borrow(h);
  } else if (PyTuple_Check(o) || PyList_Check(o)) {
    n.kind = PyTuple_Check(o) ? Node::Kind::kTuple : Node::Kind::kList;
    if (!PyTuple_CheckExact(o) && !PyList_CheckExact(o)) n.obj = nb::borrow(reinterpret_cast<PyObject*>(Py_TYPE(o)));
    Py_ssize_t len = PySequence_Size(o);
    for (Py_ssize_t i = 0; i < len; ++i)
      n.items.push_back(build_node(nb::steal(PySequence_GetItem(o, i)), strides));
  } else if (PyDict_Check(o)) {
    n.kind = Node::Kind::kDict;
    nb::list keys;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(o, &pos, &k, &v)) {
      keys.append(nb::borrow(k));
      n.items.push_back(build_node(nb::borrow(v), strides));
    }
    n.obj = nb::tuple(keys);
  } else {
    n.kind = Node::Kind::kIdentity;
    n.obj = nb::borrow(h);
  }
  return n;
}

bool Guard::check_node(PyObject* o, const Node& n, std::vector<PyObject*>& tensors) {
  switch (n.kind) {
    case Node::Kind::kTensor: {
      if (!is_tensor(o)) return false;
      const Names& s = names();
      PyObject* dtype = PyObject_GetAttr(o, s.dtype);
      if (!dtype) return PyErr_Clear(), false;
      Py_DECREF(dtype);
      if (dtype != n.dtype) return false;
      PyObject* shape = PyObject_GetAttr(o, s.shape);
      if (!shape) return PyErr_Clear(), false;
      bool ok = PyTuple_GET_SIZE(shape) == static_cast<Py_ssize_t>(n.shape.size());
      for (size_t i = 0; ok && i < n.shape.size(); ++i) {
        ok = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i)) == n.shape[i];
      }
      Py_DECREF(shape);
      if (!ok) return false;
      PyObject* rg = PyObject_GetAttr(o, s.requires_grad);
      if (!rg) return PyErr_Clear(), false;
      Py_DECREF(rg);
      if ((rg == Py_True) != n.requires_grad) return false;
      PyObject* dev = PyObject_CallMethodNoArgs(o, s.get_device);
      if (!dev) return PyErr_Clear(), false;
      long d = PyLong_AsLong(dev);
      Py_DECREF(dev);
      if (d != n.device) return false;
      PyObject* contig = PyObject_CallMethodNoArgs(o, s.is_contiguous);
      if (!contig) return PyErr_Clear(), false;
      Py_DECREF(contig);
      if ((contig == Py_True) != n.contiguous) return false;
      if (!n.strides.empty()) {
        std::vector<int64_t> st;
        if (!read_strides(o, st) || st != n.strides) return false;
      }
      tensors.push_back(o);
      return true;
    }
    case Node::Kind::kNone: return o == Py_None;
    case Node::Kind::kBool: return PyBool_Check(o) && (o == Py_True) == (n.i != 0);
    case Node::Kind::kInt: {
      if (!PyLong_CheckExact(o)) return false;
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
      return !overflow && v == n.i;
    }
    case Node::Kind::kFloat: {
      if (!PyFloat_CheckExact(o)) return false;
      return same_float(PyFloat_AS_DOUBLE(o), n.f);
    }
    case Node::Kind::kStr: {
      if (!PyUnicode_CheckExact(o)) return false;
      if (o == n.obj.ptr()) return true;
      return PyUnicode_Compare(o, n.obj.ptr()) == 0;
    }
    case Node::Kind::kTuple:
    case Node::Kind::kList: {
      bool tuple = n.kind == Node::Kind::kTuple;
      if (n.obj) {
        if (reinterpret_cast<PyObject*>(Py_TYPE(o)) != n.obj.ptr()) return false;
      } else if (tuple ? !PyTuple_CheckExact(o) : !PyList_CheckExact(o)) {
        return false;
      }
      Py_ssize_t len = tuple ? PyTuple_GET_SIZE(o) : PyList_GET_SIZE(o);
      if (len != static_cast<Py_ssize_t>(n.items.size())) return false;
      for (Py_ssize_t i = 0; i < len; ++i) {
        PyObject* item = tuple ? PyTuple_GET_ITEM(o, i) : PyList_GET_ITEM(o, i);
        if (!check_node(item, n.items[i], tensors)) return false;
      }
      return true;
    }
    case Node::Kind::kDict: {
      if (!PyDict_Check(o)) return false;
      if (PyDict_GET_SIZE(o) != static_cast<Py_ssize_t>(n.items.size())) return false;
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      size_t i = 0;
      while (PyDict_Next(o, &pos, &k, &v)) {
        PyObject* expected = PyTuple_GET_ITEM(n.obj.ptr(), i);
        if (k != expected) {
          int eq = PyObject_RichCompareBool(k, expected, Py_EQ);
          if (eq != 1) return PyErr_Clear(), false;
        }
        if (!check_node(v, n.items[i], tensors)) return false;
        ++i;
      }
      return true;
    }
    case Node::Kind::kIdentity: return o == n.obj.ptr();
  }
  return false;
}

void Guard::collect_node(PyObject* o, const Node& n, std::vector<PyObject*>& tensors) {
  switch (n.kind) {
    case Node::Kind::kTensor: tensors.push_back(o); return;
    case Node::Kind::kTuple:
    case Node::Kind::kList:
      for (size_t i = 0; i < n.items.size(); ++i) {
        collect_node(PySequence_Fast_GET_ITEM(o, i), n.items[i], tensors);
      }
      return;
    case Node::Kind::kDict: {
      PyObject *k, *v;
      Py_ssize_t pos = 0;
      size_t i = 0;
      while (PyDict_Next(o, &pos, &k, &v) && i < n.items.size()) collect_node(v, n.items[i++], tensors);
      return;
    }
    default: return;
  }
}

Guard Guard::build(nb::handle args, nb::handle kwargs, nb::handle params, nb::handle flags,
                   bool grad, int64_t autocast, bool strides) {
  Guard g;
  g.args_ = build_node(args, strides);
  g.kwargs_ = build_node(kwargs, strides);
  for (nb::handle p : params) {
    Node n = build_node(p, strides);
    // None: a parameter set to None after thunder.jit (lin.bias = None).
    if (n.kind != Node::Kind::kTensor && n.kind != Node::Kind::kNone) {
      throw Error("a module parameter or buffer is not a tensor");
    }
    g.params_.push_back(std::move(n));
  }
  for (nb::handle f : flags) g.flags_.push_back(nb::cast<bool>(f));
  g.grad_ = grad;
  g.autocast_ = autocast;
  g.default_dtype_ = default_dtype();
  return g;
}

bool Guard::check(PyObject* args, PyObject* kwargs, PyObject* const* params, size_t num_params,
                  const std::vector<bool>& flags, bool grad, int64_t autocast,
                  PyObject* default_dtype, std::vector<PyObject*>& tensors) const {
  if (grad != grad_ || autocast != autocast_ || default_dtype != default_dtype_ ||
      flags != flags_ || num_params != params_.size()) {
    return false;
  }
  if (!check_node(args, args_, tensors)) return false;
  if (kwargs) {
    if (!check_node(kwargs, kwargs_, tensors)) return false;
  } else if (!kwargs_.items.empty()) {
    return false;
  }
  for (size_t i = 0; i < num_params; ++i) {
    if (!check_node(params[i], params_[i], tensors)) return false;
  }
  return true;
}

void Guard::collect(PyObject* args, PyObject* kwargs, PyObject* const* params, size_t num_params,
                    std::vector<PyObject*>& tensors) const {
  collect_node(args, args_, tensors);
  if (kwargs) collect_node(kwargs, kwargs_, tensors);
  for (size_t i = 0; i < num_params; ++i) {
    if (params_[i].kind == Node::Kind::kTensor) tensors.push_back(params[i]);
  }
}

std::string Guard::describe() const {
  std::string s = "grad=" + std::string(grad_ ? "on" : "off") + ", " +
                  (autocast_ ? "autocast on, " : "") +
                  std::to_string(params_.size()) + " parameters/buffers";
  return s;
}

}  // namespace thunder::runtime
