#include "core/job.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include "core/alloc.h"
#include "core/bench.h"
#include "core/data.h"
#include "core/losses.h"
#include "core/png.h"
#include "core/selfcheck.h"
#include "core/stats.h"
#include "core/synth/synth.h"
#include "core/teacher.h"
#include "core/train.h"
#include "core/zoo.h"

namespace dfkd {

namespace {

using Clock = std::chrono::steady_clock;
double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

torch::Device pick_device(const std::string& d) {
  if (d == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device dev(torch::kCPU);
  try { dev = torch::Device(d); } catch (...) { fail("E_CONFIG", "unknown device '" + d + "' (use 'cpu', 'cuda', 'cuda:N' or 'auto')"); }
  if (dev.is_cuda() && !torch::cuda::is_available())
    fail("E_DEVICE", "device '" + d + "' was asked for, but this libtorch has no CUDA or no GPU is visible; "
                     "build dfkd against a CUDA libtorch (LIBTORCH=...) or use device 'cpu'");
  return dev;
}

Json shape_json(const std::vector<int64_t>& s) {
  Json::Array a;
  for (auto d : s) a.emplace_back(d);
  return Json(a);
}

void mkdirs(const std::string& dir) {
  if (dir.empty()) return;
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty()) ::mkdir(cur.c_str(), 0755);
    }
    if (i < dir.size()) cur += dir[i];
  }
}
std::string dirname(const std::string& p) {
  auto i = p.rfind('/');
  return i == std::string::npos ? "" : p.substr(0, i);
}

// Copies parameters and buffers of `src` into `dst` (same architecture), keeping dst's tensors
// (and so the optimizer's references to them) alive.
void copy_state(torch::jit::Module& dst, torch::jit::Module& src) {
  torch::NoGradGuard ng;
  std::map<std::string, torch::Tensor> s;
  for (auto p : src.named_parameters()) s[p.name] = p.value;
  for (auto b : src.named_buffers()) s[b.name] = b.value;
  auto put = [&](const std::string& name, torch::Tensor t) {
    auto it = s.find(name);
    if (it == s.end() || it->second.sizes() != t.sizes())
      fail("E_CHECKPOINT", "the checkpoint's model does not match this run's (tensor '" + name + "')");
    t.copy_(it->second);
  };
  for (auto p : dst.named_parameters()) put(p.name, p.value);
  for (auto b : dst.named_buffers()) put(b.name, b.value);
}

// Restoring from a checkpoint: whatever fails there (a corrupt archive, another optimizer or
// model) is E_CHECKPOINT, not a raw libtorch error.
template <class F>
void restoring(const std::string& path, F&& f) {
  try {
    f();
  } catch (...) {
    Error e = translate(std::current_exception(), "E_TORCH", "");
    if (e.code == "E_CHECKPOINT" || e.code == "E_OOM") throw e;  // already clear
    throw Error("E_CHECKPOINT", path + " does not fit this run (another optimizer, model or method?): " + e.what());
  }
}

// Throughput/ETA bookkeeping and throttled progress events.
class Progress {
 public:
  Progress(const EmitFn& emit) : emit_(emit), start_(Clock::now()), last_(Clock::now() - std::chrono::seconds(1)) {}
  void report(const std::string& phase, int64_t step, int64_t total, const Losses& l, double items_per_sec,
              double fraction_done, bool force = false, Json extra = Json()) {
    auto now = Clock::now();
    if (!force && std::chrono::duration<double>(now - last_).count() < 0.1 && step < total) return;
    last_ = now;
    Json e = extra.is_object() ? extra : Json(Json::Object{});
    e["type"] = "progress";
    e["phase"] = phase;
    e["step"] = step;
    e["total"] = total;
    e["losses"] = losses_json(l);
    e["throughput"] = items_per_sec;
    double el = secs_since(start_);
    e["elapsed"] = el;
    e["eta"] = fraction_done > 1e-6 ? std::max(0.0, el / fraction_done - el) : -1.0;
    emit_(e);
  }
 private:
  const EmitFn& emit_;
  Clock::time_point start_, last_;
};

struct Timer {  // accumulates per-phase wall time
  std::map<std::string, double> t;
  Json json() const {
    Json j = Json(Json::Object{});
    double total = 0;
    for (auto& [k, v] : t) { j[k] = v; total += v; }
    j["total"] = total;
    return j;
  }
};

