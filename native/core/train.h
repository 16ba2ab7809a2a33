// Student training: the KD step every method runs, the memory bank of synthesized samples,
// evaluation, and the finiteness checks of the fault policy.
#pragma once
#include <map>
#include <memory>

#include "core/common.h"
#include "core/config.h"
#include "core/data.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/teacher.h"

namespace dfkd {

// The student's loss (every method's): the teacher's logits without grad, the student's in its
// current mode, discrepancy `loss_kind` (KL at temperature T | L1), plus ce_weight x CE on `y`
// when both are given (ce undefined otherwise).
struct StudentLoss {
  torch::Tensor total, kd, ce;
};
StudentLoss student_loss(Teacher& teacher, torch::jit::Module& student, const torch::Tensor& x, const torch::Tensor& y,
                         Loss loss_kind, double T, double ce_weight);
// One student step: sets the lr of `step`, student_loss, backward, optimizer step. Returns the
// values on the device (kd, ce, student; lr): the caller guards their finiteness (Run::student_step).
// In a data-parallel job (dist.h active_dist) x is this rank's share of the batch, the gradients
// are summed over the ranks (of the losses / world) before the step: every rank takes the step of
// the whole batch; the losses returned are this share's.
StepLosses student_step(Teacher& teacher, torch::jit::Module& student, Optim& opt, const torch::Tensor& x,
                    const torch::Tensor& y, Loss loss_kind, double T, double ce_weight, int64_t step);

// A ring buffer of synthesized inputs (CMI/Fast-Datafree reuse synthesized images across
// epochs). capacity 0 = keep only the newest batch.
class Bank {
 public:
  explicit Bank(int64_t capacity) : capacity_(capacity) {}
  void add(const torch::Tensor& x);
  void grow(int64_t capacity);  // a larger ring, the images kept (no-op when not larger)
  int64_t size() const { return n_; }
  torch::Tensor get(const torch::Tensor& idx) const { return x_.index_select(0, idx.to(x_.device())); }
  torch::Tensor all() const { return x_.defined() ? x_.slice(0, 0, n_) : x_; }
  void save(torch::serialize::OutputArchive& a) const;
  void load(torch::serialize::InputArchive& a);
 private:
  int64_t capacity_, n_ = 0, head_ = 0;
  torch::Tensor x_;
};

// How many of `images` inputs of `shape` a bank keeps by default: all of them, up to 1 GiB of
// float32 images; beyond that it is a ring, the oldest go first. It lives on the device, and a few
// minutes of fast on a GPU synthesize millions of small images (Fast-Datafree keeps its pool on disk).
int64_t bank_images(const std::vector<int64_t>& shape, int64_t images);

// Restores a module's buffers (BN running statistics) when it goes out of scope: for extra
// forward passes in train mode that must leave no trace (diagnostics).
class BufferSnapshot {
 public:
  explicit BufferSnapshot(torch::jit::Module& m);
  ~BufferSnapshot();
 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (live buffer, copy)
};

// The student's weights averaged over its steps (train.ema): an exponential moving average of the
// parameters and floating-point buffers (BN running statistics) with decay min(ema, (1 + n) / (10 + n))
// at the n-th update: Polyak averaging with timm's ModelEmaV2 warm-up, which averages over about
// the last n / 9 steps early in a run and over 1 / (1 - ema) steps once n is large. The average is
// what a run evaluates, checkpoints and saves; the optimizer keeps stepping the live weights.
class WeightAverage {
 public:
  WeightAverage(const torch::jit::Module& live, double decay);
  void update(torch::jit::Module& live);  // after an optimizer step of `live`
  torch::jit::Module& module() { return avg_; }
  int64_t updates() const { return n_; }
  void set_updates(int64_t n) { n_ = n; }
 private:
  torch::jit::Module avg_;
  double decay_;
  int64_t n_ = 0;
};

// A copy of a module with its own leaf parameters (Module::clone copies them through autograd).
torch::jit::Module trainable_copy(const torch::jit::Module& m);

// Whether all floating-point parameters and buffers are finite (a state worth checkpointing).
bool module_finite(torch::jit::Module& m);

struct EvalResult {
  double teacher_acc = -1, student_acc = -1, agreement = -1;
  int64_t n = 0;
  Json json() const;
};
// Top-1 accuracy of teacher and student on a labeled test set, and their agreement (float32
// forwards whatever the training precision; the counts are read once, at the end).
EvalResult evaluate(torch::jit::Module* teacher, torch::jit::Module* student, const Dataset& test,
                    int64_t batch, torch::Device device);

}  // namespace dfkd
