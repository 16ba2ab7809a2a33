#include "core/train.h"

#include "core/dist.h"

#include <cmath>

namespace dfkd {

StudentLoss student_loss(Teacher& teacher, torch::jit::Module& student, const torch::Tensor& x, const torch::Tensor& y,
                         Loss loss_kind, double T, double ce_weight) {
  torch::Tensor t;
  {
    torch::NoGradGuard ng;
    t = teacher.logits(x);
  }
  auto s = run_logits(student, x, "student");
  if (s.size(1) != t.size(1))
    fail("E_CLASS_MISMATCH", "the student predicts " + std::to_string(s.size(1)) + " classes, the teacher " +
                                 std::to_string(t.size(1)));
  StudentLoss l;
  l.kd = l.total = losses::discrepancy(loss_kind, s, t, T);
  if (ce_weight > 0 && y.defined()) {
    l.ce = torch::cross_entropy_loss(s, y);
    l.total = l.total + ce_weight * l.ce;
  }
  return l;
}

StepLosses student_step(Teacher& teacher, torch::jit::Module& student, Optim& opt, const torch::Tensor& x,
                        const torch::Tensor& y, Loss loss_kind, double T, double ce_weight, int64_t step) {
  opt.step_schedule(step);
  auto l = student_loss(teacher, student, x, y, loss_kind, T, ce_weight);
  StepLosses parts;
  parts.set("kd", l.kd);
  if (l.ce.defined()) parts.set("ce", l.ce);
  parts.set("student", l.total);
  parts.set("lr", opt.lr());
  opt.zero_grad();
  Dist* d = active_dist();
  if (d && d->world() > 1) {  // data-parallel: the global batch's mean gradient
    (l.total / double(d->world())).backward();
    d->sum_gradients(parameters_of(student));
  } else {
    l.total.backward();
  }
  opt.step();
  if (d && d->world() > 1 && !d->student_bn_synced) d->average_buffers(student);
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

void Bank::grow(int64_t capacity) {
  if (capacity_ <= 0 || capacity <= capacity_) return;
  if (x_.defined()) {
    auto shape = x_.sizes().vec();
    shape[0] = capacity;
    auto bigger = torch::empty(shape, x_.options());
    // oldest first: [head, capacity) then [0, head) once the ring has wrapped
    auto kept = n_ < capacity_ ? x_.slice(0, 0, n_) : torch::cat({x_.slice(0, head_), x_.slice(0, 0, head_)});
    bigger.slice(0, 0, n_).copy_(kept);
    x_ = bigger;
    head_ = n_;
  }
  capacity_ = capacity;
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

int64_t bank_images(const std::vector<int64_t>& shape, int64_t images) {
  constexpr int64_t kBankBytes = int64_t(1) << 30;
  int64_t bytes = 4;  // float32
  for (auto d : shape) bytes *= d;
  return std::min<int64_t>(images, std::max<int64_t>(1, kBankBytes / bytes));
}

BufferSnapshot::BufferSnapshot(torch::jit::Module& m) {
  for (auto b : m.buffers()) saved_.emplace_back(b, b.clone());
}
BufferSnapshot::~BufferSnapshot() {
  torch::NoGradGuard ng;
  for (auto& [live, copy] : saved_) live.copy_(copy);
}

torch::jit::Module trainable_copy(const torch::jit::Module& m) {
  auto c = m.clone();
  for (auto sub : c.modules())
    for (const auto& p : sub.named_parameters(/*recurse=*/false))
      sub.register_parameter(p.name, p.value.detach().clone().requires_grad_(true), false);
  return c;
}

WeightAverage::WeightAverage(const torch::jit::Module& live, double decay) : avg_(live.clone()), decay_(decay) {
  torch::NoGradGuard ng;
  for (auto sub : avg_.modules()) {  // tensors of its own, outside autograd
    for (const auto& p : sub.named_parameters(/*recurse=*/false))
      sub.register_parameter(p.name, p.value.detach().clone(), false);
    for (const auto& b : sub.named_buffers(/*recurse=*/false)) sub.register_buffer(b.name, b.value.detach().clone());
  }
}

void WeightAverage::update(torch::jit::Module& live) {
  torch::NoGradGuard ng;
  ++n_;
  const double d = std::min(decay_, (1.0 + double(n_)) / (10.0 + double(n_)));
  std::vector<torch::Tensor> avg, cur;
  for (auto p : avg_.parameters()) avg.push_back(p);
  for (auto p : live.parameters()) cur.push_back(p.detach());
  std::vector<torch::Tensor> ab, lb;
  for (auto b : avg_.buffers()) ab.push_back(b);
  for (auto b : live.buffers()) lb.push_back(b);
  if (avg.size() != cur.size() || ab.size() != lb.size())
    fail("E_INTERNAL", "the averaged student and the student differ in their tensors");
  for (size_t i = 0; i < ab.size(); ++i) {
    if (ab[i].is_floating_point()) avg.push_back(ab[i]), cur.push_back(lb[i]);
    else ab[i].copy_(lb[i]);  // counters (BN's num_batches_tracked)
  }
  if (!avg.empty()) at::_foreach_lerp_(avg, cur, 1.0 - d);  // avg = d avg + (1 - d) live
}

bool module_finite(torch::jit::Module& m) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> ok;
  for (auto p : m.parameters()) if (p.is_floating_point()) ok.push_back(torch::isfinite(p).all());
  for (auto b : m.buffers()) if (b.is_floating_point()) ok.push_back(torch::isfinite(b).all());
  return ok.empty() || read_scalars({torch::stack(ok).all()})[0] != 0;  // one read for the module
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
  Float32Scope fp32;
  EvalResult r;
  r.n = test.size();
  if (!test.labeled()) fail("E_DATA_INVALID", "the test set needs labels to measure accuracy");
  bool st_train = student && student->is_training();
  if (student) student->eval();
  auto counts = torch::zeros({3}, torch::TensorOptions().dtype(torch::kLong).device(device));  // teacher, student, agree
  for (int64_t i = 0; i < r.n; i += batch) {
    auto x = test.x.slice(0, i, std::min(i + batch, r.n)).to(device);
    auto y = test.y.slice(0, i, std::min(i + batch, r.n)).to(device);
    torch::Tensor tp, sp;
    if (teacher) { tp = run_logits(*teacher, x, "teacher").argmax(1); counts[0] += tp.eq(y).sum(); }
    if (student) { sp = run_logits(*student, x, "student").argmax(1); counts[1] += sp.eq(y).sum(); }
    if (teacher && student) counts[2] += tp.eq(sp).sum();
  }
  if (student && st_train) student->train();
  auto c = read_scalars({counts[0], counts[1], counts[2]});
  if (teacher) r.teacher_acc = c[0] / r.n;
  if (student) r.student_acc = c[1] / r.n;
  if (teacher && student) r.agreement = c[2] / r.n;
  return r;
}

}  // namespace dfkd