// ---- distill --------------------------------------------------------------------------------

struct Run {
  const Json& cfg;
  const EmitFn& emit;
  const std::atomic<bool>& cancel;
  torch::Device device{torch::kCPU};
  uint64_t seed = 0;
  std::unique_ptr<Rng> rng;
  std::unique_ptr<Teacher> teacher;
  torch::jit::Module student;
  std::vector<int64_t> shape;
  int64_t classes = 0;
  Dataset train, test;
  std::unique_ptr<Optim> opt;
  Timer timer;
  std::string method, out_student, out_report, out_ckpt, out_dir;
  std::string good_ckpt;  // the latest checkpoint of a good state: written by this run, or resumed from
  bool synthesizing = false;  // in input synthesis: a NaN there leaves the student's state good
  // A periodic checkpoint is committed to disk only once the next student loss is finite, so a
  // NaN never replaces the last good checkpoint with the state that diverged.
  std::string pending_bytes;
  Json pending_state;
  bool pending = false;
  Losses last_student, last_synth;
  int64_t synthesized = 0;
  Json meta;  // normalization etc. stored with the student
  Json evals = Json(Json::Array{});

  // training knobs
  int64_t batch = 128, steps = 0, augment_pad = 0, eval_every = 0, ckpt_every = 0;
  bool augment_flip = false;
  double mixup = 0;
  double T = 4.0, ce_w = 0.0;
  std::string loss_kind = "kl";

  Run(const Json& c, const EmitFn& e, const std::atomic<bool>& k) : cfg(c), emit(e), cancel(k) {}

  // RNG states (host, device) now, for "round restarts" in checkpoints.
  std::pair<torch::Tensor, torch::Tensor> rng_state() {
    return {rng->host.get_state(), rng->shared() ? torch::Tensor() : rng->device.get_state()};
  }
  void put_rng(Checkpoint& c, const std::pair<torch::Tensor, torch::Tensor>* state = nullptr) {
    auto st = state ? *state : rng_state();
    c.out().write("job.rng", st.first);
    if (st.second.defined()) c.out().write("device.rng", st.second);
  }
  void load_rng(CheckpointReader& ck) {
    ck.generator("job", rng->host);
    if (!rng->shared()) ck.generator("device", rng->device);
  }

  void log(const std::string& msg) {
    Json e;
    e["type"] = "log";
    e["message"] = msg;
    emit(e);
  }
  void phase(const std::string& p) {
    Json e;
    e["type"] = "phase";
    e["phase"] = p;
    emit(e);
  }

  Losses student_step(const torch::Tensor& x, const torch::Tensor& y, int64_t step) {
    auto parts = dfkd::student_step(*teacher, student, *opt, x, y, loss_kind, T, ce_w, step);
    commit_pending();  // the state held since the last checkpoint gave a finite loss (E_NAN throws first)
    return parts;
  }

  void maybe_eval(int64_t step, int64_t total) {
    if (eval_every <= 0 || !test.size() || (step % eval_every != 0 && step != total)) return;
    auto r = evaluate(nullptr, &student, test, 512, device);
    Json e = r.json();
    e["type"] = "eval";
    e["step"] = step;
    emit(e);
    Json rec;
    rec["step"] = step;
    rec["studentAccuracy"] = r.student_acc;
    rec["elapsed"] = timer.t["train"] + timer.t["synthesize"];
    evals.as_array().push_back(rec);
  }

  // `fill` adds the method's own state (bank, RNG, generator) and returns the counters.
  // `defer`: hold it in memory until the next student loss is finite (commit_pending).
  // A state with non-finite weights is never written: E_NAN, and the file on disk stays.
  void save_checkpoint(const std::function<Json(Checkpoint&)>& fill, bool defer = false) {
    if (!module_finite(student)) fail("E_NAN", "the student's weights are no longer finite; lower the learning rate");
    Checkpoint ck;
    Json state = fill(ck);
    ck.put_module("student", student);
    opt->save(ck.out());
    Json st = state;
    st["method"] = method;
    st["seed"] = double(seed);
    ck.put_json("state", st);
    pending = false;
    pending_bytes = ck.bytes();
    pending_state = st;
    if (defer) pending = true;
    else commit(pending_bytes, pending_state);
  }
  void commit_pending() {
    if (!pending) return;
    pending = false;
    commit(pending_bytes, pending_state);
  }
  void commit(std::string& bytes, const Json& st) {
    write_file_atomic(out_ckpt, bytes);
    std::string().swap(bytes);
    good_ckpt = out_ckpt;
    Json e;
    e["type"] = "checkpoint";
    e["path"] = out_ckpt;
    e["state"] = st;
    emit(e);
  }
};

