// adversarial: epochs x iterations of (studentSteps student steps on G(z), 1 generator step)
// (DFAD, Fang et al. 2019; ZSKT, Micaelis & Storkey 2019), with DAFL's terms (Chen et al. 2019)
// and DeepInversion's BN term as options. Defaults: VainF/Data-Free-Adversarial-Distillation
// DFAD_mnist.py, below.
#include "core/dist.h"
#include "core/driver.h"
#include "core/io/files.h"
#include "core/methods/method.h"
#include "core/train.h"

namespace dfkd {

namespace {

Recipe recipe() {
  Recipe r;
  // DFAD_mnist.py: the student by SGD, momentum 0.9, wd 1e-4, L1 on logits (no temperature:
  // T = 1), no augmentation; 50 iterations an epoch, 5 student steps per generator step, the
  // generator's batch the student's (a.batch 0). For CPUs and budgets (bench preset, bundled
  // teacher, 97.8%): batch 128 instead of 512 and lr 0.1 with a cosine schedule instead of a
  // constant 0.01 (4x the steps in the same time); the epochs follow the budget (plan.cpp), 20
  // without one (DFAD: 40 at batch 512).
  auto& t = r.train;
  t.optimizer = OptimKind::sgd, t.lr = 0.1, t.momentum = 0.9, t.weight_decay = 1e-4, t.schedule = Schedule::cosine;
  t.batch = 128, t.loss = Loss::l1, t.temperature = 1.0, t.crop_padding = 0, t.flip = false;
  auto& a = r.adversarial;
  a.epochs = 20, a.iters_per_epoch = 50, a.student_steps = 5, a.batch = 0;
  // GeneratorA (network/gan.py), nz 100, Adam lr 1e-3 (default betas), L1 discrepancy; ngf 16
  // instead of 64 (bench preset: a quarter of the width is enough for 28 px digits, and 4-16x
  // cheaper per step). GeneratorA's last BatchNorm has no affine: it forces every output channel
  // to mean 0 / std 1, which a teacher of inputs in [-1, 1] never sees (issue 20: 17.8%). With the
  // BN term on, it is affine: the teacher's BN statistics anchor its scale and shift. Without
  // (DAFL's terms), an affine output let the activation term inflate the inputs without bound
  // (the BN-less LeNet-5 fell to 40.7% in 5 minutes, discrepancy 11.9), so it stays DFAD's, or,
  // where the normalization cannot be the data's statistics, a sigmoid image through it
  // (generator.output; plan.cpp resolve_defaults).
  auto& g = r.generator;
  g.nz = 100, g.ngf = 16, g.optimizer = OptimKind::adam, g.lr = 1e-3, g.schedule = Schedule::none;
  g.loss = Loss::l1, g.adversarial = 1.0;
  // DAFL's terms (DAFL_train.py: onehot 1, activation 0.1, entropy 5) and DeepInversion's BN
  // term follow the teacher (plan.cpp resolve_defaults): the BN term (10) and a one-hot term (0.5)
  // when it has BatchNorm (Fast-Datafree's weights), DAFL's terms when it has none.
  g.onehot = g.activation = g.entropy = g.bn = 0.0;
  return r;
}

class Adversarial : public Method {
 public:
  void init(Run& r) override {
    const auto& a = r.cfg.recipe.adversarial;
    if (a.epochs < 1 || a.iters_per_epoch < 1 || a.student_steps < 1 || a.batch < 1)
      fail("E_CONFIG", "adversarial epochs, itersPerEpoch, studentSteps and batchSize must be >= 1");
    total_ = a.epochs * a.iters_per_epoch;
    r.steps = total_ * a.student_steps;
    r.opt = std::make_unique<Optim>(parameters_of(r.student), r.cfg.recipe.train, r.steps);
    g_ = std::make_unique<GeneratorSynth>(r.cfg.recipe.generator, *r.teacher, r.shape, r.rng->host, total_,
                                         r.cfg.mean, r.cfg.std);
    if (a.replay > 0) bank_ = std::make_unique<Bank>(bank_capacity(r));
  }
  void restore(Run& r, CheckpointReader& ck, const Json& st) override {
    r.opt->load(ck.in());
    auto gm = ck.module("generator", r.device);
    copy_state(g_->module(), gm);
    torch::serialize::InputArchive ga;
    ck.in().read("generator_optim", ga);
    g_->optim().load(ga);
    it_ = st.integer("iteration", 0);
    if (bank_) bank_->load(ck.in());
    // Building the generator in init() drew its initial weights from the RNG, which the driver
    // had already restored: restore it again, or every z after a resume differs from the run's.
    r.load_rng(ck);
  }
  Json save(Run& r, Checkpoint& c) override {
    if (!module_finite(g_->module())) fail("E_NAN", "the generator's weights became NaN or infinite; lower the generator lr");
    r.put_rng(c);
    c.put_module("generator", g_->module());
    torch::serialize::OutputArchive ga;
    g_->optim().save(ga);
    c.out().write("generator_optim", ga);
    if (bank_) bank_->save(c.out());
    return Json(Json::Object{{"iteration", it_}});
  }
  void begin(Run& r) override {
    r.phase("train");
    t0_ = Clock::now();
    it0_ = it_;
  }
  bool done() const override { return it_ >= total_; }
  int64_t unit() const override { return it_; }
  int64_t total() const override { return total_; }
  Json resize(Run& r, int64_t units) override {
    const auto& a = r.cfg.recipe.adversarial;
    total_ = units;
    r.steps = total_ * a.student_steps;
    r.opt->set_total(r.steps);
    g_->optim().set_total(total_);
    if (bank_ && !r.cfg.has("adversarial.bankSize")) bank_->grow(bank_capacity(r));
    // epochs are a reporting unit here: the iterations are what the budget sizes
    return Json(Json::Object{{"adversarial.epochs", 1}, {"adversarial.itersPerEpoch", total_}});
  }
  void advance(Run& r) override {
    const auto& a = r.cfg.recipe.adversarial;
    const auto& t = r.cfg.recipe.train;
    const int64_t ns = a.student_steps;
    r.check_cancel("at iteration " + std::to_string(it_));
    for (int64_t j = 0; j < ns; ++j) {
      auto x = g_->sample(t.batch, *r.rng);
      if (bank_) x = replay(r, x, j == ns - 1);
      r.last_student = r.student_step(x, torch::Tensor(), it_ * ns + j);
      if (a.diagnostics && j == ns - 1) {  // the same batch after the step
        torch::NoGradGuard ng;
        BufferSnapshot keep(r.student);
        r.last_student.set("kd_after", losses::discrepancy(t.loss, run_logits(r.student, x, "student"),
                                                           r.teacher->logits(x), t.temperature));
      }
    }
    last_g_ = g_->step(r.student, a.batch, t.temperature, *r.rng, it_, a.diagnostics);
    r.student_forward_done();
    StepLosses all = r.last_student;
    all.merge(last_g_, "g_");
    r.synthesized += ns * t.batch + a.batch;
    double el = secs_since(t0_);
    r.report("train", it_ + 1, total_, all, (it_ + 1 - it0_) * double(ns * t.batch + a.batch) / std::max(el, 1e-9),
                      double(it_ + 1) / total_,
                      Json(Json::Object{{"epoch", it_ / a.iters_per_epoch + 1}, {"epochs", a.epochs}}));
    r.maybe_eval((it_ + 1) * ns);
    ++it_;
  }
  // The generator, as TorchScript, and a grid of its samples.
  void finish(Run& r) override {
    r.timings["train"] += secs_since(t0_);
    r.last_synth = last_g_;
    auto ts = Clock::now();
    const std::string& gpath = r.cfg.output.generator;
    make_parent_dirs(gpath);
    g_->module().eval();
    Json gmeta = r.meta;
    gmeta["nz"] = g_->nz();
    if (r.lead()) {  // (rank 0 writes the files)
      auto g = g_->portable();
      save_module(g, gpath, gmeta);
    }
    auto x = g_->sample(64, *r.rng);
    {
      torch::NoGradGuard ng;
      r.save_samples(x, r.teacher->logits(x).argmax(1));
    }
    r.timings["save"] += secs_since(ts);
  }

