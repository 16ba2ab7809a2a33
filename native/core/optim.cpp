#include "core/optim.h"

#include <cmath>

namespace dfkd {

std::vector<torch::Tensor> parameters_of(torch::jit::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto p : m.parameters()) out.push_back(p);
  return out;
}

double scheduled_lr(Schedule schedule, double lr0, int64_t step, int64_t total, int64_t warmup,
                    const std::vector<int64_t>& milestones, double gamma) {
  if (warmup > 0 && step < warmup) return lr0 * double(step + 1) / double(warmup);
  double lr = lr0;
  if (schedule == Schedule::cosine) {
    double t = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
    lr = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, t))) * lr0;
  } else if (schedule == Schedule::step) {
    for (auto m : milestones) if (step >= m) lr *= gamma;
  }
  return lr;
}

Optim::Optim(std::vector<torch::Tensor> params, const OptimConfig& c, int64_t total)
    : c_(c), lr_now_(c.lr), total_(std::max<int64_t>(total, 1)) {
  if (!(c.lr > 0) || !std::isfinite(c.lr)) fail("E_CONFIG", "learning rate must be a positive number");
  if (c.optimizer == OptimKind::sgd) {
    opt_ = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
  } else {
    if (c.betas.size() != 2) fail("E_CONFIG", "betas must be [beta1, beta2]");
    opt_ = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(c.lr).betas({c.betas[0], c.betas[1]}).weight_decay(c.weight_decay));
  }
  set_total(total_);
}

void Optim::set_total(int64_t total) {
  total_ = std::max<int64_t>(total, 1);
  milestones_.clear();
  for (double m : c_.milestones) milestones_.push_back(m < 1.0 ? int64_t(m * total_) : int64_t(m));
}

void Optim::step_schedule(int64_t step) {
  lr_now_ = scheduled_lr(c_.schedule, c_.lr, step, total_, c_.warmup, milestones_, c_.gamma);
  for (auto& g : opt_->param_groups()) g.options().set_lr(lr_now_);
}

}  // namespace dfkd
