// Calling fused kernels from the runtime.
#include "runtime/fused_kernel.h"

#include <nanobind/stl/string.h>

#include <map>

#include "core/error.h"
#include "fuser/cpu_backend.h"
#include "fuser/cpu_codegen.h"
#include "fuser/cuda_backend.h"
#include "fuser/cuda_codegen.h"
#include "runtime/objects.h"

namespace thunder::runtime {

namespace {

struct TorchFns {
  nb::object empty_strided;
  nb::object zeros;
  nb::object kwnames;  // ("dtype", "device")
  PyObject* s_stride;
  PyObject* s_data_ptr;
  PyObject* s_contiguous;
};

TorchFns& torch_fns() {
  static TorchFns* f = [] {
    auto* t = new TorchFns();
    nb::module_ torch = nb::module_::import_("torch");
    t->empty_strided = torch.attr("empty_strided");
    t->zeros = torch.attr("zeros");
    t->kwnames = nb::make_tuple("dtype", "device");
    t->s_stride = PyUnicode_InternFromString("stride");
    t->s_data_ptr = PyUnicode_InternFromString("data_ptr");
    t->s_contiguous = PyUnicode_InternFromString("contiguous");
    return t;
  }();
  return *f;
}

// The address of a tensor's data.
char* data_ptr(PyObject* tensor) {
  PyObject* p = PyObject_CallMethodNoArgs(tensor, torch_fns().s_data_ptr);
  if (!p) throw nb::python_error();
  char* r = reinterpret_cast<char*>(PyLong_AsVoidPtr(p));
  Py_DECREF(p);
  return r;
}

// `torch.zeros(bytes, dtype=torch.uint8, device=device)`: scratch memory of kernels that combine
// partial results.
nb::object new_zeros(int64_t bytes, const nb::object& device) {
  nb::object n = nb::int_(bytes);
  PyObject* argv[3] = {n.ptr(), dtype_object(DType::kUInt8).ptr(), device.ptr()};
  PyObject* r = PyObject_Vectorcall(torch_fns().zeros.ptr(), argv, 1, torch_fns().kwnames.ptr());
  if (!r) throw nb::python_error();
  return nb::steal(r);
}

// An output: `torch.empty_strided(sizes, strides, dtype=dtype, device=device)`. On the GPU
// machine's host this takes 2.0 us against torch.empty's 3.4 (sizes as separate arguments) or 5.8
// (one tuple); on the CPU machine all three take 1.1-1.7 us.
nb::object new_output(PyObject* sizes, PyObject* strides, DType dtype, const nb::object& device) {
  PyObject* argv[4] = {sizes, strides, dtype_object(dtype).ptr(), device.ptr()};
  PyObject* r =
      PyObject_Vectorcall(torch_fns().empty_strided.ptr(), argv, 2, torch_fns().kwnames.ptr());
  if (!r) throw nb::python_error();
  return nb::steal(r);
}

std::vector<int64_t> int_tuple(PyObject* t) {
  std::vector<int64_t> out;
  Py_ssize_t n = PyTuple_GET_SIZE(t);
  for (Py_ssize_t i = 0; i < n; ++i) out.push_back(PyLong_AsLongLong(PyTuple_GET_ITEM(t, i)));
  return out;
}

// Per-stream workspaces of the CUDA kernels that combine partial results across blocks: counters
// (a zeroed area the kernels leave zeroed) then room for the partials. Kernels on one stream run in
// order, so they share one buffer; a buffer too small is replaced by a larger, zeroed one (the old
// one returns to torch's allocator, which reuses it in the stream's order). Never destroyed: the
// tensors would outlive the interpreter.
constexpr int64_t kCounterArea = 64 * 1024;

char* stream_workspace(const nb::object& device, int index, void* stream, int64_t bytes) {
  struct Entry {
    nb::object tensor;
    int64_t bytes = 0;
    char* data = nullptr;
  };
  static auto& buffers = *new std::map<std::pair<int, void*>, Entry>();
  Entry& e = buffers[{index, stream}];
  if (e.bytes < bytes) {
    int64_t size = std::max(bytes, 2 * e.bytes);
    e.tensor = new_zeros(size, device);
    e.bytes = size;
    e.data = data_ptr(e.tensor.ptr());
  }
  return e.data;
}

}  // namespace

FusedKernel::FusedKernel(fuser::KernelDef k, std::string name) : k_(std::move(k)), name_(std::move(name)) {
  cuda_ = k_.device.type == DeviceType::kCUDA;
  for (const TensorRef& t : k_.outputs) {
    nb::list sizes;
    for (Dim d : t->shape()) sizes.append(d.value());
    out_sizes_.push_back(nb::tuple(sizes));
  }
  for (const fuser::KNode& n : k_.nodes) {
    if (!cuda_ && n.op == "gather" && n.gather_axis >= 0) gather_size_ = k_.sizes[n.gather_axis];
  }
  passes_only_ = fuser::needs_passes(k_);
}

namespace {

// THUNDER_FUSION_PASS_SPLIT=0 keeps row kernels whose rows lie across memory as row kernels.
bool pass_split_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("THUNDER_FUSION_PASS_SPLIT");
    return e == nullptr || std::string(e) != "0";
  }();
  return on;
}

}  // namespace

