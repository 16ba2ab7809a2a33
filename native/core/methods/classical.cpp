// classical: knowledge distillation on the given data (Hinton, Vinyals & Dean 2015).
#include "core/driver.h"
#include "core/methods/method.h"
#include "core/train.h"

namespace dfkd {

namespace {

Recipe recipe() {
  Recipe r;
  auto& t = r.train;
  // KL at tau = 4, no CE on labels (Hinton et al. 2015).
  t.loss = Loss::kl, t.temperature = 4.0, t.ce_weight = 0.0;
  // SGD 0.05, momentum 0.9, wd 5e-4, cosine decay over 2000 steps of 128: a common CIFAR/MNIST KD recipe.
  t.optimizer = OptimKind::sgd, t.lr = 0.05, t.momentum = 0.9, t.weight_decay = 5e-4, t.schedule = Schedule::cosine;
  t.steps = 2000, t.batch = 128;
  t.crop_padding = 2, t.flip = false;  // random crop with 2 px zero padding, no flip (digits)
  return r;
}

class Classical : public Method {
 public:
  void init(Run& r) override {
    if (!r.train.size()) fail("E_CONFIG", "method 'classical' needs data: { images, labels }");
    if (r.train.x.sizes().slice(1).vec() != r.shape)
      fail("E_SHAPE", "training images have shape " + shape_str(r.train.x.sizes().slice(1)) + ", the input shape is " + shape_str(r.shape));
    const auto& t = r.cfg.recipe.train;
    r.steps = t.steps;
    if (r.steps < 1) fail("E_CONFIG", "train.steps must be at least 1");
    r.opt = std::make_unique<Optim>(parameters_of(r.student), t, r.steps);
    total_ = r.steps;
  }
  void restore(Run& r, CheckpointReader& ck, const Json& st) override {
    r.opt->load(ck.in());
    step_ = st.integer("step", 0);
  }
  Json save(Run& r, Checkpoint& ck) override {
    r.put_rng(ck);
    return Json(Json::Object{{"step", step_}});
  }
  void begin(Run& r) override {
    start_ = step_;
    batches_ = std::make_unique<Batches>(r.train.size(), r.cfg.recipe.train.batch, r.cfg.seed);
    r.phase("train");
    t0_ = Clock::now();
  }
  bool done() const override { return step_ >= total_; }
  int64_t unit() const override { return step_; }
  int64_t total() const override { return total_; }
  Json resize(Run& r, int64_t units) override {
    total_ = r.steps = units;
    r.opt->set_total(units);
    return Json(Json::Object{{"train.steps", units}});
  }
  void advance(Run& r) override {
    r.check_cancel("at step " + std::to_string(step_));
    const auto& t = r.cfg.recipe.train;
    auto idx = batches_->at(step_);
    auto x = augment(r.train.x.index_select(0, idx), t.crop_padding, t.flip, *r.rng).to(r.device);
    auto y = r.train.y.defined() ? r.train.y.index_select(0, idx).to(r.device) : torch::Tensor();
    r.last_student = r.student_step(x, y, step_);
    double el = secs_since(t0_);
    r.report("train", step_ + 1, r.steps, r.last_student, (step_ + 1 - start_) * double(t.batch) / std::max(el, 1e-9),
                      double(step_ + 1) / r.steps);
    r.maybe_eval(step_ + 1);
    ++step_;
  }
  void finish(Run& r) override { r.timings["train"] += secs_since(t0_); }

 private:
  int64_t step_ = 0, start_ = 0, total_ = 0;
  std::unique_ptr<Batches> batches_;
  Clock::time_point t0_;
};

}  // namespace

std::unique_ptr<Method> make_classical(const MethodInfo&) { return std::make_unique<Classical>(); }

MethodInfo classical_method() { return {"classical", recipe, make_classical, nullptr, "train"}; }

}  // namespace dfkd