void setup(Run& r) {
  auto t0 = Clock::now();
  const Json& c = r.cfg;
  r.method = c.str("method", "deepinversion");
  r.device = pick_device(c.str("device", "cpu"));
  r.seed = uint64_t(c.integer("seed", 0));
  r.rng = std::make_unique<Rng>(r.seed, r.device);
  if (c.has("threads")) torch::set_num_threads(int(c.integer("threads", 1)));
  r.phase("load");
  r.teacher = std::make_unique<Teacher>(c.str("teacher", ""), r.device, c.strs("layers"));
  if (c.has("data")) r.train = load_dataset(c.get("data"));
  if (c.has("test")) r.test = load_dataset(c.get("test"));
  std::vector<int64_t> explicit_shape = to_shape(c.nums("inputShape"));
  if (explicit_shape.empty() && r.train.size()) explicit_shape = r.train.x.sizes().slice(1).vec();
  if (explicit_shape.empty() && r.test.size()) explicit_shape = r.test.x.sizes().slice(1).vec();
  r.shape = r.teacher->input_shape(explicit_shape);
  r.classes = r.teacher->num_classes(r.shape);
  for (auto* ds : {&r.train, &r.test})  // (cross_entropy would fail with an uncoded libtorch error)
    if (ds->labeled() && ds->size() && ds->y.max().item<int64_t>() >= r.classes)
      fail("E_DATA_INVALID", std::string(ds == &r.train ? "training" : "test") + " labels go up to " +
                                 std::to_string(ds->y.max().item<int64_t>()) + ", the teacher predicts " +
                                 std::to_string(r.classes) + " classes");
  if (r.test.size() && r.test.x.sizes().slice(1).vec() != r.shape)
    fail("E_SHAPE", "test images have shape " + shape_str(r.test.x.sizes().slice(1)) + ", the input shape is " + shape_str(r.shape));
  // student
  const Json& s = c.get("student");
  r.student = make_student(s.has("path") ? s.str("path", "") : s.str("model", "lenet5_half"), r.shape, r.classes,
                           r.rng->host, r.device);
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
  // outputs
  const Json& o = c.get("output");
  r.out_dir = o.str("dir", "out");
  r.out_student = o.str("student", r.out_dir + "/student.pt");
  r.out_report = o.str("report", r.out_dir + "/report.json");
  r.out_ckpt = o.str("checkpoint", r.out_dir + "/checkpoint.dfkd");
  for (auto& p : {r.out_dir, dirname(r.out_student), dirname(r.out_report), dirname(r.out_ckpt)}) mkdirs(p);
  // training knobs
  const Json& t = c.get("train");
  r.batch = t.integer("batchSize", 128);
  r.T = t.num("temperature", 4.0);
  r.ce_w = t.num("ceWeight", 0.0);
  r.loss_kind = t.str("loss", "kl");
  r.augment_pad = t.integer("cropPadding", 0);
  r.augment_flip = t.boolean("flip", false);
  r.mixup = t.num("mixup", 0.0);
  r.eval_every = c.integer("evalEvery", 0);
  r.ckpt_every = c.integer("checkpointEvery", 0);
  if (r.batch < 1) fail("E_CONFIG", "train.batchSize must be at least 1");
  if (!(r.T > 0)) fail("E_CONFIG", "train.temperature must be positive");
  r.meta = r.teacher->meta().is_object() ? r.teacher->meta() : Json(Json::Object{});
  r.meta["inputShape"] = shape_json(r.shape);
  r.meta["numClasses"] = r.classes;
  r.meta["method"] = r.method;
  r.timer.t["load"] += secs_since(t0);
}

