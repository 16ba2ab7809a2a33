// Unit tests of native/core, linked against dfkd_core (ctest; `npm run test:native`): losses
// (finite-difference gradient checks, float64), bank wrap-around, the schedule, a safetensors
// round trip, the dtype table and overflow guard, config parsing, and the taps of a scripted vs a
// traced teacher (test/fixtures, made by `npm run fixtures`; skipped without them).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "core/config.h"
#include "core/dist.h"
#include "core/zoo.h"
#include "core/io/dtype.h"
#include "core/io/safetensors.h"
#include "core/job.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/synth/synth.h"
#include "core/teacher.h"
#include "core/train.h"

using namespace dfkd;

namespace {

int failures = 0, checks = 0;
#define EXPECT(cond)                                                                          \
  do {                                                                                       \
    ++checks;                                                                                \
    if (!(cond)) { ++failures; std::cerr << __FILE__ << ":" << __LINE__ << ": EXPECT(" #cond ") failed\n"; } \
  } while (0)

template <class F>
std::string error_of(F&& f) {  // "CODE: message" of what f throws, "" if nothing
  try { f(); } catch (const Error& e) { return e.code + ": " + e.what(); }
  return "";
}

// max |autograd - central difference| / max(1, |grad|) over 24 sampled coordinates.
double grad_error(const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x, at::Generator& gen) {
  x = x.clone().requires_grad_(true);
  auto g = torch::autograd::grad({f(x)}, {x})[0].detach().reshape(-1);
  auto xf = x.detach().clone().reshape(-1);
  const double eps = 1e-6;
  double worst = 0;
  auto idx = torch::randint(0, xf.numel(), {24}, gen, torch::kLong);
  for (int64_t k = 0; k < idx.numel(); ++k) {
    int64_t i = idx[k].item<int64_t>();
    auto xp = xf.clone(), xm = xf.clone();
    xp[i] += eps;
    xm[i] -= eps;
    double num = (f(xp.view(x.sizes())).item<double>() - f(xm.view(x.sizes())).item<double>()) / (2 * eps);
    double ana = g[i].item<double>();
    worst = std::max(worst, std::abs(num - ana) / std::max(1.0, std::abs(ana)));
  }
  return worst;
}

void test_gradients() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto act = torch::randn({4, 3, 6, 7}, gen, torch::kDouble);
  auto even = torch::randn({4, 3, 6, 8}, gen, torch::kDouble);
  auto other = torch::randn({4, 3, 6, 7}, gen, torch::kDouble) * 2 + 0.5;
  auto logits = torch::randn({5, 4}, gen, torch::kDouble);
  auto t_logits = torch::randn({5, 4}, gen, torch::kDouble);
  auto feats = torch::randn({5, 6}, gen, torch::kDouble);
  auto amp = losses::spectrum(other, false), pw = losses::spectrum(other, true);
  auto mean = torch::rand({3}, gen, torch::kDouble), stdv = torch::rand({3}, gen, torch::kDouble) + 0.5;
  std::vector<Tap> taps{{"a", TapKind::bn, mean, stdv}, {"b", TapKind::bn, mean * 2, stdv}};
  std::map<std::string, std::pair<std::function<torch::Tensor(const torch::Tensor&)>, torch::Tensor>> cases{
      {"spectral_amplitude", {[&](const torch::Tensor& x) { return losses::spectral(x, amp, false); }, act}},
      {"spectral_power", {[&](const torch::Tensor& x) { return losses::spectral(x, pw, true); }, act}},
      {"spectral_bn", {[&](const torch::Tensor& x) { return losses::spectral_bn(x, mean, stdv); }, act}},
      {"spectral_bn_even_width", {[&](const torch::Tensor& x) { return losses::spectral_bn(x, mean, stdv); }, even}},
      {"bn_stats", {[&](const torch::Tensor& x) { return losses::bn_stats(x, mean, stdv); }, act}},
      {"bn_stats_momentum", {[&](const torch::Tensor& x) {
         return losses::bn_stats(losses::bn_moments(x), mean, stdv, losses::Moments{mean * 0.5, stdv * 2}, 0.9);
       }, act}},
      {"bn_sum", {[&](const torch::Tensor& x) { return losses::bn_sum({x, x * 0.5}, taps, {0, 1}, 10.0); }, act}},
      {"feature_stats", {[&](const torch::Tensor& x) { return losses::feature_stats(x, mean, stdv, false); }, act}},
      {"feature_stats_squared", {[&](const torch::Tensor& x) { return losses::feature_stats(x, mean, stdv, true); }, act}},
      {"tv_l1", {[&](const torch::Tensor& x) { return losses::tv(x).first; }, act}},
      {"tv_l2", {[&](const torch::Tensor& x) { return losses::tv(x).second; }, act}},
      {"l2_prior", {[&](const torch::Tensor& x) { return losses::l2_prior(x); }, act}},
      {"kd_kl", {[&](const torch::Tensor& x) { return losses::kd_kl(x, t_logits, 4.0); }, logits}},
      {"l1_logits", {[&](const torch::Tensor& x) { return losses::l1_logits(x, t_logits); }, logits}},
      {"adi_competition", {[&](const torch::Tensor& x) { return losses::adi_competition(x, t_logits, 3.0); }, logits}},
      {"agreeing_kl", {[&](const torch::Tensor& x) { return losses::agreeing_kl(x, t_logits); }, logits}},
      {"dafl_onehot", {[&](const torch::Tensor& x) { return losses::dafl_onehot(x); }, logits}},
      {"dafl_activation", {[&](const torch::Tensor& x) { return losses::dafl_activation(x); }, feats}},
      {"dafl_entropy", {[&](const torch::Tensor& x) { return losses::dafl_entropy(x); }, logits}},
  };
  for (auto& [name, c] : cases) {
    double e = grad_error(c.first, c.second, gen);
    std::cout << "  gradient " << name << ": " << e << "\n";
    EXPECT(e < 1e-5);
  }
  {  // Fast-Datafree's bn_mmt: the batch's moments weigh 1 - k against the earlier batches' average
    auto m = losses::bn_moments(act);
    losses::Moments avg{mean * 0.5, stdv * 2};
    auto expect = torch::norm(stdv - 0.1 * m.var - 0.9 * avg.var) + torch::norm(mean - 0.1 * m.mean - 0.9 * avg.mean);
    EXPECT(std::abs(losses::bn_stats(m, mean, stdv, avg, 0.9).item<double>() - expect.item<double>()) < 1e-12);
    EXPECT(losses::bn_stats(m, mean, stdv).item<double>() == losses::bn_stats(act, mean, stdv).item<double>());
  }
  // Fast-Datafree's adversarial KL counts only the samples whose argmax agree: all of them when the
  // student's logits are the teacher's halved (then it is KD's KL at T = 1), none when negated.
  EXPECT(std::abs(losses::agreeing_kl(t_logits * 0.5, t_logits).item<double>() - losses::kd_kl(t_logits * 0.5, t_logits, 1.0).item<double>()) < 1e-12);
  EXPECT(losses::agreeing_kl(-t_logits, t_logits).item<double>() == 0.0);
  {
    const auto agree = (logits.argmax(1) == t_logits.argmax(1)).sum().item<int64_t>();
    std::cout << "  agreeing_kl case: " << agree << " of 5 samples agree\n";
    EXPECT(agree > 0 && agree < 5);  // the gradient check above covers both kinds of sample
  }
  // Terms compose in order, with their weights; a term returning an undefined tensor is skipped.
  Tapped t{t_logits, {}};
  torch::Tensor y;
  StepLosses step;
  std::vector<losses::Term> terms{{"a", 2.0, [&](const losses::TermInput&) { return torch::ones({}, torch::kDouble); }},
                                  {"skip", 5.0, [&](const losses::TermInput&) { return torch::Tensor(); }},
                                  {"b", -1.0, [&](const losses::TermInput&) { return torch::full({}, 3.0, torch::kDouble); }}};
  auto total = losses::compose(terms, losses::TermInput{logits, y, t, nullptr}, logits, step, "total");
  step.set("lr", 0.5);
  Losses parts = step.read();
  EXPECT(total.item<double>() == -1.0 && parts["a"] == 1.0 && parts["b"] == 3.0 && !parts.count("skip") && parts["total"] == -1.0 &&
         parts["lr"] == 0.5);
  // A guard is a running flag: once a loss was not finite, every later read fails with E_NAN.
  auto flag = still_finite(torch::Tensor(), torch::ones({}));
  flag = still_finite(flag, torch::full({}, NAN));
  flag = still_finite(flag, torch::ones({}));
  StepLosses later;
  later.set("x", torch::ones({}));
  later.guard(flag, "the test loss", "lower it");
  std::string code, msg;
  try { later.read(); } catch (const Error& e) { code = e.code, msg = e.what(); }
  EXPECT(code == "E_NAN" && msg.find("the test loss became NaN or infinite; lower it") != std::string::npos);
  StepLosses merged;
  merged.set("kd", torch::full({}, 2.0));
  merged.merge(step, "g_");
  Losses m = merged.read();
  EXPECT(m["kd"] == 2.0 && m["g_a"] == 1.0 && m["g_lr"] == 0.5 && !m.count("a"));
}

void test_bank() {
  Bank bank(5);
  bank.add(torch::arange(3, torch::kFloat).view({3, 1}));
  EXPECT(bank.size() == 3);
  bank.add(torch::arange(3, 7, torch::kFloat).view({4, 1}));  // wraps: 5, 6 overwrite 0, 1
  EXPECT(bank.size() == 5);
  EXPECT(torch::equal(bank.all().view(-1), torch::tensor({5.f, 6.f, 2.f, 3.f, 4.f})));
  Bank newest(0);  // capacity 0: only the newest batch
  newest.add(torch::ones({2, 1}));
  newest.add(torch::zeros({3, 1}));
  EXPECT(newest.size() == 3 && newest.all().sum().item<double>() == 0);
}

// train.ema: the average follows avg = d avg + (1 - d) live with d = min(decay, (1 + n) / (10 + n)),
// over parameters and BN running statistics, on tensors of its own.
void test_weight_average() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto live = make_model("lenet5", {1, 28, 28}, 10, gen);
  auto first = [](torch::jit::Module& m) { return (*m.parameters().begin()).detach().clone(); };
  auto bn_mean = [](torch::jit::Module& m) {
    for (const auto& b : m.named_buffers()) if (b.name.find("running_mean") != std::string::npos) return b.value.clone();
    return torch::Tensor();
  };
  const auto p0 = first(live), m0 = bn_mean(live);
  EXPECT(m0.defined());
  WeightAverage avg(live, 0.5);
  EXPECT(!(*avg.module().parameters().begin()).requires_grad());
  auto shift = [&](double by) {
    torch::NoGradGuard ng;
    for (auto p : live.parameters()) p.add_(by);
    for (const auto& b : live.named_buffers()) if (b.value.is_floating_point()) b.value.add_(by);
  };
  shift(1.0);
  avg.update(live);  // n = 1: d = 2 / 11
  const double d1 = 2.0 / 11.0;
  EXPECT(torch::allclose(first(avg.module()), p0 + (1 - d1), 1e-6, 1e-6));
  EXPECT(torch::allclose(bn_mean(avg.module()), m0 + (1 - d1), 1e-6, 1e-6));
  EXPECT(torch::allclose(first(live), p0 + 1.0));  // the live weights untouched, the average its own
  for (int i = 2; i <= 20; ++i) avg.update(live);  // d = min(0.5, 21 / 30) = 0.5 by n = 20
  shift(1.0);
  const auto before = first(avg.module());
  avg.update(live);
  EXPECT(avg.updates() == 21);
  EXPECT(torch::allclose(first(avg.module()), 0.5 * before + 0.5 * (p0 + 2.0), 1e-6, 1e-6));
}

