#include "core/selfcheck.h"

#include <functional>

#include "core/losses.h"

namespace dfkd {

namespace {
double check(const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x, at::Generator& gen) {
  x = x.clone().requires_grad_(true);
  auto g = torch::autograd::grad({f(x)}, {x})[0].detach().reshape(-1);
  auto xf = x.detach().clone().reshape(-1);
  const double eps = 1e-6;
  double worst = 0;
  auto idx = torch::randint(0, xf.numel(), {24}, gen, torch::kLong);
  for (int64_t k = 0; k < idx.numel(); ++k) {
    int64_t i = idx[k].item<int64_t>();
    auto xp = xf.clone(), xm = xf.clone();
    xp[i] += eps;
    xm[i] -= eps;
    double num = (f(xp.view(x.sizes())).item<double>() - f(xm.view(x.sizes())).item<double>()) / (2 * eps);
    double ana = g[i].item<double>();
    worst = std::max(worst, std::abs(num - ana) / std::max(1.0, std::abs(ana)));
  }
  return worst;
}
}  // namespace

Json gradient_selfcheck(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto act = torch::randn({4, 3, 6, 7}, gen, torch::kDouble);
  auto other = torch::randn({4, 3, 6, 7}, gen, torch::kDouble) * 2 + 0.5;
  auto logits = torch::randn({5, 4}, gen, torch::kDouble);
  auto t_logits = torch::randn({5, 4}, gen, torch::kDouble);
  auto amp = losses::spectrum(other, false), pw = losses::spectrum(other, true);
  auto mean = torch::rand({3}, gen, torch::kDouble), stdv = torch::rand({3}, gen, torch::kDouble) + 0.5;
  Json j;
  j["spectral_amplitude"] = check([&](const torch::Tensor& x) { return losses::spectral(x, amp, false); }, act, gen);
  j["spectral_power"] = check([&](const torch::Tensor& x) { return losses::spectral(x, pw, true); }, act, gen);
  j["bn_stats"] = check([&](const torch::Tensor& x) { return losses::bn_stats(x, mean, stdv); }, act, gen);
  j["feature_stats"] = check([&](const torch::Tensor& x) { return losses::feature_stats(x, mean, stdv, false); }, act, gen);
  j["feature_stats_squared"] = check([&](const torch::Tensor& x) { return losses::feature_stats(x, mean, stdv, true); }, act, gen);
  j["tv_l1"] = check([&](const torch::Tensor& x) { return losses::tv(x).first; }, act, gen);
  j["tv_l2"] = check([&](const torch::Tensor& x) { return losses::tv(x).second; }, act, gen);
  j["l2_prior"] = check([&](const torch::Tensor& x) { return losses::l2_prior(x); }, act, gen);
  j["kd_kl"] = check([&](const torch::Tensor& x) { return losses::kd_kl(x, t_logits, 4.0); }, logits, gen);
  j["l1_logits"] = check([&](const torch::Tensor& x) { return losses::l1_logits(x, t_logits); }, logits, gen);
  j["adi_competition"] = check([&](const torch::Tensor& x) { return losses::adi_competition(x, t_logits, 3.0); }, logits, gen);
  j["dafl_onehot"] = check([&](const torch::Tensor& x) { return losses::dafl_onehot(x); }, logits, gen);
  j["dafl_entropy"] = check([&](const torch::Tensor& x) { return losses::dafl_entropy(x); }, logits, gen);
  return j;
}

}  // namespace dfkd
