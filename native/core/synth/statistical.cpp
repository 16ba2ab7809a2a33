// Statistical feature matching: optimize x so that at every tapped layer the batch mean and std
// of the activations match the teacher's stored mean and std (a `dfkd stats` file, or the BN
// running statistics when there is none): sum_l ||mu_T - mu(x)||_2 + ||sigma_T - sigma(x)||_2.
// Optimizer defaults as DeepInversion's (Adam 0.25, betas (0.5, 0.9), cosine, jitter + flip);
// class-conditional CE on by default (weight 1) so that the batch covers every class.
#include "core/synth/synth.h"

namespace dfkd {

std::vector<LayerTarget> stats_targets(Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape,
                                       const std::vector<double>& weights) {
  std::vector<LayerTarget> out;
  auto dev = teacher.device();
  if (stats) {
    auto idx = match_stats(*stats, teacher, shape);
    for (size_t i = 0; i < idx.size(); ++i) {
      auto& l = stats->layers[i];
      LayerTarget t;
      t.tap = idx[i];
      t.mean = l.mean.to(dev);
      t.std = l.std.to(dev);
      if (l.amplitude.defined()) t.spectrum = l.amplitude.to(dev);
      out.push_back(t);
    }
  } else {
    auto bn = teacher.bn_taps();
    if (bn.empty())
      fail("E_NO_BN", "this teacher has no BatchNorm layers, so it carries no statistics: compute them on data "
                      "with `dfkd stats` and pass the file as stats");
    for (auto i : bn) {
      auto& tap = teacher.taps()[i];
      LayerTarget t;
      t.tap = i;
      t.mean = tap.running_mean;
      t.std = (tap.running_var + 1e-5).sqrt();
      t.bn_mean = tap.running_mean;
      t.bn_var = tap.running_var;
      out.push_back(t);
    }
  }
  if (!weights.empty()) {
    if (weights.size() != out.size())
      fail("E_CONFIG", "layerWeights has " + std::to_string(weights.size()) + " values for " + std::to_string(out.size()) + " layers");
    for (size_t i = 0; i < out.size(); ++i) out[i].weight = weights[i];
  }
  return out;
}

InputSynthConfig statistical_config(const Json& spec, Teacher& teacher, const Stats* stats,
                                    const std::vector<int64_t>& shape) {
  InputSynthConfig c = inversion_defaults();
  c.ce = 1.0;
  c.feat = 10.0;  // as DeepInversion's BN weight (same scale: L2 norms of per-channel differences)
  c.tv_l2 = 1e-4;
  c.l2 = 1e-5;
  apply_common(c, spec);
  c.layers = stats_targets(teacher, stats, shape, spec.nums("layerWeights"));
  // The first layer weighs 10x, as DeepInversion's first_bn_multiplier.
  if (!c.layers.empty()) c.layers[0].weight *= spec.num("firstLayerMultiplier", 10.0);
  return c;
}

}  // namespace dfkd
