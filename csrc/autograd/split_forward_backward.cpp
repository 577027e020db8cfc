// Cutting the joint trace at the values the backward reads.
#include "autograd/split_forward_backward.h"

#include <unordered_set>

#include "autograd/rematerialize.h"
#include "ir/builder.h"
#include "ops/lang.h"
#include "transforms/substitute.h"

namespace thunder::autograd {

ForwardBackward split_forward_backward(const JointTrace& j0) {
  JointTrace j = j0;
  // Only what contributes to a gradient (a rule may have emitted more, e.g. recomputations whose
  // results nothing reads).
  {
    std::unordered_set<const TensorProxy*> live;
    for (const Value& g : j.input_grads) g.for_each_tensor([&](const TensorRef& t) { live.insert(t.get()); });
    std::vector<BSymRef> kept;
    for (auto it = j.backward.rbegin(); it != j.backward.rend(); ++it) {
      bool used = false;
      (*it)->output.for_each_tensor([&](const TensorRef& t) { used = used || live.count(t.get()); });
      if (!used) continue;
      for (const TensorRef& t : (*it)->input_tensors()) live.insert(t.get());
      kept.push_back(*it);
    }
    j.backward.assign(kept.rbegin(), kept.rend());
  }
  // An input the forward writes into holds its new value by the time the backward runs: the
  // backward reads a copy of its old value, taken at the start of the forward.
  std::unordered_set<const TensorProxy*> mutated = mutated_inputs(j.forward);
  if (!mutated.empty()) {
    std::unordered_set<const TensorProxy*> read;
    for (const BSymRef& b : j.backward) {
      for (const TensorRef& t : b->input_tensors()) {
        if (mutated.count(t.get())) read.insert(t.get());
      }
    }
    if (!read.empty()) {
      Builder b(j.forward);
      for (const BSymRef& s : j.backward) {
        s->output.for_each_tensor([&](const TensorRef& t) { b.unique_name(t->name()); });
      }
      for (const TensorRef& c : j.cotangents) {
        if (c) b.unique_name(c->name());
      }
      ProxyMap copies;
      for (const TensorRef& in : j.forward.inputs) {
        if (!read.count(in.get())) continue;
        copies[in.get()] = lang::call_t(b, prims::convert_element_type(), {Value(in), Value(in->dtype())});
      }
      std::vector<BSymRef> fwd = b.take();
      fwd.insert(fwd.end(), j.forward.bsyms.begin(), j.forward.bsyms.end());
      j.forward = j.forward.with_bsyms(std::move(fwd), j.forward.stage);
      for (BSymRef& s : j.backward) s = substitute(s, copies);
      for (Value& g : j.input_grads) g = substitute(g, copies);
    }
  }
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
