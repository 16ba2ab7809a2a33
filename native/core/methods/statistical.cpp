// Statistical feature matching: optimize x so that at every tapped layer the batch mean and std
// of the activations match the teacher's stored mean and std (a `dfkd stats` file, or the BN
// running statistics when there is none): sum_l ||mu_T - mu(x)||_2 + ||sigma_T - sigma(x)||_2.
// Optimizer and priors as DeepInversion's (inversion.cpp); class-conditional CE on (weight 1)
// so that the batch covers every class.
#include "core/methods/method.h"

namespace dfkd {

namespace {

Recipe recipe() {
  Recipe r = inversion_recipe();
  r.synth.feature = 30.0;  // as DeepInversion's BN weight (same scale: L2 norms of per-channel differences)
  r.synth.first_layer_multiplier = 10.0;  // as DeepInversion's first_bn_multiplier
  return r;
}

std::vector<LayerTarget> prepare(SynthConfig& c, Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape) {
  return stats_targets(teacher, stats, shape, c);
}

}  // namespace

MethodInfo statistical_method() { return {"statistical", recipe, make_inversion, prepare, "train synth"}; }

}  // namespace dfkd
