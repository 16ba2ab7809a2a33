#include "core/job.h"

#include <cstdlib>

#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include "core/alloc.h"
#include "core/bench.h"
#include "core/driver.h"
#include "core/jobs/jobs.h"
#include "core/methods/registry.h"

namespace dfkd {

Json distill_defaults() {
  DistillConfig d;
  Json j;
  j["method"] = d.method;
  j["student"] = d.student;
  j["device"] = d.device;
  j["seed"] = double(d.seed);
  j["outDir"] = d.output.dir;
  j["evalEvery"] = d.eval_every;
  j["checkpointEvery"] = d.checkpoint_every;
  j["methods"] = methods_defaults();
  return j;
}

namespace {
bool runs_generator_loop(const std::string& kind, const Json& config) {
  std::string name = kind == "distill" ? config.str("method", DistillConfig().method)
                                       : kind == "bench" ? config.str("kind", "") : "";
  for (auto& m : methods()) if (name == m.name) return m.generator_loop;
  return false;
}
}  // namespace

Json run_job(const std::string& kind, const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel) {
  JobMemoryScope memory;  // large freed blocks are reused while any job runs (core/alloc.h)
  try {
    // TorchScript's profiling executor (on by default) re-specializes each graph after profiling
    // runs and moves differentiable regions into autodiff subgraphs with their own backward. For
    // the input-optimization loops (a backward to the input through the teacher every step) that
    // cost more than it gave in one A/B run of session 2 (DeepInversion on ResNet-8 at batch 256,
    // no committed results row: measure it with the speed benchmark's ours-jit / ours-nojit
    // variants). The generator loop went the other way in that run, so methods with
    // generator_loop (adversarial) keep it. Without it the
    // interpreter runs the graph's ops one by one under the ordinary autograd engine, as eager
    // does, minus Python. The setting is thread_local and each job has its own thread;
    // DFKD_JIT_OPTIMIZE=1/0 forces it.
    const char* opt = std::getenv("DFKD_JIT_OPTIMIZE");
    torch::jit::setGraphExecutorOptimize(opt && *opt ? std::string(opt) == "1" : runs_generator_loop(kind, config));
    if (kind == "distill") return distill_job(config, emit, cancel);
    if (kind == "evaluate") return evaluate_job(config);
    if (kind == "info") return info_job(config);
    if (kind == "stats") return stats_job(config, emit, cancel);
    if (kind == "bench") return bench_job(config, cancel);
    fail("E_CONFIG", "unknown job kind '" + kind + "'");
  } catch (...) {
    throw translate(std::current_exception(), "E_TORCH", "");
  }
}

}  // namespace dfkd
