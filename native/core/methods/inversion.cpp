// The loop of the input-synthesis methods (deepinversion, statistical, spectral, noise) and of
// fast (a meta-learned generator, synth/meta.cpp): rounds
// of (synthesize a batch -> memory bank -> train.stepsPerRound KD steps on batches drawn from
// the bank, shifted by train.cropPadding and mixed by train.mixup). A method is its recipe and
// its PrepareSynth (methods/<name>.cpp); this file is what they share.
#include "core/driver.h"
#include "core/methods/method.h"
#include "core/train.h"

namespace dfkd {

namespace {

int64_t bank_capacity(const Run& r, int64_t images) {
  if (r.cfg.has("synth.bankSize")) return r.cfg.recipe.synth.bank_size;
  return bank_images(r.shape, images);
}

class Inversion : public Method {
 public:
  explicit Inversion(const MethodInfo& info) : info_(info) {}

  void init(Run& r) override {
    const auto& sc = r.cfg.recipe.synth;
    if (!r.cfg.stats.empty()) stats_ = std::make_unique<Stats>(load_stats(r.cfg.stats));
    synth_ = info_.synth(info_, r.cfg, r, stats_.get(), r.rng->host);
    rounds_ = sc.rounds;
    per_round_ = r.cfg.recipe.train.steps_per_round;
    if (rounds_ < 1 || per_round_ < 0) fail("E_CONFIG", "synth.rounds must be >= 1 and train.stepsPerRound >= 0");
    r.steps = rounds_ * per_round_;
    r.opt = std::make_unique<Optim>(parameters_of(r.student), r.cfg.recipe.train, std::max<int64_t>(1, r.steps));
    bank_ = std::make_unique<Bank>(bank_capacity(r, sc.bank_size));
  }

  void restore(Run& r, CheckpointReader& ck, const Json& st) override {
    r.opt->load(ck.in());
    bank_->load(ck.in());
    synth_->load(ck, r.device);
    // A synthesizer built in init() may have drawn its initial weights from the RNG, which the
    // driver had already restored: restore it again.
    r.load_rng(ck);
    round_ = st.integer("round", 0);
    k_ = st.integer("k", 0);
    have_batch_ = st.boolean("haveBatch", k_ > 0);
    r.synthesized = st.integer("synthesized", 0);
    for (auto& [name, v] : st.get("lastSynth").is_object() ? st.get("lastSynth").as_object() : Json::Object{})
      r.last_synth.set(name, v.as_number());
  }

  // Cancelled during synthesis: the round restarts from its beginning (bank and RNG as then).
  Json save(Run& r, Checkpoint& ck) override {
    bank_->save(ck.out());
    synth_->save(ck);
    r.put_rng(ck, in_synth_ ? &round_rng_ : nullptr);
    return Json(Json::Object{{"round", round_}, {"k", k_}, {"haveBatch", have_batch_ && !in_synth_},
                             {"synthesized", r.synthesized}, {"lastSynth", losses_json(r.last_synth.read())}});
  }

  bool done() const override { return round_ >= rounds_; }
  int64_t unit() const override { return round_; }
  int64_t total() const override { return rounds_; }
  Json resize(Run& r, int64_t units) override {
    rounds_ = units;
    r.steps = rounds_ * per_round_;
    r.opt->set_total(std::max<int64_t>(1, r.steps));
    if (!r.cfg.has("synth.bankSize")) bank_->grow(bank_capacity(r, rounds_ * synth_->config().batch));
    return Json(Json::Object{{"synth.rounds", rounds_}});
  }

  void advance(Run& r) override {
    const auto& t = r.cfg.recipe.train;
    Json where = Json(Json::Object{{"round", round_ + 1}, {"rounds", rounds_}});
    if (!have_batch_) synthesize(r, where);
    auto t1 = Clock::now();
    const int64_t k0 = k_;
    for (; k_ < per_round_; ++k_) {
      r.check_cancel("in round " + std::to_string(round_ + 1));
      int64_t step = round_ * per_round_ + k_;
      auto idx = torch::randint(0, bank_->size(), {t.batch}, r.rng->device,
                                torch::TensorOptions().dtype(torch::kLong).device(r.device));
      auto x = mixup(augment(bank_->get(idx), t.crop_padding, t.flip, *r.rng), t.mixup, *r.rng);
      r.last_student = r.student_step(x, torch::Tensor(), step);
      double el = secs_since(t1);
      r.report("train", step + 1, r.steps, r.last_student, (k_ + 1 - k0) * double(t.batch) / std::max(el, 1e-9),
                        (round_ + 0.5 + 0.5 * double(k_ + 1) / per_round_) / rounds_, where);
      r.maybe_eval(step + 1);
    }
    r.timings["train"] += secs_since(t1);
    k_ = 0;
    have_batch_ = false;
    ++round_;
  }

