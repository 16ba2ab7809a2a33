// The "bench" job: iterations/s of exactly the production code paths, no re-implementation:
//   deepinversion, spectral  InputSynthesizer::run (jitter, flip, loss, backward, Adam step, best
//                            batch), timed from the end of iteration `warmup` to the last one
//   adversarial              one iteration of run_adversarial: studentSteps x (GeneratorSynth::sample
//                            + student_step), then GeneratorSynth::step
//   classical                student_step on a batch drawn from a fixed pool of Gaussian images
//                            (the data loading and augmentation of the classical loop are not timed)
// Warm-up iterations let the TorchScript profiling executor specialize the graphs first.
#include "core/bench.h"

#include <algorithm>
#include <chrono>

#include "core/stats.h"
#include "core/synth/synth.h"
#include "core/teacher.h"
#include "core/train.h"
#include "core/zoo.h"

namespace dfkd {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Json bench_job(const Json& cfg, torch::Device device, const std::atomic<bool>& cancel) {
  const std::string kind = cfg.str("kind", "deepinversion");
  const int64_t batch = cfg.integer("batchSize", 64), iters = cfg.integer("iterations", 10),
                warmup = cfg.integer("warmup", 3);
  if (batch < 1 || iters < 1 || warmup < 0) fail("E_CONFIG", "bench: batchSize and iterations must be >= 1, warmup >= 0");
  if (cfg.has("threads")) torch::set_num_threads(int(cfg.integer("threads", 1)));
  Rng rng(uint64_t(cfg.integer("seed", 0)), device);
  const auto on_device = torch::TensorOptions().device(device);
  Teacher teacher(cfg.str("teacher", ""), device, cfg.strs("layers"));
  auto shape = teacher.input_shape(to_shape(cfg.nums("inputShape")));
  const int64_t classes = teacher.num_classes(shape);
  const int64_t total = warmup + iters;
  Losses first, last;
  Clock::time_point t0 = Clock::now(), t1;

  if (kind == "deepinversion" || kind == "spectral") {
    Json spec = cfg.get("synth").is_object() ? cfg.get("synth") : Json(Json::Object{});
    spec["batchSize"] = batch;
    spec["iterations"] = total;
    std::unique_ptr<Stats> stats;
    if (cfg.has("stats")) stats = std::make_unique<Stats>(load_stats(cfg.str("stats", "")));
    InputSynthConfig sc = kind == "deepinversion" ? deepinversion_config(spec, teacher)
                                                  : spectral_config(spec, teacher, stats.get(), shape);
    InputSynthesizer synth(teacher, sc, shape, classes);
    if (warmup == 0) t0 = Clock::now();
    synth.run(rng, nullptr, cancel, [&](int64_t step, int64_t, const Losses& l) {
      if (step == 1) first = l;
      if (step == warmup) t0 = Clock::now();
      if (step == total) t1 = Clock::now();
      last = l;
    });
  } else if (kind == "classical" || kind == "adversarial") {
    const Json& t = cfg.get("train");
    const double T = t.num("temperature", 4.0), ce_w = t.num("ceWeight", 0.0);
    const std::string loss_kind = t.str("loss", "kl");
    auto student = make_student(cfg.str("student", "lenet5_half"), shape, classes, rng.host, device);
    std::vector<int64_t> full{4 * batch};
    full.insert(full.end(), shape.begin(), shape.end());
    if (kind == "classical") {
      auto pool = torch::randn(full, rng.device, on_device);
      auto labels = torch::randint(0, classes, {full[0]}, rng.device, on_device.dtype(torch::kLong));
      Optim opt(parameters_of(student), t, total);
      for (int64_t step = 0; step < total; ++step) {
        if (cancel.load()) fail("E_CANCELLED", "cancelled");
        if (step == warmup) t0 = Clock::now();
        auto idx = torch::randint(0, full[0], {batch}, rng.device, on_device.dtype(torch::kLong));
        last = student_step(teacher, student, opt, pool.index_select(0, idx), labels.index_select(0, idx), loss_kind, T,
                            ce_w, step);
        if (step == 0) first = last;
      }
    } else {
      const int64_t ns = cfg.get("adversarial").integer("studentSteps", 5);
      if (ns < 1) fail("E_CONFIG", "bench: adversarial.studentSteps must be >= 1");
      Optim opt(parameters_of(student), t, total * ns);
      GeneratorSynth g(cfg.get("generator"), teacher, shape, rng.host, total);
      for (int64_t it = 0; it < total; ++it) {
        if (cancel.load()) fail("E_CANCELLED", "cancelled");
        if (it == warmup) t0 = Clock::now();
        for (int64_t j = 0; j < ns; ++j) {
          auto x = g.sample(batch, rng);
          last = student_step(teacher, student, opt, x, torch::Tensor(), loss_kind, T, ce_w, it * ns + j);
        }
        for (auto& [k, v] : g.step(student, batch, T, rng, it)) last["g_" + k] = v;
        if (it == 0) first = last;
      }
    }
    t1 = Clock::now();
  } else {
    fail("E_CONFIG", "bench: unknown kind '" + kind + "' (deepinversion, spectral, adversarial, classical)");
  }
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  Json r;
  r["kind"] = kind;
  r["batchSize"] = batch;
  r["iterations"] = iters;
  r["warmup"] = warmup;
  r["seconds"] = secs;
  r["itersPerSec"] = iters / secs;
  r["imagesPerSec"] = iters * double(batch) / secs;
  r["threads"] = int64_t(torch::get_num_threads());
  r["inputShape"] = Json(Json::Array(shape.begin(), shape.end()));
  r["firstLosses"] = losses_json(first);
  r["lastLosses"] = losses_json(last);
  return r;
}

}  // namespace dfkd
