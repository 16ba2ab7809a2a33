// Every loss of dfkd, written once and gradient-checked (test/native); synthesizers and
// trainers compose them as named terms (Term: name, weight, function).
#pragma once
#include <functional>
#include <map>

#include "core/common.h"
#include "core/config.h"
#include "core/teacher.h"

namespace dfkd {

using Losses = std::map<std::string, double>;
Json losses_json(const Losses& l);  // { name: value } for events and reports

// A step's loss terms as they are computed: scalars on the device, read to the host all together
// (read_scalars: one copy, one sync on a GPU) only when something needs the values: a progress
// event that goes out, a checkpoint, the report. A guard is a flag that must be true — a running
// "every loss so far was finite" (still_finite) — and a read that finds it false fails with
// E_NAN "<what> became NaN or infinite; <hint>". Nothing in a step waits for the device.
class StepLosses {
 public:
  void set(const std::string& name, const torch::Tensor& v);  // a 0-dim tensor, detached here
  void set(const std::string& name, double v);                // a host value (the lr)
  void guard(const torch::Tensor& finite, std::string what, std::string hint);
  void merge(const StepLosses& o, const std::string& prefix);  // o's entries as prefix + name, and its guards
  torch::Tensor tensor(const std::string& name) const;         // the device value (undefined if none)
  StepLosses cloned() const;  // the device values copied (a CUDA graph's outputs are rewritten by each replay)
  Losses read() const;
  bool empty() const { return dev_.empty() && host_.empty(); }

 private:
  struct Guard { torch::Tensor ok; std::string what, hint; };
  std::vector<std::pair<std::string, torch::Tensor>> dev_;
  Losses host_;
  std::vector<Guard> guards_;
};
// `flag` && isfinite(loss), on the device (an undefined flag counts as true).
torch::Tensor still_finite(const torch::Tensor& flag, const torch::Tensor& loss);

}  // namespace dfkd