// Runs a method's loop; on cancel or NaN writes a checkpoint (through `fill`) and rethrows.
template <class F>
void guarded_loop(Run& r, F&& body, const std::function<Json(Checkpoint&)>& fill) {
  try {
    body();
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
        r.save_checkpoint([&](Checkpoint& ck) {
          Json st = fill(ck);
          st["reason"] = e.code == "E_CANCELLED" ? "cancelled" : "nan";
          return st;
        });
      } catch (const Error& bad) {
        if (bad.code != "E_NAN") throw;
        throw keep_last_good("the weights are no longer finite, so they were not saved");
      }
      throw Error(e.code, std::string(e.what()) + "; checkpoint written to " + r.out_ckpt +
                              " (pass it as resume to continue)", r.out_ckpt);
    }
    throw;
  }
}

void run_classical(Run& r, const Json& rs, CheckpointReader* ck) {
  if (!r.train.size()) fail("E_CONFIG", "method 'classical' needs data: { images, labels }");
  if (r.train.x.sizes().slice(1).vec() != r.shape)
    fail("E_SHAPE", "training images have shape " + shape_str(r.train.x.sizes().slice(1)) + ", the input shape is " + shape_str(r.shape));
  const Json& t = r.cfg.get("train");
  r.steps = t.integer("steps", 2000);
  if (r.steps < 1) fail("E_CONFIG", "train.steps must be at least 1");
  r.opt = std::make_unique<Optim>(parameters_of(r.student), t, r.steps);
  int64_t step = 0;
  if (ck) restoring(ck->path(), [&] {
    r.opt->load(ck->in());
    step = rs.integer("step", 0);
  });
  const int64_t start = step;
  Batches batches(r.train.size(), r.batch, r.seed);
  Progress prog(r.emit);
  r.phase("train");
  auto t0 = Clock::now();
  auto fill = [&](Checkpoint& c) { r.put_rng(c); Json st; st["step"] = step; return st; };
  guarded_loop(r, [&] {
    for (; step < r.steps; ++step) {
      if (r.cancel.load()) fail("E_CANCELLED", "cancelled at step " + std::to_string(step));
      auto idx = batches.at(step);
      auto x = augment(r.train.x.index_select(0, idx), r.augment_pad, r.augment_flip, *r.rng).to(r.device);
      auto y = r.train.y.defined() ? r.train.y.index_select(0, idx).to(r.device) : torch::Tensor();
      r.last_student = r.student_step(x, y, step);
      double el = secs_since(t0);
      prog.report("train", step + 1, r.steps, r.last_student, (step + 1 - start) * double(r.batch) / std::max(el, 1e-9),
                  double(step + 1) / r.steps);
      r.maybe_eval(step + 1, r.steps);
      if (r.ckpt_every > 0 && (step + 1) % r.ckpt_every == 0 && step + 1 < r.steps) {
        ++step;
        r.save_checkpoint(fill, /*defer=*/true);
        --step;
      }
    }
  }, fill);
  r.timer.t["train"] += secs_since(t0);
}

void save_samples(Run& r, const torch::Tensor& x, const torch::Tensor& y) {
  const Json& o = r.cfg.get("output");
  if (!o.boolean("samples", true)) return;
  std::string base = o.str("samplesPrefix", r.out_dir + "/samples");
  write_safetensors(base + ".safetensors",
                    {{"x", x.detach().cpu().contiguous()}, {"y", y.defined() ? y.cpu() : torch::empty({0}, torch::kLong)}},
                    {{"dfkd", r.meta.dump()}});
  save_png_grid(x, base + ".png", r.meta.nums("mean"), r.meta.nums("std"));
}

