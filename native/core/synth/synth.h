// Synthesizers. The three input-optimizing methods (deepinversion, statistical, spectral) share
// one loop (input.cpp) and differ only in which loss terms they compose and with what weights;
// each method's file sets its published defaults. The generator (generator.cpp) serves the
// adversarial method.
#pragma once
#include <atomic>
#include <functional>
#include <map>

#include "core/common.h"
#include "core/stats.h"
#include "core/teacher.h"
#include "core/train.h"

namespace dfkd {

using ProgressFn = std::function<void(int64_t step, int64_t total, const Losses&)>;

// One tapped layer whose activation statistics the synthesized batch must match.
struct LayerTarget {
  int64_t tap;
  double weight = 1.0;
  torch::Tensor mean, std;      // feature_stats target (statistical)
  torch::Tensor spectrum;       // full spectral target from a stats file (spectral)
  torch::Tensor bn_mean, bn_var;  // BN-implied spectral constraints (spectral, no stats file)
};

struct InputSynthConfig {
  int64_t batch = 64, iterations = 2000;
  double lr = 0.1;
  std::vector<double> betas{0.5, 0.9};
  std::string lr_schedule = "none";  // "none" | "cosine" (with 100-step warmup, as DI's lr_cosine_policy)
  int64_t jitter = 2;
  bool flip = true;
  // loss weights
  double ce = 1.0;
  double bn = 0.0, first_bn_multiplier = 1.0;
  double feat = 0.0;
  bool feat_squared = false;
  double spectral = 0.0;
  bool spectral_power = false;
  double tv_l1 = 0.0, tv_l2 = 0.0, l2 = 0.0;
  double adi = 0.0, adi_temperature = 3.0;
  std::vector<LayerTarget> layers;  // for feat / spectral
  double clip = 0.0;                // clamp x to [-clip, clip] after each step (0 = off)
};

// The optimizer recipe the three inversion methods share (DeepInversion's, see deepinversion.cpp):
// batch 256, 2000 Adam iterations, lr 0.25, betas (0.5, 0.9), cosine schedule, jitter 2, flip.
InputSynthConfig inversion_defaults();
// Layer targets of statistical and spectral: the stats file's layers (matched to the teacher's
// taps), or the BN taps' running statistics; `weights` (optional) scale each layer.
std::vector<LayerTarget> stats_targets(Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape,
                                       const std::vector<double>& weights);
// Method defaults + targets. `stats` may be null (then BN running statistics are used).
InputSynthConfig deepinversion_config(const Json& spec, Teacher& teacher);
InputSynthConfig statistical_config(const Json& spec, Teacher& teacher, const Stats* stats,
                                    const std::vector<int64_t>& input_shape);
InputSynthConfig spectral_config(const Json& spec, Teacher& teacher, const Stats* stats,
                                 const std::vector<int64_t>& input_shape);
// Reads the shared knobs (batch, iterations, lr, jitter, flip, weights...) from `spec` over `c`.
void apply_common(InputSynthConfig& c, const Json& spec);

struct SynthResult {
  torch::Tensor x, y;
  Losses losses;
};

class InputSynthesizer {
 public:
  InputSynthesizer(Teacher& teacher, InputSynthConfig cfg, std::vector<int64_t> input_shape, int64_t classes);
  // Optimizes one batch from noise. `student` (may be null) is used by the ADI term.
  // Throws E_CANCELLED when `cancel` is set between iterations.
  SynthResult run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                  const ProgressFn& progress);
  // The loss of a given batch (no jitter), for tests/benchmarks: total and per-term values.
  std::pair<torch::Tensor, Losses> loss(const torch::Tensor& x, const torch::Tensor& y, torch::jit::Module* student);
  const InputSynthConfig& config() const { return cfg_; }

 private:
  Teacher& teacher_;
  InputSynthConfig cfg_;
  std::vector<int64_t> shape_;
  int64_t classes_;
  std::vector<int64_t> bn_taps_;
};

// DFAD/DAFL generator and its step. spec: { nz, ngf, lr, betas, loss ("l1"|"kl"), onehot,
// activation, entropy, bn } (DAFL / BN terms, weights 0 = off).
class GeneratorSynth {
 public:
  GeneratorSynth(const Json& spec, Teacher& teacher, std::vector<int64_t> input_shape, at::Generator& init,
                 int64_t total_steps);
  torch::Tensor sample(int64_t batch, Rng& rng);  // no grad, generator in train mode
  // One generator step: maximize the teacher-student discrepancy (+ optional DAFL/BN terms).
  // With `diagnostics`, also reports "discrepancy_after": the discrepancy on the same z after the step.
  Losses step(torch::jit::Module& student, int64_t batch, double temperature, Rng& rng, int64_t step,
              bool diagnostics = false);
  torch::jit::Module& module() { return g_; }
  Optim& optim() { return *opt_; }
  int64_t nz() const { return nz_; }

 private:
  Teacher& teacher_;
  torch::jit::Module g_;
  std::unique_ptr<Optim> opt_;
  int64_t nz_;
  std::string loss_;
  double onehot_, activation_, entropy_, bn_, adv_;
  std::vector<int64_t> bn_taps_;
  std::optional<int64_t> penultimate_;
};

}  // namespace dfkd
