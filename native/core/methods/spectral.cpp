// Spectral feature matching: optimize x so that the 2-D Fourier spectra of the tapped layers'
// activations match the teacher's on real data:
//   min_x sum_l w_l * || E_batch|rfft2(phi^l(x))| - E_data|rfft2(phi_T^l)| ||_F^2 / ||target||_F^2
// Choice (documented in README): the *amplitude* spectrum (not power: squaring lets the DC bin
// dominate by orders of magnitude), rfft2 with norm="ortho" (bins on the same scale for any grid
// size, Parseval holds without factors), linear (a log needs an epsilon and over-weights
// near-empty high frequencies), normalized per layer by the target's energy so that layers of
// different size and scale weigh alike. `spectrum: "power"` selects the power spectrum.
// Without a stats file, a BN teacher yields only the constraints its statistics imply: the DC
// bin (= channel mean) and the total power (Parseval: mean^2 + var), losses::spectral_bn.
#include "core/methods/method.h"

namespace dfkd {

namespace {

Recipe recipe() {
  Recipe r = inversion_recipe();
  // The relative spectral distance is O(1) while CE starts near log(classes) and the priors add
  // more: weight 300 lets the spectrum lead. MNIST teacher sweep (weights 3/30/300/1000/3000):
  // 33/75/86/82/82% held-out at equal cost.
  r.synth.spectral = 300.0;
  return r;
}

std::vector<LayerTarget> prepare(SynthConfig& c, Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape) {
  auto layers = stats_targets(teacher, stats, shape, c);
  bool any = false;
  for (auto& l : layers) any = any || l.spectrum.defined() || l.bn_mean.defined();
  if (!any) fail("E_STATS_INVALID", "the stats file holds no spectra (made by an older dfkd?): recompute it with `dfkd stats`");
  return layers;
}

}  // namespace

MethodInfo spectral_method() { return {"spectral", recipe, make_inversion, prepare, "train synth"}; }

}  // namespace dfkd
