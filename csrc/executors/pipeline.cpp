// The compilation pipeline.
#include "executors/pipeline.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <unordered_set>
#include <vector>

#include "autograd/grad_rule.h"
#include "autograd/rematerialize.h"
#include "autograd/split_forward_backward.h"
#include "autograd/vjp.h"
#include "executors/fusion_pass.h"
#include "executors/group_casts.h"
#include "transforms/cse.h"
#include "transforms/dce.h"
#include "transforms/decompose.h"
#include "transforms/draw_dropout.h"
#include "transforms/functionalize.h"

namespace thunder {

namespace {

bool dump_enabled(const std::string& stage) {
  const char* env = std::getenv("THUNDER_DUMP");
  if (!env) return false;
  std::string s = std::string(",") + env + ",";
  return s.find(",all,") != std::string::npos || s.find("," + stage + ",") != std::string::npos;
}

// Whether a fusion executor runs on the device of the program (of its first input): if one does,
// the smallest CPU region (in elements) that such an executor fuses.
std::optional<int64_t> fuser_on_program(const Trace& t,
                                        const std::vector<const Executor*>& executors) {
  DeviceType device = t.inputs.empty() ? DeviceType::kCPU : t.inputs[0]->device().type;
  std::optional<int64_t> min_cpu_numel;
  for (const Executor* e : executors) {
    if (e->is_fusion() && (!e->fusion().runs_on || e->fusion().runs_on(device))) {
      min_cpu_numel =
          std::min(min_cpu_numel.value_or(e->fusion().min_cpu_numel), e->fusion().min_cpu_numel);
    }
  }
  return min_cpu_numel;
}

}  // namespace

PipelineResult run_pipeline(const Trace& captured, const std::vector<const Executor*>& executors,
                            const PipelineOptions& options) {
  PipelineResult r;
  auto stage = [&](const char* name, auto&& pass) {
    auto t0 = std::chrono::steady_clock::now();
    Trace t = pass(r.traces.back());
    t.stage = name;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.times.emplace_back(name, secs);
    if (dump_enabled(name)) std::fprintf(stderr, "%s\n", t.python().c_str());
    r.traces.push_back(std::move(t));
  };
  r.traces.push_back(captured);
  r.traces.back().stage = "captured";
  stage("functionalize", functionalize);
  stage("dce", dce);
  stage("cse", cse);
  if (options.fuse_random && fuser_on_program(r.traces.back(), executors)) {
    stage("fuse_random", [](const Trace& t) { return draw_dropout_in_kernels(t); });
  }
  if (options.decompose_to_prims) stage("decompose", decompose);
  stage("claim", [&](const Trace& t) { return claim_executors(t, executors); });
  stage("fusion", [&](const Trace& t) { return fuse_regions(t, executors); });
  stage("final", dce);
  return r;
}

namespace {

// decompose, keeping the symbols that have no decomposition (the backward kernels gradient rules
// emit run as they are).
void inline_available(const BSymRef& b, std::vector<BSymRef>& out) {
  if (b->sym->kind != SymbolKind::kComposite || b->subsymbols.empty()) {
    out.push_back(b);
    return;
  }
  for (const BSymRef& s : b->subsymbols) inline_available(s, out);
}

// Each value defined once (first_definitions: a backward may hold a composite beside one of its
// own primitives, both recomputed).
Trace decompose_available(const Trace& t) {
  std::vector<BSymRef> flat;
  for (const BSymRef& b : t.bsyms) inline_available(b, flat);
  return t.with_bsyms(first_definitions(flat), "decompose");
}

// Saved values the optimised backward no longer reads (their readers were fused, recomputed or
// found dead after the split) are dropped from the forward's outputs and the backward's inputs, so
// nothing keeps them alive until the backward runs. Saved value i is the forward's i-th saved
// output and the backward's i-th input (the passes may have renamed either side).
void prune_saved(TrainingPipelineResult& tr) {
  Trace& fwd = tr.forward.traces.back();
  Trace& bwd = tr.backward.traces.back();
  const size_t n = tr.num_saved;
  if (!fwd.output.is_seq() || fwd.output.items().size() != 2 || bwd.inputs.size() < n) return;
  const std::vector<Value>& saved = fwd.output.items()[1].items();
  if (saved.size() != n) return;
  std::unordered_set<const TensorProxy*> read;
  for (const BSymRef& s : bwd.bsyms) {
    for (const TensorRef& t : s->input_tensors()) read.insert(t.get());
  }
  bwd.output.for_each_tensor([&](const TensorRef& t) { read.insert(t.get()); });
  std::vector<TensorRef> inputs;
  std::vector<Value> kept;
  for (size_t i = 0; i < bwd.inputs.size(); ++i) {
    if (i < n && !read.count(bwd.inputs[i].get())) continue;
    inputs.push_back(bwd.inputs[i]);
    if (i < n) kept.push_back(saved[i]);
  }
  if (kept.size() == n) return;
  tr.num_saved = kept.size();
  bwd.inputs = std::move(inputs);
  Value forward_out = fwd.output.items()[0];
  fwd.output = Value::tuple({forward_out, Value::tuple(kept)});
  fwd = dce(fwd);  // what only the dropped values needed
  fwd.stage = "final";
}

}  // namespace

TrainingPipelineResult run_training_pipeline(const Trace& captured,
                                             const std::vector<const Executor*>& executors,
                                             const PipelineOptions& options) {
  TrainingPipelineResult tr;
  auto stage_in = [&](PipelineResult& r, const char* name, auto&& pass) {
    auto t0 = std::chrono::steady_clock::now();
    Trace t = pass(r.traces.back());
    t.stage = name;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.times.emplace_back(name, secs);
    if (dump_enabled(name)) std::fprintf(stderr, "%s\n", t.python().c_str());
    r.traces.push_back(std::move(t));
  };
  PipelineResult& f = tr.forward;
  PipelineResult& b = tr.backward;
  f.traces.push_back(captured);
  f.traces.back().stage = "captured";
  stage_in(f, "functionalize", functionalize);
  stage_in(f, "dce", dce);
  stage_in(f, "cse", cse);
  const std::optional<int64_t> fuser = fuser_on_program(f.traces.back(), executors);
  const bool fusing = fuser.has_value();
  if (options.fuse_random && fusing) {
    stage_in(f, "fuse_random", [](const Trace& t) {
      return draw_dropout_in_kernels(t, {.skip_inputs_requiring_grad = true});
    });
  }
  stage_in(f, "forward", [&](const Trace& t) {
    // Gradient rules may write composites for a fusion executor when one runs on the program's
    // device.
    autograd::FusingScope scope(fusing, options.fuse_random, fuser.value_or(0));
    autograd::JointTrace joint = autograd::vjp(t);
    autograd::RematOptions ro;
    ro.enabled = options.rematerialize;
    autograd::ForwardBackward fb =
        autograd::split_forward_backward(autograd::rematerialize(joint, ro));
    tr.num_saved = fb.num_saved;
    tr.differentiable_leaves = fb.differentiable_leaves;
    b.traces.push_back(std::move(fb.backward));
    return fb.forward;
  });
  if (dump_enabled("backward")) std::fprintf(stderr, "%s\n", b.traces.back().python().c_str());
  for (PipelineResult* r : {&f, &b}) {
    stage_in(*r, "dce", dce);
    stage_in(*r, "cse", cse);
    if (options.decompose_to_prims) stage_in(*r, "decompose", decompose_available);
    stage_in(*r, "claim", [&](const Trace& t) { return claim_executors(t, executors); });
    stage_in(*r, "fusion", [&](const Trace& t) { return fuse_regions(t, executors); });
    // Training programs run with grad mode off: a multi-tensor copy records no graph it should.
    stage_in(*r, "group_casts", [&](const Trace& t) { return group_input_casts(t, executors); });
    stage_in(*r, "final", dce);
  }
  prune_saved(tr);
  return tr;
}

}  // namespace thunder