bool FusedKernel::ensure_split() {
  if (split_) return true;
  std::optional<fuser::PassSplit> plan = fuser::split_passes(k_);
  if (!plan) return false;
  split_ = std::make_unique<Split>();
  split_->plan = std::move(*plan);
  for (size_t i = 0; i < split_->plan.kernels.size(); ++i) {
    split_->kernels.push_back(std::make_unique<FusedKernel>(split_->plan.kernels[i],
                                                            name_ + "_pass" + std::to_string(i)));
  }
  return true;
}

std::shared_ptr<FusedKernel::Variant> FusedKernel::build_variant(const fuser::Layout& layout) {
  auto v = std::make_shared<Variant>();
  v->layout = layout;
  for (const std::vector<int64_t>& st : layout.out_strides) {
    nb::list strides;
    for (int64_t x : st) strides.append(x);
    v->out_strides.push_back(nb::tuple(strides));
  }
  if (passes_only_ || (pass_split_enabled() && fuser::rows_across_memory(k_, layout))) {
    if (ensure_split()) {
      v->by_passes = true;
      return v;
    }
    if (passes_only_) throw Error(name_ + ": internal: a column kernel that needs passes has none");
  }
  if (cuda_) {
    fuser::CudaLaunch launch;
    int dev = k_.device.index < 0 ? 0 : k_.device.index;
    v->source = fuser::cuda_source(k_, layout, &launch, fuser::cuda_smem_limit(dev));
    v->binary = fuser::cuda_load(v->source, dev, launch);
  } else {
    v->source = fuser::cpu_source(k_, layout);
    v->binary = fuser::cpu_load(v->source);
  }
  return v;
}

std::shared_ptr<FusedKernel::Variant> FusedKernel::variant_for(const std::vector<fuser::TensorMeta>& metas,
                                                               std::vector<nb::object>* inputs) {
  if (last_ && last_strides_.size() == metas.size()) {
    bool same = true;
    for (size_t i = 0; same && i < metas.size(); ++i) same = last_strides_[i] == metas[i].strides;
    if (same) return last_;
  }
  fuser::Layout layout;
  int bad = -1;
  std::vector<fuser::TensorMeta> m = metas;
  std::vector<bool> copied(m.size(), false);
  while (!fuser::specialize(k_, m, &layout, &bad)) {
    // A reshape the input's strides cannot express: run on a contiguous copy of that input.
    if (bad < 0 || static_cast<size_t>(bad) >= m.size() || copied[bad]) {
      throw Error(name_ + ": internal: no layout for the inputs' strides");
    }
    copied[bad] = true;
    nb::object& t = (*inputs)[bad];
    t = nb::steal(PyObject_CallMethodNoArgs(t.ptr(), torch_fns().s_contiguous));
    if (!t.is_valid()) throw nb::python_error();
    m[bad].strides = fuser::contiguous_strides(m[bad].shape);
  }
  bool any_copied = std::find(copied.begin(), copied.end(), true) != copied.end();
  std::string key = layout.key();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = variants_.find(key);
  std::shared_ptr<Variant> v;
  if (it != variants_.end()) {
    v = it->second;
  } else {
    v = build_variant(layout);
    variants_[key] = v;
  }
  last_strides_.clear();
  if (!any_copied) {
    for (const fuser::TensorMeta& t : metas) last_strides_.push_back(t.strides);
  }
  return v;
}

void FusedKernel::precompile() {
  std::vector<fuser::TensorMeta> metas = fuser::contiguous_metas(k_);
  fuser::Layout layout;
  if (!fuser::specialize(k_, metas, &layout, nullptr)) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = layout.key();
  if (!variants_.count(key)) variants_[key] = build_variant(layout);
  last_ = variants_[key];
  last_strides_.clear();
  for (const fuser::TensorMeta& m : metas) last_strides_.push_back(m.strides);
}

