// A distill run: the typed config parsed once, a method from the registry, and the driver that
// runs it (setup, cancel, progress, eval cadence, checkpoint timing and commit policy, report).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/data.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/teacher.h"

namespace dfkd {

using EmitFn = std::function<void(const Json&)>;
using Clock = std::chrono::steady_clock;
double secs_since(Clock::time_point t);

// Throughput/ETA bookkeeping and throttled progress events.
class Progress {
 public:
  explicit Progress(const EmitFn& emit);
  void report(const std::string& phase, int64_t step, int64_t total, const Losses& l, double items_per_sec,
              double fraction_done, Json extra = Json());
 private:
  const EmitFn& emit_;
  Clock::time_point start_, last_;
};

class Method;

struct Run {
  const DistillConfig& cfg;
  const EmitFn& emit;
  const std::atomic<bool>& cancel;
  torch::Device device{torch::kCPU};
  std::unique_ptr<Rng> rng;
  std::unique_ptr<Teacher> teacher;
  torch::jit::Module student;
  std::vector<int64_t> shape;
  int64_t classes = 0;
  Dataset train, test;
  std::unique_ptr<Optim> opt;  // the student's (the method builds it)
  std::map<std::string, double> timings;
  Progress progress;
  int64_t steps = 0;        // student steps of the whole run (the method sets it)
  int64_t synthesized = 0;
  Losses last_student, last_synth;
  bool synthesizing = false;  // in input synthesis: a NaN there leaves the student's state good
  Json meta;                  // normalization etc. stored with the student
  Json evals = Json(Json::Array{});
  std::string good_ckpt;      // the latest checkpoint of a good state: written by this run, or resumed from
  Json budget;                // the budget's calibration and plan (plan.h); null when unbudgeted
  Clock::time_point started = Clock::now();  // the job's start: a budget counts from it

  Run(const DistillConfig& c, const EmitFn& e, const std::atomic<bool>& k) : cfg(c), emit(e), cancel(k), progress(e) {}

  void log(const std::string& msg);
  void phase(const std::string& p);
  void check_cancel(const std::string& where) const;  // E_CANCELLED "cancelled <where>"
  // The student step every method takes (train config: loss, temperature, CE weight); commits
  // a deferred checkpoint once the loss is finite.
  Losses student_step(const torch::Tensor& x, const torch::Tensor& y, int64_t step);
  void maybe_eval(int64_t step);  // every cfg.evalEvery student steps and at the last
  void save_samples(const torch::Tensor& x, const torch::Tensor& y);  // samples.safetensors + .png

  // RNG states (host, device) now, for "round restarts" in checkpoints.
  using RngState = std::pair<torch::Tensor, torch::Tensor>;
  RngState rng_state();
  void put_rng(Checkpoint& c, const RngState* state = nullptr);
  void load_rng(CheckpointReader& ck);

  // Checkpoints: `defer` holds the state in memory until the next student loss is finite.
  void save_checkpoint(Method& m, const char* reason = nullptr, bool defer = false);
  void commit_pending();
  bool pending = false;
  std::string pending_bytes;
  Json pending_state;
};

torch::Device pick_device(const std::string& d);
void set_threads(int64_t threads);  // > 0: torch::set_num_threads

// The distill job: returns the report (also written to cfg.output.report).
Json distill_job(const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel);

}  // namespace dfkd