// statistical / spectral / deepinversion: rounds of (synthesize a batch -> memory bank -> KD steps).
void run_inversion(Run& r, const Json& rs, CheckpointReader* ck) {
  const Json& sc = r.cfg.get("synth");
  std::unique_ptr<Stats> stats;
  if (r.cfg.has("stats")) stats = std::make_unique<Stats>(load_stats(r.cfg.str("stats", "")));
  InputSynthConfig sconf;
  if (r.method == "deepinversion") sconf = deepinversion_config(sc, *r.teacher);
  else if (r.method == "noise") {  // baseline: KD on Gaussian noise, no synthesis
    sconf.ce = 0;
    apply_common(sconf, sc);
    sconf.iterations = 0;
  }
  else if (r.method == "statistical") sconf = statistical_config(sc, *r.teacher, stats.get(), r.shape);
  else sconf = spectral_config(sc, *r.teacher, stats.get(), r.shape);
  InputSynthesizer synth(*r.teacher, sconf, r.shape, r.classes);
  const int64_t rounds = sc.integer("rounds", 20);
  const int64_t per_round = r.cfg.get("train").integer("stepsPerRound", 100);
  const int64_t bank_cap = sc.integer("bankSize", rounds * sconf.batch);  // default: keep everything
  if (rounds < 1 || per_round < 0) fail("E_CONFIG", "synth.rounds must be >= 1 and train.stepsPerRound >= 0");
  r.steps = rounds * per_round;
  r.opt = std::make_unique<Optim>(parameters_of(r.student), r.cfg.get("train"), std::max<int64_t>(1, r.steps));
  Bank bank(bank_cap);
  int64_t round = 0, k = 0;
  // Whether this round's batch is already in the bank: k == 0 alone does not say (a run
  // cancelled between synthesis and the first KD step used to synthesize the round again).
  bool have_batch = false;
  if (ck) restoring(ck->path(), [&] {
    r.opt->load(ck->in());
    bank.load(ck->in());
    round = rs.integer("round", 0);
    k = rs.integer("k", 0);
    have_batch = rs.boolean("haveBatch", k > 0);
    r.synthesized = rs.integer("synthesized", 0);
    for (auto& [name, v] : rs.get("lastSynth").is_object() ? rs.get("lastSynth").as_object() : Json::Object{})
      r.last_synth[name] = v.as_number();
  });
  std::pair<torch::Tensor, torch::Tensor> round_rng;  // RNG states at the start of the round being synthesized
  bool in_synth = false;
  Progress prog(r.emit);
  // Cancelled during synthesis: the round restarts from its beginning (bank and RNG as then).
  auto fill = [&](Checkpoint& c) {
    bank.save(c.out());
    r.put_rng(c, in_synth ? &round_rng : nullptr);
    Json st;
    st["round"] = round;
    st["k"] = k;
    st["haveBatch"] = have_batch && !in_synth;
    st["synthesized"] = r.synthesized;
    st["lastSynth"] = losses_json(r.last_synth);
    return st;
  };
  guarded_loop(r, [&] {
    for (; round < rounds; ++round) {
      if (!have_batch) {
        r.phase("synthesize");
        round_rng = r.rng_state();
        in_synth = true;
        r.synthesizing = true;
        auto t0 = Clock::now();
        auto res = synth.run(*r.rng, sconf.adi > 0 ? &r.student : nullptr, r.cancel,
                             [&](int64_t it, int64_t total, const Losses& l) {
                               double el = secs_since(t0);
                               Json ex;
                               ex["round"] = round + 1;
                               ex["rounds"] = rounds;
                               prog.report("synthesize", it, total, l, it * double(sconf.batch) / std::max(el, 1e-9),
                                           (round + 0.5 * it / total) / rounds, false, ex);
                             });
        in_synth = false;
        r.synthesizing = false;
        r.timer.t["synthesize"] += secs_since(t0);
        r.last_synth = res.losses;
        bank.add(res.x);
        r.synthesized += res.x.size(0);
        have_batch = true;
        if (round == 0) save_samples(r, res.x, res.y);
        r.phase("train");
      }
      auto t1 = Clock::now();
      const int64_t k0 = k;
      for (; k < per_round; ++k) {
        if (r.cancel.load()) fail("E_CANCELLED", "cancelled in round " + std::to_string(round + 1));
        int64_t step = round * per_round + k;
        auto idx = torch::randint(0, bank.size(), {r.batch}, r.rng->device,
                                  torch::TensorOptions().dtype(torch::kLong).device(r.device));
        auto x = mixup(augment(bank.get(idx), r.augment_pad, r.augment_flip, *r.rng), r.mixup, *r.rng);
        r.last_student = r.student_step(x, torch::Tensor(), step);
        double el = secs_since(t1);
        Json ex;
        ex["round"] = round + 1;
        ex["rounds"] = rounds;
        prog.report("train", step + 1, r.steps, r.last_student, (k + 1 - k0) * double(r.batch) / std::max(el, 1e-9),
                    (round + 0.5 + 0.5 * double(k + 1) / per_round) / rounds, false, ex);
        r.maybe_eval(step + 1, r.steps);
      }
      r.timer.t["train"] += secs_since(t1);
      k = 0;
      have_batch = false;
      if (r.ckpt_every > 0 && (round + 1) % r.ckpt_every == 0 && round + 1 < rounds) {
        ++round;
        r.save_checkpoint(fill, /*defer=*/true);
        --round;
      }
    }
  }, fill);
}

