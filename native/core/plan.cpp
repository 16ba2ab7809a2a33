#include "core/plan.h"

#include <iomanip>
#include <sstream>

#include <cmath>

#include "core/driver.h"
#include "core/methods/method.h"
#include "core/methods/registry.h"
#include "core/synth/synth.h"
#include "core/train.h"

namespace dfkd {

// ---- method "auto" -----------------------------------------------------------------------------

std::pair<std::string, std::string> choose_method(const Json& j) {
  if (!j.get("data").is_null())
    return {"classical", "training data was given: knowledge distillation on it (classical)"};
  if (j.get("stats").is_string() && !j.get("stats").as_string().empty())
    // BN-less LeNet-5 of issue 20, same sizes: spectral 96.8%, statistical 89.7%.
    return {"spectral", "a statistics file was given: spectral matches its per-layer means and spectra"};
  if (!j.get("teacher").is_string()) return {"adversarial", "no teacher given"};  // parse_distill names the error
  std::vector<std::string> layers;
  if (j.get("layers").is_array()) layers = j.strs("layers");
  Teacher t(j.get("teacher").as_string(), torch::Device(torch::kCPU), layers);
  const size_t bn = t.bn_taps().size();
  // BatchNorm: fast (FastDFKD's meta-learned generator, BN statistics term). Family benchmark, tune
  // teachers with BatchNorm (lenet5_bn / resnet8_bn / cnn_bn_raw), validation rows, seed 0: at 5
  // minutes 98.60 / 95.53 / 98.67% against adversarial + BN term 97.20 / 94.40 / 97.07%; at 2
  // minutes 97.93 / 90.47 / 97.20% against 96.87 / 92.04 / 94.10% (adversarial: means of seeds 0/1;
  // bench/results/family.val.json).
  // Earlier: adversarial + BN term 96.4% where the deepinversion recipe gave 79.6% (issue 20).
  if (bn > 0)
    return {"fast", "the teacher has " + std::to_string(bn) +
                        " BatchNorm layers and no statistics file was given: fast (a meta-learned generator adapted to each "
                        "batch against the BatchNorm statistics, FastDFKD)"};
  // Neither, and no convolutions (an MLP): fast with DAFL's terms in place of the statistics term
  // (resolve_defaults). Family benchmark, validation rows, 2 minutes: on the MLP tune teacher
  // (LeNet-300-100 on [-1, 1]) fast 94.53% (seed 0, AMD EPYC, 06fba8e+dirty) and 94.33 / 93.27%
  // (seeds 0/1, Intel Xeon) where adversarial (DAFL + replay) gave 91.80% and 89.93 / 90.20%; on
  // the convolutional BN-less tune teachers (LeNet-5, a CNN with LayerNorm) fast lost: 92.20 /
  // 86.40% against 97.93 / 94.53% (seed 0, Intel Xeon; 85.53 / 89.80% on the EPYC), so they stay
  // adversarial (bench/results/family.val.json).
  if (t.convolutions() == 0)
    return {"fast", "the teacher has no BatchNorm layers and no convolutions (an MLP), and no statistics file was given: "
                    "fast with DAFL's one-hot, activation and entropy terms in place of BatchNorm statistics (pass a "
                    "`dfkd stats` file for spectral)"};
  return {"adversarial", "the teacher has no BatchNorm layers and no statistics file was given: a generator trained by "
                         "DAFL's one-hot, activation and entropy terms (pass a `dfkd stats` file for spectral)"};
}

// ---- defaults that follow the teacher --------------------------------------------------------

namespace {

std::vector<double> per_channel(const Json& v) {
  if (v.is_number()) return {v.as_number()};
  std::vector<double> out;
  if (v.is_array())
    for (auto& e : v.as_array()) out.push_back(e.as_number());
  return out;
}

Json nums_json(const std::vector<double>& v) { return Json(Json::Array(v.begin(), v.end())); }

// Whether (mean, std) can be the per-channel statistics of images in [0, 1]: 0 < mean < 1 and, by
// the Bhatia-Davis inequality (variance <= (1 - mean) * mean on [0, 1]), std < sqrt(mean (1 - mean)).
// MNIST's 0.1307 / 0.3081 (bound 0.337) and ImageNet's 0.485 / 0.229 can; the conventions 0 / 1 (raw
// pixels) and 0.5 / 0.5 ([-1, 1]) cannot.
bool could_be_data_statistics(const std::vector<double>& mean, const std::vector<double>& std) {
  if (mean.empty() || std.empty()) return false;
  for (size_t i = 0; i < mean.size(); ++i) {
    const double m = mean[i], s = std[std::min(i, std.size() - 1)];
    if (!(m > 0 && m < 1 && s < std::sqrt(m * (1 - m)))) return false;
  }
  return true;
}

// A pixel convention from the teacher's input mean mu (Teacher::input_mean), for a teacher given no
// normalization. Data-statistics normalization centres the inputs (mu = 0; the family's
// teachers normalized by MNIST's statistics read 0.014 to 0.031); raw pixels in [0, 1] average
// the data's mean (MNIST 0.13, natural images 0.3 to 0.5: the family's raw-pixel CNN read 0.129),
// pixels in [0, 255] 255 times that, and [-1, 1] pixels 2 x mean - 1 (MNIST -0.74: the family's
// [-1, 1] VGG read -0.695). The bands leave the ambiguous middle to the default (data statistics):
// natural images in [-1, 1] (about -0.1) read as centred. Every channel must fall in one band.
struct Convention {
  std::string name;
  std::vector<double> mean, std;
};
Convention input_convention(const std::vector<double>& mu) {
  if (mu.empty()) return {};
  auto all = [&](double lo, double hi) {
    for (double v : mu)
      if (!(v > lo && v <= hi)) return false;
    return true;
  };
  const std::vector<double> zero(mu.size(), 0.0), one(mu.size(), 1.0), half(mu.size(), 0.5);
  if (all(1.5, 255.0)) return {"raw pixels in [0, 255]", zero, std::vector<double>(mu.size(), 1.0 / 255.0)};
  if (all(0.08, 1.5)) return {"raw pixels in [0, 1]", zero, one};
  if (all(-1.0, -0.15)) return {"pixels scaled to [-1, 1]", half, half};
  return {};
}

}  // namespace

void resolve_defaults(DistillConfig& c, Run& r, const MethodInfo& info) {
  // Input normalization (the generator's pixel head, the samples' PNG, the student's metadata): the
  // config's, else the teacher's metadata, else the normalization the user gave its datasets (test,
  // then data). Resolved into c.mean / c.std, so the report's config says which was used.
  if (c.mean.empty() && r.meta.has("mean") && r.meta.has("std")) {
    c.mean = per_channel(r.meta.get("mean"));
    c.std = per_channel(r.meta.get("std"));
  }
  for (const Json* ds : {&c.test, &c.data})
    if (c.mean.empty() && ds->is_object() && ds->has("mean") && ds->has("std")) {
      c.mean = per_channel(ds->get("mean"));
      c.std = per_channel(ds->get("std"));
    }
  if (c.mean.empty()) {  // none given: what the teacher's first BatchNorm says of its inputs
    std::string why;
    auto mu = r.teacher->input_mean(&why);
    if (auto conv = input_convention(mu); !conv.name.empty()) {
      c.mean = conv.mean, c.std = conv.std;
      std::ostringstream o;
      o << std::setprecision(3) << "input normalization: none given; the teacher's inputs average [";
      for (size_t i = 0; i < mu.size(); ++i) o << (i ? ", " : "") << mu[i];
      o << "]"
        << " per channel (" << why << "): " << conv.name << ", i.e. mean " << conv.mean[0] << " / std " << conv.std[0]
        << " per channel on pixels in [0, 1]. Pass normalization (--mean/--std) if not";
      r.log(o.str());
    }
  }
  if (!c.mean.empty()) {
    r.meta["mean"] = nums_json(c.mean);
    r.meta["std"] = nums_json(c.std);
  }
  if (info.prepare) {  // input synthesis: the prior
    Prior p = c.prior;
    if (p == Prior::automatic) p = r.shape.size() == 3 && r.shape[0] == 1 ? Prior::digits : Prior::natural;
    auto& s = c.recipe.synth;
    // A mirrored digit or letter is not one of its class: DeepInversion's random flip only for
    // natural images (presets history: spectral 97.17/97.83/95.87% with it, 97.47/98.20/97.87%
    // without, bundled teacher, seeds 0/1/2).
    if (!c.has("synth.flip")) s.flip = p == Prior::natural;
    // Jitter relative to the image: DeepInversion's CIFAR-10 setting, 2 px on 32 px inputs
    // (cifar10/deepinversion_cifar10.py), i.e. a sixteenth of the side (2 px on 28 px MNIST).
    if (!c.has("synth.jitter") && r.shape.size() == 3)
      s.jitter = std::max<int64_t>(1, std::llround(std::min(r.shape[1], r.shape[2]) / 16.0));
  }
  if (info.generator_loop) {
    auto& g = c.recipe.generator;
    // Statistics to match: the teacher's BatchNorm layers, or a stats file where the method's
    // synthesizer reads one (fast, through its prepare(); not the adversarial generator).
    const bool bn = !r.teacher->bn_taps().empty() || (info.prepare && !c.stats.empty());
    // With BatchNorm: DeepInversion's BN term on the generator and a one-hot term, at Fast-Datafree's
    // weights (scripts/fast_cifar.sh: adv 1-1.33, bn 10, oh 0.4-0.5): on the family's tune teachers
    // with BatchNorm (validation rows, 2 minutes, seeds 0/1; family.val.json) 96.87 / 92.04% where
    // bn 1 alone (the earlier bench preset) gave 97.04 / 89.10% and CMI's (scripts/cmi_cifar.sh:
    // adv 0.5, bn 1, oh 1) 96.94 / 88.74% (bundled LeNet-5 / ResNet-8). Without: DAFL (Chen et
    // al. 2019): the generator trained by its one-hot, activation and entropy terms at
    // DAFL_train.py's weights (oh 1, a 0.1, ie 5), without DFAD's adversarial term. Family
    // benchmark, BN-less LeNet-5 (a tune teacher), validation rows, 5 minutes, seed 0: DAFL 97.80%,
    // DFAD + DAFL's terms 53.20%, DFAD alone 39.47% (the generator outruns the student as its lr
    // decays; bench/results/family.val.json and the issue notes).
    if (!c.has("generator.bn")) g.bn = bn ? 10.0 : 0.0;
    if (g.bn > 0 && !c.has("generator.onehot")) g.onehot = 0.5;  // Fast-Datafree's one-hot term comes with the BN term
    // The generator's head. GeneratorA's standardized output (tanh -> BatchNorm, mean 0 / std 1 per
    // channel) is right when the normalization is the data's own statistics, and it won on the tune
    // teachers normalized by MNIST's statistics (validation rows, 2 minutes, seeds 0/1: 97.04 /
    // 89.10 / 97.50% against 97.87 / 85.24 / 95.80% with the pixel head; family.val.json). With a
    // normalization that cannot be data statistics (a convention such as raw pixels, mean 0 / std 1,
    // or [-1, 1], mean 0.5 / std 0.5) it makes inputs the teacher never saw, BN term or not: the
    // raw-pixel MLP's DAFL samples saturate into blobs, and on the tune teacher with BatchNorm on raw
    // pixels (cnn_bn_raw; validation rows, 2 minutes, seeds 0/1) the standardized head gave 36.27 /
    // 74.27%, the pixel head 92.40 / 95.80%: the BN term does not pull the head's affine shift to the
    // input range. Then images in [0, 1] through the normalization (Fast-Datafree's sigmoid generator
    // and normalizer).
    if (g.output == GenOutput::automatic)
      g.output = !c.mean.empty() && !could_be_data_statistics(c.mean, c.std) ? GenOutput::pixels : GenOutput::standardized;
    if (!bn) {
      if (!c.has("generator.adversarial")) g.adversarial = 0.0;
      if (!c.has("generator.onehot")) g.onehot = 1.0;
      if (!c.has("generator.activation") && r.teacher->tap_index("penultimate")) g.activation = 0.1;
      if (!c.has("generator.entropy")) g.entropy = 5.0;
      // Replay (MB-DFKD, Binici et al. 2022: a memory of the generator's earlier samples in each
      // student batch). DAFL's generator drifts, and without a memory the student forgets: on the
      // BN-less tune teachers (validation rows, 2 minutes) LeNet-300-100's student rose to 88% in
      // 20 s and ended at 77%. Half of each student batch from the bank, family benchmark, same
      // rows, seeds 0/1 (family.val.json): 97.80 / 90.74 / 94.84% against 97.70 / 76.57 / 93.60%
      // without (lenet5_nobn / mlp300_pm1 / cnn_ln_raw); a quarter (seed 0) 98.20 / 87.87 / 94.53%,
      // three quarters 97.73 / 89.00 / 93.33%, against 98.00 / 91.80 / 94.07% for a half.
      if (!info.prepare && !c.has("adversarial.replay")) c.recipe.adversarial.replay = 0.5;
    }
  }
  if (!c.method_reason.empty()) r.log("method auto -> " + c.method + ": " + c.method_reason);
}

// ---- the budget --------------------------------------------------------------------------------

namespace {

enum class Kind { inversion, adversarial, classical };

Kind kind_of(const MethodInfo& info) {
  if (info.prepare) return Kind::inversion;
  if (info.generator_loop) return Kind::adversarial;
  return Kind::classical;
}

// Seconds per call of `f`, after `warm` untimed calls (TorchScript's profiling executor
// specializes the graph on its first runs); the device's queued work is waited for on both ends.
template <class F>
double per_call(torch::Device device, F&& f, int warm = 2, int timed = 3) {
  for (int i = 0; i < warm; ++i) f(i);
  sync_device(device);
  auto t0 = Clock::now();
  for (int i = 0; i < timed; ++i) f(warm + i);
  sync_device(device);
  return secs_since(t0) / timed;
}

torch::Tensor batch_of(const Run& r, int64_t n) {
  std::vector<int64_t> full{n};
  full.insert(full.end(), r.shape.begin(), r.shape.end());
  return torch::randn(full, torch::TensorOptions().device(r.device));
}

// One student step on a copy of the student (the run's student and optimizer stay untouched).
double student_step_cost(Run& r, const DistillConfig& c, const std::function<torch::Tensor()>& x,
                         const torch::Tensor& y) {
  auto s = trainable_copy(r.student);
  Optim opt(parameters_of(s), c.recipe.train, 100);
  const auto& t = c.recipe.train;
  return per_call(r.device, [&](int i) { dfkd::student_step(*r.teacher, s, opt, x(), y, t.loss, t.temperature, t.ce_weight, i); });
}

struct Costs {
  double synth_iter = 0, student_step = 0, generator_step = 0, evaluate = 0;
  Json json() const {
    return Json(Json::Object{{"synthIteration", synth_iter}, {"studentStep", student_step},
                             {"generatorStep", generator_step}, {"evaluate", evaluate}});
  }
};

Costs calibrate(Run& r, const DistillConfig& c, const MethodInfo& info) {
  Costs k;
  Rng rng(c.seed + 7919, r.device);  // its own RNG: the run's draws are those of an unbudgeted run
  const auto& t = c.recipe.train;
  switch (kind_of(info)) {
    case Kind::inversion: {
      if (c.recipe.synth.iterations > 0) {
        DistillConfig cc = c;
        cc.recipe.synth.iterations = 5;
        std::unique_ptr<Stats> stats;
        if (!c.stats.empty()) stats = std::make_unique<Stats>(load_stats(c.stats));
        auto init = at::make_generator<at::CPUGeneratorImpl>(c.seed + 7919);
        auto syn = info.synth(info, cc, r, stats.get(), init);
        syn->at_round(1, 1);  // every term on (fast's adversarial term is off in its warm-up)
        std::vector<Clock::time_point> at;
        syn->run(rng, syn->uses_student() ? &r.student : nullptr, r.cancel,
                 [&](int64_t, int64_t, const StepLosses&) { sync_device(r.device); at.push_back(Clock::now()); });
        k.synth_iter = std::chrono::duration<double>(at[4] - at[1]).count() / 3;
      }
      auto x = batch_of(r, t.batch);
      k.student_step = student_step_cost(r, c, [&] { return x; }, torch::Tensor());
      break;
    }
    case Kind::adversarial: {
      const auto& a = c.recipe.adversarial;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed + 7919);
      GeneratorSynth g(c.recipe.generator, *r.teacher, r.shape, gen, 100, c.mean, c.std);
      k.student_step = student_step_cost(r, c, [&] { return g.sample(t.batch, rng); }, torch::Tensor());
      auto s = trainable_copy(r.student);
      k.generator_step = per_call(r.device, [&](int i) { g.step(s, a.batch, t.temperature, rng, i); });
      break;
    }
    case Kind::classical: {
      if (!r.train.size()) break;  // the method names the error
      const int64_t n = std::min<int64_t>(t.batch, r.train.size());
      auto x = r.train.x.slice(0, 0, n).to(r.device);
      auto y = r.train.labeled() ? r.train.y.slice(0, 0, n).to(r.device) : torch::Tensor();
      k.student_step = student_step_cost(r, c, [&] { return x; }, y);
      break;
    }
  }
  if (r.test.size()) {
    auto t0 = Clock::now();
    evaluate(&r.teacher->module(), &r.student, r.test, 512, r.device);
    k.evaluate = secs_since(t0);
  }
  return k;
}

std::string secs_str(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.2f s" : "%.0f s", s);
  return buf;
}

}  // namespace