namespace dfkd::losses {

// KL(softmax(t/T) || softmax(s/T)) * T^2, batch mean (Hinton et al. 2015; the `datafree` library).
torch::Tensor kd_kl(const torch::Tensor& s_logits, const torch::Tensor& t_logits, double T);
// Mean absolute difference of logits (DFAD's discrepancy, F.l1_loss).
torch::Tensor l1_logits(const torch::Tensor& s_logits, const torch::Tensor& t_logits);
// The student's (and generator's) discrepancy: KL at temperature T, or L1 on logits.
torch::Tensor discrepancy(Loss kind, const torch::Tensor& s, const torch::Tensor& t, double T);

// In a data-parallel job (dist.h active_dist) every batch statistic below — BN and feature
// statistics, batch-mean spectra, the TV-L2 norms — is the global batch's (sums all-reduced,
// gradients flowing back to each rank's share); per-image means need nothing.
// DeepInversion's BN regularizer for one layer: ||mu(x) - mu_run||_2 + ||var(x) - var_run||_2,
// batch statistics over (N,H,W), biased variance (NVlabs/DeepInversion DeepInversionFeatureHook);
// in a data-parallel job (dist.h active_dist) the global batch's statistics, not the rank's share.
torch::Tensor bn_stats(const torch::Tensor& act, const torch::Tensor& run_mean, const torch::Tensor& run_var);
// A batch's per-channel mean and biased variance over (N, H, W) (the global batch's in a
// data-parallel job): what bn_stats compares.
struct Moments {
  torch::Tensor mean, var;
};
Moments bn_moments(const torch::Tensor& act);
// bn_stats on given moments; with `average` (defined) and momentum k, the moments compared are
// (1 - k) x the batch's + k x the average of earlier batches' (Fast-Datafree's bn_mmt,
// datafree/hooks.py DeepInversionHook): each batch keeps the running average on the teacher's
// statistics rather than matching them alone.
torch::Tensor bn_stats(const Moments& batch, const torch::Tensor& run_mean, const torch::Tensor& run_var,
                       const Moments& average = {}, double k = 0.0);
// The BN loss of a whole teacher: sum over its BN taps (indices `bn` into `taps`/`acts`) of
// bn_stats, the first layer's weighted by `first_multiplier` (DeepInversion's first_bn_multiplier).
// With `averages` (one per tap; an undefined one: none yet) each layer's moments are mixed with
// its average at momentum k (bn_stats above), and `moments`, if given, receives each layer's batch
// moments, detached (what the caller's averages are updated from).
torch::Tensor bn_sum(const std::vector<torch::Tensor>& acts, const std::vector<Tap>& taps,
                     const std::vector<int64_t>& bn, double first_multiplier = 1.0,
                     const std::vector<Moments>& averages = {}, double k = 0.0, std::vector<Moments>* moments = nullptr);
// Statistical feature matching for one layer against stored mean and std per channel:
// ||mu_T - mu(x)||_2 + ||sigma_T - sigma(x)||_2, or with squared norms.
torch::Tensor feature_stats(const torch::Tensor& act, const torch::Tensor& mean, const torch::Tensor& std,
                            bool squared);
// Per-channel batch mean and (biased) std of an activation [N,C,...] (or [N,F]); the global
// batch's in a data-parallel job, as bn_stats.
std::pair<torch::Tensor, torch::Tensor> channel_mean_std(const torch::Tensor& act);

// Spectral statistics of an activation [N,C,H,W]: mean over the batch of |rfft2(a, norm="ortho")|
// ("amplitude") or of its square ("power"), shape [C,H,W/2+1].
torch::Tensor spectrum(const torch::Tensor& act, bool power);
// ||spectrum(act) - target||_F^2 / numel(target): the frequency-domain feature-matching term.
torch::Tensor spectral(const torch::Tensor& act, const torch::Tensor& target, bool power);

// What a BN layer's statistics imply in the frequency domain, for an activation [N,C,H,W]:
// ||DC bin - mean||_2 + ||total power (Parseval) - (mean^2 + var)||_2, with rfft2 norm="ortho"
// (DC = sqrt(HW) * channel mean; the power sums both halves of the one-sided spectrum).
torch::Tensor spectral_bn(const torch::Tensor& act, const torch::Tensor& bn_mean, const torch::Tensor& bn_var);

// Image priors (DeepInversion get_image_prior_losses): total variation over the four
// neighbour differences, L1 (sum of means of |diff|) and L2 (sum of Frobenius norms).
std::pair<torch::Tensor, torch::Tensor> tv(const torch::Tensor& x);
// Mean over the batch of per-image L2 norms.
torch::Tensor l2_prior(const torch::Tensor& x);

// Adaptive DeepInversion competition term: 1 - JS(P_s || P_t) at temperature T, probabilities
// clamped to [0.01, 0.99] as in NVlabs/DeepInversion; minimizing it makes them disagree.
torch::Tensor adi_competition(const torch::Tensor& s_logits, const torch::Tensor& t_logits, double T);

// Fast-Datafree's adversarial term (datafree/synthesis/fast_meta.py, "decision adversarial
// distillation"): the batch mean of KL(softmax(t) || softmax(s)) per sample, counted only where
// the student's and the teacher's argmax agree (0 elsewhere).
torch::Tensor agreeing_kl(const torch::Tensor& s_logits, const torch::Tensor& t_logits);

// DAFL (Chen et al. 2019): one-hot CE of the teacher on its own argmax; activation loss
// -mean|f|; information entropy loss sum(p_mean * log p_mean) (minimized -> balanced classes).
torch::Tensor dafl_onehot(const torch::Tensor& t_logits);
torch::Tensor dafl_activation(const torch::Tensor& features);
torch::Tensor dafl_entropy(const torch::Tensor& t_logits);

// ---- named terms ----------------------------------------------------------------------------
// What a term may read: the (jittered) input, the targets, the teacher's tapped forward, the
// student (null when the term has none to use).
struct TermInput {
  const torch::Tensor& x;
  const torch::Tensor& y;
  const Tapped& teacher;
  torch::jit::Module* student;
};
// One weighted term of a composed loss. `fn` may return an undefined tensor: the term is skipped.
struct Term {
  std::string name;
  double weight;
  std::function<torch::Tensor(const TermInput&)> fn;
};
// sum_i weight_i * fn_i(in), in order, from a zero of `like`'s options; `parts` gets each term's
// value by name and the total as `total_name` (on the device: nothing is read here).
torch::Tensor compose(const std::vector<Term>& terms, const TermInput& in, const torch::Tensor& like, StepLosses& parts,
                      const char* total_name);

}  // namespace dfkd::losses