void test_schedule() {
  EXPECT(scheduled_lr(Schedule::cosine, 1.0, 0, 10, 0) == 1.0);
  EXPECT(std::abs(scheduled_lr(Schedule::cosine, 1.0, 5, 10, 0) - 0.5) < 1e-12);
  EXPECT(scheduled_lr(Schedule::cosine, 1.0, 20, 10, 0) == 0.0);  // clamped past the end
  EXPECT(scheduled_lr(Schedule::cosine, 2.0, 1, 10, 4) == 1.0);  // warm-up: 2 * 2 / 4
  EXPECT(scheduled_lr(Schedule::none, 0.3, 7, 10, 0) == 0.3);
  EXPECT(std::abs(scheduled_lr(Schedule::step, 1.0, 6, 10, 0, {3, 6}, 0.1) - 0.01) < 1e-15);
}

void test_safetensors_and_dtypes() {
  auto dir = std::filesystem::temp_directory_path() / ("dfkd-core-tests-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "t.safetensors").string();
  auto f = torch::randn({2, 3});
  auto l = torch::arange(5, torch::kLong);
  auto u = torch::tensor({1, 2, 255}, torch::kUInt8);
  auto d = torch::randn({4}, torch::kDouble);
  auto e = torch::empty({0, 3});
  write_safetensors(path, {{"f", f}, {"l", l}, {"u", u}, {"d", d}, {"e", e}}, {{"k", "v"}});
  std::map<std::string, std::string> md;
  auto back = read_safetensors(path, &md, "E_NOT_FOUND", "E_INVALID");
  std::map<std::string, torch::Tensor> by(back.begin(), back.end());
  EXPECT(md["k"] == "v");
  EXPECT(torch::equal(by["f"], f) && torch::equal(by["l"], l) && torch::equal(by["u"], u) && torch::equal(by["d"], d));
  EXPECT(by["e"].sizes() == e.sizes());
  EXPECT(error_of([&] { read_safetensors((dir / "none").string(), nullptr, "E_NOT_FOUND", "E_INVALID"); }).rfind("E_NOT_FOUND", 0) == 0);
  std::filesystem::remove_all(dir);
  // one dtype table
  EXPECT(dtype_by_npy("<f4")->type == torch::kFloat && dtype_by_npy("=f8")->type == torch::kDouble && dtype_by_npy("u1")->item == 1);
  EXPECT(!dtype_by_npy(">f4") && dtype_by_name("int64")->safetensors == std::string("I64") && !dtype_by_safetensors("BF16"));
  // one overflow guard
  EXPECT(checked_count({2, 3, 4}) == uint64_t(24) && !checked_count({-1}) && !checked_count({1 << 30, 1 << 30, 1 << 30}));
  EXPECT(checked_count({}) == uint64_t(1) && checked_count({0, int64_t(1) << 62}) == uint64_t(0));
}

void test_config() {
  Json j = Json::parse(R"({"teacher": "t.pt", "method": "classical", "train": {"lr": 0.5}})");
  auto c = parse_distill(j);
  EXPECT(c.recipe.train.lr == 0.5 && c.recipe.train.steps == 2000 && c.recipe.train.temperature == 4.0);
  EXPECT(c.output.student == "dfkd-out/student.pt");
  // (method "auto" is resolved before parsing, by distill_job: plan.cpp choose_method)
  auto di = parse_distill(Json::parse(R"({"teacher": "t.pt", "method": "deepinversion", "synth": {"rounds": 3}, "outDir": null})"));
  EXPECT(di.method == "deepinversion" && di.recipe.synth.bn == 30.0 && di.recipe.train.temperature == 20.0);
  EXPECT(di.has("synth.rounds") && !di.has("synth.iterations"));  // the sizes a budget must not override
  EXPECT(parse_distill(Json::parse(R"({"teacher": "t.pt", "method": "classical", "budget": "1h30m"})")).budget == 5400.0);
  EXPECT(error_of([] { parse_distill(Json::parse(R"({"teacher": "t.pt", "method": "classical", "budget": "5 parsecs"})")); })
             .find("budget must be") != std::string::npos);
  EXPECT(di.recipe.synth.bank_size == 3 * 256);
  EXPECT(error_of([] { parse_distill(Json::parse(R"({"teacher": "t.pt", "train": {"lrr": 1}})")); }) ==
        "E_CONFIG: unknown config key 'train.lrr'");
  EXPECT(error_of([] { parse_distill(Json::parse(R"({"teacher": "t.pt", "bogus": 1})")); }) == "E_CONFIG: unknown config key 'bogus'");
  EXPECT(error_of([] { parse_distill(Json::parse(R"({"teacher": "t.pt", "method": "nope"})")).method; }).find("unknown method 'nope'") != std::string::npos);
  EXPECT(error_of([] { parse_distill(Json::parse(R"({"teacher": "t.pt", "train": {"loss": "l2"}})")); }).find("train.loss") != std::string::npos);
  auto d = distill_defaults();
  EXPECT(d.get("methods").get("adversarial").get("generator").num("lr", 0) == 1e-3);
  EXPECT(!d.get("methods").get("classical").has("synth"));
  EXPECT(d.get("methods").get("noise").get("synth").integer("batchSize", 0) == 64);
}

void test_taps() {
  const std::string scripted = "test/fixtures/tiny_bn.pt", traced = "test/fixtures/tiny_bn_traced.pt";
  if (!std::filesystem::exists(scripted) || !std::filesystem::exists(traced)) {
    std::cout << "  taps: skipped (no test/fixtures: npm run fixtures)\n";
    return;
  }
  Teacher a(scripted, torch::kCPU), b(traced, torch::kCPU);
  EXPECT(a.taps().size() == b.taps().size() && !a.bn_taps().empty());
  for (size_t i = 0; i < std::min(a.taps().size(), b.taps().size()); ++i)
    EXPECT(a.taps()[i].name == b.taps()[i].name && a.taps()[i].kind == b.taps()[i].kind);
  auto shape = a.input_shape();
  std::vector<int64_t> full{4};
  full.insert(full.end(), shape.begin(), shape.end());
  auto x = torch::randn(full);
  auto ta = a.forward_tapped(x), tb = b.forward_tapped(x);
  EXPECT(torch::allclose(ta.logits, tb.logits));
  for (size_t i = 0; i < std::min(ta.acts.size(), tb.acts.size()); ++i) EXPECT(torch::allclose(ta.acts[i], tb.acts[i]));
  // gradients reach the input through the tapped graph
  auto xg = x.clone().requires_grad_(true);
  auto out = a.forward_tapped(xg);
  out.acts[a.bn_taps()[0]].pow(2).mean().backward();
  EXPECT(xg.grad().defined() && xg.grad().abs().sum().item<double>() > 0);
}

// The synthesis step as a CUDA graph runs (synth/input.cpp run_graphed): jitter and flip from
// device draws through shift_flip, the batch in a static leaf. Here on the CPU the same path
// runs eagerly: it must be DeepInversion's step (equal to the eager loop where no augmentation
// is drawn) and learn with one.
void test_synth_graph_path() {
  auto x = torch::randn({2, 3, 5, 7});
  auto lopts = torch::TensorOptions().dtype(torch::kLong);
  auto off = torch::tensor({2, -3}, lopts);
  EXPECT(torch::equal(shift_flip(x, off, torch::tensor(false)), torch::roll(x, {2, -3}, {2, 3})));
  EXPECT(torch::equal(shift_flip(x, off, torch::tensor(true)), torch::roll(x, {2, -3}, {2, 3}).flip({3})));
  EXPECT(torch::equal(shift_flip(x, torch::tensor({-7, 9}, lopts), torch::tensor(false)), torch::roll(x, {-7, 9}, {2, 3})));

  const std::string path = "test/fixtures/tiny_bn.pt";
  if (!std::filesystem::exists(path)) {
    std::cout << "  synth graph path: skipped (no test/fixtures: npm run fixtures)\n";
    return;
  }
  Teacher teacher(path, torch::kCPU);
  auto shape = teacher.input_shape();
  const int64_t classes = teacher.num_classes(shape);
  SynthConfig c;
  c.batch = 8, c.iterations = 30, c.lr = 0.1, c.bn = 1.0, c.ce = 1.0, c.lr_schedule = Schedule::cosine;
  std::atomic<bool> cancel{false};
  auto run = [&](SynthConfig cfg, bool graphed, std::vector<double>* totals) {
    InputSynthesizer s(teacher, cfg, {}, shape, classes);
    if (graphed) EXPECT(s.use_graphs());
    Rng rng(7, torch::kCPU);
    return s.run(rng, nullptr, cancel, [totals](int64_t, int64_t, const StepLosses& l) {
      if (totals) totals->push_back(l.read().at("total"));
    });
  };
  c.jitter = 0, c.flip = false;  // no draws: both paths see the same batches
  std::vector<double> eager_l, graph_l;
  auto a = run(c, false, &eager_l), b = run(c, true, &graph_l);
  EXPECT(torch::allclose(a.x, b.x, 1e-5, 1e-6) && torch::equal(a.y, b.y));
  EXPECT(eager_l.size() == 30 && graph_l.size() == 30 && std::abs(eager_l.back() - graph_l.back()) <= 1e-5 * std::abs(eager_l.back()));
  c.jitter = 2, c.flip = true;
  std::vector<double> aug_l;
  run(c, true, &aug_l);
  EXPECT(aug_l.size() == 30 && aug_l.back() < 0.8 * aug_l.front());
}

// ---- data parallelism (dist.h): 2 ranks at batch B/2 against 1 at batch B -------------------
// Rank 1 is this program again (`dfkd_core_tests dist-worker <case> <port>`), rank 0 the test;
// c10d's TCPStore and Gloo group on 127.0.0.1. Each rank also computes the one-process reference
// on the whole batch and checks its own share against it.

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

void dist_case(const std::string& which, int rank, int port) {
  DistSpec spec;
  spec.rank = rank, spec.world = 2, spec.port = port, spec.timeout = 20;
  Teacher teacher("test/fixtures/tiny_bn.pt", torch::kCPU);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto x = torch::randn({8, 1, 8, 8}, gen), y = torch::arange(8) % 3;
  auto share = [rank](const torch::Tensor& t) { return t.slice(0, 4 * rank, 4 * rank + 4); };
  if (which == "synth") {
    // The losses: BN statistics (the global batch's) + CE (per image); the inputs' gradients.
    auto loss = [&](const torch::Tensor& xb, const torch::Tensor& yb) {
      auto out = teacher.forward_tapped(xb);
      return losses::bn_sum(out.acts, teacher.taps(), teacher.bn_taps()) + torch::cross_entropy_loss(out.logits, yb);
    };
    auto bn_of = [&](const torch::Tensor& xb) { return losses::bn_sum(teacher.forward_tapped(xb).acts, teacher.taps(), teacher.bn_taps()); };
    auto xr = x.clone().requires_grad_(true);
    loss(xr, y).backward();
    const double bn_ref = bn_of(x).item<double>();
    // A synthesis run (InputSynthesizer, 5 Adam steps with jitter): the whole batch on one process.
    // With the priors whose norms are over the whole batch (tvL2), and again with spectral
    // matching (batch-mean spectra) instead of BN statistics.
    SynthConfig c;
    c.batch = 8, c.iterations = 5, c.lr = 0.05, c.bn = 1.0, c.ce = 1.0, c.tv_l2 = 0.03, c.l2 = 1e-3, c.jitter = 1, c.flip = false;
    SynthConfig cs = c;
    cs.bn = 0.0, cs.spectral = 1.0;
    const auto shape = teacher.input_shape();
    std::atomic<bool> cancel{false};
    auto synth = [&](const SynthConfig& sc) {
      InputSynthesizer s(teacher, sc, sc.spectral > 0 ? stats_targets(teacher, nullptr, shape, sc) : std::vector<LayerTarget>{},
                         shape, teacher.num_classes(shape));
      Rng rng(11, torch::kCPU);
      return s.run(rng, nullptr, cancel, nullptr);
    };
    auto whole = synth(c), whole_spectral = synth(cs);
    // fast (MetaGeneratorSynth): two batches, the meta step between them, BN + CE terms, jitter.
    // Every rank runs the generator (built inside the group: BatchNorm synchronized) and the
    // teacher on its rows of z.
    SynthConfig fs;
    fs.batch = 8, fs.iterations = 3, fs.lr = 0.015, fs.betas = {0.5, 0.999}, fs.jitter = 1, fs.flip = false;
    GeneratorConfig gc;
    gc.nz = 16, gc.ngf = 4, gc.lr = 5e-3, gc.betas = {0.5, 0.999}, gc.bn = 1.0, gc.onehot = 0.5, gc.adversarial = 0.0;
    auto fast = [&] {
      auto init = at::make_generator<at::CPUGeneratorImpl>(5);
      MetaGeneratorSynth m(fs, gc, teacher, shape, teacher.num_classes(shape), {}, init, {}, {});
      Rng rng(13, torch::kCPU);
      m.run(rng, nullptr, cancel, nullptr);
      return m.run(rng, nullptr, cancel, nullptr);
    };
    auto whole_fast = fast();
    // adversarial (GeneratorSynth): two generator steps (discrepancy, BN, DAFL's one-hot and
    // entropy terms) against a BatchNorm-free student, then a sample. `share`: one rank's rows
    // (the whole batch in one process).
    GeneratorConfig ac;
    ac.nz = 16, ac.ngf = 4, ac.lr = 1e-2, ac.bn = 1.0, ac.onehot = 1.0, ac.entropy = 5.0, ac.adversarial = 1.0;
    auto adversarial = [&](int64_t rows) {
      auto init = at::make_generator<at::CPUGeneratorImpl>(7);
      GeneratorSynth g(ac, teacher, shape, init, 2);
      auto student = torch::jit::load("test/fixtures/tiny_nobn.pt");
      Rng rng(17, torch::kCPU);
      for (int64_t k = 0; k < 2; ++k) g.step(student, rows, 1.0, rng, k);
      // (the weights that get a gradient: a conv bias that feeds a BatchNorm gets zero up to
      // rounding, which Adam's normalized step turns into arbitrary moves the BatchNorm cancels)
      std::vector<torch::Tensor> weights;
      for (const auto& p : g.module().named_parameters())
        if (p.name != "conv1.bias" && p.name != "conv2.bias") weights.push_back(p.value);
      return std::make_pair(weights, g.sample(rows, rng));
    };
    auto whole_adv = adversarial(8);

    Dist d(spec);
    ActiveDist on(&d);
    auto xs = share(x).clone().requires_grad_(true);
    (loss(xs, share(y)) / d.world()).backward();
    EXPECT(std::abs(bn_of(xs.detach()).item<double>() - bn_ref) <= 1e-4 * std::abs(bn_ref));
    EXPECT(torch::allclose(xs.grad(), share(xr.grad()), 1e-4, 1e-6));
    auto mine = synth(c);  // this rank's share, optimized against the global batch
    EXPECT(mine.x.size(0) == 4 && torch::equal(mine.y, share(whole.y)));
    EXPECT(torch::allclose(mine.x, share(whole.x), 1e-4, 1e-5));
    auto mine_spectral = synth(cs);
    EXPECT(torch::allclose(mine_spectral.x, share(whole_spectral.x), 1e-4, 1e-5));
    EXPECT(!torch::allclose(whole_spectral.x, whole.x, 1e-4, 1e-5));  // (another loss, other images)
    auto mine_fast = fast();
    EXPECT(mine_fast.x.size(0) == 4 && torch::equal(mine_fast.y, share(whole_fast.y)));
    EXPECT(torch::allclose(mine_fast.x, share(whole_fast.x), 1e-4, 1e-5));
    auto mine_adv = adversarial(4);
    EXPECT(mine_adv.first.size() == whole_adv.first.size());
    for (size_t i = 0; i < mine_adv.first.size(); ++i) EXPECT(torch::allclose(mine_adv.first[i], whole_adv.first[i], 1e-4, 1e-6));
    EXPECT(mine_adv.second.size(0) == 4 && torch::allclose(mine_adv.second, share(whole_adv.second), 1e-4, 1e-5));
    {
      auto init = at::make_generator<at::CPUGeneratorImpl>(7);
      GeneratorSynth fresh(ac, teacher, shape, init, 2);
      EXPECT(!torch::allclose(parameters_of(fresh.module())[0], whole_adv.first[0]));  // (the steps moved the weights)
    }
  } else if (which == "student") {  // two student steps (SGD with momentum): the weights of the whole batch's
    auto load = [] {
      auto m = torch::jit::load("test/fixtures/tiny_nobn.pt");
      for (auto p : m.parameters()) p.requires_grad_(true);
      return m;
    };
    auto one = load(), dp = load();
    TrainConfig tc;
    tc.lr = 0.1;
    Optim o1(parameters_of(one), tc, 10), o2(parameters_of(dp), tc, 10);
    for (int64_t k = 0; k < 2; ++k) student_step(teacher, one, o1, x, torch::Tensor(), Loss::kl, 4.0, 0.0, k);
    // A zoo student with BatchNorm (resnet8): its BatchNorm synchronized over the ranks
    // (dfkd::sync_batch_norm) normalizes by the whole batch's statistics, so its weights and
    // running statistics after two steps equal one process's; plain BatchNorm (each rank's share's
    // statistics) does not. In one process the synchronized model is the plain one.
    auto zoo = [](bool sync) {
      auto g = at::make_generator<at::CPUGeneratorImpl>(5);
      return make_model("resnet8", {1, 8, 8}, 3, g, sync);
    };
    auto steps = [&](torch::jit::Module m, const torch::Tensor& xb) {
      Optim o(parameters_of(m), tc, 10);
      for (int64_t k = 0; k < 2; ++k) student_step(teacher, m, o, xb, torch::Tensor(), Loss::kl, 4.0, 0.0, k);
      std::vector<torch::Tensor> state = parameters_of(m);
      for (auto b : m.buffers())
        if (b.is_floating_point()) state.push_back(b);
      return state;
    };
    auto same = [](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
      bool eq = a.size() == b.size() && !a.empty();
      for (size_t i = 0; eq && i < a.size(); ++i) eq = torch::allclose(a[i], b[i], 1e-4, 1e-5);
      return eq;
    };
    auto zoo_one = steps(zoo(false), x);
    EXPECT(same(steps(zoo(true), x), zoo_one));
    Dist d(spec);
    ActiveDist on(&d);
    for (int64_t k = 0; k < 2; ++k) student_step(teacher, dp, o2, share(x), torch::Tensor(), Loss::kl, 4.0, 0.0, k);
    auto p1 = parameters_of(one), p2 = parameters_of(dp);
    EXPECT(p1.size() == p2.size() && !p1.empty());
    for (size_t i = 0; i < p1.size(); ++i) EXPECT(torch::allclose(p1[i], p2[i], 1e-5, 1e-6));
    auto fresh = load();
    EXPECT(!torch::equal(p1[0], parameters_of(fresh)[0]));  // (the steps moved the weights)
    EXPECT(same(steps(zoo(true), share(x)), zoo_one));
    EXPECT(!same(steps(zoo(false), share(x)), zoo_one));
    // Synchronized, its running statistics are the group's already: without the per-step average
    // of the buffers (what the job does for a zoo student) the state is still one process's.
    d.student_bn_synced = true;
    EXPECT(same(steps(zoo(true), share(x)), zoo_one));
    d.student_bn_synced = false;
    // The replicas' check (at checkpoints and at the end of a job): equal, then rank 1 drifts.
    EXPECT(error_of([&] { d.check_same(dp, "the test student"); }).empty());
    if (rank == 1) {
      torch::NoGradGuard ng;
      p2[0].view(-1)[0].add_(1e-3);
    }
    auto drift = error_of([&] { d.check_same(dp, "the test student"); });
    EXPECT(drift.rfind("E_DISTRIBUTED: rank " + std::to_string(rank) + " of 2: the test student: rank(s) 1 hold", 0) == 0);
  } else if (which == "fault") {  // rank 1 dies after the rendezvous: rank 0's next collective fails, coded
    spec.timeout = 10;
    Dist d(spec);
    if (rank == 1) _exit(0);
    auto t = torch::ones({4});
    auto e = error_of([&] { d.sum_({t}, "a test sum"); });
    EXPECT(e.rfind("E_DISTRIBUTED: rank 0 of 2: a test sum failed", 0) == 0);
    if (!e.empty()) std::cout << "  " << e.substr(0, 200) << "\n";
  }
}

void test_dist() {
  if (!Dist::compiled() || !std::filesystem::exists("test/fixtures/tiny_bn.pt")) {
    std::cout << "  dist: skipped (" << (Dist::compiled() ? "no test/fixtures" : "built without gloo headers") << ")\n";
    return;
  }
  for (std::string which : {"synth", "student", "fault"}) {
    const int port = free_port();
    const std::string port_s = std::to_string(port);
    std::vector<std::string> args{"/proc/self/exe", "dist-worker", which, port_s};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t child = 0;
    EXPECT(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) == 0);
    try {
      dist_case(which, 0, port);
    } catch (const std::exception& e) {
      ++failures;
      std::cerr << "dist " << which << " (rank 0): threw " << e.what() << "\n";
    }
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::cout << "  dist " << which << ": rank 1 exited " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "dist-worker") {  // rank 1 of test_dist
    torch::set_num_threads(1);
    try {
      dist_case(argv[2], 1, std::atoi(argv[3]));
    } catch (const std::exception& e) {
      std::cerr << "dist " << argv[2] << " (rank 1): threw " << e.what() << "\n";
      return 1;
    }
    return failures ? 1 : 0;
  }
  torch::set_num_threads(1);
  std::vector<std::pair<const char*, void (*)()>> tests{
      {"gradients", test_gradients}, {"bank", test_bank}, {"weight_average", test_weight_average}, {"schedule", test_schedule},
      {"safetensors_and_dtypes", test_safetensors_and_dtypes}, {"config", test_config}, {"taps", test_taps},
      {"synth_graph_path", test_synth_graph_path}, {"dist", test_dist}};
  for (auto& [name, fn] : tests) {
    std::cout << name << "\n";
    try {
      fn();
    } catch (const std::exception& e) {
      ++failures;
      std::cerr << name << ": threw " << e.what() << "\n";
    }
  }
  std::cout << checks << " checks, " << failures << " failed\n";
  return failures ? 1 : 0;
}
