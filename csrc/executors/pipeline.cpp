// The compilation pipeline.
#include "executors/pipeline.h"

#include <cstdio>
#include <cstdlib>

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

}  // namespace thunder
