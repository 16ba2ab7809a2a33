// The input-optimization loop of deepinversion, statistical, spectral and noise: Adam on a batch
// of inputs from Gaussian noise, jitter and flip each iteration, the best batch kept.
#include <cmath>

#include "core/synth/synth.h"

namespace dfkd {

using losses::Term;
using losses::TermInput;

InputSynthesizer::InputSynthesizer(Teacher& teacher, const SynthConfig& c, std::vector<LayerTarget> layers,
                                   std::vector<int64_t> shape, int64_t classes)
    : teacher_(teacher), cfg_(c), layers_(std::move(layers)), shape_(std::move(shape)), classes_(classes) {
  if (c.batch < 1) fail("E_CONFIG", "synthesis batchSize must be at least 1");
  // iterations 0 keeps the Gaussian noise the optimization starts from (the "noise" baseline)
  if (c.iterations < 0) fail("E_CONFIG", "synthesis iterations must not be negative");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) fail("E_CONFIG", "synthesis lr must be a positive number");
  if (c.betas.size() != 2) fail("E_CONFIG", "synthesis betas must be [beta1, beta2]");
  auto bn = teacher.bn_taps();
  if (c.bn > 0 && bn.empty())
    fail("E_NO_BN", "the BN statistics loss needs a teacher with BatchNorm layers; this teacher has none. "
                    "Compute statistics with `dfkd stats` and use method 'statistical' with that file");
  const bool power = c.spectrum == Spectrum::power, squared = c.squared;
  if (c.ce > 0) terms_.push_back({"ce", c.ce, [](const TermInput& in) { return torch::cross_entropy_loss(in.teacher.logits, in.y); }});
  if (c.bn > 0) {
    const double first = c.first_bn_multiplier;
    terms_.push_back({"bn", c.bn, [this, bn, first](const TermInput& in) {
                        return losses::bn_sum(in.teacher.acts, teacher_.taps(), bn, first);
                      }});
  }
  if (c.feature > 0)
    terms_.push_back({"feature", c.feature, [this, squared](const TermInput& in) {
                        torch::Tensor f = torch::zeros({}, in.x.options());
                        for (auto& l : layers_) f = f + l.weight * losses::feature_stats(in.teacher.acts[l.tap], l.mean, l.std, squared);
                        return f;
                      }});
  if (c.spectral > 0)
    terms_.push_back({"spectral", c.spectral, [this, power](const TermInput& in) {
                        torch::Tensor f = torch::zeros({}, in.x.options());
                        for (auto& l : layers_) {
                          auto& a = in.teacher.acts[l.tap];
                          if (l.spectrum.defined())  // relative squared distance to the stored spectrum
                            f = f + l.weight * losses::spectral(a, l.spectrum, power) / l.spectrum.pow(2).mean();
                          else if (l.bn_mean.defined() && a.dim() == 4)
                            f = f + l.weight * losses::spectral_bn(a, l.bn_mean, l.bn_var);
                        }
                        return f;
                      }});
  if (c.tv_l1 > 0) terms_.push_back({"tvL1", c.tv_l1, [](const TermInput& in) { return losses::tv(in.x).first; }});
  if (c.tv_l2 > 0) terms_.push_back({"tvL2", c.tv_l2, [](const TermInput& in) { return losses::tv(in.x).second; }});
  if (c.l2 > 0) terms_.push_back({"l2", c.l2, [](const TermInput& in) { return losses::l2_prior(in.x); }});
  if (c.adi > 0) {
    const double T = c.adi_temperature;
    terms_.push_back({"adi", c.adi, [T](const TermInput& in) {
                        if (!in.student) return torch::Tensor();
                        return losses::adi_competition(run_logits(*in.student, in.x, "student"), in.teacher.logits, T);
                      }});
  }
}

