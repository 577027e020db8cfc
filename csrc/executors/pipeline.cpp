// The compilation pipeline.
#include "executors/pipeline.h"

#include <cstdio>
#include <cstdlib>

#include "autograd/rematerialize.h"
#include "autograd/split_forward_backward.h"
#include "autograd/vjp.h"
#include "executors/fusion_pass.h"
#include "transforms/cse.h"
#include "transforms/dce.h"
#include "transforms/decompose.h"
#include "transforms/functionalize.h"

namespace thunder {

namespace {

bool dump_enabled(const std::string& stage) {
  const char* env = std::getenv("THUNDER_DUMP");
  if (!env) return false;
  std::string s = std::string(",") + env + ",";
  return s.find(",all,") != std::string::npos || s.find("," + stage + ",") != std::string::npos;
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

Trace decompose_available(const Trace& t) {
  std::vector<BSymRef> out;
  for (const BSymRef& b : t.bsyms) inline_available(b, out);
  return t.with_bsyms(std::move(out), "decompose");
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
  stage_in(f, "forward", [&](const Trace& t) {
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
    stage_in(*r, "final", dce);
  }
  return tr;
}

}  // namespace thunder
