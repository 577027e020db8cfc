#include "executors/cuda_graphs.h"

#include <functional>
#include <unordered_map>

namespace thunder {

namespace {

// torch's fused attention kernels (flash, memory-efficient, cuDNN) and their backwards: they return
// their dropout's random state as CPU scalars when run normally and as CUDA tensors, advanced per
// replay, while captured; the backwards read them on the device. Their CPU tensors are no host
// work.
bool torch_attention(const Symbol* s) {
  return s->name.find("_scaled_dot_product_") != std::string::npos;
}

std::string op_name(const BoundSymbol& b) {
  std::string s = "'" + b.sym->qualname() + "'";
  if (!b.source.empty()) s += " (" + b.source + ")";
  return s;
}

}  // namespace

CudaGraphPlan plan_cuda_graph(const Trace& trace) {
  CudaGraphPlan plan;
  int device = -2;  // not seen yet
  // Whether `t` keeps the program on one CUDA device; records the device of the first tensor.
  auto on_device = [&](const TensorRef& t) {
    Device d = t->device();
    if (d.type != DeviceType::kCUDA) return false;
    int index = d.index < 0 ? 0 : d.index;
    if (device == -2) device = index;
    return index == device;
  };
  // Tensors read only by torch's attention kernels (which may hold their CPU random state).
  std::unordered_map<const TensorProxy*, bool> attention_only;
  for (const BSymRef& b : trace.bsyms) {
    for (const TensorRef& t : b->input_tensors()) {
      auto [it, fresh] = attention_only.emplace(t.get(), true);
      it->second = it->second && torch_attention(b->sym);
    }
  }
  // A CPU tensor torch's attention kernels hold (read by nothing else; `unread_ok`: or by nothing).
  auto attention_state = [&](const TensorRef& t, bool unread_ok) {
    auto it = attention_only.find(t.get());
    return t->device().type == DeviceType::kCPU &&
           (it == attention_only.end() ? unread_ok : it->second);
  };
  for (const TensorRef& t : trace.inputs) {
    if (!attention_state(t, false) && !on_device(t)) {
      plan.blocker = "input '" + t->name() + "' is a " + t->device().str() +
                     " tensor; a CUDA graph replays only the work of one CUDA device";
      return plan;
    }
  }
  std::function<void(const BoundSymbol&, const BoundSymbol&)> visit = [&](const BoundSymbol& top,
                                                                          const BoundSymbol& b) {
    if (!plan.blocker.empty()) return;
    if (b.sym == &prims::philox_state()) {
      plan.blocker = op_name(top) +
                     " draws its random state on the host (fuse_random=True): every "
                     "replay would draw the same numbers";
      return;
    }
    // (An executor's symbol carries its primitive's tags; the primitive below it is checked.)
    if (b.subsymbols.empty() && b.sym->has_tag(kTagDontDce) && b.sym != &prims::copy_()) {
      plan.blocker = op_name(top) + " has a side effect on the host that a replay would not repeat";
      return;
    }
    if (b.sym == &prims::copy_() && b.args.size() > 1 && b.args[1].is_tensor()) {
      const TensorRef& dst = b.args[1].as_tensor();
      for (size_t i = 0; i < trace.inputs.size(); ++i) {
        if (trace.inputs[i] == dst) plan.written_inputs.push_back(static_cast<int>(i));
      }
    }
    for (const BSymRef& s : b.subsymbols) visit(top, *s);
  };
  for (const BSymRef& b : trace.bsyms) {
    visit(*b, *b);
    for (const TensorRef& t : b->input_tensors()) {
      if (plan.blocker.empty() && !attention_state(t, false) && !on_device(t)) {
        plan.blocker = op_name(*b) + " reads a " + t->device().str() + " tensor";
      }
    }
    for (const TensorRef& t : b->output_tensors()) {
      if (plan.blocker.empty() && !(torch_attention(b->sym) && attention_state(t, true)) &&
          !on_device(t)) {
        plan.blocker = op_name(*b) + " makes a " + t->device().str() + " tensor";
      }
    }
    if (!plan.blocker.empty()) break;
  }
  if (plan.blocker.empty()) {
    plan.device = device < 0 ? 0 : device;
  } else {
    plan.written_inputs.clear();
  }
  return plan;
}

}  // namespace thunder
