// The layer targets of statistical and spectral synthesis.
#include "core/synth/synth.h"

namespace dfkd {

std::vector<LayerTarget> stats_targets(Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape,
                                       const SynthConfig& c) {
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
  const auto& weights = c.layer_weights;
  if (!weights.empty()) {
    if (weights.size() != out.size())
      fail("E_CONFIG", "layerWeights has " + std::to_string(weights.size()) + " values for " + std::to_string(out.size()) + " layers");
    for (size_t i = 0; i < out.size(); ++i) out[i].weight = weights[i];
  }
  if (!out.empty()) out[0].weight *= c.first_layer_multiplier;
  return out;
}

torch::Tensor feature_sum(const std::vector<torch::Tensor>& acts, const std::vector<LayerTarget>& layers, bool squared) {
  torch::Tensor f = torch::zeros({}, acts.at(layers.at(0).tap).options());
  for (auto& l : layers) f = f + l.weight * losses::feature_stats(acts[l.tap], l.mean, l.std, squared);
  return f;
}

}  // namespace dfkd
