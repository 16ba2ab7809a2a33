// The adversarial method's generator step (DFAD, Fang et al. 2019; ZSKT, Micaelis & Storkey
// 2019), with DAFL's terms (Chen et al. 2019) and DeepInversion's BN term as options.
// Defaults (VainF/Data-Free-Adversarial-Distillation DFAD_mnist.py): nz 100, ngf 64,
// Adam lr 1e-3 (default betas), L1 discrepancy on logits; DAFL terms off (DAFL_train.py
// uses onehot 1, activation 0.1, entropy 5 when on).
#include "core/losses.h"
#include "core/synth/synth.h"
#include "core/zoo.h"

namespace dfkd {

GeneratorSynth::GeneratorSynth(const Json& spec, Teacher& teacher, std::vector<int64_t> shape, at::Generator& init,
                               int64_t total_steps)
    : teacher_(teacher) {
  nz_ = spec.integer("nz", 100);
  int64_t ngf = spec.integer("ngf", 64);
  if (nz_ < 1 || ngf < 1) fail("E_CONFIG", "generator nz and ngf must be positive");
  g_ = make_generator(nz_, ngf, shape, init);
  g_.to(teacher.device());
  g_.train();
  Json o;
  o["optimizer"] = spec.str("optimizer", "adam");
  o["lr"] = spec.num("lr", 1e-3);
  o["betas"] = spec.get("betas");
  o["schedule"] = spec.str("schedule", "none");
  o["milestones"] = spec.get("milestones");
  o["gamma"] = spec.num("gamma", 0.1);
  opt_ = std::make_unique<Optim>(parameters_of(g_), o, total_steps);
  loss_ = spec.str("loss", "l1");
  adv_ = spec.num("adversarial", 1.0);
  onehot_ = spec.num("onehot", 0.0);
  activation_ = spec.num("activation", 0.0);
  entropy_ = spec.num("entropy", 0.0);
  bn_ = spec.num("bn", 0.0);
  bn_taps_ = teacher.bn_taps();
  if (bn_ > 0 && bn_taps_.empty()) fail("E_NO_BN", "the generator's bn term needs a teacher with BatchNorm layers");
  penultimate_ = teacher.tap_index("penultimate");
  if (activation_ > 0 && !penultimate_) fail("E_CONFIG", "the activation term needs a teacher with a linear head");
}

torch::Tensor GeneratorSynth::sample(int64_t batch, Rng& rng) {
  torch::NoGradGuard ng;
  auto z = torch::randn({batch, nz_}, rng.device, torch::TensorOptions().device(teacher_.device()));
  return g_.forward({z}).toTensor();
}

Losses GeneratorSynth::step(torch::jit::Module& student, int64_t batch, double T, Rng& rng, int64_t step,
                            bool diagnostics) {
  opt_->step_schedule(step);
  auto z = torch::randn({batch, nz_}, rng.device, torch::TensorOptions().device(teacher_.device()));
  auto x = g_.forward({z}).toTensor();
  bool tapped = bn_ > 0 || activation_ > 0;
  Tapped t = tapped ? teacher_.forward_tapped(x) : Tapped{teacher_.logits(x), {}};
  Losses parts;
  torch::Tensor total = torch::zeros({}, x.options());
  auto add = [&](const char* name, double w, const torch::Tensor& term) {
    parts[name] = term.item<double>();
    total = total + w * term;
  };
  if (adv_ > 0) {
    auto s = run_logits(student, x, "student");
    add("discrepancy", -adv_, losses::discrepancy(loss_, s, t.logits, T));
  }
  if (onehot_ > 0) add("onehot", onehot_, losses::dafl_onehot(t.logits));
  if (activation_ > 0) add("activation", activation_, losses::dafl_activation(t.acts[*penultimate_]));
  if (entropy_ > 0) add("entropy", entropy_, losses::dafl_entropy(t.logits));
  if (bn_ > 0) {
    torch::Tensor bn = torch::zeros({}, x.options());
    for (auto i : bn_taps_) {
      auto& tap = teacher_.taps()[i];
      bn = bn + losses::bn_stats(t.acts[i], tap.running_mean, tap.running_var);
    }
    add("bn", bn_, bn);
  }
  parts["generator"] = total.item<double>();
  check_finite(total, "the generator loss");
  opt_->zero_grad();
  total.backward();
  opt_->step();
  if (diagnostics) {
    torch::NoGradGuard ng;
    BufferSnapshot keep_g(g_), keep_s(student);
    auto x2 = g_.forward({z}).toTensor();
    parts["discrepancy_after"] = losses::discrepancy(loss_, run_logits(student, x2, "student"), teacher_.logits(x2), T).item<double>();
  }
  return parts;
}

}  // namespace dfkd
