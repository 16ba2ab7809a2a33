// noise: the baseline that synthesizes nothing. Each round's batch is the Gaussian noise the
// other input-synthesis methods start from; the student is distilled on it as on theirs.
#include "core/methods/method.h"

namespace dfkd {

namespace {

Recipe recipe() {
  Recipe r = inversion_recipe();  // the same student side as the inversion methods
  r.synth = SynthConfig();        // batch 64, 20 rounds; no loss term: nothing is optimized
  r.synth.ce = 0.0;
  r.synth.iterations = 0;
  return r;
}

std::vector<LayerTarget> prepare(SynthConfig& c, Teacher&, const Stats*, const std::vector<int64_t>&) {
  c.iterations = 0;  // whatever the config says: noise is never optimized
  return {};
}

}  // namespace

MethodInfo noise_method() { return {"noise", recipe, make_inversion, prepare, "train synth"}; }

}  // namespace dfkd
