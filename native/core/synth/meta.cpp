// The fast method's synthesizer: a meta-learned generator adapted to each batch (FastDFKD, Fang
// et al., "Up to 100x Faster Data-free Knowledge Distillation", AAAI 2022; the reference is
// zju-vipa/Fast-Datafree datafree/synthesis/fast_meta.py). Its defaults are the fast recipe's
// (methods/fast.cpp).
#include "core/synth/synth.h"
#include "core/dist.h"
#include "core/train.h"

namespace dfkd {

using losses::Term;
using losses::TermInput;

MetaGeneratorSynth::MetaGeneratorSynth(const SynthConfig& s, const GeneratorConfig& g, Teacher& teacher,
                                       std::vector<int64_t> shape, int64_t classes, std::vector<LayerTarget> layers,
                                       at::Generator& init, const std::vector<double>& mean, const std::vector<double>& std)
    : s_(s), g_(g), teacher_(teacher), shape_(std::move(shape)), classes_(classes), layers_(std::move(layers)) {
  if (s.batch < 1 || s.iterations < 1) fail("E_CONFIG", "fast: synth.batchSize and synth.iterations must be >= 1");
  if (!(s.lr > 0) || !(g.lr > 0)) fail("E_CONFIG", "fast: synth.lr (of z) and generator.lr must be positive");
  if (s.betas.size() != 2 || g.betas.size() != 2) fail("E_CONFIG", "fast: synth.betas and generator.betas must be [beta1, beta2]");
  if (g.adv_warmup < 0 || g.adv_warmup > 1) fail("E_CONFIG", "generator.advWarmup must be a fraction of the run, 0..1");
  // (in a data-parallel job, its BatchNorm synchronized: each rank runs it on its rows of z)
  Dist* d = active_dist();
  meta_ = build_generator(g, teacher, shape_, init, mean, std, d && d->world() > 1);
  // The meta step: Adam at lr_g x iterations, the reference's meta_optimizer (betas of the generator).
  OptimConfig mc = g;
  mc.lr = g.lr * double(s.iterations);
  meta_opt_ = std::make_unique<Optim>(parameters_of(meta_), mc, 1);
  if (g.bn > 0 && !layers_.empty()) {  // a stats file's layers: their per-channel means and stds
    const bool squared = s.squared;
    terms_.push_back({"feature", g.bn, [this, squared](const TermInput& in) { return feature_sum(in.teacher.acts, layers_, squared); }});
  } else if (g.bn > 0 && teacher.bn_taps().empty()) {
    fail("E_NO_BN", "fast's bn term (generator.bn) needs the teacher's BatchNorm statistics; this teacher has none: pass a "
                    "`dfkd stats` file of it as stats, or set generator.bn 0 (DAFL's terms)");
  } else if (g.bn > 0) {
    // With generator.bnMomentum, Fast-Datafree's bn_mmt: each layer's batch moments mixed with the
    // running average of the earlier batches' (averages_, updated after each batch from its last
    // step's moments, last_).
    const auto bn = teacher.bn_taps();
    if (g.bn_momentum > 0) averages_.resize(bn.size()), last_.resize(bn.size());
    terms_.push_back({"bn", g.bn, [this, bn](const TermInput& in) {
                        return losses::bn_sum(in.teacher.acts, teacher_.taps(), bn, s_.first_bn_multiplier, averages_,
                                              g_.bn_momentum, averages_.empty() ? nullptr : &last_);
                      }});
  }
  if (g.onehot > 0)  // the reference's loss_oh: CE to the sampled classes
    terms_.push_back({"onehot", g.onehot, [](const TermInput& in) { return torch::cross_entropy_loss(in.teacher.logits, in.y); }});
  add_dafl_terms(terms_, g, teacher);
  if (g.adversarial > 0)
    terms_.push_back({"adversarial", -g.adversarial, [this](const TermInput& in) {
                        if (!adversarial_on_ || !in.student) return torch::Tensor();
                        return losses::agreeing_kl(run_logits(*in.student, in.x, "student"), in.teacher.logits);
                      }});
}

void MetaGeneratorSynth::at_round(int64_t round, int64_t rounds) {
  // The reference's warmup: the first 20 of 220 epochs synthesize without the adversarial term.
  adversarial_on_ = double(round) >= g_.adv_warmup * double(rounds);
  meta_opt_->set_total(std::max<int64_t>(1, rounds));
  meta_opt_->step_schedule(round);
}

SynthResult MetaGeneratorSynth::run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                                    const ProgressFn& progress) {
  auto dev = teacher_.device();
  auto y = balanced_targets(s_.batch, classes_, rng, dev);
  auto z = torch::randn({s_.batch, g_.nz}, rng.device, torch::TensorOptions().device(dev));
  // Data-parallel (dist.h): every rank draws the whole batch's z and targets and keeps its rows;
  // the generator, its BatchNorm synchronized (the whole batch's statistics), and the teacher run
  // on them. The copy's gradients are summed over the ranks, so every rank holds the same
  // generator and meta generator, and each share's images are the one-process batch's rows.
  const Share share = share_of(s_.batch, "synth.batchSize");
  const int64_t world = share.world;
  y = share.of(y);
  z = share.of(z).clone().requires_grad_(true);
  // This batch's generator: a copy of the meta generator, adapted with z (the reference's
  // fast_generator and its Adam over both, lr_g and lr_z).
  auto fast = trainable_copy(meta_);
  fast.train();
  auto fast_params = parameters_of(fast), meta_params = parameters_of(meta_);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(fast_params, std::make_unique<torch::optim::AdamOptions>(
                                       torch::optim::AdamOptions(g_.lr).betas({g_.betas[0], g_.betas[1]})));
  groups.emplace_back(std::vector<torch::Tensor>{z}, std::make_unique<torch::optim::AdamOptions>(
                                                         torch::optim::AdamOptions(s_.lr).betas({s_.betas[0], s_.betas[1]})));
  torch::optim::Adam opt(std::move(groups), torch::optim::AdamOptions(g_.lr));
  std::vector<torch::Tensor> meta_grad;
  for (auto& p : meta_params) meta_grad.push_back(torch::zeros_like(p));
  const bool student_training = student && student->is_training();
  if (student) student->eval();
  StepLosses last;
  BestBatch best;
  for (int64_t it = 0; it < s_.iterations; ++it) {
    if (cancel.load()) {
      if (student_training) student->train();
      fail("E_CANCELLED", "cancelled");
    }
    torch::Tensor x;
    {
      ForwardCast fc;
      x = fc.out(fast.forward({z}).toTensor());
    }
    auto xin = jitter_flip(x, s_.jitter, s_.flip, rng);
    auto t = teacher_.forward_tapped(xin);
    StepLosses parts;
    auto total = losses::compose(terms_, TermInput{xin, y, t, student}, xin, parts, "total");
    // the whole batch's loss: every rank sees a non-finite one (and stops) together
    auto whole = mean_over_ranks(total, "the fast synthesis loss");
    finite_ = still_finite(finite_, whole);
    parts.guard(finite_, "the fast synthesis loss", "lower generator.lr or synth.lr");
    best.offer(whole, x);
    opt.zero_grad();
    if (world > 1) {  // each share's part of the whole batch's loss
      (total / double(world)).backward();
      active_dist()->sum_gradients(fast_params, "the sum of the fast generator's gradients");
    } else {
      total.backward();
    }
    {  // first-order MAML: the meta gradient is the sum of the adapted copy's gradients
      torch::NoGradGuard ng;
      for (size_t i = 0; i < fast_params.size(); ++i)
        if (fast_params[i].grad().defined()) meta_grad[i].add_(fast_params[i].grad());
    }
    opt.step();
    last = parts;
    if (progress) progress(it + 1, s_.iterations, parts);
  }
  if (student_training) student->train();
  const double k = g_.bn_momentum;  // the reference's update_mmt: from the batch's last step
  for (size_t i = 0; i < averages_.size(); ++i)
    averages_[i] = !averages_[i].mean.defined()
                       ? last_[i]
                       : losses::Moments{k * averages_[i].mean + (1 - k) * last_[i].mean,
                                         k * averages_[i].var + (1 - k) * last_[i].var};
  meta_opt_->zero_grad();
  for (size_t i = 0; i < meta_params.size(); ++i) meta_params[i].mutable_grad() = meta_grad[i];
  meta_opt_->step();
  return {best.x(), y, last};
}

