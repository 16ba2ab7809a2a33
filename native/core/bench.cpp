// The "bench" job: iterations/s of exactly the production code paths, no re-implementation:
//   deepinversion, spectral  InputSynthesizer::run (jitter, flip, loss, backward, Adam step, best
//                            batch), timed from the end of iteration `warmup` to the last one
//   adversarial              one iteration of the adversarial method: studentSteps x
//                            (GeneratorSynth::sample + student_step), then GeneratorSynth::step
//   classical                student_step on a batch drawn from a fixed pool of Gaussian images
//                            (the data loading and augmentation of the classical loop are not timed)
// Warm-up iterations let the TorchScript profiling executor specialize the graphs first. The
// sections train/synth/generator/adversarial are read over the method's recipe, as in distill.
#include "core/bench.h"

#include <algorithm>
#include <chrono>

#include "core/driver.h"
#include "core/methods/registry.h"
#include "core/stats.h"
#include "core/synth/synth.h"
#include "core/teacher.h"
#include "core/train.h"
#include "core/zoo.h"

namespace dfkd {

Json bench_job(const Json& j, const std::atomic<bool>& cancel) {
  std::string kind = "deepinversion", teacher_path, teacher_arch, student_name = "lenet5_half", stats_path, device_name = "cpu";
  int64_t batch = 64, iters = 10, warmup = 3, threads = 0;
  uint64_t seed = 0;
  std::vector<int64_t> input_shape;
  std::vector<std::string> layers;
  Reader rd(j, "");
  rd.fields("kind", kind, "teacher", teacher_path, "teacherArch", teacher_arch /* bench/reference.py's */);
  rd.fields("student", student_name, "stats", stats_path, "device", device_name, "layers", layers, "inputShape", input_shape);
  rd.fields("batchSize", batch, "iterations", iters, "warmup", warmup, "threads", threads, "seed", seed);
  std::string precision = "fp32";
  bool channels_last = false;
  rd.fields("precision", precision, "channelsLast", channels_last);  // as in distill
  if (precision != "fp32" && precision != "bf16") fail("E_CONFIG", "bench: precision must be 'fp32' or 'bf16'");
  if (kind != "deepinversion" && kind != "spectral" && kind != "classical" && kind != "adversarial")
    fail("E_CONFIG", "bench: unknown kind '" + kind + "' (deepinversion, spectral, adversarial, classical)");
  const MethodInfo& info = method_info(kind);
  Recipe rc = info.recipe();
  for (auto* k : {"train", "synth", "generator", "adversarial"}) {
    const Json* p = rd.take(k);
    if (p) read_recipe(Json(Json::Object{{k, *p}}), rc);
  }
  rd.finish();
  if (batch < 1 || iters < 1 || warmup < 0) fail("E_CONFIG", "bench: batchSize and iterations must be >= 1, warmup >= 0");
  auto device = pick_device(device_name);
  set_threads(threads);
  ForwardOptionsScope forward({precision == "bf16", channels_last, device.type()});
  Rng rng(seed, device);
  const auto on_device = torch::TensorOptions().device(device);
  Teacher teacher(teacher_path, device, layers);
  if (channels_last) to_channels_last(teacher.module());
  auto shape = teacher.input_shape(input_shape);
  const int64_t classes = teacher.num_classes(shape);
  const int64_t total = warmup + iters;
  StepLosses first, last;
  Clock::time_point t0 = Clock::now(), t1;

  if (info.prepare) {
    SynthConfig sc = rc.synth;
    sc.batch = batch;
    sc.iterations = total;
    std::unique_ptr<Stats> stats;
    if (!stats_path.empty()) stats = std::make_unique<Stats>(load_stats(stats_path));
    auto targets = info.prepare(sc, teacher, stats.get(), shape);
    InputSynthesizer synth(teacher, sc, std::move(targets), shape, classes);
    if (warmup == 0) t0 = Clock::now();
    synth.run(rng, nullptr, cancel, [&](int64_t step, int64_t, const StepLosses& l) {
      if (step == 1) first = l;
      if (step == warmup) { sync_device(device); t0 = Clock::now(); }
      if (step == total) { sync_device(device); t1 = Clock::now(); }
      last = l;
    });
  } else {
    const TrainConfig& t = rc.train;
    auto student = make_student(student_name, shape, classes, rng.host, device);
    if (channels_last) to_channels_last(student);
    std::vector<int64_t> full{4 * batch};
    full.insert(full.end(), shape.begin(), shape.end());
    if (kind == "classical") {
      auto pool = torch::randn(full, rng.device, on_device);
      auto labels = torch::randint(0, classes, {full[0]}, rng.device, on_device.dtype(torch::kLong));
      Optim opt(parameters_of(student), t, total);
      for (int64_t step = 0; step < total; ++step) {
        if (cancel.load()) fail("E_CANCELLED", "cancelled");
        if (step == warmup) { sync_device(device); t0 = Clock::now(); }
        auto idx = torch::randint(0, full[0], {batch}, rng.device, on_device.dtype(torch::kLong));
        last = student_step(teacher, student, opt, pool.index_select(0, idx), labels.index_select(0, idx), t.loss,
                            t.temperature, t.ce_weight, step);
        if (step == 0) first = last;
      }
    } else {
      const int64_t ns = rc.adversarial.student_steps;
      if (ns < 1) fail("E_CONFIG", "bench: adversarial.studentSteps must be >= 1");
      Optim opt(parameters_of(student), t, total * ns);
      GeneratorSynth g(rc.generator, teacher, shape, rng.host, total);
      for (int64_t it = 0; it < total; ++it) {
        if (cancel.load()) fail("E_CANCELLED", "cancelled");
        if (it == warmup) { sync_device(device); t0 = Clock::now(); }
        for (int64_t k = 0; k < ns; ++k) {
          auto x = g.sample(batch, rng);
          last = student_step(teacher, student, opt, x, torch::Tensor(), t.loss, t.temperature, t.ce_weight, it * ns + k);
        }
        last.merge(g.step(student, batch, t.temperature, rng, it), "g_");
        if (it == 0) first = last;
      }
    }
    sync_device(device);
    t1 = Clock::now();
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
  r["firstLosses"] = losses_json(first.read());
  r["lastLosses"] = losses_json(last.read());
  return r;
}

}  // namespace dfkd