 private:
  // Replay (adversarial.replay = f): the last f of this rank's fresh rows give way to as many drawn
  // from the bank of earlier samples (none while it is empty); at the iteration's last student
  // step those fresh rows go into the bank instead. The bank fills at the rate it is read from and,
  // by default, keeps every row it is given (bank_images).
  torch::Tensor replay(Run& r, const torch::Tensor& fresh, bool keep) {
    const int64_t m = fresh.size(0);
    const int64_t k = std::min<int64_t>(m - 1, std::llround(r.cfg.recipe.adversarial.replay * m));
    if (k < 1) return fresh;
    torch::Tensor x = fresh;
    if (bank_->size() > 0) {
      auto idx = torch::randint(0, bank_->size(), {k}, r.rng->device, torch::TensorOptions().dtype(torch::kLong));
      x = torch::cat({fresh.slice(0, 0, m - k), bank_->get(idx)});
    }
    if (keep) bank_->add(fresh.slice(0, m - k));
    return x;
  }
  int64_t bank_capacity(const Run& r) const {
    const auto& a = r.cfg.recipe.adversarial;
    if (r.cfg.has("adversarial.bankSize")) return a.bank_size;
    const Share share = share_of(r.cfg.recipe.train.batch, "train.batchSize");
    const int64_t rows = share.hi - share.lo;
    return bank_images(r.shape, total_ * std::max<int64_t>(1, std::llround(a.replay * rows)));
  }

  std::unique_ptr<GeneratorSynth> g_;
  std::unique_ptr<Bank> bank_;
  int64_t it_ = 0, it0_ = 0, total_ = 0;
  StepLosses last_g_;
  Clock::time_point t0_;
};

}  // namespace

std::unique_ptr<Method> make_adversarial(const MethodInfo&) { return std::make_unique<Adversarial>(); }

MethodInfo adversarial_method() {
  return {"adversarial", recipe, make_adversarial, nullptr, "train generator adversarial", /*generator_loop=*/true};
}

}  // namespace dfkd
