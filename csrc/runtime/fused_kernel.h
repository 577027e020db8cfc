// A fused kernel as the runtime calls it: a Python callable (bound with nanobind) taking the
// region's input tensors and returning its outputs. On each call it reads the inputs' data pointers
// and strides, picks the variant compiled for that layout (specialising and compiling it on first
// use), allocates the outputs through torch.empty_strided (on CUDA: torch's caching allocator) and
// launches on the CPU thread pool or on torch's current CUDA stream.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fuser/kernel.h"
#include "fuser/layout.h"
#include "fuser/pass_split.h"

namespace thunder::runtime {

namespace nb = nanobind;

class FusedKernel {
 public:
  FusedKernel(fuser::KernelDef k, std::string name);
  nb::object call(nb::args args);
  // Generated source of the variant run last, or of the one for contiguous inputs.
  std::string source();
  const std::string& name() const { return name_; }
  const fuser::KernelDef& kernel() const { return k_; }
  // Compiles the variant for contiguous inputs now (the layout most calls use).
  void precompile();
  // Starts compiling that variant in the background, so the kernels of a program compile in
  // parallel while it is being built; the first call waits for its own.
  void prefetch();

 private:
  struct Variant {
    fuser::Layout layout;
    std::string source;
    std::shared_ptr<void> binary;  // CpuBinary or CudaFunction
    bool by_passes = false;        // run as `split_`'s kernels (rows across memory)
    std::vector<nb::object> out_strides;  // per output, the tuple torch.empty_strided takes
  };
  // A row kernel whose rows lie across memory, as one kernel per pass (fuser/pass_split.h).
  struct Split {
    fuser::PassSplit plan;
    std::vector<std::unique_ptr<FusedKernel>> kernels;
  };
  std::shared_ptr<Variant> variant_for(const std::vector<fuser::TensorMeta>& metas, std::vector<nb::object>* inputs);
  std::shared_ptr<Variant> build_variant(const fuser::Layout& layout);
  // Makes `split_` where the kernel splits into passes (with `mu_` held); false where it does not.
  bool ensure_split();
  // The outputs of the kernel for these inputs (their strides in `metas`).
  std::vector<nb::object> run(std::vector<nb::object> inputs,
                              const std::vector<fuser::TensorMeta>& metas);
  std::vector<nb::object> run_by_passes(const std::vector<nb::object>& inputs);

  fuser::KernelDef k_;
  std::string name_;
  bool cuda_ = false;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Variant>> variants_;
  std::shared_ptr<Variant> last_;
  std::unique_ptr<Split> split_;  // made by the first variant that runs by passes
  bool passes_only_ = false;      // a column kernel that runs by passes whatever the layout
  // The input strides `last_` was specialised for without copying any input (calls with the same
  // strides skip the specialisation).
  std::vector<std::vector<int64_t>> last_strides_;
  // Per output: its sizes as a tuple, torch.empty_strided's first argument.
  std::vector<nb::object> out_sizes_;
  nb::object device_;  // the kernel's torch.device, made on the first call
  // The size of the axis a CPU kernel gathers along (it then reports an index out of range); -1.
  int64_t gather_size_ = -1;
};

// torch's current CUDA stream on `device`, as a CUstream.
void* current_cuda_stream(int device);

void bind_fused_kernel(nb::module_& m);

}  // namespace thunder::runtime