void FusedKernel::prefetch() {
  if (passes_only_) return;  // its pass kernels compile at the first call
  fuser::Layout layout;
  try {
    if (!fuser::contiguous_layout(k_, &layout)) return;
    if (cuda_) {
      int dev = k_.device.index < 0 ? 0 : k_.device.index;
      fuser::cuda_prefetch(fuser::cuda_source(k_, layout, nullptr, fuser::cuda_smem_limit(dev)), dev);
    } else {
      fuser::cpu_prefetch(fuser::cpu_source(k_, layout));
    }
  } catch (const Error&) {
    // Reported by the first call, which builds the kernel itself.
  }
}

std::string FusedKernel::source() {
  std::lock_guard<std::mutex> lock(mu_);
  if ((last_ && last_->by_passes) || (!last_ && passes_only_)) {
    if (!ensure_split())
      throw Error(name_ + ": internal: a column kernel that needs passes has none");
    std::string all;  // each pass's kernel, in launch order
    for (const auto& sub : split_->kernels) all += sub->source();
    return all;
  }
  if (last_) return last_->source;
  fuser::Layout layout;
  fuser::contiguous_layout(k_, &layout);
  return cuda_ ? fuser::cuda_source(k_, layout) : fuser::cpu_source(k_, layout);
}

namespace {

// The strides of `inputs`, with the shapes of `k`'s inputs.
std::vector<fuser::TensorMeta> input_metas(const fuser::KernelDef& k,
                                           const std::vector<nb::object>& inputs) {
  std::vector<fuser::TensorMeta> metas(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    PyObject* st = PyObject_CallMethodNoArgs(inputs[i].ptr(), torch_fns().s_stride);
    if (!st) throw nb::python_error();
    metas[i].strides = int_tuple(st);
    Py_DECREF(st);
    for (Dim d : k.inputs[i]->shape()) metas[i].shape.push_back(d.value());
  }
  return metas;
}

}  // namespace

nb::object FusedKernel::call(nb::args args) {
  size_t ni = k_.inputs.size();
  if (args.size() != ni) {
    throw Error(name_ + " expects " + std::to_string(ni) + " tensors, got " + std::to_string(args.size()));
  }
  std::vector<nb::object> inputs(ni);
  for (size_t i = 0; i < ni; ++i) {
    inputs[i] = nb::borrow(args[i]);
    if (!is_tensor(inputs[i].ptr())) throw TypeError(name_ + ": argument " + std::to_string(i) + " is not a tensor");
  }
  std::vector<fuser::TensorMeta> metas = input_metas(k_, inputs);
  std::vector<nb::object> outs = run(std::move(inputs), metas);
  if (outs.size() == 1) return outs[0];
  nb::list l;
  for (auto& o : outs) l.append(o);
  return nb::tuple(l);
}

std::vector<nb::object> FusedKernel::run_by_passes(const std::vector<nb::object>& inputs) {
  const fuser::PassSplit& plan = split_->plan;
  std::vector<nb::object> inter(plan.intermediates), outs(k_.outputs.size());
  for (size_t s = 0; s < plan.kernels.size(); ++s) {
    std::vector<nb::object> in;
    for (int src : plan.sources[s]) in.push_back(src >= 0 ? inputs[src] : inter[-1 - src]);
    std::vector<fuser::TensorMeta> metas = input_metas(plan.kernels[s], in);
    std::vector<nb::object> got = split_->kernels[s]->run(std::move(in), metas);
    for (size_t o = 0; o < got.size(); ++o) {
      const int sink = plan.sinks[s][o];
      if (sink < 0) {
        inter[-1 - sink] = got[o];
        continue;
      }
      outs[sink] = got[o];
      for (int j = 0; j < plan.intermediates; ++j) {
        if (plan.inter_output[j] == sink) inter[j] = got[o];
      }
    }
  }
  for (const nb::object& o : outs) {
    if (!o.is_valid())
      throw Error(name_ + ": internal: an output no kernel of its passes computes");
  }
  return outs;
}