void MetaGeneratorSynth::save(Checkpoint& ck) {
  if (!module_finite(meta_)) fail("E_NAN", "the meta generator's weights became NaN or infinite; lower generator.lr");
  ck.put_module("generator", meta_);
  torch::serialize::OutputArchive a;
  meta_opt_->save(a);
  ck.out().write("generator_optim", a);
  if (!averages_.empty() && averages_[0].mean.defined()) {  // the BN term's running averages
    torch::serialize::OutputArchive b;
    for (size_t i = 0; i < averages_.size(); ++i) {
      b.write("mean" + std::to_string(i), averages_[i].mean);
      b.write("var" + std::to_string(i), averages_[i].var);
    }
    ck.out().write("generator_bn_average", b);
  }
}

void MetaGeneratorSynth::load(CheckpointReader& ck, torch::Device device) {
  auto m = ck.module("generator", device);
  copy_state(meta_, m);
  torch::serialize::InputArchive a;
  ck.in().read("generator_optim", a);
  meta_opt_->load(a);
  torch::serialize::InputArchive b;
  if (averages_.empty() || !ck.in().try_read("generator_bn_average", b)) return;  // none yet: the first batch's
  for (size_t i = 0; i < averages_.size(); ++i) {
    torch::Tensor mean, var;
    if (!b.try_read("mean" + std::to_string(i), mean) || !b.try_read("var" + std::to_string(i), var))
      fail("E_CHECKPOINT", "the checkpoint's BN averages do not match this teacher's BatchNorm layers");
    averages_[i] = {mean.to(device), var.to(device)};
  }
}

}  // namespace dfkd
