// Student optimization: optimizer + schedule, the KD step, the memory bank of synthesized
// samples, evaluation, and checkpoints.
#pragma once
#include <map>
#include <memory>

#include "core/common.h"
#include "core/teacher.h"
#include "core/data.h"

namespace dfkd {

// Optimizer with a schedule over `total` steps. spec: { optimizer: "sgd"|"adam", lr, momentum,
// weightDecay, betas: [b1,b2], schedule: "cosine"|"step"|"none", milestones: [fractions or steps],
// gamma, warmup }
class Optim {
 public:
  Optim(std::vector<torch::Tensor> params, const Json& spec, int64_t total_steps);
  void step_schedule(int64_t step);  // sets the lr for `step` (0-based)
  void zero_grad() { opt_->zero_grad(); }
  void step() { opt_->step(); }
  double lr() const { return lr_now_; }
  void save(torch::serialize::OutputArchive& a) const { opt_->save(a); }
  void load(torch::serialize::InputArchive& a) { opt_->load(a); }
 private:
  std::unique_ptr<torch::optim::Optimizer> opt_;
  double lr0_, lr_now_, gamma_;
  std::string schedule_;
  std::vector<int64_t> milestones_;
  int64_t total_, warmup_;
};

std::vector<torch::Tensor> parameters_of(torch::jit::Module& m);

using Losses = std::map<std::string, double>;
Json losses_json(const Losses& l);  // { name: value } for events and reports

// One student step (every method's): the teacher's logits without grad, the student's in its
// current mode, discrepancy `loss_kind` ("kl" at temperature T | "l1"), plus ce_weight x CE on
// `y` when both are given; sets the lr of `step`, backward, optimizer step. Returns the values.
Losses student_step(Teacher& teacher, torch::jit::Module& student, Optim& opt, const torch::Tensor& x,
                    const torch::Tensor& y, const std::string& loss_kind, double T, double ce_weight, int64_t step);

// A ring buffer of synthesized inputs (CMI/Fast-Datafree reuse synthesized images across
// epochs). capacity 0 = keep only the newest batch.
class Bank {
 public:
  explicit Bank(int64_t capacity) : capacity_(capacity) {}
  void add(const torch::Tensor& x);
  int64_t size() const { return n_; }
  torch::Tensor get(const torch::Tensor& idx) const { return x_.index_select(0, idx.to(x_.device())); }
  torch::Tensor all() const { return x_.defined() ? x_.slice(0, 0, n_) : x_; }
  void save(torch::serialize::OutputArchive& a) const;
  void load(torch::serialize::InputArchive& a);
 private:
  int64_t capacity_, n_ = 0, head_ = 0;
  torch::Tensor x_;
};

// Restores a module's buffers (BN running statistics) when it goes out of scope: for extra
// forward passes in train mode that must leave no trace (diagnostics).
class BufferSnapshot {
 public:
  explicit BufferSnapshot(torch::jit::Module& m);
  ~BufferSnapshot();
 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (live buffer, copy)
};

// Throws E_NAN (after the caller saved what it can) when a loss is not finite.
void check_finite(const torch::Tensor& loss, const std::string& what);
// Whether all floating-point parameters and buffers are finite (a state worth checkpointing).
bool module_finite(torch::jit::Module& m);

struct EvalResult {
  double teacher_acc = -1, student_acc = -1, agreement = -1;
  int64_t n = 0;
  Json json() const;
};
// Top-1 accuracy of teacher and student on a labeled test set, and their agreement.
EvalResult evaluate(torch::jit::Module* teacher, torch::jit::Module* student, const Dataset& test,
                    int64_t batch, torch::Device device);

// A checkpoint: one file (torch serialize archive) holding named modules (as TorchScript bytes),
// optimizers, tensors and a JSON of counters. Written atomically.
class Checkpoint {
 public:
  torch::serialize::OutputArchive& out() { return out_; }
  void put_module(const std::string& key, torch::jit::Module& m);
  void put_json(const std::string& key, const Json& j);
  std::string bytes();  // the serialized archive (written with write_file_atomic)
 private:
  torch::serialize::OutputArchive out_;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);  // E_CHECKPOINT on a missing/corrupt file
  torch::serialize::InputArchive& in() { return in_; }
  torch::jit::Module module(const std::string& key, torch::Device device);
  Json json(const std::string& key);
  void generator(const std::string& key, at::Generator& g);
  const std::string& path() const { return path_; }
 private:
  torch::serialize::InputArchive in_;
  std::string path_;
};

}  // namespace dfkd
