// The adversarial method's generator step (DFAD, Fang et al. 2019; ZSKT, Micaelis & Storkey
// 2019), with DAFL's terms (Chen et al. 2019) and DeepInversion's BN term as options. Its
// defaults are the adversarial recipe's (methods/adversarial.cpp).
#include "core/synth/synth.h"
#include "core/checkpoint.h"
#include "core/dist.h"
#include "core/train.h"
#include "core/zoo.h"

namespace dfkd {

using losses::Term;
using losses::TermInput;

namespace {
// Data-parallel (dist.h): every rank draws the whole batch's z (the same draws) and runs the
// generator on its rows, its BatchNorm synchronized (the whole batch's statistics, as one
// process's); `batch` is one rank's share (the whole batch in one process).
Share rows_of(int64_t batch) {
  Dist* d = active_dist();
  return share_of(batch * (d ? d->world() : 1), "adversarial.batchSize");
}
bool data_parallel() {
  Dist* d = active_dist();
  return d && d->world() > 1;
}
}  // namespace

void add_dafl_terms(std::vector<Term>& terms, const GeneratorConfig& c, Teacher& teacher) {
  if (c.activation > 0) {
    auto penultimate = teacher.tap_index("penultimate");
    if (!penultimate) fail("E_CONFIG", "the activation term needs a teacher with a linear head");
    terms.push_back({"activation", c.activation, [p = *penultimate](const TermInput& in) { return losses::dafl_activation(in.teacher.acts[p]); }});
  }
  if (c.entropy > 0) terms.push_back({"entropy", c.entropy, [](const TermInput& in) { return losses::dafl_entropy(in.teacher.logits); }});
}

torch::jit::Module build_generator(const GeneratorConfig& c, Teacher& teacher, const std::vector<int64_t>& shape,
                                   at::Generator& init, const std::vector<double>& mean, const std::vector<double>& std,
                                   bool sync_bn) {
  if (c.nz < 1 || c.ngf < 1) fail("E_CONFIG", "generator nz and ngf must be positive");
  GeneratorHead head;
  head.pixels = c.output == GenOutput::pixels;  // auto: resolved by plan.cpp (standardized when unresolved)
  if (head.pixels && mean.empty())
    fail("E_CONFIG", "generator.output 'pixels' needs the teacher's input normalization: set normalization "
                     "{ mean, std } (mean 0, std 1 for raw [0, 1] pixels)");
  head.mean = mean, head.std = std;
  head.affine = c.bn > 0;  // the standardized head: the BN term anchors its scale and shift
  auto g = make_generator(c.nz, c.ngf, shape, init, head, sync_bn);
  g.to(teacher.device());
  if (forward_options().channels_last) to_channels_last(g);
  g.train();
  return g;
}

GeneratorSynth::GeneratorSynth(const GeneratorConfig& c, Teacher& teacher, std::vector<int64_t> shape,
                               at::Generator& init, int64_t total_steps, const std::vector<double>& mean,
                               const std::vector<double>& std)
    : c_(c), teacher_(teacher), shape_(std::move(shape)), mean_(mean), std_(std), sync_(data_parallel()) {
  g_ = build_generator(c, teacher, shape_, init, mean, std, sync_);
  opt_ = std::make_unique<Optim>(parameters_of(g_), c, total_steps);
  auto bn = teacher.bn_taps();
  if (c.bn > 0 && bn.empty()) fail("E_NO_BN", "the generator's bn term needs a teacher with BatchNorm layers");
  if (c.bn_momentum > 0)
    fail("E_CONFIG", "generator.bnMomentum is fast's (its meta generator's batches); the adversarial generator's bn "
                     "term compares each batch alone");
  tapped_ = c.bn > 0 || c.activation > 0;
  const Loss loss = c.loss;
  if (c.adversarial > 0)
    terms_.push_back({"discrepancy", -c.adversarial, [this, loss](const TermInput& in) {
                        auto s = run_logits(*in.student, in.x, "student");
                        return losses::discrepancy(loss, s, in.teacher.logits, temperature_);
                      }});
  if (c.onehot > 0) terms_.push_back({"onehot", c.onehot, [](const TermInput& in) { return losses::dafl_onehot(in.teacher.logits); }});
  add_dafl_terms(terms_, c, teacher);
  if (c.bn > 0)
    terms_.push_back({"bn", c.bn, [this, bn](const TermInput& in) { return losses::bn_sum(in.teacher.acts, teacher_.taps(), bn); }});
}

torch::Tensor GeneratorSynth::generate(const torch::Tensor& z) {
  ForwardCast fc;
  return fc.out(g_.forward({z}).toTensor());
}

torch::Tensor GeneratorSynth::sample(int64_t batch, Rng& rng) {
  torch::NoGradGuard ng;
  const Share rows = rows_of(batch);
  auto z = torch::randn({batch * rows.world, c_.nz}, rng.device, torch::TensorOptions().device(teacher_.device()));
  return generate(rows.of(z));
}

torch::jit::Module GeneratorSynth::portable() {
  if (!sync_) return g_;
  auto init = at::make_generator<at::CPUGeneratorImpl>(0);
  auto plain = build_generator(c_, teacher_, shape_, init, mean_, std_);
  copy_state(plain, g_);
  plain.train(g_.is_training());
  return plain;
}

StepLosses GeneratorSynth::step(torch::jit::Module& student, int64_t batch, double T, Rng& rng, int64_t step,
                            bool diagnostics) {
  opt_->step_schedule(step);
  const Share rows = rows_of(batch);
  auto z = torch::randn({batch * rows.world, c_.nz}, rng.device, torch::TensorOptions().device(teacher_.device()));
  auto x = generate(rows.of(z));
  Tapped t = tapped_ ? teacher_.forward_tapped(x) : Tapped{teacher_.logits(x), {}};
  StepLosses parts;
  temperature_ = T;
  torch::Tensor y;
  auto total = losses::compose(terms_, TermInput{x, y, t, &student}, x, parts, "generator");
  // (the whole batch's loss: every rank of a data-parallel job sees a non-finite one together)
  finite_ = still_finite(finite_, mean_over_ranks(total, "the generator loss"));
  parts.guard(finite_, "the generator loss", "lower the generator lr");
  opt_->zero_grad();
  if (rows.world > 1) {  // each share's part of the whole batch's loss; the generator's gradients summed
    (total / double(rows.world)).backward();
    active_dist()->sum_gradients(parameters_of(g_), "the sum of the generator's gradients");
  } else {
    total.backward();
  }
  opt_->step();
  if (diagnostics) {
    torch::NoGradGuard ng;
    BufferSnapshot keep_g(g_), keep_s(student);
    auto x2 = generate(rows.of(z));
    parts.set("discrepancy_after", losses::discrepancy(c_.loss, run_logits(student, x2, "student"), teacher_.logits(x2), T));
  }
  return parts;
}

}  // namespace dfkd