// adversarial: epochs x iterations of (n_S student steps on G(z), 1 generator step).
// Defaults (DFAD_mnist.py): batch 512, 40 epochs x 50 iterations, 5 student steps per
// generator step, student SGD lr 0.01 momentum 0.9 wd 1e-4, generator Adam 1e-3, L1.
void run_adversarial(Run& r, const Json& rs, CheckpointReader* ck) {
  const Json& a = r.cfg.get("adversarial");
  const int64_t epochs = a.integer("epochs", 40), iters = a.integer("itersPerEpoch", 50), ns = a.integer("studentSteps", 5);
  const int64_t gbatch = a.integer("batchSize", r.batch);
  const bool diagnostics = a.boolean("diagnostics", false);
  if (epochs < 1 || iters < 1 || ns < 1 || gbatch < 1) fail("E_CONFIG", "adversarial epochs, itersPerEpoch, studentSteps and batchSize must be >= 1");
  const int64_t total_iters = epochs * iters;
  r.steps = total_iters * ns;
  r.opt = std::make_unique<Optim>(parameters_of(r.student), r.cfg.get("train"), r.steps);
  GeneratorSynth g(r.cfg.get("generator"), *r.teacher, r.shape, r.rng->host, total_iters);
  int64_t it = 0;
  if (ck) restoring(ck->path(), [&] {
    r.opt->load(ck->in());
    auto gm = ck->module("generator", r.device);
    copy_state(g.module(), gm);
    torch::serialize::InputArchive ga;
    ck->in().read("generator_optim", ga);
    g.optim().load(ga);
    it = rs.integer("iteration", 0);
    // Building the generator above drew its initial weights from the RNG, which distill() had
    // already restored: restore it again, or every z after a resume differs from the run's.
    r.load_rng(*ck);
  });
  Losses last_g;
  Progress prog(r.emit);
  r.phase("train");
  auto t0 = Clock::now();
  const int64_t it0 = it;
  auto fill = [&](Checkpoint& c) {
    if (!module_finite(g.module())) fail("E_NAN", "the generator's weights are no longer finite; lower the generator lr");
    r.put_rng(c);
    c.put_module("generator", g.module());
    torch::serialize::OutputArchive ga;
    g.optim().save(ga);
    c.out().write("generator_optim", ga);
    Json st;
    st["iteration"] = it;
    return st;
  };
  guarded_loop(r, [&] {
    for (; it < total_iters; ++it) {
      if (r.cancel.load()) fail("E_CANCELLED", "cancelled at iteration " + std::to_string(it));
      for (int64_t j = 0; j < ns; ++j) {
        auto x = g.sample(r.batch, *r.rng);
        r.last_student = r.student_step(x, torch::Tensor(), it * ns + j);
        if (diagnostics && j == ns - 1) {  // the same batch after the step
          torch::NoGradGuard ng;
          BufferSnapshot keep(r.student);
          r.last_student["kd_after"] = losses::discrepancy(r.loss_kind, run_logits(r.student, x, "student"),
                                                           r.teacher->logits(x), r.T).item<double>();
        }
      }
      last_g = g.step(r.student, gbatch, r.T, *r.rng, it, diagnostics);
      Losses all = r.last_student;
      for (auto& [k, v] : last_g) all["g_" + k] = v;
      r.synthesized += ns * r.batch + gbatch;
      double el = secs_since(t0);
      Json ex;
      ex["epoch"] = it / iters + 1;
      ex["epochs"] = epochs;
      prog.report("train", it + 1, total_iters, all, (it + 1 - it0) * double(ns * r.batch + gbatch) / std::max(el, 1e-9),
                  double(it + 1) / total_iters, false, ex);
      r.maybe_eval((it + 1) * ns, r.steps);
      if (r.ckpt_every > 0 && (it + 1) % r.ckpt_every == 0 && it + 1 < total_iters) {
        ++it;
        r.save_checkpoint(fill, /*defer=*/true);
        --it;
      }
    }
  }, fill);
  r.timer.t["train"] += secs_since(t0);
  for (auto& [k, v] : last_g) r.last_synth[k] = v;
  // the generator, as TorchScript, and a grid of its samples
  auto ts = Clock::now();
  const Json& o = r.cfg.get("output");
  std::string gpath = o.str("generator", r.out_dir + "/generator.pt");
  mkdirs(dirname(gpath));
  g.module().eval();
  Json gmeta = r.meta;
  gmeta["nz"] = g.nz();
  save_module(g.module(), gpath, gmeta);
  auto x = g.sample(64, *r.rng);
  {
    torch::NoGradGuard ng;
    save_samples(r, x, r.teacher->logits(x).argmax(1));
  }
  r.timer.t["save"] += secs_since(ts);
}

