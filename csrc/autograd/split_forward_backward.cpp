// Cutting the joint trace at the values the backward reads.
#include "autograd/split_forward_backward.h"

#include <unordered_set>

namespace thunder::autograd {

ForwardBackward split_forward_backward(const JointTrace& j) {
  std::unordered_set<const TensorProxy*> forward_values;
  for (const TensorRef& t : j.forward.inputs) forward_values.insert(t.get());
  for (const BSymRef& b : j.forward.bsyms) {
    b->output.for_each_tensor([&](const TensorRef& t) { forward_values.insert(t.get()); });
  }
  std::unordered_set<const TensorProxy*> defined, seen;
  std::vector<TensorRef> saved;
  auto read = [&](const TensorRef& t) {
    if (defined.count(t.get()) || !forward_values.count(t.get())) return;
    if (seen.insert(t.get()).second) saved.push_back(t);
  };
  for (const BSymRef& b : j.backward) {
    for (const TensorRef& t : b->input_tensors()) read(t);
    b->output.for_each_tensor([&](const TensorRef& t) { defined.insert(t.get()); });
  }
  for (const Value& g : j.input_grads) g.for_each_tensor(read);

  ForwardBackward fb;
  fb.num_saved = saved.size();
  std::vector<Value> saved_values(saved.begin(), saved.end());
  fb.forward = j.forward;
  fb.forward.output = Value::tuple({j.forward.output, Value::tuple(saved_values)});
  fb.forward.stage = "forward";

  fb.backward.name = "backward";
  fb.backward.stage = "backward";
  fb.backward.inputs = saved;
  for (const TensorRef& c : j.cotangents) {
    fb.differentiable_leaves.push_back(c != nullptr);
    if (c) fb.backward.inputs.push_back(c);
  }
  fb.backward.bsyms = j.backward;
  fb.backward.output = Value::tuple(j.input_grads);
  return fb;
}

}  // namespace thunder::autograd
