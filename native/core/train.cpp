#include "core/train.h"

#include <cmath>
#include <sstream>

#include "core/losses.h"

namespace dfkd {

std::vector<torch::Tensor> parameters_of(torch::jit::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto p : m.parameters()) out.push_back(p);
  return out;
}

Optim::Optim(std::vector<torch::Tensor> params, const Json& spec, int64_t total)
    : total_(std::max<int64_t>(total, 1)) {
  std::string kind = spec.str("optimizer", "sgd");
  lr0_ = lr_now_ = spec.num("lr", 0.1);
  if (!(lr0_ > 0) || !std::isfinite(lr0_)) fail("E_CONFIG", "learning rate must be a positive number");
  double wd = spec.num("weightDecay", 0.0);
  if (kind == "sgd") {
    opt_ = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr0_).momentum(spec.num("momentum", 0.9)).weight_decay(wd));
  } else if (kind == "adam") {
    auto b = spec.nums("betas");
    if (b.empty()) b = {0.9, 0.999};
    if (b.size() != 2) fail("E_CONFIG", "betas must be [beta1, beta2]");
    opt_ = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(lr0_).betas({b[0], b[1]}).weight_decay(wd));
  } else {
    fail("E_CONFIG", "unknown optimizer '" + kind + "' (use 'sgd' or 'adam')");
  }
  schedule_ = spec.str("schedule", "cosine");
  if (schedule_ != "cosine" && schedule_ != "step" && schedule_ != "none")
    fail("E_CONFIG", "unknown schedule '" + schedule_ + "' (use 'cosine', 'step' or 'none')");
  gamma_ = spec.num("gamma", 0.1);
  for (double m : spec.nums("milestones")) milestones_.push_back(m < 1.0 ? int64_t(m * total_) : int64_t(m));
  warmup_ = spec.integer("warmup", 0);
}

void Optim::step_schedule(int64_t step) {
  double lr = lr0_;
  if (warmup_ > 0 && step < warmup_) {
    lr = lr0_ * double(step + 1) / double(warmup_);
  } else if (schedule_ == "cosine") {
    double t = double(step - warmup_) / double(std::max<int64_t>(1, total_ - warmup_));
    lr = 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, t))) * lr0_;
  } else if (schedule_ == "step") {
    for (auto m : milestones_) if (step >= m) lr *= gamma_;
  }
  lr_now_ = lr;
  for (auto& g : opt_->param_groups()) g.options().set_lr(lr);
}

Json losses_json(const Losses& l) {
  Json j = Json(Json::Object{});
  for (auto& [k, v] : l) j[k] = v;
  return j;
}

Losses student_step(Teacher& teacher, torch::jit::Module& student, Optim& opt, const torch::Tensor& x,
                    const torch::Tensor& y, const std::string& loss_kind, double T, double ce_weight, int64_t step) {
  opt.step_schedule(step);
  torch::Tensor t;
  {
    torch::NoGradGuard ng;
    t = teacher.logits(x);
  }
  auto s = run_logits(student, x, "student");
  if (s.size(1) != t.size(1))
    fail("E_CLASS_MISMATCH", "the student predicts " + std::to_string(s.size(1)) + " classes, the teacher " +
                                 std::to_string(t.size(1)));
  auto loss = losses::discrepancy(loss_kind, s, t, T);
  Losses parts{{"kd", loss.item<double>()}};
  if (ce_weight > 0 && y.defined()) {
    auto ce = torch::cross_entropy_loss(s, y);
    parts["ce"] = ce.item<double>();
    loss = loss + ce_weight * ce;
  }
  parts["student"] = loss.item<double>();
  parts["lr"] = opt.lr();
  check_finite(loss, "the student loss");
  opt.zero_grad();
  loss.backward();
  opt.step();
  return parts;
}

void Bank::add(const torch::Tensor& x) {
  auto b = x.detach();
  if (capacity_ <= 0) { x_ = b.clone(); n_ = b.size(0); return; }
  if (!x_.defined()) {
    auto shape = b.sizes().vec();
    shape[0] = capacity_;
    x_ = torch::empty(shape, b.options());
  }
  for (int64_t i = 0; i < b.size(0);) {
    int64_t k = std::min(b.size(0) - i, capacity_ - head_);
    x_.slice(0, head_, head_ + k).copy_(b.slice(0, i, i + k));
    head_ = (head_ + k) % capacity_;
    n_ = std::min(capacity_, n_ + k);
    i += k;
  }
}

void Bank::save(torch::serialize::OutputArchive& a) const {
  a.write("bank.x", x_.defined() ? x_.slice(0, 0, capacity_ > 0 ? x_.size(0) : n_).cpu() : torch::empty({0}));
  a.write("bank.state", torch::tensor({capacity_, n_, head_}, torch::kLong));
}

