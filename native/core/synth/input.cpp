// The shared input-optimization loop of deepinversion, statistical and spectral.
#include <torch/fft.h>

#include <cmath>

#include "core/losses.h"
#include "core/synth/synth.h"

namespace dfkd {

void apply_common(InputSynthConfig& c, const Json& s) {
  c.batch = s.integer("batchSize", c.batch);
  c.iterations = s.integer("iterations", c.iterations);
  c.lr = s.num("lr", c.lr);
  if (s.has("betas")) c.betas = s.nums("betas");
  c.lr_schedule = s.str("lrSchedule", c.lr_schedule);
  c.jitter = s.integer("jitter", c.jitter);
  c.flip = s.boolean("flip", c.flip);
  c.ce = s.num("ce", c.ce);
  c.bn = s.num("bn", c.bn);
  c.first_bn_multiplier = s.num("firstBnMultiplier", c.first_bn_multiplier);
  c.feat = s.num("feature", c.feat);
  c.feat_squared = s.boolean("squared", c.feat_squared);
  c.spectral = s.num("spectral", c.spectral);
  c.spectral_power = s.str("spectrum", c.spectral_power ? "power" : "amplitude") == "power";
  c.tv_l1 = s.num("tvL1", c.tv_l1);
  c.tv_l2 = s.num("tvL2", c.tv_l2);
  c.l2 = s.num("l2", c.l2);
  c.adi = s.num("adi", c.adi);
  c.adi_temperature = s.num("adiTemperature", c.adi_temperature);
  c.clip = s.num("clip", c.clip);
  if (c.batch < 1) fail("E_CONFIG", "synthesis batchSize must be at least 1");
  // iterations 0 keeps the Gaussian noise the optimization starts from (the "noise" baseline)
  if (c.iterations < 0) fail("E_CONFIG", "synthesis iterations must not be negative");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) fail("E_CONFIG", "synthesis lr must be a positive number");
  if (c.betas.size() != 2) fail("E_CONFIG", "synthesis betas must be [beta1, beta2]");
}

InputSynthesizer::InputSynthesizer(Teacher& teacher, InputSynthConfig cfg, std::vector<int64_t> shape, int64_t classes)
    : teacher_(teacher), cfg_(std::move(cfg)), shape_(std::move(shape)), classes_(classes), bn_taps_(teacher.bn_taps()) {
  if (cfg_.bn > 0 && bn_taps_.empty())
    fail("E_NO_BN", "the BN statistics loss needs a teacher with BatchNorm layers; this teacher has none. "
                    "Compute statistics with `dfkd stats` and use method 'statistical' with that file");
}

std::pair<torch::Tensor, Losses> InputSynthesizer::loss(const torch::Tensor& x, const torch::Tensor& y,
                                                        torch::jit::Module* student) {
  Losses parts;
  auto out = teacher_.forward_tapped(x);
  torch::Tensor total = torch::zeros({}, x.options());
  auto add = [&](const char* name, double w, const torch::Tensor& term) {
    parts[name] = term.item<double>();
    total = total + w * term;
  };
  if (cfg_.ce > 0) add("ce", cfg_.ce, torch::cross_entropy_loss(out.logits, y));
  if (cfg_.bn > 0) {
    torch::Tensor bn = torch::zeros({}, x.options());
    for (size_t i = 0; i < bn_taps_.size(); ++i) {
      auto& tap = teacher_.taps()[bn_taps_[i]];
      double m = i == 0 ? cfg_.first_bn_multiplier : 1.0;
      bn = bn + m * losses::bn_stats(out.acts[bn_taps_[i]], tap.running_mean, tap.running_var);
    }
    add("bn", cfg_.bn, bn);
  }
  if (cfg_.feat > 0) {
    torch::Tensor f = torch::zeros({}, x.options());
    for (auto& l : cfg_.layers)
      f = f + l.weight * losses::feature_stats(out.acts[l.tap], l.mean, l.std, cfg_.feat_squared);
    add("feature", cfg_.feat, f);
  }
  if (cfg_.spectral > 0) {
    torch::Tensor f = torch::zeros({}, x.options());
    for (auto& l : cfg_.layers) {
      auto& a = out.acts[l.tap];
      if (l.spectrum.defined()) {
        // relative squared Frobenius distance of the batch spectrum to the stored one
        f = f + l.weight * losses::spectral(a, l.spectrum, cfg_.spectral_power) / l.spectrum.pow(2).mean();
      } else if (l.bn_mean.defined() && a.dim() == 4) {
        // BN-implied spectral constraints: DC bin = mean; total power (Parseval) = mean^2 + var.
        auto F = torch::fft::rfft2(a, c10::nullopt, {-2, -1}, "ortho");
        const double hw = double(a.size(2) * a.size(3));
        auto dc = torch::real(F.select(-1, 0).select(-1, 0)).mean(0) / std::sqrt(hw);
        auto w = torch::full({F.size(-1)}, 2.0, a.options());
        w[0] = 1.0;
        if (a.size(3) % 2 == 0) w[-1] = 1.0;
        auto power = (F.abs().pow(2) * w).sum({-2, -1}).mean(0) / hw;
        f = f + l.weight * (torch::norm(dc - l.bn_mean) + torch::norm(power - (l.bn_mean.pow(2) + l.bn_var)));
      }
    }
    add("spectral", cfg_.spectral, f);
  }
  if (cfg_.tv_l1 > 0 || cfg_.tv_l2 > 0) {
    auto [l1, l2] = losses::tv(x);
    if (cfg_.tv_l1 > 0) add("tvL1", cfg_.tv_l1, l1);
    if (cfg_.tv_l2 > 0) add("tvL2", cfg_.tv_l2, l2);
  }
  if (cfg_.l2 > 0) add("l2", cfg_.l2, losses::l2_prior(x));
  if (cfg_.adi > 0 && student) add("adi", cfg_.adi, losses::adi_competition(run_logits(*student, x, "student"), out.logits, cfg_.adi_temperature));
  parts["total"] = total.item<double>();
  return {total, parts};
}