Json distill(const Json& cfg, const EmitFn& emit, const std::atomic<bool>& cancel) {
  Run r(cfg, emit, cancel);
  setup(r);
  std::unique_ptr<CheckpointReader> ck;
  Json rs;
  if (cfg.has("resume")) {
    auto t0 = Clock::now();
    restoring(cfg.str("resume", ""), [&] {
      ck = std::make_unique<CheckpointReader>(cfg.str("resume", ""));
      rs = ck->json("state");
      if (rs.str("method", "") != r.method)
        fail("E_CHECKPOINT", "the checkpoint is of method '" + rs.str("method", "") + "', this run is '" + r.method + "'");
      auto sm = ck->module("student", r.device);
      copy_state(r.student, sm);
      r.load_rng(*ck);
    });
    r.good_ckpt = cfg.str("resume", "");
    r.log("resuming from " + cfg.str("resume", ""));
    r.timer.t["load"] += secs_since(t0);
  }
  if (r.method == "classical") run_classical(r, rs, ck.get());
  else if (r.method == "deepinversion" || r.method == "statistical" || r.method == "spectral" || r.method == "noise")
    run_inversion(r, rs, ck.get());
  else if (r.method == "adversarial") run_adversarial(r, rs, ck.get());
  else fail("E_CONFIG", "unknown method '" + r.method + "' (classical, statistical, spectral, deepinversion, adversarial, noise)");

  // save the student, evaluate, write the report
  auto t0 = Clock::now();
  r.phase("save");
  r.student.eval();
  save_module(r.student, r.out_student, r.meta);
  r.timer.t["save"] += secs_since(t0);
  Json report;
  if (r.test.size()) {
    r.phase("evaluate");
    auto t1 = Clock::now();
    auto ev = evaluate(&r.teacher->module(), &r.student, r.test, 512, r.device);
    r.timer.t["evaluate"] += secs_since(t1);
    report["evaluation"] = ev.json();
  }
  int64_t sp = 0, tp = 0;
  for (auto p : r.student.parameters()) sp += p.numel();
  for (auto p : r.teacher->module().parameters()) tp += p.numel();
  report["method"] = r.method;
  report["teacher"] = Json(Json::Object{{"path", r.teacher->path()}, {"parameters", tp}});
  report["student"] = Json(Json::Object{{"path", r.out_student}, {"parameters", sp}});
  report["device"] = r.device.str();
  report["seed"] = double(r.seed);
  report["inputShape"] = shape_json(r.shape);
  report["numClasses"] = r.classes;
  report["studentSteps"] = r.steps;
  report["synthesized"] = r.synthesized;
  report["timings"] = r.timer.json();
  report["losses"] = Json(Json::Object{{"student", losses_json(r.last_student)}, {"synthesis", losses_json(r.last_synth)}});
  if (!r.evals.as_array().empty()) report["evals"] = r.evals;
  report["report"] = r.out_report;
  write_file_atomic(r.out_report, report.dump());
  return report;
}