void Bank::load(torch::serialize::InputArchive& a) {
  torch::Tensor x, st;
  a.read("bank.x", x);
  a.read("bank.state", st);
  n_ = st[1].item<int64_t>();
  head_ = st[2].item<int64_t>();
  x_ = x.numel() ? x : torch::Tensor();
}

BufferSnapshot::BufferSnapshot(torch::jit::Module& m) {
  for (auto b : m.buffers()) saved_.emplace_back(b, b.clone());
}
BufferSnapshot::~BufferSnapshot() {
  torch::NoGradGuard ng;
  for (auto& [live, copy] : saved_) live.copy_(copy);
}

void check_finite(const torch::Tensor& loss, const std::string& what) {
  if (!std::isfinite(loss.item<double>()))
    fail("E_NAN", what + " became " + (std::isnan(loss.item<double>()) ? "NaN" : "infinite") +
                      "; lower the learning rate");
}

bool module_finite(torch::jit::Module& m) {
  torch::NoGradGuard ng;
  for (auto p : m.parameters()) if (p.is_floating_point() && !torch::isfinite(p).all().item<bool>()) return false;
  for (auto b : m.buffers()) if (b.is_floating_point() && !torch::isfinite(b).all().item<bool>()) return false;
  return true;
}

Json EvalResult::json() const {
  Json j;
  j["samples"] = n;
  if (teacher_acc >= 0) j["teacherAccuracy"] = teacher_acc;
  if (student_acc >= 0) j["studentAccuracy"] = student_acc;
  if (agreement >= 0) j["agreement"] = agreement;
  return j;
}

EvalResult evaluate(torch::jit::Module* teacher, torch::jit::Module* student, const Dataset& test, int64_t batch,
                    torch::Device device) {
  c10::InferenceMode guard;
  EvalResult r;
  r.n = test.size();
  if (!test.labeled()) fail("E_DATA_INVALID", "the test set needs labels to measure accuracy");
  bool st_train = student && student->is_training();
  if (student) student->eval();
  int64_t t_ok = 0, s_ok = 0, agree = 0;
  for (int64_t i = 0; i < r.n; i += batch) {
    auto x = test.x.slice(0, i, std::min(i + batch, r.n)).to(device);
    auto y = test.y.slice(0, i, std::min(i + batch, r.n)).to(device);
    torch::Tensor tp, sp;
    if (teacher) { tp = run_logits(*teacher, x, "teacher").argmax(1); t_ok += tp.eq(y).sum().item<int64_t>(); }
    if (student) { sp = run_logits(*student, x, "student").argmax(1); s_ok += sp.eq(y).sum().item<int64_t>(); }
    if (teacher && student) agree += tp.eq(sp).sum().item<int64_t>();
  }
  if (student && st_train) student->train();
  if (teacher) r.teacher_acc = double(t_ok) / r.n;
  if (student) r.student_acc = double(s_ok) / r.n;
  if (teacher && student) r.agreement = double(agree) / r.n;
  return r;
}

void Checkpoint::put_module(const std::string& key, torch::jit::Module& m) {
  std::ostringstream s;
  m.save(s);
  std::string bytes = s.str();
  auto t = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  out_.write(key + ".module", t);
}

void Checkpoint::put_json(const std::string& key, const Json& j) {
  std::string s = j.dump();
  auto t = torch::empty({int64_t(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  out_.write(key + ".json", t);
}

std::string Checkpoint::bytes() {
  std::ostringstream s;
  out_.save_to(s);
  return s.str();
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  std::string bytes = read_file(path, "E_CHECKPOINT");
  try {
    std::istringstream s(bytes);
    in_.load_from(s);
  } catch (...) {
    throw Error("E_CHECKPOINT", path + " is not a dfkd checkpoint (" +
                                    std::string(translate(std::current_exception(), "E_CHECKPOINT", "").what()).substr(0, 200) + ")");
  }
}

static std::string bytes_of(torch::serialize::InputArchive& in, const std::string& key, const std::string& path) {
  torch::Tensor t;
  if (!in.try_read(key, t)) fail("E_CHECKPOINT", path + " lacks '" + key + "'");
  t = t.contiguous();
  return std::string(reinterpret_cast<const char*>(t.data_ptr()), t.numel());
}

torch::jit::Module CheckpointReader::module(const std::string& key, torch::Device device) {
  std::istringstream s(bytes_of(in_, key + ".module", path_));
  return torch::jit::load(s, device);
}

Json CheckpointReader::json(const std::string& key) { return Json::parse(bytes_of(in_, key + ".json", path_)); }

void CheckpointReader::generator(const std::string& key, at::Generator& g) {
  torch::Tensor st;
  if (!in_.try_read(key + ".rng", st)) fail("E_CHECKPOINT", path_ + " lacks '" + key + ".rng'");
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(st);
}

}  // namespace dfkd
