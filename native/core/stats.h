// Per-layer statistics of a teacher on real data ("dfkd stats"), stored as safetensors so that a
// data owner can publish them instead of data. Per tapped layer l (a BN input, a named layer, or
// the penultimate features): "<l>.mean", "<l>.std" (per channel, over N,H,W), and for 4-D
// activations "<l>.amplitude" and "<l>.power": the mean over the data of |rfft2(a, norm="ortho")|
// and of its square, per channel, on the layer's spatial grid ([C, H, W/2+1]).
#pragma once
#include <functional>
#include <map>

#include "core/common.h"
#include "core/teacher.h"
#include "core/data.h"

namespace dfkd {

struct LayerStats {
  std::string name;
  torch::Tensor mean, std, amplitude, power;  // amplitude/power undefined for 2-D activations
};

struct Stats {
  std::vector<LayerStats> layers;
  Json meta;  // format, teacher, inputShape, samples, fft
  const LayerStats* find(const std::string& name) const;
};

// Computes stats of every tap of `teacher` over `data` (batches of `batch`).
Stats compute_stats(Teacher& teacher, const Dataset& data, int64_t batch, const std::function<bool(int64_t, int64_t)>& progress);

void save_stats(const Stats& s, const std::string& path);
Stats load_stats(const std::string& path);  // E_STATS_NOT_FOUND / E_STATS_INVALID

// Checks that every layer of `s` is a tap of `teacher` with matching channel counts; returns
// the tap index of each stats layer. E_STATS_MISMATCH otherwise.
std::vector<int64_t> match_stats(const Stats& s, Teacher& teacher, const std::vector<int64_t>& input_shape);

}  // namespace dfkd