Json evaluate_job(const Json& cfg) {
  auto device = pick_device(cfg.str("device", "cpu"));
  if (cfg.has("threads")) torch::set_num_threads(int(cfg.integer("threads", 1)));
  Dataset test = load_dataset(cfg.get("test"));
  torch::jit::Module teacher, student;
  bool has_t = cfg.has("teacher"), has_s = cfg.has("student");
  if (!has_t && !has_s) fail("E_CONFIG", "evaluate needs a teacher and/or a student");
  if (has_t) teacher = load_module(cfg.str("teacher", ""), device);
  if (has_s) student = load_module(cfg.str("student", ""), device);
  auto r = evaluate(has_t ? &teacher : nullptr, has_s ? &student : nullptr, test, cfg.integer("batchSize", 512), device);
  return r.json();
}

Json info_job(const Json& cfg) {
  auto device = pick_device(cfg.str("device", "cpu"));
  Teacher t(cfg.str("teacher", ""), device, cfg.strs("layers"));
  return t.info(t.input_shape(to_shape(cfg.nums("inputShape"))));
}

Json stats_job(const Json& cfg, const EmitFn& emit, const std::atomic<bool>& cancel) {
  auto device = pick_device(cfg.str("device", "cpu"));
  if (cfg.has("threads")) torch::set_num_threads(int(cfg.integer("threads", 1)));
  Teacher t(cfg.str("teacher", ""), device, cfg.strs("layers"));
  Dataset data = load_dataset(cfg.get("data"));
  auto shape = t.input_shape(data.x.sizes().slice(1).vec());
  t.num_classes(shape);
  Progress prog(emit);
  auto st = compute_stats(t, data, cfg.integer("batchSize", 256), [&](int64_t done, int64_t total) {
    prog.report("stats", done, total, {}, 0.0, double(done) / total);
    return !cancel.load();
  });
  st.meta["teacher"] = t.path();
  st.meta["inputShape"] = shape_json(shape);
  std::string out = cfg.str("output", "stats.safetensors");
  mkdirs(dirname(out));
  save_stats(st, out);
  Json j;
  j["path"] = out;
  j["samples"] = st.meta.get("samples");
  Json::Array layers;
  for (auto& l : st.layers) {
    Json lj;
    lj["name"] = l.name;
    lj["channels"] = l.mean.numel();
    lj["spectrum"] = l.amplitude.defined() ? shape_json(l.amplitude.sizes().vec()) : Json();
    layers.push_back(lj);
  }
  j["layers"] = Json(layers);
  return j;
}

}  // namespace

Json run_job(const std::string& kind, const Json& config, const EmitFn& emit, const std::atomic<bool>& cancel) {
  // TorchScript's profiling executor (on by default) re-specializes each graph after profiling
  // runs and moves differentiable regions into autodiff subgraphs with their own backward. For
  // the input-optimization loops (a backward to the input through the teacher every step) that
  // costs more than it gives: DeepInversion on ResNet-8 at batch 256 ran at 0.78x eager PyTorch
  // with it, 1.10x without (bench/results). The generator loop goes the other way (about 10-15%
  // faster with it), so adversarial jobs keep it. Without it the interpreter runs the graph's
  // ops one by one under the ordinary autograd engine, as eager does, minus Python. The setting
  // is thread_local and each job has its own thread; DFKD_JIT_OPTIMIZE=1/0 forces it.
  const char* opt = std::getenv("DFKD_JIT_OPTIMIZE");
  const bool generator_loop = (kind == "distill" && config.str("method", "") == "adversarial") ||
                              (kind == "bench" && config.str("kind", "") == "adversarial");
  torch::jit::setGraphExecutorOptimize(opt && *opt ? std::string(opt) == "1" : generator_loop);
  JobMemoryScope memory;  // large freed blocks are reused while any job runs (core/alloc.h)
  try {
    if (kind == "distill") return distill(config, emit, cancel);
    if (kind == "evaluate") return evaluate_job(config);
    if (kind == "info") return info_job(config);
    if (kind == "stats") return stats_job(config, emit, cancel);
    if (kind == "bench") return bench_job(config, pick_device(config.str("device", "cpu")), cancel);
    if (kind == "selfcheck") return gradient_selfcheck(uint64_t(config.integer("seed", 0)));
    fail("E_CONFIG", "unknown job kind '" + kind + "'");
  } catch (...) {
    throw translate(std::current_exception(), "E_TORCH", "");
  }
}

}  // namespace dfkd