std::vector<nb::object> FusedKernel::run(std::vector<nb::object> inputs,
                                         const std::vector<fuser::TensorMeta>& metas) {
  size_t ni = k_.inputs.size();
  std::shared_ptr<Variant> v = variant_for(metas, &inputs);
  last_ = v;
  if (v->by_passes) return run_by_passes(inputs);
  std::vector<char*> ptrs;
  for (size_t i = 0; i < ni; ++i) ptrs.push_back(data_ptr(inputs[i].ptr()));
  // Outputs with tensors of their own: the first ones (a cat's later parts store into its first's).
  size_t no = k_.tensor_outputs();
  std::vector<nb::object> outs(no);
  if (!device_.is_valid()) device_ = device_object(k_.device);
  for (size_t o = 0; o < no; ++o) {
    outs[o] =
        new_output(out_sizes_[o].ptr(), v->out_strides[o].ptr(), k_.outputs[o]->dtype(), device_);
    ptrs.push_back(data_ptr(outs[o].ptr()));
  }
  // CPU kernels that gather report an index out of range through two int64 (a flag, the index).
  int64_t gather_error[2] = {0, 0};
  if (gather_size_ >= 0) ptrs.push_back(reinterpret_cast<char*>(gather_error));
  if (cuda_) {
    const auto& fn = *std::static_pointer_cast<fuser::CudaFunction>(v->binary);
    void* stream = current_cuda_stream(k_.device.index < 0 ? 0 : k_.device.index);
    nb::object workspace;  // scratch memory of kernels that combine partial results
    if (fn.launch.workspace_bytes > 0) {
      const fuser::CudaLaunch& l = fn.launch;
      if (l.counter_bytes <= kCounterArea && !fuser::cuda_stream_capturing(fn, stream)) {
        // The stream's buffer: this kernel's counters end where the counter area does, so no
        // kernel's partial results ever overwrite a counter.
        char* base = stream_workspace(device_, k_.device.index, stream,
                                      kCounterArea + l.workspace_bytes - l.counter_bytes);
        ptrs.push_back(base + (kCounterArea - l.counter_bytes));
      } else {
        // Captured into a CUDA graph (the fill is one of its nodes), or more counters than the
        // area holds: zeroed memory of the call's own.
        workspace = new_zeros(l.workspace_bytes, device_);
        ptrs.push_back(data_ptr(workspace.ptr()));
      }
    }
    fuser::cuda_launch(fn, v->layout, k_, ptrs.data(), stream);
  } else {
    const auto& bin = *std::static_pointer_cast<fuser::CpuBinary>(v->binary);
    // Reductions over rows: the rows' values, combined after the parallel loop.
    std::vector<int64_t> scratch(static_cast<size_t>((bin.scratch_bytes + 7) / 8));
    if (bin.finish) ptrs.push_back(reinterpret_cast<char*>(scratch.data()));
    if (bin.items() * bin.item_cost() > 65536) {
      nb::gil_scoped_release release;
      fuser::cpu_launch(bin, ptrs.data());
    } else {
      fuser::cpu_launch(bin, ptrs.data());
    }
  }
  if (gather_error[0]) {
    throw IndexError(
        name_ + ": index " + std::to_string(gather_error[1]) +
        " is out of bounds for a dimension of size " + std::to_string(gather_size_) +
        " (an index of torch.gather / take_along_dim, or a class target of cross_entropy / "
        "nll_loss)");
  }
  return outs;
}

void* current_cuda_stream(int device) {
  // torch._C._cuda_getCurrentRawStream(device) returns the cudaStream_t as an int without building
  // a Stream object (a few microseconds per launch); torch.cuda.current_stream where it is missing.
  static nb::object raw, fn;
  static bool looked = false;
  if (!looked) {
    looked = true;
    nb::object c = nb::module_::import_("torch").attr("_C");
    if (nb::hasattr(c, "_cuda_getCurrentRawStream")) raw = c.attr("_cuda_getCurrentRawStream");
    fn = nb::module_::import_("torch").attr("cuda").attr("current_stream");
  }
  if (raw.is_valid()) {
    nb::object h = raw(device);
    return PyLong_AsVoidPtr(h.ptr());
  }
  static PyObject* s_cuda_stream = PyUnicode_InternFromString("cuda_stream");
  nb::object s = fn(device);
  PyObject* h = PyObject_GetAttr(s.ptr(), s_cuda_stream);
  if (!h) throw nb::python_error();
  void* r = PyLong_AsVoidPtr(h);
  Py_DECREF(h);
  return r;
}

void bind_fused_kernel(nb::module_& m) {
  nb::class_<FusedKernel>(m, "FusedKernel")
      .def("__call__", &FusedKernel::call)
      .def("source", &FusedKernel::source)
      .def("precompile", &FusedKernel::precompile)
      .def_prop_ro("name", &FusedKernel::name)
      .def_prop_ro("kernel_ir", [](const FusedKernel& k) { return k.kernel().str(); });
}

}  // namespace thunder::runtime
