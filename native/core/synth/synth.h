// Synthesizers (CMI's datafree/synthesis: one object per method that synthesize()s batches).
// InputSynthesizer (input.cpp) optimizes a batch of inputs from noise against a composed loss
// (deepinversion, statistical, spectral, noise: the weights of SynthConfig pick the terms);
// GeneratorSynth (generator.cpp) is the adversarial method's generator and its step.
#pragma once
#include <atomic>
#include <functional>

#include "core/common.h"
#include "core/config.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/stats.h"
#include "core/teacher.h"

namespace dfkd {

// Called after each iteration with its losses, unread (StepLosses: reading them waits for the device).
using ProgressFn = std::function<void(int64_t step, int64_t total, const StepLosses&)>;

// One tapped layer whose activation statistics the synthesized batch must match.
struct LayerTarget {
  int64_t tap;
  double weight = 1.0;
  torch::Tensor mean, std;        // feature_stats target (statistical)
  torch::Tensor spectrum;         // full spectral target from a stats file (spectral)
  torch::Tensor bn_mean, bn_var;  // BN-implied spectral constraints (spectral, no stats file)
};

// Layer targets of statistical and spectral: the stats file's layers (matched to the teacher's
// taps), or the BN taps' running statistics; synth.layerWeights (optional) scale each layer and
// synth.firstLayerMultiplier the first.
std::vector<LayerTarget> stats_targets(Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape,
                                       const SynthConfig& c);

struct SynthResult {
  torch::Tensor x, y;
  StepLosses losses;  // the last iteration's, guarded: reading them fails with E_NAN if any was not finite
};

class InputSynthesizer {
 public:
  // The terms are those of `c` with a positive weight: ce, bn, feature, spectral, tvL1, tvL2, l2, adi.
  InputSynthesizer(Teacher& teacher, const SynthConfig& c, std::vector<LayerTarget> layers,
                   std::vector<int64_t> input_shape, int64_t classes);
  InputSynthesizer(const InputSynthesizer&) = delete;  // its terms refer to it
  // Optimizes one batch from noise. `student` (may be null) is used by the ADI term.
  // Throws E_CANCELLED when `cancel` is set between iterations.
  SynthResult run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel, const ProgressFn& progress);
  // The loss of a given batch (no jitter): total and per-term values.
  std::pair<torch::Tensor, StepLosses> loss(const torch::Tensor& x, const torch::Tensor& y, torch::jit::Module* student);
  const SynthConfig& config() const { return cfg_; }

 private:
  Teacher& teacher_;
  SynthConfig cfg_;
  std::vector<LayerTarget> layers_;
  std::vector<int64_t> shape_;
  int64_t classes_;
  std::vector<losses::Term> terms_;
};

// DFAD/DAFL generator and its step: discrepancy (maximized), DAFL's one-hot / activation /
// information-entropy terms and the BN term (weights 0 = off).
class GeneratorSynth {
 public:
  // `mean`, `std`: the teacher's input normalization (the pixel head's; empty: unknown).
  GeneratorSynth(const GeneratorConfig& c, Teacher& teacher, std::vector<int64_t> input_shape, at::Generator& init,
                 int64_t total_steps, const std::vector<double>& mean = {}, const std::vector<double>& std = {});
  GeneratorSynth(const GeneratorSynth&) = delete;  // its terms refer to it
  torch::Tensor sample(int64_t batch, Rng& rng);  // no grad, generator in train mode
  // One generator step: maximize the teacher-student discrepancy (+ optional DAFL/BN terms).
  // With `diagnostics`, also reports "discrepancy_after": the discrepancy on the same z after the step.
  // The losses stay on the device, guarded (a read fails with E_NAN once any step's was not finite).
  StepLosses step(torch::jit::Module& student, int64_t batch, double temperature, Rng& rng, int64_t step,
              bool diagnostics = false);
  torch::jit::Module& module() { return g_; }
  Optim& optim() { return *opt_; }
  int64_t nz() const { return c_.nz; }

 private:
  torch::Tensor generate(const torch::Tensor& z);  // G(z) under the thread's forward options
  GeneratorConfig c_;
  Teacher& teacher_;
  torch::jit::Module g_;
  std::unique_ptr<Optim> opt_;
  std::vector<losses::Term> terms_;
  bool tapped_ = false;
  torch::Tensor finite_;      // every step's loss so far was finite (on the device)
  double temperature_ = 1.0;  // of the current step (the discrepancy term reads it)
};

}  // namespace dfkd
