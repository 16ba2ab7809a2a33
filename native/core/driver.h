// A distill run: the typed config parsed once, a method from the registry, and the driver that
// runs it (setup, cancel, progress, eval cadence, checkpoint timing and commit policy, report).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/data.h"
#include "core/dist.h"
#include "core/graphs.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/teacher.h"
#include "core/train.h"

namespace dfkd {

using EmitFn = std::function<void(const Json&)>;
using Clock = std::chrono::steady_clock;
double secs_since(Clock::time_point t);

// Throughput/ETA bookkeeping and throttled progress events (at most one per 0.1 s, and the last
// step). A step's losses are read from the device only when its event goes out: the one host
// sync of a reported step; the steps between events never wait for the device.
class Progress {
 public:
  explicit Progress(const EmitFn& emit);
  // Whether an event went out (its losses read, their guards checked: E_NAN).
  bool report(const std::string& phase, int64_t step, int64_t total, const StepLosses& l, double items_per_sec,
              double fraction_done, Json extra = Json());
  int64_t events() const { return events_; }
 private:
  const EmitFn& emit_;
  Clock::time_point start_, last_;
  int64_t events_ = 0;
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
  StepLosses last_student, last_synth;
  torch::Tensor student_finite;  // every student loss so far was finite (on the device)
  std::unique_ptr<StudentGraph> student_graph;  // cudaGraphs on a CUDA device
  // train.ema > 0: the student's weights averaged over its steps; the average is what is
  // evaluated, checkpointed and saved (train.h).
  std::unique_ptr<WeightAverage> average;
  torch::jit::Module& result() { return average ? average->module() : student; }  // the student a run hands out
  // A data-parallel run (WORLD_SIZE > 1): this process's rank in the group. Rank 0 leads: it plans
  // the budget, decides re-sizing, evaluates and writes the student, report and samples; every
  // rank writes its own checkpoint (its share of the bank).
  std::unique_ptr<Dist> dist;
  bool sync_bn = false;  // a data-parallel run: a zoo student's BatchNorm normalizes over the group (dist.h)
  bool lead() const { return !dist || dist->rank() == 0; }
  std::function<void()> agree_cancel;  // distributed: the ranks agree on a cancel between units
  bool synthesizing = false;  // in input synthesis: a NaN there leaves the student's state good
  Json meta;                  // normalization etc. stored with the student
  Json evals = Json(Json::Array{});
  std::string good_ckpt;      // the latest checkpoint of a good state: written by this run, or resumed from
  Json budget;                // the budget's calibration and plan (plan.h); null when unbudgeted
  Clock::time_point started = Clock::now();  // the job's start: a budget counts from it
  double eval_seconds = 0;    // spent in maybe_eval's evaluations (not in an eval's `elapsed`)

  Run(const DistillConfig& c, const EmitFn& e, const std::atomic<bool>& k) : cfg(c), emit(e), cancel(k), progress(e) {}

  void log(const std::string& msg);
  void phase(const std::string& p);
  void check_cancel(const std::string& where) const;  // E_CANCELLED "cancelled <where>"
  // The student step every method takes (train config: loss, temperature, CE weight), its
  // losses guarded by the running finiteness of every student loss.
  StepLosses student_step(const torch::Tensor& x, const torch::Tensor& y, int64_t step);
  // After a forward of the student in train mode outside its step (the adversarial terms of the
  // generator and of fast, ADI's competition term): in a data-parallel run whose student's BatchNorm
  // is not synchronized, that forward moved its running statistics by this rank's share only, so
  // they are averaged over the ranks, as after a step (check_same would find the replicas apart).
  void student_forward_done();
  // A progress event (Progress::report); one that read the student's losses (any phase but
  // synthesis) confirms that the state since a deferred checkpoint is good: it is committed.
  void report(const std::string& phase, int64_t step, int64_t total, const StepLosses& l, double items_per_sec,
              double fraction_done, Json extra = Json());
  void maybe_eval(int64_t step);  // every cfg.evalEvery student steps and at the last
  void save_samples(const torch::Tensor& x, const torch::Tensor& y);  // samples.safetensors + .png

  // RNG states (host, device) now, for "round restarts" in checkpoints.
  using RngState = std::pair<torch::Tensor, torch::Tensor>;
  RngState rng_state();
  void put_rng(Checkpoint& c, const RngState* state = nullptr);
  void load_rng(CheckpointReader& ck);

  // Checkpoints: `defer` holds the state in memory until a later read of the student's losses
  // finds every one finite (a progress event, or the end of the run).
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
