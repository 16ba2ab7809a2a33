#include "core/driver.h"

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "core/io/files.h"
#include "core/io/png.h"
#include "core/io/safetensors.h"
#include "core/methods/registry.h"
#include "core/plan.h"
#include "core/stats.h"
#include "core/train.h"
#include "core/version.h"
#include "core/zoo.h"

namespace dfkd {

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Progress::Progress(const EmitFn& emit) : emit_(emit), start_(Clock::now()), last_(Clock::now() - std::chrono::seconds(1)) {}

bool Progress::report(const std::string& phase, int64_t step, int64_t total, const StepLosses& l, double items_per_sec,
                      double fraction_done, Json extra) {
  auto now = Clock::now();
  if (std::chrono::duration<double>(now - last_).count() < 0.1 && step < total) return false;
  last_ = now;
  Json e = extra.is_object() ? extra : Json(Json::Object{});
  e["type"] = "progress";
  e["phase"] = phase;
  e["step"] = step;
  e["total"] = total;
  e["losses"] = losses_json(l.read());
  ++events_;
  e["throughput"] = items_per_sec;
  double el = secs_since(start_);
  e["elapsed"] = el;
  e["eta"] = fraction_done > 1e-6 ? std::max(0.0, el / fraction_done - el) : -1.0;
  emit_(e);
  return true;
}

torch::Device pick_device(const std::string& d) {
  if (d == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device dev(torch::kCPU);
  try { dev = torch::Device(d); } catch (...) { fail("E_CONFIG", "unknown device '" + d + "' (use 'cpu', 'cuda', 'cuda:N' or 'auto')"); }
  if (dev.is_cuda() && !torch::cuda::is_available())
    fail("E_DEVICE", "device '" + d + "' was asked for, but this libtorch has no CUDA or no GPU is visible; "
                     "build dfkd against a CUDA libtorch (LIBTORCH=...) or use device 'cpu'");
  return dev;
}

void set_threads(int64_t threads) {
  if (threads > 0) torch::set_num_threads(int(threads));
}

// ---- Run ---------------------------------------------------------------------------------------

void Run::log(const std::string& msg) { emit(Json(Json::Object{{"type", "log"}, {"message", msg}})); }
void Run::phase(const std::string& p) { emit(Json(Json::Object{{"type", "phase"}, {"phase", p}})); }
void Run::check_cancel(const std::string& where) const {
  if (cancel.load()) fail("E_CANCELLED", "cancelled " + where);
}

StepLosses Run::student_step(const torch::Tensor& x, const torch::Tensor& y, int64_t step) {
  const auto& t = cfg.recipe.train;
  if (cfg.cuda_graphs && !student_graph && graphs_available(device))  // (the train config is final now)
    student_graph = std::make_unique<StudentGraph>(*teacher, student, t.loss, t.temperature, t.ce_weight);
  auto parts = student_graph ? student_graph->step(*opt, x, y, step)
                             : dfkd::student_step(*teacher, student, *opt, x, y, t.loss, t.temperature, t.ce_weight, step);
  if (average) average->update(student);
  student_finite = still_finite(student_finite, parts.tensor("student"));
  parts.guard(student_finite, "the student loss", "lower the learning rate");
  return parts;
}

void Run::student_forward_done() {
  if (dist && dist->world() > 1 && !dist->student_bn_synced) dist->average_buffers(student);
}

void Run::report(const std::string& phase, int64_t step, int64_t total, const StepLosses& l, double items_per_sec,
                 double fraction_done, Json extra) {
  if (progress.report(phase, step, total, l, items_per_sec, fraction_done, std::move(extra)) && phase != "synthesize")
    commit_pending();  // every student loss up to this step was finite (the read throws E_NAN first)
}

void Run::maybe_eval(int64_t step) {
  const int64_t every = cfg.eval_every;
  if (every <= 0 || !test.size() || !lead() || (step % every != 0 && step != steps)) return;
  // The student's accuracy against the job's wall-clock time (loading and calibration counted,
  // these evaluations not): the time-to-accuracy curve (bench/family.mjs --eval-every).
  const double elapsed = secs_since(started) - eval_seconds;
  auto t0 = Clock::now();
  auto r = evaluate(nullptr, &result(), test, 512, device);
  eval_seconds += secs_since(t0);
  Json e = r.json();
  e["type"] = "eval";
  e["step"] = step;
  e["elapsed"] = elapsed;
  emit(e);
  evals.as_array().push_back(Json(Json::Object{{"step", step}, {"studentAccuracy", r.student_acc}, {"elapsed", elapsed}}));
}

void Run::save_samples(const torch::Tensor& x, const torch::Tensor& y) {
  if (!cfg.output.samples) return;
  const std::string& base = cfg.output.samples_prefix;
  write_safetensors(base + ".safetensors",
                    {{"x", x.detach().cpu().contiguous()}, {"y", y.defined() ? y.cpu() : torch::empty({0}, torch::kLong)}},
                    {{"dfkd", meta.dump()}});
  // Each image labeled with the class the teacher sees in it and its confidence ("7 98%").
  std::vector<std::string> labels;
  {
    torch::NoGradGuard ng;
    auto n = std::min<int64_t>(64, x.size(0));
    auto p = torch::softmax(teacher->logits(x.slice(0, 0, n)), 1);
    auto [conf, cls] = p.max(1);
    auto host = torch::stack({conf.to(torch::kDouble), cls.to(torch::kDouble)}).cpu();
    auto a = host.accessor<double, 2>();
    for (int64_t i = 0; i < n; ++i)
      labels.push_back(std::to_string(int64_t(a[1][i])) + " " + std::to_string(std::llround(100 * a[0][i])) + "%");
  }
  save_png_grid(x, base + ".png", meta.nums("mean"), meta.nums("std"), 64, 8, labels);
}

Run::RngState Run::rng_state() { return {rng->host.get_state(), rng->shared() ? torch::Tensor() : rng->device.get_state()}; }
void Run::put_rng(Checkpoint& c, const RngState* state) {
  auto st = state ? *state : rng_state();
  c.out().write("job.rng", st.first);
  if (st.second.defined()) c.out().write("device.rng", st.second);
}
void Run::load_rng(CheckpointReader& ck) {
  ck.generator("job", rng->host);
  if (!rng->shared()) ck.generator("device", rng->device);
}

// A state with non-finite weights is never written: E_NAN, and the file on disk stays.
void Run::save_checkpoint(Method& m, const char* reason, bool defer) {
  if (!module_finite(student)) fail("E_NAN", "the student's weights became NaN or infinite; lower the learning rate");
  Checkpoint ck;
  Json st = m.save(*this, ck);
  if (reason) st["reason"] = reason;
  ck.put_module("student", student);
  if (average) {
    ck.put_module("studentAverage", average->module());
    st["averagedSteps"] = average->updates();
  }
  opt->save(ck.out());
  st["method"] = cfg.method;
  st["seed"] = double(cfg.seed);
  if (budget.is_object()) st["budget"] = budget;  // a resumed run keeps its sizes
  ck.put_json("state", st);
  pending_bytes = ck.bytes();
  pending_state = st;
  pending = true;
  if (!defer) commit_pending();
}

void Run::commit_pending() {
  if (!pending) return;
  pending = false;
  write_file_atomic(cfg.output.checkpoint, pending_bytes);
  std::string().swap(pending_bytes);
  good_ckpt = cfg.output.checkpoint;
  emit(Json(Json::Object{{"type", "checkpoint"}, {"path", cfg.output.checkpoint}, {"state", pending_state}}));
}

namespace {

Json shape_json(const std::vector<int64_t>& s) { return Json(Json::Array(s.begin(), s.end())); }

void setup(Run& r) {
  auto t0 = Clock::now();
  const DistillConfig& c = r.cfg;
  r.device = pick_device(c.device);
  r.rng = std::make_unique<Rng>(c.seed, r.device);
  set_threads(c.threads);
  set_forward_options({c.precision == "bf16", c.channels_last, r.device.type()});
  r.phase("load");
  r.teacher = std::make_unique<Teacher>(c.teacher, r.device, c.layers);
  if (c.layers.empty() && !c.stats.empty()) {
    // A stats file names the layers it was computed on: tap them (`layers` overrides).
    std::vector<std::string> extra;
    for (auto& l : load_stats(c.stats).layers)
      if (!r.teacher->tap_index(l.name)) extra.push_back(l.name);
    try {
      if (!extra.empty()) r.teacher = std::make_unique<Teacher>(c.teacher, r.device, extra);
    } catch (const Error& e) {  // not this teacher's layers: the stats match names them (E_STATS_MISMATCH)
      if (e.code != "E_TAPS") throw;
    }
  }
  if (!c.data.is_null()) r.train = load_dataset(c.data);
  if (!c.test.is_null()) r.test = load_dataset(c.test);
  std::vector<int64_t> explicit_shape = c.input_shape;
  if (explicit_shape.empty() && r.train.size()) explicit_shape = r.train.x.sizes().slice(1).vec();
  if (explicit_shape.empty() && r.test.size()) explicit_shape = r.test.x.sizes().slice(1).vec();
  r.shape = r.teacher->input_shape(explicit_shape);
  if (r.teacher->shape_source().rfind("inferred", 0) == 0)
    r.log("input shape " + shape_str(r.shape) + " " + r.teacher->shape_source() + "; pass inputShape if it is not");
  r.classes = r.teacher->num_classes(r.shape);
  if (!r.teacher->stored_dtype().empty())
    r.log("the teacher's weights are stored as " + r.teacher->stored_dtype() + ": it runs in float32 (precision \"bf16\" "
          "asks for bfloat16 autocast)");
  if (r.teacher->output_kind() == "probabilities")
    r.log("the teacher returns probabilities (a softmax at the end of its forward: every row in [0, 1], summing to 1): "
          "dfkd distills from their logarithms, which are its logits up to a constant per row; the student returns logits");
  for (auto* ds : {&r.train, &r.test})  // (cross_entropy would fail with an uncoded libtorch error)
    if (ds->labeled() && ds->size() && ds->y.max().item<int64_t>() >= r.classes)
      fail("E_DATA_INVALID", std::string(ds == &r.train ? "training" : "test") + " labels go up to " +
                                 std::to_string(ds->y.max().item<int64_t>()) + ", the teacher predicts " +
                                 std::to_string(r.classes) + " classes");
  if (r.test.size() && r.test.x.sizes().slice(1).vec() != r.shape)
    fail("E_SHAPE", "test images have shape " + shape_str(r.test.x.sizes().slice(1)) + ", the input shape is " + shape_str(r.shape));
  r.student = make_student(c.student, r.shape, r.classes, r.rng->host, r.device, r.sync_bn);
  auto has_bn = [](const torch::jit::Module& m) {
    for (const auto& b : m.named_buffers())
      if (b.name.size() >= 12 && b.name.compare(b.name.size() - 12, 12, "running_mean") == 0) return true;
    return false;
  };
  if (r.sync_bn && !is_zoo_name(c.student) && has_bn(r.student))
    r.log("data-parallel: this student file's BatchNorm layers normalize each rank's share of a batch (a zoo student's "
          "normalize the whole batch)");
  if (c.channels_last) {
    to_channels_last(r.teacher->module());
    to_channels_last(r.student);
  }
  {
    torch::NoGradGuard ng;
    std::vector<int64_t> full{2};
    full.insert(full.end(), r.shape.begin(), r.shape.end());
    r.student.eval();
    auto out = run_logits(r.student, torch::zeros(full, torch::TensorOptions().device(r.device)), "student");
    r.student.train();
    if (out.size(1) != r.classes)
      fail("E_CLASS_MISMATCH", "the student predicts " + std::to_string(out.size(1)) + " classes, the teacher " + std::to_string(r.classes));
  }
  if (c.cuda_graphs && !graphs_available(r.device))
    r.log(std::string("cudaGraphs: ") +
          (graphs_compiled() ? "not a CUDA device (" + r.device.str() + ")"
                                    : "not compiled in (a CPU torch, or a CUDA torch without its CUDA C runtime and CCCL headers)") +
          ": student steps run eagerly");
  const auto& o = c.output;
  make_dirs(o.dir);
  for (auto* p : {&o.student, &o.report, &o.checkpoint}) make_parent_dirs(*p);
  const auto& t = c.recipe.train;
  if (t.batch < 1) fail("E_CONFIG", "train.batchSize must be at least 1");
  if (!(t.temperature > 0)) fail("E_CONFIG", "train.temperature must be positive");
  r.meta = r.teacher->meta().is_object() ? r.teacher->meta() : Json(Json::Object{});
  r.meta["inputShape"] = shape_json(r.shape);
  r.meta["numClasses"] = r.classes;
  r.meta["method"] = c.method;
  r.timings["load"] += secs_since(t0);
}

// A budgeted run's deadline: after each unit, the units left are re-sized from the measured pace
// of this run (calibration measures a few steps; the pace of the whole loop includes what it
// left out: data movement, progress, a machine that got busier). Re-sized only when the end
// would miss the budget by more than 3%, so the schedule does not jitter.
class Deadline {
 public:
  // A resumed run finishes the sizes it was given (its budget counted from the first start).
  explicit Deadline(Run& r)
      : r_(r), active_(r.budget.is_object() && !r.budget.get("plan").as_object().empty() && !r.budget.boolean("resumed", false)) {}
  void start(Method& m) { t0_ = Clock::now(), u0_ = m.unit(); }
  void check(Method& m) {
    if (!active_ || m.done()) return;
    int64_t want = decide(m);
    if (r_.dist) {  // rank 0's pace decides for every rank (they must run the same units)
      auto t = torch::tensor({want});
      r_.dist->broadcast_({t}, 0, "the budget's re-sizing");
      want = t.item<int64_t>();
    }
    if (want < 0) return;
    Json changed = m.resize(r_, want);
    Json plan = r_.budget.get("plan");
    for (auto& [k, v] : changed.as_object()) plan[k] = v;
    r_.budget["plan"] = plan;
    r_.budget["units"] = want;
    r_.budget["resized"] = r_.budget.num("resized", 0) + 1;
  }

 private:
  // The units the run should have to end on time, or -1 to keep its sizes.
  int64_t decide(Method& m) const {
    const int64_t done = m.unit() - u0_;
    if (done < 2 && secs_since(t0_) < 5) return -1;  // too little measured yet
    const double pace = secs_since(t0_) / std::max<int64_t>(1, done);
    const double reserve = r_.budget.get("calibration").num("evaluate", 0) + 1.0;
    const double left = r_.budget.num("seconds", 0) - secs_since(r_.started) - reserve;
    const int64_t want = std::max<int64_t>(m.unit() + 1, m.unit() + int64_t(std::floor(left / pace)));
    const double miss = std::abs(double(want - m.total())) * pace;
    return miss < 0.03 * r_.budget.num("seconds", 0) ? -1 : want;
  }
  Run& r_;
  bool active_;
  Clock::time_point t0_;
  int64_t u0_ = 0;
};

// Runs the method's units; on cancel or NaN writes a checkpoint and rethrows.
void drive(Run& r, Method& m) {
  const int64_t every = r.cfg.checkpoint_every;
  Deadline deadline(r);
  try {
    m.begin(r);
    deadline.start(m);
    while (!m.done()) {
      if (r.agree_cancel) r.agree_cancel();
      m.advance(r);
      deadline.check(m);
      // (data-parallel: written at once, so that every rank's file is of the same unit)
      if (every > 0 && m.unit() % every == 0 && !m.done()) {
        if (r.dist) r.dist->check_same(r.student, "the student's weights at a checkpoint");
        r.save_checkpoint(m, nullptr, /*defer=*/!r.dist);
      }
    }
    r.last_student.read();  // the run's last losses: E_NAN here if one since the last read was not finite
    r.commit_pending();
  } catch (const Error& e) {
    r.pending = false;
    auto keep_last_good = [&](const std::string& why) {
      std::string msg = std::string(e.what()) + "; " + why + "; ";
      msg += r.good_ckpt.empty() ? "no earlier checkpoint of a good state exists (checkpointEvery keeps periodic ones)"
                                 : "the last good checkpoint is " + r.good_ckpt + " (pass it as resume to continue)";
      return Error("E_NAN", msg, r.good_ckpt);
    };
    // The student's (or generator's) loss is not finite: the state in memory diverged. Keep
    // the last good checkpoint rather than overwriting it.
    if (e.code == "E_NAN" && !r.synthesizing) throw keep_last_good("the diverged state was not saved");
    if (e.code == "E_CANCELLED" || e.code == "E_NAN") {
      // Cancelled, or a synthesis loss became NaN (the student is untouched): save the state.
      try {
        r.save_checkpoint(m, e.code == "E_CANCELLED" ? "cancelled" : "nan");
      } catch (const Error& bad) {
        if (bad.code != "E_NAN") throw;
        throw keep_last_good("the weights became NaN or infinite, so they were not saved");
      }
      const std::string& ck = r.cfg.output.checkpoint;
      throw Error(e.code, std::string(e.what()) + "; checkpoint written to " + ck + " (pass it as resume to continue)", ck);
    }
    throw;
  }
  m.finish(r);
}

// ---- data parallelism (dist.h) -----------------------------------------------------------------

// rank 0's JSON on every rank (the budget's plan).
Json broadcast_json(Dist& d, const Json& j) {
  const std::string text = d.rank() == 0 ? j.dump() : std::string();
  auto n = torch::tensor({int64_t(text.size())});
  d.broadcast_({n}, 0, "the run's plan");
  auto buf = torch::zeros({n.item<int64_t>()}, torch::kUInt8);
  if (d.rank() == 0) std::memcpy(buf.data_ptr(), text.data(), text.size());
  d.broadcast_({buf}, 0, "the run's plan");
  return d.rank() == 0 ? j : Json::parse(std::string(static_cast<const char*>(buf.data_ptr()), size_t(buf.numel())));
}

// This rank's rows of a dataset: an equal contiguous share (the last ranks may have one fewer).
Dataset shard(const Dataset& ds, int rank, int world) {
  const int64_t n = ds.size(), lo = n * rank / world, hi = n * (rank + 1) / world;
  Dataset out;
  out.x = ds.x.slice(0, lo, hi);
  if (ds.y.defined()) out.y = ds.y.slice(0, lo, hi);
  return out;
}

void join(Run& r, DistSpec spec) {
  spec.device = r.device;  // Gloo on the CPU, NCCL on the rank's CUDA device
  r.dist = std::make_unique<Dist>(spec);
  r.log("data-parallel: rank " + std::to_string(spec.rank) + " of " + std::to_string(spec.world) + " (c10d " +
        r.dist->backend() + " on " + r.device.str() + ", " + spec.addr + ":" + std::to_string(spec.port) + ")");
  if (r.train.size()) {
    if (r.train.size() < spec.world) fail("E_CONFIG", "fewer training rows than ranks");
    r.train = shard(r.train, spec.rank, spec.world);
  }
  // The same starting weights everywhere (the same seed gives them; rank 0's are the ones).
  std::vector<torch::Tensor> state;
  for (auto p : r.student.parameters()) state.push_back(p.detach());
  for (auto b : r.student.buffers()) state.push_back(b.detach());
  {
    torch::NoGradGuard ng;
    r.dist->broadcast_(state, 0, "the student's initial weights");
  }
}

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json report_of(Run& r) {
  Json report;
  int64_t sp = 0, tp = 0;
  for (auto p : r.student.parameters()) sp += p.numel();
  for (auto p : r.teacher->module().parameters()) tp += p.numel();
  report["method"] = r.cfg.method;
  if (!r.cfg.method_reason.empty()) report["methodChoice"] = Json(Json::Object{{"method", "auto"}, {"reason", r.cfg.method_reason}});
  if (r.budget.is_object()) {
    Json b = r.budget;
    double total = 0;
    for (auto& [k, v] : r.timings) total += v;
    b["spent"] = total;
    report["budget"] = b;
  }
  report["teacher"] = Json(Json::Object{{"path", r.teacher->path()}, {"parameters", tp}, {"output", r.teacher->output_kind()}});
  report["student"] = Json(Json::Object{{"path", r.cfg.output.student}, {"parameters", sp}});
  report["device"] = r.device.str();
  report["seed"] = double(r.cfg.seed);
  report["inputShape"] = shape_json(r.shape);
  report["numClasses"] = r.classes;
  report["studentSteps"] = r.steps;
  report["synthesized"] = r.synthesized;
  Json tj = Json(Json::Object{});
  double total = 0;
  for (auto& [k, v] : r.timings) { tj[k] = v; total += v; }
  tj["total"] = total;
  report["timings"] = tj;
  report["losses"] = Json(Json::Object{{"student", losses_json(r.last_student.read())}, {"synthesis", losses_json(r.last_synth.read())}});
  if (!r.evals.as_array().empty()) report["evals"] = r.evals;
  report["report"] = r.cfg.output.report;
  // Provenance: the effective config, what ran it, when.
  Json cfg = config_json(r.cfg);
  const MethodInfo& mi = method_info(r.cfg.method);
  Json all = recipe_json(r.cfg.recipe);
  for (auto* k : {"train", "synth", "generator", "adversarial"}) cfg.as_object().erase(k);
  Json used = sections_json(all, mi);  // (a named value: the loop must not outlive it)
  for (auto& [k, v] : used.as_object()) cfg[k] = v;
  if (r.budget.is_object())  // the sizes the run ended with (the deadline may have re-sized it)
    for (auto& [k, v] : r.budget.get("plan").as_object()) {
      auto dot = k.find('.');
      if (cfg.has(k.substr(0, dot))) cfg[k.substr(0, dot)][k.substr(dot + 1)] = v;
    }
  if (r.dist) {  // (the config holds this rank's share of the student batch: the global one is the user's)
    cfg["train"]["batchSize"] = r.cfg.recipe.train.batch * r.dist->world();
    if (cfg.has("adversarial")) cfg["adversarial"]["batchSize"] = r.cfg.recipe.adversarial.batch * r.dist->world();
    report["distributed"] = Json(Json::Object{{"rank", r.dist->rank()}, {"world", r.dist->world()}, {"backend", r.dist->backend()},
                                              {"studentBatchPerRank", r.cfg.recipe.train.batch},
                                              {"timeout", r.cfg.dist_timeout}, {"syncBatchNorm", r.sync_bn}});
    // rank 0's collectives over the whole run: their share of its wall time is the cost of the
    // data parallelism (bench/dist.mjs compares the same job on one process)
    const auto& tr = r.dist->traffic();
    report["distributed"]["collectives"] = Json(Json::Object{{"count", tr.collectives}, {"megabytes", double(tr.bytes) / 1e6},
                                                             {"seconds", tr.seconds}});
  }
  report["config"] = cfg;
  if (!r.cfg.version.empty()) report["dfkd"] = r.cfg.version;
  if (*kGitCommit) report["commit"] = kGitCommit;
  report["date"] = iso_now();
  report["threads"] = int64_t(torch::get_num_threads());
  return report;
}

}  // namespace

Json distill_job(const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel) {
  auto t_start = Clock::now();
  ForwardOptionsScope forward_scope;  // (setup() sets the options from the config)
  const char* count_env = std::getenv("DFKD_COUNT_SYNCS");
  SyncCounter syncs(count_env && std::string(count_env) == "1");
  Json j = config;
  std::string reason;
  if (!j.has("method") || j.get("method").is_null() || (j.get("method").is_string() && j.get("method").as_string() == "auto")) {
    auto [m, why] = choose_method(j);
    j["method"] = m;
    reason = why;
  }
  DistillConfig cfg = parse_distill(j);
  cfg.method_reason = reason;
  const MethodInfo& info = method_info(cfg.method);
  // Data parallelism: the ranks from torchrun's variables (dist.h). Rank 0 speaks for the run;
  // every rank keeps its own checkpoint (rank r > 0: <checkpoint>.rank<r>, resumed likewise).
  const DistSpec spec = dist_from_env(cfg.dist_timeout);
  const bool parallel = spec.world > 1;
  // On CUDA, one device per local rank (torchrun's contract): "cuda" or "auto" become cuda:LOCAL_RANK.
  if (parallel && (cfg.device == "cuda" || (cfg.device == "auto" && torch::cuda::is_available())))
    cfg.device = "cuda:" + std::to_string(spec.local_rank);
  if (parallel && spec.rank > 0) {
    const std::string tag = ".rank" + std::to_string(spec.rank);
    cfg.output.checkpoint += tag;
    // (a rank without a file of its own, e.g. when the run was on fewer processes, takes rank 0's)
    if (!cfg.resume.empty() && file_exists(cfg.resume + tag)) cfg.resume += tag;
    cfg.output.samples = false;
  }
  // CUDA graphs capture no collective (the gradient sums, the global statistics, SyncBatchNorm):
  // a data-parallel run steps eagerly.
  const bool graphs_off = parallel && cfg.cuda_graphs;
  if (graphs_off) cfg.cuda_graphs = false;
  EmitFn lead_only = [&emit, lead = spec.rank == 0](const Json& e) { if (lead) emit(e); };
  std::atomic<bool> agreed{false};  // a data-parallel run's cancel: set on every rank at the same unit
  Run r(cfg, parallel ? lead_only : emit, parallel ? agreed : cancel);
  r.started = t_start;
  r.sync_bn = parallel && cfg.dist_sync_bn;
  setup(r);
  if (graphs_off) r.log("cudaGraphs: off in a data-parallel run (a CUDA graph captures no collective): steps run eagerly");
  if (parallel) {
    join(r, spec);
    r.dist->student_bn_synced = r.sync_bn && is_zoo_name(cfg.student);
    r.agree_cancel = [&r, &cancel, &agreed] {
      auto f = torch::tensor({cancel.load() ? 1.0f : 0.0f});
      r.dist->sum_({f}, "the cancel flag");
      if (f.item<float>() > 0) agreed = true;
    };
  }
  ActiveDist active(r.dist.get());
  r.timings["load"] = secs_since(t_start);  // (the method choice loads the teacher too)
  std::unique_ptr<CheckpointReader> ck;
  Json rs;
  if (!cfg.resume.empty()) {
    auto t0 = Clock::now();
    restoring(cfg.resume, [&] {
      ck = std::make_unique<CheckpointReader>(cfg.resume);
      rs = ck->json("state");
      if (rs.str("method", "") != cfg.method)
        fail("E_CHECKPOINT", "the checkpoint is of method '" + rs.str("method", "") + "', this run is '" + cfg.method + "'");
      auto sm = ck->module("student", r.device);
      copy_state(r.student, sm);
      r.load_rng(*ck);
    });
    r.good_ckpt = cfg.resume;
    r.log("resuming from " + cfg.resume);
    r.timings["load"] += secs_since(t0);
  }
  resolve_defaults(cfg, r, info);
  if (parallel) {  // train.batchSize is the global batch: each rank steps on its share
    auto& t = cfg.recipe.train;
    t.batch = per_rank(t.batch, spec.world, "train.batchSize");
    // the synthesis batch of the inversion loop (checked here, before any work; each rank makes
    // its share of every batch), the generator's of the adversarial loop
    if (info.prepare) per_rank(cfg.recipe.synth.batch, spec.world, "synth.batchSize");
    if (!info.prepare && info.generator_loop) {
      auto& a = cfg.recipe.adversarial;
      a.batch = per_rank(a.batch, spec.world, "adversarial.batchSize");
    }
  }
  if (r.lead()) {  // (calibrated on rank 0 alone: no collective in its steps)
    ActiveDist solo(nullptr);
    r.budget = plan_budget(cfg, r, info, rs.is_object() ? rs.get("budget") : Json());
  }
  if (parallel) {
    r.budget = broadcast_json(*r.dist, r.budget);
    if (!r.lead() && r.budget.is_object()) apply_plan(cfg, info, r.budget.get("plan"));
  }
  auto method = info.make(info);
  method->init(r);
  if (cfg.recipe.train.ema > 0) r.average = std::make_unique<WeightAverage>(r.student, cfg.recipe.train.ema);
  if (ck) restoring(ck->path(), [&] {
    method->restore(r, *ck, rs);
    if (r.average && rs.has("averagedSteps")) {  // (a checkpoint without an average: it starts from the student)
      auto am = ck->module("studentAverage", r.device);
      copy_state(r.average->module(), am);
      r.average->set_updates(rs.integer("averagedSteps", 0));
    }
  });
  if (parallel) {  // every rank continues from the same unit (rank 0's), or none does
    auto at = torch::tensor({method->unit()});
    r.dist->broadcast_({at}, 0, "the unit to resume from");
    auto off = torch::tensor({at.item<int64_t>() != method->unit() ? 1.0f : 0.0f});
    r.dist->sum_({off}, "the unit to resume from");
    if (off.item<float>() > 0)
      fail("E_CHECKPOINT", "the ranks' checkpoints are of different units (this rank's: " + std::to_string(method->unit()) +
                               ", rank 0's: " + std::to_string(at.item<int64_t>()) + "); resume from rank 0's alone with one process");
  }
  // Host syncs of the loop: reads of device values (one per progress event, eval or checkpoint)
  // and, with DFKD_COUNT_SYNCS=1, every other scalar read (.item()).
  const int64_t reads0 = syncs.reads(), items0 = syncs.items(), events0 = r.progress.events();
  drive(r, *method);
  Json host_syncs = Json(Json::Object{{"reads", syncs.reads() - reads0}, {"progressEvents", r.progress.events() - events0},
                                      {"evals", int64_t(r.evals.as_array().size())}});
  if (syncs.items() >= 0) host_syncs["items"] = syncs.items() - items0;

  if (r.dist) r.dist->check_same(r.student, "the student's final weights");
  // save the student, evaluate, write the report
  auto t0 = Clock::now();
  r.phase("save");
  if (r.average) copy_state(r.student, r.average->module());  // the run's result: the averaged weights
  r.student.eval();
  if (!r.lead()) {  // rank 0 writes the student and the report; this rank's report is returned only
    Json rep = report_of(r);
    rep["hostSyncs"] = host_syncs;
    return rep;
  }
  if (r.sync_bn && is_zoo_name(cfg.student)) {  // the plain model with the trained state: it loads without dfkd
    auto init = at::make_generator<at::CPUGeneratorImpl>(0);
    auto plain = make_student(cfg.student, r.shape, r.classes, init, r.device);
    copy_state(plain, r.student);
    plain.eval();
    save_module(plain, cfg.output.student, r.meta);
  } else {
    save_module(r.student, cfg.output.student, r.meta);
  }
  r.timings["save"] += secs_since(t0);
  Json evaluation;
  if (r.test.size()) {
    r.phase("evaluate");
    auto t1 = Clock::now();
    evaluation = evaluate(&r.teacher->module(), &r.student, r.test, 512, r.device).json();
    r.timings["evaluate"] += secs_since(t1);
  }
  Json report = report_of(r);
  if (!evaluation.is_null()) report["evaluation"] = evaluation;
  report["hostSyncs"] = host_syncs;
  write_file_atomic(cfg.output.report, report.dump());
  return report;
}

}  // namespace dfkd
