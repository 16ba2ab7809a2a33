// The input-optimization loop of deepinversion, statistical, spectral and noise: Adam on a batch
// of inputs from Gaussian noise, jitter and flip each iteration, the best batch kept.
#include <cmath>

#include "core/synth/synth.h"

#include "core/dist.h"

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
                        return layers_.empty() ? torch::zeros({}, in.x.options()) : feature_sum(in.teacher.acts, layers_, squared);
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

torch::Tensor shift_flip(const torch::Tensor& x, const torch::Tensor& offsets, const torch::Tensor& flip) {
  // torch.roll(x, s, d): out[i] = x[(i - s) mod n], as an index_select with device indices
  auto lopts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  const int64_t h = x.size(2), w = x.size(3);
  auto rows = (torch::arange(h, lopts) - offsets[0]).remainder(h);
  auto cols = (torch::arange(w, lopts) - offsets[1]).remainder(w);
  auto out = x.index_select(2, rows).index_select(3, cols);
  return torch::where(flip, out.flip({3}), out);
}

std::pair<torch::Tensor, StepLosses> InputSynthesizer::loss(const torch::Tensor& x, const torch::Tensor& y,
                                                            torch::jit::Module* student) {
  StepLosses parts;
  auto out = teacher_.forward_tapped(x);
  auto total = losses::compose(terms_, TermInput{x, y, out, student}, x, parts, "total");
  return {total, parts};
}

bool InputSynthesizer::use_graphs() {
  graphs_ = !uses_student() && shape_.size() == 3;
  return graphs_;
}

namespace {
// DeepInversion lr_cosine_policy(lr, warmup=100, iters), at iteration `it`.
double cosine_lr(const SynthConfig& c, int64_t it) {
  const int64_t warm = std::min<int64_t>(100, c.iterations / 10);
  return it < warm ? c.lr * (it + 1) / warm
                   : 0.5 * (1 + std::cos(M_PI * double(it - warm) / double(std::max<int64_t>(1, c.iterations - warm)))) * c.lr;
}
}  // namespace

SynthResult InputSynthesizer::run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                                  const ProgressFn& progress) {
  auto dev = teacher_.device();
  std::vector<int64_t> full{cfg_.batch};
  full.insert(full.end(), shape_.begin(), shape_.end());
  auto y = balanced_targets(cfg_.batch, classes_, rng, dev);
  auto x0 = torch::randn(full, rng.device, torch::TensorOptions().device(dev));
  // data-parallel: this rank's share of the batch one process would make (same draws)
  const Share share = share_of(cfg_.batch, "synth.batchSize");
  const int64_t world = share.world;
  if (world > 1) {
    y = share.of(y);
    x0 = share.of(x0).clone();
  }
  torch::Tensor x;
  if (graphs_) {  // the graph's static inputs, kept across batches (it reads their addresses)
    if (!graph_) {
      x_ = torch::zeros(full, x0.options()).requires_grad_(true);
      y_ = torch::zeros_like(y);
      offsets_ = torch::zeros({2}, y.options());
      flip_ = torch::zeros({}, y.options().dtype(torch::kBool));
      graph_ = std::make_unique<SynthGraph>(x_);
    }
    torch::NoGradGuard ng;
    x_.copy_(x0);
    y_.copy_(y);
    x = x_;
  } else {
    x = x0.requires_grad_(true);
  }
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
    if (cfg_.lr_schedule == Schedule::cosine)
      for (auto& g : opt.param_groups()) g.options().set_lr(cosine_lr(cfg_, it));
    // The loss and its backward: jitter and flip drawn on the host (eager), or on the device into
    // the graph's buffers. Data-parallel, each share's gradient is its part of the whole batch's.
    torch::Tensor total;
    StepLosses parts;
    if (graphs_) {
      {
        torch::NoGradGuard ng;
        if (cfg_.jitter > 0) offsets_.copy_(torch::randint(-cfg_.jitter, cfg_.jitter + 1, {2}, rng.device, y_.options()));
        if (cfg_.flip) flip_.copy_(torch::rand(at::IntArrayRef{}, rng.device, x_.options()) < 0.5);
      }
      std::tie(total, parts) = graph_->step([this] { return loss(shift_flip(x_, offsets_, flip_), y_, nullptr); });
    } else {
      torch::Tensor xin = jitter_flip(x, cfg_.jitter, cfg_.flip, rng);
      opt.zero_grad();
      std::tie(total, parts) = loss(xin, y, student);
      (world > 1 ? total / double(world) : total).backward();
    }
    // the whole batch's loss picks the best batch; every rank sees a non-finite one together
    auto whole = mean_over_ranks(total, "the synthesis loss");
    finite = still_finite(finite, whole);
    parts.guard(finite, "the synthesis loss", "lower the synthesis lr or the loss weights");
    best.offer(whole, x);
    opt.step();
    if (cfg_.clip > 0) { torch::NoGradGuard ng; x.clamp_(-cfg_.clip, cfg_.clip); }
    last = parts;
    if (progress) progress(it + 1, cfg_.iterations, parts);
  }
  if (student_training) student->train();
  return {cfg_.iterations > 0 ? best.x() : x.detach().clone(), y, last};
}

}  // namespace dfkd
