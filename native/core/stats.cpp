#include "core/stats.h"

#include "core/io/safetensors.h"
#include "core/losses.h"

namespace dfkd {

const LayerStats* Stats::find(const std::string& name) const {
  for (auto& l : layers) if (l.name == name) return &l;
  return nullptr;
}

Stats compute_stats(Teacher& teacher, const Dataset& data, int64_t batch,
                    const std::function<bool(int64_t, int64_t)>& progress) {
  c10::InferenceMode guard;
  const auto& taps = teacher.taps();
  if (taps.empty()) fail("E_NO_TAPS", "the teacher has no BatchNorm layers, named layers or linear head to take statistics of");
  std::vector<torch::Tensor> sum, sq, amp, pow;
  std::vector<int64_t> count(taps.size(), 0);
  int64_t n = data.size(), seen = 0;
  if (n == 0) fail("E_DATA_INVALID", "the dataset for stats is empty");
  for (int64_t i = 0; i < n; i += batch) {
    auto x = data.x.slice(0, i, std::min(i + batch, n)).to(teacher.device());
    auto out = teacher.forward_tapped(x);
    for (size_t l = 0; l < taps.size(); ++l) {
      auto a = out.acts[l].to(torch::kFloat64);
      auto flat = a.dim() == 2 ? a : a.transpose(0, 1).reshape({a.size(1), -1}).t();  // [M, C]
      auto s = flat.sum(0), q = flat.pow(2).sum(0);
      if (i == 0) { sum.push_back(s); sq.push_back(q); } else { sum[l] += s; sq[l] += q; }
      count[l] += flat.size(0);
      if (a.dim() == 4) {
        auto A = losses::spectrum(out.acts[l], false).to(torch::kFloat64) * a.size(0);
        auto P = losses::spectrum(out.acts[l], true).to(torch::kFloat64) * a.size(0);
        if (i == 0) { amp.push_back(A); pow.push_back(P); } else { amp[l] += A; pow[l] += P; }
      } else if (i == 0) { amp.emplace_back(); pow.emplace_back(); }
    }
    seen += x.size(0);
    if (progress && !progress(seen, n)) fail("E_CANCELLED", "stats computation cancelled");
  }
  Stats st;
  for (size_t l = 0; l < taps.size(); ++l) {
    LayerStats ls;
    ls.name = taps[l].name;
    auto mean = sum[l] / count[l];
    ls.mean = mean.to(torch::kFloat32).cpu();
    ls.std = (sq[l] / count[l] - mean.pow(2)).clamp_min(0).sqrt().to(torch::kFloat32).cpu();
    if (amp[l].defined()) {
      ls.amplitude = (amp[l] / seen).to(torch::kFloat32).cpu();
      ls.power = (pow[l] / seen).to(torch::kFloat32).cpu();
    }
    st.layers.push_back(ls);
  }
  st.meta["format"] = "dfkd-stats/1";
  st.meta["samples"] = seen;
  st.meta["fft"] = "rfft2 over (H, W), norm='ortho'; amplitude = E|F|, power = E|F|^2";
  return st;
}

void save_stats(const Stats& s, const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> ts;
  Json::Array names;
  for (auto& l : s.layers) {
    names.emplace_back(l.name);
    ts.emplace_back(l.name + ".mean", l.mean);
    ts.emplace_back(l.name + ".std", l.std);
    if (l.amplitude.defined()) {
      ts.emplace_back(l.name + ".amplitude", l.amplitude);
      ts.emplace_back(l.name + ".power", l.power);
    }
  }
  Json meta = s.meta;
  meta["layers"] = Json(names);
  write_safetensors(path, ts, {{"dfkd", meta.dump()}});
}

Stats load_stats(const std::string& path) {
  std::map<std::string, std::string> md;
  auto ts = read_safetensors(path, &md, "E_STATS_NOT_FOUND", "E_STATS_INVALID");
  Stats s;
  if (!md.count("dfkd")) fail("E_STATS_INVALID", path + " is a safetensors file without dfkd statistics metadata");
  try { s.meta = Json::parse(md["dfkd"]); } catch (const Error&) { fail("E_STATS_INVALID", path + ": corrupt dfkd metadata"); }
  std::map<std::string, torch::Tensor> by;
  for (auto& [k, t] : ts) by[k] = t;
  std::vector<std::string> names;
  try { names = s.meta.strs("layers"); } catch (const Error&) { fail("E_STATS_INVALID", path + ": corrupt layer list"); }
  for (auto& name : names) {
    LayerStats l;
    l.name = name;
    if (!by.count(name + ".mean") || !by.count(name + ".std"))
      fail("E_STATS_INVALID", path + ": layer '" + name + "' lacks mean/std");
    l.mean = by[name + ".mean"].to(torch::kFloat32);
    l.std = by[name + ".std"].to(torch::kFloat32);
    if (l.mean.dim() != 1 || l.std.sizes() != l.mean.sizes())
      fail("E_STATS_INVALID", path + ": layer '" + name + "' has malformed mean/std");
    if (by.count(name + ".amplitude")) {
      l.amplitude = by[name + ".amplitude"].to(torch::kFloat32);
      l.power = by.count(name + ".power") ? by[name + ".power"].to(torch::kFloat32) : l.amplitude.pow(2);
      if (l.amplitude.dim() != 3 || l.amplitude.size(0) != l.mean.size(0))
        fail("E_STATS_INVALID", path + ": layer '" + name + "' has a malformed spectrum");
    }
    s.layers.push_back(l);
  }
  if (s.layers.empty()) fail("E_STATS_INVALID", path + " holds no layers");
  return s;
}

std::vector<int64_t> match_stats(const Stats& s, Teacher& teacher, const std::vector<int64_t>& input_shape) {
  std::vector<int64_t> idx;
  torch::NoGradGuard ng;
  std::vector<int64_t> full{2};
  full.insert(full.end(), input_shape.begin(), input_shape.end());
  auto probe = teacher.forward_tapped(torch::zeros(full, torch::TensorOptions().device(teacher.device())));
  for (auto& l : s.layers) {
    auto i = teacher.tap_index(l.name);
    if (!i) fail("E_STATS_MISMATCH", "the stats file has layer '" + l.name + "', which this teacher does not have "
                                     "(was it made for another teacher? pass layers: [...] to tap named layers)");
    auto& a = probe.acts[*i];
    if (a.size(1) != l.mean.size(0))
      fail("E_STATS_MISMATCH", "layer '" + l.name + "': stats for " + std::to_string(l.mean.size(0)) +
                                   " channels, the teacher has " + std::to_string(a.size(1)));
    if (l.amplitude.defined() && a.dim() == 4 &&
        (l.amplitude.size(1) != a.size(2) || l.amplitude.size(2) != a.size(3) / 2 + 1))
      fail("E_STATS_MISMATCH", "layer '" + l.name + "': spectrum shape " + shape_str(l.amplitude.sizes()) +
                                   " does not match the teacher's activation " + shape_str(a.sizes()));
    idx.push_back(*i);
  }
  return idx;
}

}  // namespace dfkd