SynthResult InputSynthesizer::run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                                  const ProgressFn& progress) {
  auto dev = teacher_.device();
  std::vector<int64_t> full{cfg_.batch};
  full.insert(full.end(), shape_.begin(), shape_.end());
  // Balanced targets, shuffled (DI samples one class per image).
  auto lopts = torch::TensorOptions().dtype(torch::kLong).device(dev);
  auto y = torch::arange(cfg_.batch, lopts).remainder(classes_);
  y = y.index_select(0, torch::randperm(cfg_.batch, rng.device, lopts));
  auto x = torch::randn(full, rng.device, torch::TensorOptions().device(dev)).requires_grad_(true);
  torch::optim::Adam opt({x}, torch::optim::AdamOptions(cfg_.lr).betas({cfg_.betas[0], cfg_.betas[1]}));
  bool student_training = student && student->is_training();
  if (student) student->eval();
  Losses last;
  torch::Tensor best;
  double best_loss = INFINITY;
  for (int64_t it = 0; it < cfg_.iterations; ++it) {
    if (cancel.load()) {
      if (student_training) student->train();
      fail("E_CANCELLED", "cancelled");
    }
    if (cfg_.lr_schedule == "cosine") {  // DeepInversion lr_cosine_policy(lr, warmup=100, iters)
      const int64_t warm = std::min<int64_t>(100, cfg_.iterations / 10);
      double lr = it < warm ? cfg_.lr * (it + 1) / warm
                            : 0.5 * (1 + std::cos(M_PI * double(it - warm) / double(std::max<int64_t>(1, cfg_.iterations - warm)))) * cfg_.lr;
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
    }
    torch::Tensor xin = x;
    if (cfg_.jitter > 0) {
      auto off = torch::randint(-cfg_.jitter, cfg_.jitter + 1, {2}, rng.host, torch::kLong);
      xin = torch::roll(xin, {off[0].item<int64_t>(), off[1].item<int64_t>()}, {2, 3});
    }
    if (cfg_.flip && torch::rand({1}, rng.host).item<double>() < 0.5) xin = xin.flip({3});
    opt.zero_grad();
    auto [total, parts] = loss(xin, y, student);
    if (!std::isfinite(parts["total"])) {
      if (student_training) student->train();
      fail("E_NAN", "the synthesis loss became " + std::string(std::isnan(parts["total"]) ? "NaN" : "infinite") +
                        " at iteration " + std::to_string(it) + "; lower the synthesis lr or the loss weights");
    }
    if (parts["total"] < best_loss) {  // keep the best batch, as DeepInversion does
      best_loss = parts["total"];
      best = x.detach().clone();
    }
    total.backward();
    opt.step();
    if (cfg_.clip > 0) { torch::NoGradGuard ng; x.clamp_(-cfg_.clip, cfg_.clip); }
    last = parts;
    if (progress) progress(it + 1, cfg_.iterations, parts);
  }
  if (student_training) student->train();
  return {best.defined() ? best : x.detach(), y, last};
}

}  // namespace dfkd
