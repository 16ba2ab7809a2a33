#include "core/losses.h"

#include "core/dist.h"

#include <torch/fft.h>

#include <cmath>

namespace dfkd::losses {

namespace F = torch::nn::functional;

torch::Tensor kd_kl(const torch::Tensor& s, const torch::Tensor& t, double T) {
  auto log_p_s = torch::log_softmax(s / T, 1);
  auto p_t = torch::softmax(t / T, 1);
  return F::kl_div(log_p_s, p_t, F::KLDivFuncOptions().reduction(torch::kBatchMean)) * (T * T);
}

torch::Tensor agreeing_kl(const torch::Tensor& s, const torch::Tensor& t) {
  auto log_p_t = torch::log_softmax(t, 1);
  auto kl = (log_p_t.exp() * (log_p_t - torch::log_softmax(s, 1))).sum(1);
  auto agree = (s.argmax(1) == t.argmax(1)).to(kl.scalar_type());
  return (kl * agree).mean();
}

torch::Tensor l1_logits(const torch::Tensor& s, const torch::Tensor& t) { return (s - t).abs().mean(); }

torch::Tensor discrepancy(Loss kind, const torch::Tensor& s, const torch::Tensor& t, double T) {
  return kind == Loss::l1 ? l1_logits(s, t) : kd_kl(s, t, T);
}

namespace {
torch::Tensor rows_by_channel(const torch::Tensor& act) {  // [M, C]
  return act.dim() == 2 ? act : act.transpose(0, 1).reshape({act.size(1), -1}).t();
}
// The mean over dim 0 (the batch): the global batch's in a data-parallel job (equal shares).
torch::Tensor batch_mean(const torch::Tensor& t) {
  Dist* d = active_dist();
  if (!d || d->world() < 2) return t.mean(0);
  return d->all_sum(t.sum(0)) / double(t.size(0) * d->world());
}
// The global batch's per-channel mean and biased variance when this thread's job is data-parallel
// (dist.h): per-rank sums, sums of squares and counts, all-reduced with gradients flowing back to
// every rank's share. Undefined tensors on one process.
std::pair<torch::Tensor, torch::Tensor> global_moments(const torch::Tensor& act) {
  Dist* d = active_dist();
  if (!d || d->world() < 2) return {};
  auto a = rows_by_channel(act);
  const int64_t c = a.size(1);
  auto sums = d->all_sum(torch::cat({a.sum(0), a.pow(2).sum(0), torch::full({1}, double(a.size(0)), a.options())}));
  auto n = sums.slice(0, 2 * c).detach();
  auto mean = sums.slice(0, 0, c) / n;
  return {mean, (sums.slice(0, c, 2 * c) / n - mean.pow(2)).clamp_min(0)};
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> channel_mean_std(const torch::Tensor& act) {
  if (auto [mean, var] = global_moments(act); mean.defined()) return {mean, (var + 1e-8).sqrt()};
  auto a = rows_by_channel(act);
  auto mean = a.mean(0);
  auto var = a.var(0, /*unbiased=*/false);
  return {mean, (var + 1e-8).sqrt()};
}

Moments bn_moments(const torch::Tensor& act) {
  if (auto [mean, var] = global_moments(act); mean.defined()) return {mean, var};
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < act.dim(); ++d) dims.push_back(d);
  return {act.mean(dims), act.var(dims, /*unbiased=*/false)};
}

torch::Tensor bn_stats(const Moments& batch, const torch::Tensor& run_mean, const torch::Tensor& run_var,
                       const Moments& average, double k) {
  if (!average.mean.defined())
    return torch::norm(run_var - batch.var, 2) + torch::norm(run_mean - batch.mean, 2);
  return torch::norm(run_var - (1 - k) * batch.var - k * average.var, 2) +
         torch::norm(run_mean - (1 - k) * batch.mean - k * average.mean, 2);
}

torch::Tensor bn_stats(const torch::Tensor& act, const torch::Tensor& run_mean, const torch::Tensor& run_var) {
  return bn_stats(bn_moments(act), run_mean, run_var);
}

torch::Tensor bn_sum(const std::vector<torch::Tensor>& acts, const std::vector<Tap>& taps,
                     const std::vector<int64_t>& bn, double first_multiplier, const std::vector<Moments>& averages,
                     double k, std::vector<Moments>* moments) {
  torch::Tensor sum = torch::zeros({}, acts.at(bn.at(0)).options());
  if (moments) moments->resize(bn.size());
  for (size_t i = 0; i < bn.size(); ++i) {
    auto& tap = taps[bn[i]];
    double m = i == 0 ? first_multiplier : 1.0;
    auto batch = bn_moments(acts[bn[i]]);
    if (moments) (*moments)[i] = {batch.mean.detach(), batch.var.detach()};
    sum = sum + m * bn_stats(batch, tap.running_mean, tap.running_var, averages.empty() ? Moments{} : averages.at(i), k);
  }
  return sum;
}

torch::Tensor spectral_bn(const torch::Tensor& a, const torch::Tensor& bn_mean, const torch::Tensor& bn_var) {
  auto F = torch::fft::rfft2(a, c10::nullopt, {-2, -1}, "ortho");
  const double hw = double(a.size(2) * a.size(3));
  auto dc = batch_mean(torch::real(F.select(-1, 0).select(-1, 0))) / std::sqrt(hw);
  auto w = torch::full({F.size(-1)}, 2.0, a.options());
  w[0] = 1.0;
  if (a.size(3) % 2 == 0) w[-1] = 1.0;
  auto power = batch_mean((F.abs().pow(2) * w).sum({-2, -1})) / hw;
  return torch::norm(dc - bn_mean) + torch::norm(power - (bn_mean.pow(2) + bn_var));
}

torch::Tensor feature_stats(const torch::Tensor& act, const torch::Tensor& mean, const torch::Tensor& std,
                            bool squared) {
  auto [m, s] = channel_mean_std(act);
  if (squared) return (mean - m).pow(2).sum() + (std - s).pow(2).sum();
  return torch::norm(mean - m, 2) + torch::norm(std - s, 2);
}

torch::Tensor spectrum(const torch::Tensor& act, bool power) {
  auto a = act.dim() == 4 ? act : act.view({act.size(0), act.size(1), 1, -1});
  // rfft2 needs float32/float64: half-precision activations (autocast) are promoted.
  auto in = a.scalar_type() == torch::kDouble ? a : a.to(torch::kFloat32);
  auto amp = torch::fft::rfft2(in, c10::nullopt, {-2, -1}, "ortho").abs();
  return batch_mean(power ? amp.pow(2) : amp);
}

torch::Tensor spectral(const torch::Tensor& act, const torch::Tensor& target, bool power) {
  return (spectrum(act, power) - target).pow(2).mean();
}

std::pair<torch::Tensor, torch::Tensor> tv(const torch::Tensor& x) {
  using torch::indexing::Slice;
  auto d1 = x.index({Slice(), Slice(), Slice(), Slice(c10::nullopt, -1)}) - x.index({Slice(), Slice(), Slice(), Slice(1, c10::nullopt)});
  auto d2 = x.index({Slice(), Slice(), Slice(c10::nullopt, -1), Slice()}) - x.index({Slice(), Slice(), Slice(1, c10::nullopt), Slice()});
  auto d3 = x.index({Slice(), Slice(), Slice(1, c10::nullopt), Slice(c10::nullopt, -1)}) - x.index({Slice(), Slice(), Slice(c10::nullopt, -1), Slice(1, c10::nullopt)});
  auto d4 = x.index({Slice(), Slice(), Slice(c10::nullopt, -1), Slice(c10::nullopt, -1)}) - x.index({Slice(), Slice(), Slice(1, c10::nullopt), Slice(1, c10::nullopt)});
  auto l1 = d1.abs().mean() + d2.abs().mean() + d3.abs().mean() + d4.abs().mean();
  // (norms over the whole batch, as DeepInversion's: in a data-parallel job, the global batch's)
  auto norm = [d = active_dist()](const torch::Tensor& v) {
    return d && d->world() > 1 ? d->all_sum(v.pow(2).sum()).sqrt() : torch::norm(v);
  };
  auto l2 = norm(d1) + norm(d2) + norm(d3) + norm(d4);
  return {l1, l2};
}

torch::Tensor l2_prior(const torch::Tensor& x) { return x.reshape({x.size(0), -1}).norm(2, 1).mean(); }

// As NVlabs/DeepInversion's deepinversion.py: M is the mean of the unclamped P and Q, then all
// three are clamped to [0.01, 0.99].
torch::Tensor adi_competition(const torch::Tensor& s, const torch::Tensor& t, double T) {
  auto P = torch::softmax(s / T, 1);
  auto Q = torch::softmax(t / T, 1);
  auto M = (0.5 * (P + Q)).clamp(0.01, 0.99);
  P = P.clamp(0.01, 0.99);
  Q = Q.clamp(0.01, 0.99);
  auto opts = F::KLDivFuncOptions().reduction(torch::kBatchMean);
  auto js = 0.5 * F::kl_div(P.log(), M, opts) + 0.5 * F::kl_div(Q.log(), M, opts);
  return 1.0 - js.clamp(0.0, 1.0);
}

torch::Tensor dafl_onehot(const torch::Tensor& t) { return torch::cross_entropy_loss(t, t.argmax(1)); }

torch::Tensor dafl_activation(const torch::Tensor& f) { return -f.abs().mean(); }

torch::Tensor dafl_entropy(const torch::Tensor& t) {
  auto p = batch_mean(torch::softmax(t, 1));  // (the global batch's mean in a data-parallel job)
  return (p * torch::log10(p + 1e-12)).sum();  // DAFL_train.py: (softmax_o_T * torch.log10(softmax_o_T)).sum()
}

torch::Tensor compose(const std::vector<Term>& terms, const TermInput& in, const torch::Tensor& like, StepLosses& parts,
                      const char* total_name) {
  torch::Tensor total = torch::zeros({}, like.options());
  for (auto& t : terms) {
    auto v = t.fn(in);
    if (!v.defined()) continue;
    parts.set(t.name, v);
    total = total + t.weight * v;
  }
  parts.set(total_name, total);
  return total;
}

}  // namespace dfkd::losses

namespace dfkd {
Json losses_json(const Losses& l) {
  Json j = Json(Json::Object{});
  for (auto& [k, v] : l) j[k] = v;
  return j;
}

void StepLosses::set(const std::string& name, const torch::Tensor& v) {
  for (auto& [k, t] : dev_)
    if (k == name) { t = v.detach(); return; }
  dev_.emplace_back(name, v.detach());
}
void StepLosses::set(const std::string& name, double v) { host_[name] = v; }
void StepLosses::guard(const torch::Tensor& finite, std::string what, std::string hint) {
  guards_.push_back({finite.detach(), std::move(what), std::move(hint)});
}
void StepLosses::merge(const StepLosses& o, const std::string& prefix) {
  for (auto& [k, t] : o.dev_) set(prefix + k, t);
  for (auto& [k, v] : o.host_) host_[prefix + k] = v;
  guards_.insert(guards_.end(), o.guards_.begin(), o.guards_.end());
}
StepLosses StepLosses::cloned() const {
  StepLosses c = *this;
  for (auto& [k, t] : c.dev_) t = t.clone();
  return c;
}
torch::Tensor StepLosses::tensor(const std::string& name) const {
  for (auto& [k, t] : dev_) if (k == name) return t;
  return torch::Tensor();
}

Losses StepLosses::read() const {
  std::vector<torch::Tensor> all;
  for (auto& g : guards_) all.push_back(g.ok);
  for (auto& [k, t] : dev_) all.push_back(t);
  auto v = read_scalars(all);
  for (size_t i = 0; i < guards_.size(); ++i)
    if (v[i] == 0) fail("E_NAN", guards_[i].what + " became NaN or infinite; " + guards_[i].hint);
  Losses out = host_;
  for (size_t i = 0; i < dev_.size(); ++i) out[dev_[i].first] = v[guards_.size() + i];
  return out;
}

torch::Tensor still_finite(const torch::Tensor& flag, const torch::Tensor& loss) {
  auto ok = torch::isfinite(loss.detach()).all();
  return flag.defined() ? flag.logical_and(ok) : ok;
}
}  // namespace dfkd
