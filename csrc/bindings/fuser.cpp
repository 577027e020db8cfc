// The fusion executor's hooks and bindings.
#include "bindings/fuser.h"

#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <deque>
#include <memory>
#include <unordered_map>

#include "core/error.h"
#include "executors/executor.h"
#include "fuser/cpu_backend.h"
#include "fuser/cuda_backend.h"
#include "fuser/disk_cache.h"
#include "fuser/segment.h"
#include "runtime/fused_kernel.h"
#include "runtime/objects.h"

namespace nb = nanobind;

namespace thunder::bindings {

using namespace nb::literals;

namespace {

// Whether one kernel does more than the torch call it replaces: a reduction, or random numbers.
// (A lone bf16 gelu as a generated kernel measured the same as torch's: 32 against 31 us on an
// H200 at 8192 x 3072.)
bool worth_a_kernel_alone(const std::vector<BSymRef>& prims) {
  for (const BSymRef& p : prims) {
    if (p->sym->has_tag(kTagReduction)) return true;
  }
  return fuser::draws_random(prims);
}

// Never destroyed: the hooks hold Python objects that must not be released after finalization.
std::deque<std::unique_ptr<Executor>>& executors() {
  static auto* e = new std::deque<std::unique_ptr<Executor>>();
  return *e;
}
std::deque<std::unique_ptr<Symbol>>& fusion_symbols() {
  static std::deque<std::unique_ptr<Symbol>> s;
  return s;
}

// Fusion symbols by (name, kernel signature): a region fused again (by a new jit of the same function,
// another cache entry) reuses its symbol and FusedKernel, so neither they nor the object table grow
// with the number of jits. Touched with the GIL held.
std::unordered_map<std::string, const Symbol*>& fusion_by_signature() {
  static auto* m = new std::unordered_map<std::string, const Symbol*>();
  return *m;
}

// One fused kernel as a kFusion bound symbol calling a FusedKernel.
BSymRef make_fusion(const std::string& name, const fuser::Segment& seg, int index) {
  std::string sym_name = name + std::to_string(index);
  std::vector<Value> args(seg.inputs.begin(), seg.inputs.end());
  Value out = seg.outputs.size() == 1 ? Value(seg.outputs[0])
                                      : Value::tuple(std::vector<Value>(seg.outputs.begin(), seg.outputs.end()));
  const std::string key = sym_name + "\n" + fuser::kernel_signature(*seg.kernel);
  auto found = fusion_by_signature().find(key);
  if (found != fusion_by_signature().end()) {
    return BoundSymbol::make(found->second, std::move(args), std::move(out), seg.prims);
  }
  auto* fused = new runtime::FusedKernel(*seg.kernel, sym_name);
  fused->prefetch();
  nb::object kernel = nb::cast(fused, nb::rv_policy::take_ownership);
  auto s = std::make_unique<Symbol>();
  s->name = sym_name;
  s->kind = SymbolKind::kFusion;
  std::string sig;
  for (size_t i = 0; i < seg.inputs.size(); ++i) sig += (i ? ", a" : "a") + std::to_string(i);
  s->signature = Signature::parse(sig);
  s->callable = runtime::register_object(kernel);
  s->executor = name;
  fusion_symbols().push_back(std::move(s));
  fusion_by_signature()[key] = fusion_symbols().back().get();
  return BoundSymbol::make(fusion_symbols().back().get(), std::move(args), std::move(out), seg.prims);
}

// The CUDA source of `kernel` for contiguous inputs, and its launch.
std::string contiguous_cuda_source(const runtime::FusedKernel& kernel, int smem_limit,
                                   fuser::CudaLaunch* launch) {
  const fuser::KernelDef& k = kernel.kernel();
  fuser::Layout layout;
  if (!fuser::contiguous_layout(k, &layout))
    throw thunder::Error("fuser: no layout for contiguous inputs");
  return fuser::cuda_source(k, layout, launch, smem_limit);
}

}  // namespace

void bind_fuser(nb::module_& m) {
  runtime::bind_fused_kernel(m);

  m.def("fuser_available", [](const std::string& device) {
    std::string why;
    bool ok;
    if (device == "cpu") {
      ok = !fuser::cpu_compiler(&why).empty();
    } else {
      ok = fuser::cuda_available(&why);
    }
    return std::make_pair(ok, why);
  });

  // `available(device_type)` says (once per device type, asked lazily) whether kernels can be built.
  // `min_cpu_numel`: a region on the CPU whose tensors all have fewer elements is left to torch (a
  // compile costs ~0.1 s; a kernel over a few elements saves microseconds per call).
  // `allow_requires_grad`: tensors that require grad may be fused (for programs run with grad
  // disabled, where torch's autograd records nothing).
  m.def("make_fusion_executor", [](const std::string& name, bool cpu, bool cuda, nb::object available,
                                   int64_t min_cpu_numel, bool allow_requires_grad) {
    auto ex = std::make_unique<Executor>(name);
    FusionHooks hooks;
    auto state = std::make_shared<std::array<int, 2>>(std::array<int, 2>{cpu ? -1 : 0, cuda ? -1 : 0});
    // Whether kernels can be built for a device type (asked once per type).
    auto runs_on = [state, available](DeviceType d) {
      int slot = d == DeviceType::kCPU ? 0 : d == DeviceType::kCUDA ? 1 : -1;
      if (slot < 0) return false;
      int& s = (*state)[slot];
      if (s < 0) {
        nb::gil_scoped_acquire gil;
        s = nb::cast<bool>(available(slot == 0 ? "cpu" : "cuda")) ? 1 : 0;
      }
      return s == 1;
    };
    hooks.runs_on = runs_on;
    hooks.can_fuse = [runs_on, allow_requires_grad](const BoundSymbol& b) {
      bool ok = true;
      auto check = [&](const TensorRef& t) {
        // Tensors torch's autograd must see stay with torch (fused kernels record no graph).
        if (t->requires_grad() && !allow_requires_grad) ok = false;
        if (!runs_on(t->device().type)) ok = false;
      };
      // uniform_philox's state is host data on the CPU whatever device the kernel runs on.
      const bool random = b.sym->is_prim() && b.sym->name == "uniform_philox";
      for (size_t i = 0; i < b.args.size(); ++i) {
        if (!(random && i == 1)) b.args[i].for_each_tensor(check);
      }
      b.output.for_each_tensor(check);
      return ok && fuser::prim_fusible(b);
    };
    hooks.min_cpu_numel = min_cpu_numel;
    hooks.worth_fusing = [min_cpu_numel](const std::vector<BSymRef>& prims) {
      return !fuser::cpu_region_below(prims, min_cpu_numel);
    };
    hooks.fuse = [name, min_cpu_numel](const Region& r, FusionContext& ctx) -> std::optional<std::vector<BSymRef>> {
      std::vector<BSymRef> prims;
      for (const BSymRef& marker : r.bsyms) {
        std::vector<BSymRef> p = flatten_to_prims(marker->subsymbols.at(0));
        prims.insert(prims.end(), p.begin(), p.end());
      }
      // A lone elementwise torch operation is one torch kernel already.
      if (r.bsyms.size() == 1 && !worth_a_kernel_alone(prims)) return std::nullopt;
      // Views and contiguous() alone are torch's: its contiguous() returns the input itself when
      // it is laid out so already (attention's output, in q's layout, transposed back to
      // [B, T, H, D]), where a kernel would copy it. The views run as primitives, as in a region
      // left to torch otherwise (a reshape copies where a view of these strides cannot be).
      if (std::all_of(r.bsyms.begin(), r.bsyms.end(), [](const BSymRef& m) {
            return m->subsymbols.at(0)->sym->has_tag(kTagView);
          })) {
        std::vector<BSymRef> out;
        nb::gil_scoped_acquire gil;
        for (const BSymRef& m : r.bsyms) {
          const BSymRef& op = m->subsymbols.at(0);
          std::vector<BSymRef> parts =
              op->sym->name == "contiguous" ? std::vector<BSymRef>{op} : flatten_to_prims(op);
          for (const BSymRef& p : parts) {
            std::vector<BSymRef> c = ctx.claim(p);
            out.insert(out.end(), c.begin(), c.end());
          }
        }
        return out;
      }
      if (fuser::cpu_region_below(prims, min_cpu_numel)) return std::nullopt;
      std::vector<fuser::Segment> segs = fuser::segment_region(prims, r.outputs, ctx.fresh_name);
      std::vector<BSymRef> out;
      nb::gil_scoped_acquire gil;
      for (const fuser::Segment& seg : segs) {
        if (!seg.kernel) {
          for (const BSymRef& p : seg.prims) {
            std::vector<BSymRef> c = ctx.claim(p);
            out.insert(out.end(), c.begin(), c.end());
          }
          continue;
        }
        out.push_back(make_fusion(name, seg, ctx.next_index++));
      }
      return out;
    };
    ex->set_fusion(std::move(hooks));
    executors().push_back(std::move(ex));
    return executors().back().get();
  }, nb::arg("name"), nb::arg("cpu"), nb::arg("cuda"), nb::arg("available"), nb::arg("min_cpu_numel") = 0,
     nb::arg("allow_requires_grad") = false, nb::rv_policy::reference);

  m.def("fuser_cache_stats", [] {
    const fuser::CacheStats& s = fuser::cache_stats();
    nb::dict d;
    d["compiles"] = s.compiles;
    d["disk_hits"] = s.disk_hits;
    d["memory_hits"] = s.memory_hits;
    d["rejected"] = s.rejected;
    d["compile_seconds"] = s.compile_seconds;
    return d;
  });
  // The CUDA generator and NVRTC without a device: the CUDA source of a fused kernel (whatever its
  // device) for contiguous inputs, with its launch shape; and a compile check of a source.
  m.def(
      "fuser_cuda_source",
      [](const runtime::FusedKernel& kernel, int smem_limit) {
        fuser::CudaLaunch launch;
        std::string src = contiguous_cuda_source(kernel, smem_limit, &launch);
        return std::make_tuple(src, launch.grid, launch.block, launch.shared_bytes);
      },
      "kernel"_a, "smem_limit"_a = fuser::kDefaultSmemLimit);
  auto launch_of = [](const runtime::FusedKernel& kernel, int smem_limit) {
    fuser::CudaLaunch launch;
    contiguous_cuda_source(kernel, smem_limit, &launch);
    return launch;
  };
  m.def(
      "fuser_cuda_workspace",
      [launch_of](const runtime::FusedKernel& kernel, int smem_limit) {
        return launch_of(kernel, smem_limit).workspace_bytes;
      },
      "kernel"_a, "smem_limit"_a = fuser::kDefaultSmemLimit,
      "The bytes of scratch memory the kernel for contiguous inputs takes after its outputs.");
  m.def(
      "fuser_cuda_workspace_counters",
      [launch_of](const runtime::FusedKernel& kernel, int smem_limit) {
        return launch_of(kernel, smem_limit).counter_bytes;
      },
      "kernel"_a, "smem_limit"_a = fuser::kDefaultSmemLimit,
      "The leading bytes of that scratch memory that are counters: zero when the kernel starts, "
      "and zero again when it ends.");
  m.def(
      "fuser_cuda_finish",
      [launch_of](const runtime::FusedKernel& kernel, int smem_limit) -> nb::object {
        fuser::CudaLaunch l = launch_of(kernel, smem_limit);
        if (l.finish_name.empty()) return nb::none();
        return nb::make_tuple(l.finish_name, l.finish_grid, l.finish_block);
      },
      "kernel"_a, "smem_limit"_a = fuser::kDefaultSmemLimit,
      "(name, grid, block) of the second kernel of the source that combines the first's partial "
      "results per column (reductions over rows per column), launched after it with the same "
      "arguments; None for kernels without one.");
  m.def("fuser_nvrtc_compile", [](const std::string& source, int arch) {
    std::string log, why;
    bool ok = fuser::nvrtc_compile_check(source, arch, &log, &why);
    return std::make_tuple(ok, log, why);
  });
  m.def("fuser_nvrtc_version", &fuser::nvrtc_version);
  m.def("fuser_cpu_flags", [] { return fuser::cpu_compile_flags(); });
  m.def("fuser_cuda_load", [](const std::string& source, int device) {
    fuser::cuda_load(source, device, fuser::CudaLaunch{});
  });
  m.def("fuser_cache_dir", [] { return fuser::cache_dir(); });
  m.def("set_fuser_threads", &fuser::set_cpu_threads);
  m.def("fuser_threads", &fuser::cpu_threads);
}

}  // namespace thunder::bindings
