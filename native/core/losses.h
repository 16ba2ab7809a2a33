// Every loss of dfkd, written once; synthesizers and trainers compose them.
#pragma once
#include "core/common.h"

namespace dfkd::losses {

// KL(softmax(t/T) || softmax(s/T)) * T^2, batch mean (Hinton et al. 2015; the `datafree` library).
torch::Tensor kd_kl(const torch::Tensor& s_logits, const torch::Tensor& t_logits, double T);
// Mean absolute difference of logits (DFAD's discrepancy, F.l1_loss).
torch::Tensor l1_logits(const torch::Tensor& s_logits, const torch::Tensor& t_logits);
// Student loss by name: "kl" | "l1".
torch::Tensor discrepancy(const std::string& kind, const torch::Tensor& s, const torch::Tensor& t, double T);

// DeepInversion's BN regularizer for one layer: ||mu(x) - mu_run||_2 + ||var(x) - var_run||_2,
// batch statistics over (N,H,W), biased variance (NVlabs/DeepInversion DeepInversionFeatureHook).
torch::Tensor bn_stats(const torch::Tensor& act, const torch::Tensor& run_mean, const torch::Tensor& run_var);
// Statistical feature matching for one layer against stored mean and std per channel:
// ||mu_T - mu(x)||_2 + ||sigma_T - sigma(x)||_2, or with squared norms.
torch::Tensor feature_stats(const torch::Tensor& act, const torch::Tensor& mean, const torch::Tensor& std,
                            bool squared);
// Per-channel batch mean and (biased) std of an activation [N,C,...] (or [N,F]).
std::pair<torch::Tensor, torch::Tensor> channel_mean_std(const torch::Tensor& act);

// Spectral statistics of an activation [N,C,H,W]: mean over the batch of |rfft2(a, norm="ortho")|
// ("amplitude") or of its square ("power"), shape [C,H,W/2+1].
torch::Tensor spectrum(const torch::Tensor& act, bool power);
// ||spectrum(act) - target||_F^2 / numel(target): the frequency-domain feature-matching term.
torch::Tensor spectral(const torch::Tensor& act, const torch::Tensor& target, bool power);

// Image priors (DeepInversion get_image_prior_losses): total variation over the four
// neighbour differences, L1 (sum of means of |diff|) and L2 (sum of Frobenius norms).
std::pair<torch::Tensor, torch::Tensor> tv(const torch::Tensor& x);
// Mean over the batch of per-image L2 norms.
torch::Tensor l2_prior(const torch::Tensor& x);

// Adaptive DeepInversion competition term: 1 - JS(P_s || P_t) at temperature T, probabilities
// clamped to [0.01, 0.99] as in NVlabs/DeepInversion; minimizing it makes them disagree.
torch::Tensor adi_competition(const torch::Tensor& s_logits, const torch::Tensor& t_logits, double T);

// DAFL (Chen et al. 2019): one-hot CE of the teacher on its own argmax; activation loss
// -mean|f|; information entropy loss sum(p_mean * log p_mean) (minimized -> balanced classes).
torch::Tensor dafl_onehot(const torch::Tensor& t_logits);
torch::Tensor dafl_activation(const torch::Tensor& features);
torch::Tensor dafl_entropy(const torch::Tensor& t_logits);

}  // namespace dfkd::losses