 private:
  void synthesize(Run& r, const Json& where) {
    r.phase("synthesize");
    round_rng_ = r.rng_state();
    in_synth_ = r.synthesizing = true;
    auto t0 = Clock::now();
    const int64_t batch = synth_->config().batch;
    synth_->at_round(round_, rounds_);
    auto res = synth_->run(*r.rng, synth_->uses_student() ? &r.student : nullptr, r.cancel,
                           [&](int64_t it, int64_t total, const StepLosses& l) {
                             double el = secs_since(t0);
                             r.report("synthesize", it, total, l, it * double(batch) / std::max(el, 1e-9),
                                               (round_ + 0.5 * it / total) / rounds_, where);
                           });
    in_synth_ = r.synthesizing = false;
    if (synth_->uses_student()) r.student_forward_done();
    r.timings["synthesize"] += secs_since(t0);
    r.last_synth = res.losses;
    bank_->add(res.x);
    r.synthesized += res.x.size(0);
    have_batch_ = true;
    if (round_ == 0) r.save_samples(res.x, res.y);
    r.phase("train");
  }

  const MethodInfo& info_;
  std::unique_ptr<Stats> stats_;
  std::unique_ptr<BatchSynth> synth_;
  std::unique_ptr<Bank> bank_;
  int64_t rounds_ = 0, per_round_ = 0, round_ = 0, k_ = 0;
  // Whether this round's batch is already in the bank: k == 0 alone does not say (a run
  // cancelled between synthesis and the first KD step used to synthesize the round again).
  bool have_batch_ = false, in_synth_ = false;
  Run::RngState round_rng_;  // RNG states at the start of the round being synthesized
};

}  // namespace

Recipe inversion_recipe() {
  Recipe r;
  auto& t = r.train;
  // The `datafree` library (CMI / Fast-Datafree): SGD 0.1, momentum 0.9, cosine, KD at T = 20
  // after each synthesized batch, from a bank that keeps every image. The bench presets
  // (bench/presets.json history, bundled teacher): 150 KD steps a round, shifts of up to 4 px and
  // weight decay 5e-4 (DeepInversion 97.13 -> 97.43%, spectral 96.97 -> 97.30% against 2 px, 1e-4).
  t.optimizer = OptimKind::sgd, t.lr = 0.1, t.momentum = 0.9, t.weight_decay = 5e-4, t.schedule = Schedule::cosine;
  t.loss = Loss::kl, t.temperature = 20.0;
  t.steps_per_round = 150, t.batch = 256, t.crop_padding = 4, t.flip = false;
  // NVlabs/DeepInversion: Adam on the inputs, betas (0.5, 0.9) (deepinversion.py), a cosine lr
  // with warm-up (utils.lr_cosine_policy), random jitter (roll) + flip per iteration (flip and
  // jitter follow the input: plan.cpp resolve_defaults). Sizes for CPUs and budgets: many cheap
  // batches beat few expensive ones (the paper's 2,000 iterations at lr 0.25 fit one or two
  // batches in a 5-minute CPU budget): 100 iterations at lr 0.1, batch 256 (bench presets,
  // bundled teacher). The number of rounds follows the budget (plan.cpp); 20 without one.
  auto& s = r.synth;
  s.lr = 0.1, s.betas = {0.5, 0.9}, s.lr_schedule = Schedule::cosine;
  s.rounds = 20, s.batch = 256, s.iterations = 100, s.jitter = 2, s.flip = true;
  // Priors: tv_l1 0, l2 1e-5, CE weight 1 (imagenet_inversion.py defaults); tv_l2 0.03 for smooth
  // strokes (bench presets; DeepInversion's ImageNet 1e-4 leaves salt-and-pepper noise at 28 px).
  s.ce = 1.0, s.tv_l1 = 0.0, s.tv_l2 = 0.03, s.l2 = 1e-5;
  return r;
}

std::unique_ptr<BatchSynth> input_synth(const MethodInfo& info, const DistillConfig& c, Run& r, const Stats* stats,
                                        at::Generator&) {
  SynthConfig sc = c.recipe.synth;
  auto layers = info.prepare(sc, *r.teacher, stats, r.shape);
  auto s = std::make_unique<InputSynthesizer>(*r.teacher, sc, std::move(layers), r.shape, r.classes);
  if (c.cuda_graphs && graphs_available(r.device) && sc.iterations > 0)
    r.log(s->use_graphs() ? "cudaGraphs: the synthesis step is a CUDA graph"
                          : "cudaGraphs: the synthesis step stays eager (the ADI term runs the student's backward)");
  return s;
}

std::unique_ptr<Method> make_inversion(const MethodInfo& info) { return std::make_unique<Inversion>(info); }

}  // namespace dfkd
