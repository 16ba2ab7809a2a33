// CUDA graphs for the student step (config cudaGraphs; only on a CUDA device of a CUDA build).
// The teacher's forward, the student's forward, the loss and the backward of a fixed-shape batch
// are captured once and replayed as one launch; the optimizer step stays eager, as in
// torch.cuda.make_graphed_callables, so the lr schedule and both optimizers work unchanged. The
// first steps run eagerly (the TorchScript executor specializes its graphs on them), then the
// capture; a batch of another shape runs eagerly.
#pragma once
#include <memory>

#include "core/losses.h"
#include "core/optim.h"
#include "core/teacher.h"

namespace dfkd {

class StudentGraph {
 public:
  // Whether the capture is compiled in (DFKD_CUDA: a CUDA torch with complete CUDA headers), and
  // whether it can run on `device` (that, and a CUDA device).
  static bool compiled();
  static bool available(torch::Device device);
  StudentGraph(Teacher& teacher, torch::jit::Module& student, Loss kind, double T, double ce_weight);
  ~StudentGraph();
  StudentGraph(const StudentGraph&) = delete;
  // dfkd::student_step's contract (the same values up to float rounding).
  StepLosses step(Optim& opt, const torch::Tensor& x, const torch::Tensor& y, int64_t step);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfkd
