// CUDA graphs for the student step and the input-synthesis step (config cudaGraphs; only on a
// CUDA device of a CUDA build). The forwards, the loss and the backward of a fixed-shape batch
// are captured once and replayed as one launch; the optimizer step stays eager, as in
// torch.cuda.make_graphed_callables, so the lr schedules and the optimizers work unchanged. The
// first steps run eagerly (the TorchScript executor specializes its graphs on them), then the
// capture; a batch of another shape runs eagerly.
#pragma once
#include <functional>
#include <memory>

#include "core/losses.h"
#include "core/optim.h"
#include "core/teacher.h"

namespace dfkd {

// Whether graph capture is compiled in (DFKD_CUDA: a CUDA torch with complete CUDA headers), and
// whether the graphs can run on `device` (that, and a CUDA device): for both graphs below.
bool graphs_compiled();
bool graphs_available(torch::Device device);

class StudentGraph {
 public:
  StudentGraph(Teacher& teacher, torch::jit::Module& student, Loss kind, double T, double ce_weight);
  ~StudentGraph();
  StudentGraph(const StudentGraph&) = delete;
  // dfkd::student_step's contract (the same values up to float rounding).
  StepLosses step(Optim& opt, const torch::Tensor& x, const torch::Tensor& y, int64_t step);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One iteration of input synthesis (InputSynthesizer with cudaGraphs): `work` computes the loss
// from static tensors only (the batch being optimized, `leaf`, which Adam updates in place; its
// targets; the jitter and flip drawn on the device into buffers before each step) and returns
// it with its parts; its backward writes the leaf's gradient.
class SynthGraph {
 public:
  using Work = std::function<std::pair<torch::Tensor, StepLosses>()>;
  explicit SynthGraph(torch::Tensor leaf);
  ~SynthGraph();
  SynthGraph(const SynthGraph&) = delete;
  // work() and its backward: eagerly (the leaf's gradient reset first) for the first steps or off
  // CUDA, then captured once and replayed. The losses returned are copies (a replay rewrites them).
  std::pair<torch::Tensor, StepLosses> step(const Work& work);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfkd
