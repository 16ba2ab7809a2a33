// Optimizers and their schedule: the one learning-rate schedule of dfkd (linear warm-up, then
// cosine to 0, or steps at milestones) serves the student, the generator and input synthesis.
#pragma once
#include <memory>

#include "core/common.h"
#include "core/config.h"

namespace dfkd {

// The learning rate at `step` (0-based) of a run of `total` steps: linear warm-up over the first
// `warmup` steps (lr0 * (step + 1) / warmup), then `schedule` (cosine: 0.5 (1 + cos(pi t)) lr0
// with t = (step - warmup) / (total - warmup), clamped to 1; step: lr0 * gamma^(milestones
// passed); none: lr0).
double scheduled_lr(Schedule schedule, double lr0, int64_t step, int64_t total, int64_t warmup,
                    const std::vector<int64_t>& milestones = {}, double gamma = 0.1);

// An optimizer with its schedule over `total` steps.
class Optim {
 public:
  Optim(std::vector<torch::Tensor> params, const OptimConfig& c, int64_t total_steps);
  void step_schedule(int64_t step);  // sets the lr for `step` (0-based)
  void set_total(int64_t total);     // a budgeted run re-sized mid-way (the schedule follows)
  void zero_grad() { opt_->zero_grad(); }
  void step() { opt_->step(); }
  double lr() const { return lr_now_; }
  void save(torch::serialize::OutputArchive& a) const { opt_->save(a); }
  void load(torch::serialize::InputArchive& a) { opt_->load(a); }

 private:
  std::unique_ptr<torch::optim::Optimizer> opt_;
  OptimConfig c_;
  double lr_now_;
  std::vector<int64_t> milestones_;
  int64_t total_;
};

std::vector<torch::Tensor> parameters_of(torch::jit::Module& m);

}  // namespace dfkd