torch::Tensor balanced_targets(int64_t batch, int64_t classes, Rng& rng, torch::Device dev) {
  auto lopts = torch::TensorOptions().dtype(torch::kLong).device(dev);
  auto y = torch::arange(batch, lopts).remainder(classes);
  return y.index_select(0, torch::randperm(batch, rng.device, lopts));
}

void BestBatch::offer(const torch::Tensor& loss, const torch::Tensor& x) {
  torch::NoGradGuard ng;
  if (!x_.defined()) {
    x_ = x.detach().clone();
    loss_ = torch::full({}, INFINITY, loss.options());
  }
  auto better = loss.detach() < loss_;
  loss_ = torch::where(better, loss.detach(), loss_);
  x_.copy_(torch::where(better, x.detach(), x_));
}

torch::Tensor jitter_flip(const torch::Tensor& x, int64_t jitter, bool flip, Rng& rng) {
  torch::Tensor out = x;
  // Host RNG draws, read from host memory (no scalar read of a tensor: no sync to count).
  if (jitter > 0) {
    auto off = torch::randint(-jitter, jitter + 1, {2}, rng.host, torch::kLong);
    const int64_t* o = off.data_ptr<int64_t>();
    out = torch::roll(out, {o[0], o[1]}, {2, 3});
  }
  if (flip && *torch::rand({1}, rng.host).data_ptr<float>() < 0.5f) out = out.flip({3});
  return out;
}

std::pair<torch::Tensor, StepLosses> InputSynthesizer::loss(const torch::Tensor& x, const torch::Tensor& y,
                                                            torch::jit::Module* student) {
  StepLosses parts;
  auto out = teacher_.forward_tapped(x);
  auto total = losses::compose(terms_, TermInput{x, y, out, student}, x, parts, "total");
  return {total, parts};
}

SynthResult InputSynthesizer::run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                                  const ProgressFn& progress) {
  auto dev = teacher_.device();
  std::vector<int64_t> full{cfg_.batch};
  full.insert(full.end(), shape_.begin(), shape_.end());
  auto y = balanced_targets(cfg_.batch, classes_, rng, dev);
  auto x = torch::randn(full, rng.device, torch::TensorOptions().device(dev)).requires_grad_(true);
  torch::optim::Adam opt({x}, torch::optim::AdamOptions(cfg_.lr).betas({cfg_.betas[0], cfg_.betas[1]}));
  bool student_training = student && student->is_training();
  if (student) student->eval();
  StepLosses last;
  BestBatch best;
  torch::Tensor finite;
  for (int64_t it = 0; it < cfg_.iterations; ++it) {
    if (cancel.load()) {
      if (student_training) student->train();
      fail("E_CANCELLED", "cancelled");
    }
    if (cfg_.lr_schedule == Schedule::cosine) {  // DeepInversion lr_cosine_policy(lr, warmup=100, iters)
      const int64_t warm = std::min<int64_t>(100, cfg_.iterations / 10);
      double lr = it < warm ? cfg_.lr * (it + 1) / warm
                            : 0.5 * (1 + std::cos(M_PI * double(it - warm) / double(std::max<int64_t>(1, cfg_.iterations - warm)))) * cfg_.lr;
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
    }
    torch::Tensor xin = jitter_flip(x, cfg_.jitter, cfg_.flip, rng);
    opt.zero_grad();
    auto [total, parts] = loss(xin, y, student);
    finite = still_finite(finite, total);
    parts.guard(finite, "the synthesis loss", "lower the synthesis lr or the loss weights");
    best.offer(total, x);
    total.backward();
    opt.step();
    if (cfg_.clip > 0) { torch::NoGradGuard ng; x.clamp_(-cfg_.clip, cfg_.clip); }
    last = parts;
    if (progress) progress(it + 1, cfg_.iterations, parts);
  }
  if (student_training) student->train();
  return {cfg_.iterations > 0 ? best.x() : x.detach(), y, last};
}

}  // namespace dfkd