void apply_plan(DistillConfig& c, const MethodInfo& info, const Json& plan) {
  auto& s = c.recipe.synth;
  auto& t = c.recipe.train;
  auto& a = c.recipe.adversarial;
  if (plan.has("synth.rounds")) s.rounds = plan.integer("synth.rounds", s.rounds);
  if (plan.has("adversarial.epochs")) a.epochs = plan.integer("adversarial.epochs", a.epochs);
  if (plan.has("adversarial.itersPerEpoch")) a.iters_per_epoch = plan.integer("adversarial.itersPerEpoch", a.iters_per_epoch);
  if (plan.has("train.steps")) t.steps = plan.integer("train.steps", t.steps);
  if (plan.has("synth.iterations")) s.iterations = plan.integer("synth.iterations", s.iterations);
  if (plan.has("train.stepsPerRound")) t.steps_per_round = plan.integer("train.stepsPerRound", t.steps_per_round);
  if (kind_of(info) == Kind::inversion && !c.has("synth.bankSize")) s.bank_size = s.rounds * s.batch;
}

Json plan_budget(DistillConfig& c, Run& r, const MethodInfo& info, const Json& resumed) {
  const Kind kind = kind_of(info);
  auto& s = c.recipe.synth;
  auto& t = c.recipe.train;
  auto& a = c.recipe.adversarial;
  // The sizes a budget sets, per kind of loop; the others are the recipe's.
  std::vector<std::string> sized = kind == Kind::inversion     ? std::vector<std::string>{"synth.rounds"}
                                   : kind == Kind::adversarial ? std::vector<std::string>{"adversarial.epochs", "adversarial.itersPerEpoch"}
                                                               : std::vector<std::string>{"train.steps"};
  bool all_given = true;
  for (auto& k : sized) all_given = all_given && c.has(k);
  if (c.budget <= 0 && all_given) return Json();  // sized by the user: no calibration, as before budgets
  const double budget = c.budget > 0 ? c.budget : kDefaultBudgetSeconds;
  const char* source = c.budget > 0 ? "config" : "default";
  auto apply = [&](const Json& plan) { apply_plan(c, info, plan); };
  if (resumed.is_object() && resumed.has("plan")) {  // resume: the sizes the run started with
    apply(resumed.get("plan"));
    Json out = resumed;
    out["resumed"] = true;
    return out;
  }
  r.phase("calibrate");
  auto t0 = Clock::now();
  Costs k = calibrate(r, c, info);
  const double calib = secs_since(t0);
  r.timings["calibrate"] += calib;
  // What is left for the loop: the budget counts from the job's start (load and calibration
  // included) and keeps the final evaluation and a second for saving.
  double spent = 0;
  for (auto& [name, v] : r.timings) spent += v;
  const double left = budget - spent - k.evaluate - 1.0;
  const double evals_per_step = c.eval_every > 0 ? k.evaluate / double(c.eval_every) : 0.0;
  // Seconds per unit of the loop, and the unit's name for messages.
  double unit = 0;
  std::string unit_name, unit_detail;
  auto inversion_round = [&](const std::string& note) {  // a round of the recipe as it stands
    unit = s.iterations * k.synth_iter + t.steps_per_round * (k.student_step + evals_per_step);
    unit_detail = std::to_string(s.iterations) + " synthesis iterations of " + std::to_string(s.batch) + " images x " +
                  secs_str(k.synth_iter) + " + " + std::to_string(t.steps_per_round) + " student steps x " +
                  secs_str(k.student_step) + note;
  };
  switch (kind) {
    case Kind::inversion:
      inversion_round("");
      unit_name = "round";
      break;
    case Kind::adversarial:
      unit = a.student_steps * (k.student_step + evals_per_step) + k.generator_step;
      unit_name = "iteration";
      unit_detail = std::to_string(a.student_steps) + " student steps x " + secs_str(k.student_step) +
                    " + 1 generator step x " + secs_str(k.generator_step);
      break;
    case Kind::classical:
      unit = k.student_step + evals_per_step;
      unit_name = "step";
      unit_detail = "one student step of " + std::to_string(t.batch) + " images";
      break;
  }
  if (!(unit > 0)) return Json();  // nothing measured (e.g. classical without data): the method names the error
  int64_t fit = left > 0 ? int64_t(std::floor(left / unit)) : 0;
  Json plan = Json(Json::Object{});
  // Inversion rounds are coarse (a round of the default recipe is 10-30 s on 2 cores): when fewer
  // than kMinRounds fit, the rounds get shorter (iterations and KD steps alike, not below 10)
  // rather than fewer, so that the run ends within a tenth of its budget and the bank holds
  // kMinRounds batches (1 round of a ResNet teacher in a minute: 30% on the validation rows).
  constexpr int64_t kMinRounds = 10;
  if (kind == Kind::inversion && !c.has("synth.rounds") && !c.has("synth.iterations") && !c.has("train.stepsPerRound") &&
      left > 0 && fit < kMinRounds) {
    const double scale = left / unit / kMinRounds;
    s.iterations = std::max<int64_t>(std::min<int64_t>(10, s.iterations), int64_t(s.iterations * scale));
    t.steps_per_round = std::max<int64_t>(std::min<int64_t>(10, t.steps_per_round), int64_t(t.steps_per_round * scale));
    plan["synth.iterations"] = s.iterations;
    plan["train.stepsPerRound"] = t.steps_per_round;
    inversion_round(" (rounds shortened to fit " + std::to_string(kMinRounds) + ")");
    fit = int64_t(std::floor(left / unit));
  }
  Json warnings = Json(Json::Array{});
  auto warn = [&](const std::string& w) {
    warnings.as_array().push_back(Json(w));
    r.log("warning: " + w);
  };
  if (!all_given) {
    if (fit < 1)
      fail("E_BUDGET", "a budget of " + secs_str(budget) + " fits no " + unit_name + " of " + c.method + " here: one " +
                           unit_name + " takes about " + secs_str(unit) + " (" + unit_detail + "), and " +
                           secs_str(std::max(0.0, budget - left)) + " go to loading, calibration and the final "
                           "evaluation; raise the budget to at least " + secs_str(budget - left + unit * 4) +
                           " or give smaller sizes");
    switch (kind) {
      case Kind::inversion:
        if (!c.has("synth.rounds")) plan["synth.rounds"] = fit;
        break;
      case Kind::adversarial: {
        int64_t ipe = c.has("adversarial.itersPerEpoch") ? a.iters_per_epoch : std::min<int64_t>(a.iters_per_epoch, fit);
        int64_t epochs = c.has("adversarial.epochs") ? a.epochs : std::max<int64_t>(1, fit / ipe);
        if (!c.has("adversarial.itersPerEpoch")) ipe = std::max<int64_t>(1, fit / epochs);
        plan["adversarial.epochs"] = epochs;
        plan["adversarial.itersPerEpoch"] = ipe;
        break;
      }
      case Kind::classical:
        plan["train.steps"] = fit;
        break;
    }
    apply(plan);
  }
  const int64_t units = kind == Kind::inversion ? s.rounds : kind == Kind::adversarial ? a.epochs * a.iters_per_epoch : t.steps;
  // Below these sizes the student is far from what the method can give (the family benchmark:
  // under 4 inversion rounds or 200 adversarial iterations no teacher reached 90%).
  const int64_t useful = kind == Kind::inversion ? 4 : kind == Kind::adversarial ? 200 : 100;
  if (units < useful)
    warn("the budget fits only " + std::to_string(units) + " " + unit_name + "s of " + c.method + " (one takes about " +
         secs_str(unit) + ": " + unit_detail + "); expect a weak student below " + std::to_string(useful) + " " +
         unit_name + "s (about " + secs_str(budget - left + unit * useful) + ")");
  const double estimate = budget - left + units * unit;
  if (all_given && estimate > budget * 1.1)
    warn("the sizes given take about " + secs_str(estimate) + ", over the budget of " + secs_str(budget));
  r.log("budget " + secs_str(budget) + " (" + source + "): " + std::to_string(units) + " " + unit_name + "s of " +
        secs_str(unit) + ", estimated " + secs_str(estimate) + " in all");
  Json out = Json(Json::Object{{"seconds", budget}, {"source", source}, {"calibration", k.json()},
                               {"calibrationSeconds", calib}, {"unit", unit_name}, {"unitSeconds", unit},
                               {"units", units}, {"plan", plan}, {"estimate", estimate}});
  if (!warnings.as_array().empty()) out["warnings"] = warnings;
  return out;
}

}  // namespace dfkd
