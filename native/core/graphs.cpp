#include "core/graphs.h"

#include "core/train.h"

#ifdef DFKD_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dfkd {

namespace {
constexpr int64_t kEagerSteps = 3;  // before the capture (PyTorch's CUDA-graph notes: warm up first)

#ifdef DFKD_CUDA
// Captures `work` (forwards, loss, backward) on a side stream, as torch.cuda.graph does. The
// gradients of `leaves` become the graph's outputs: undefined now, the captured backward makes
// them, every replay rewrites them in place, and nothing may reset them to none after. Returns
// them with the graph (the capture itself ran nothing).
std::unique_ptr<at::cuda::CUDAGraph> capture(const std::vector<torch::Tensor>& leaves, c10::DeviceIndex index,
                                             const std::function<void()>& work, std::vector<torch::Tensor>& grads) {
  for (auto p : leaves) p.mutable_grad() = torch::Tensor();
  auto current = c10::cuda::getCurrentCUDAStream(index);
  auto side = c10::cuda::getStreamFromPool(false, index);
  at::cuda::CUDAEvent queued;
  queued.record(current);
  queued.block(side);
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);  // cached casts cannot outlive a capture
    graph->capture_begin();
    work();
    graph->capture_end();
    at::autocast::set_autocast_cache_enabled(cache);
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(current);
  grads.clear();
  for (auto p : leaves) grads.push_back(p.grad());
  return graph;
}
#endif
}  // namespace

struct StudentGraph::Impl {
  Teacher& teacher;
  torch::jit::Module& student;
  Loss kind;
  double T, ce_weight;
  int64_t calls = 0;
  torch::Tensor x, y, kd, ce, total;  // the graph's static input and outputs
  std::vector<torch::Tensor> grads;   // ... and the student's gradients it writes
#ifdef DFKD_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

  // The captured work: what dfkd::student_step does between the lr and the optimizer step.
  void forward_backward() {
    auto l = student_loss(teacher, student, x, y, kind, T, ce_weight);
    kd = l.kd, ce = l.ce, total = l.total;
    total.backward();
  }
};

bool graphs_compiled() {
#ifdef DFKD_CUDA
  return true;
#else
  return false;
#endif
}
bool graphs_available(torch::Device device) { return graphs_compiled() && device.is_cuda(); }

StudentGraph::StudentGraph(Teacher& teacher, torch::jit::Module& student, Loss kind, double T, double ce_weight)
    : impl_(new Impl{teacher, student, kind, T, ce_weight}) {}
StudentGraph::~StudentGraph() = default;

StepLosses StudentGraph::step(Optim& opt, const torch::Tensor& x, const torch::Tensor& y, int64_t step) {
  Impl& m = *impl_;
  ++m.calls;
#ifdef DFKD_CUDA
  const bool fits = x.is_cuda() && (!m.x.defined() || (x.sizes() == m.x.sizes() && y.defined() == m.y.defined() &&
                                                       (!y.defined() || y.sizes() == m.y.sizes())));
  if (fits && (m.graph || m.calls > kEagerSteps)) {
    opt.step_schedule(step);
    if (!m.graph) {
      m.x = x.clone();
      m.y = y.defined() ? y.clone() : torch::Tensor();
      m.graph = capture(parameters_of(m.student), x.device().index(), [&m] { m.forward_backward(); }, m.grads);
    } else {
      m.x.copy_(x);
      if (y.defined()) m.y.copy_(y);
    }
    m.graph->replay();
    opt.step();
    StepLosses parts;
    parts.set("kd", m.kd.clone());
    if (m.ce.defined()) parts.set("ce", m.ce.clone());
    parts.set("student", m.total.clone());
    parts.set("lr", opt.lr());
    return parts;
  }
#endif
  auto parts = student_step(m.teacher, m.student, opt, x, y, m.kind, m.T, m.ce_weight, step);
  if (!m.grads.empty()) {  // an eager step after the capture: the graph's gradients are the ones again
    size_t i = 0;
    for (auto p : m.student.parameters()) p.mutable_grad() = m.grads[i++];
  }
  return parts;
}

struct SynthGraph::Impl {
  torch::Tensor leaf;
  int64_t calls = 0;
  torch::Tensor total;  // the graph's outputs
  StepLosses parts;
  std::vector<torch::Tensor> grads;
#ifdef DFKD_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

SynthGraph::SynthGraph(torch::Tensor leaf) : impl_(new Impl{std::move(leaf)}) {}
SynthGraph::~SynthGraph() = default;

std::pair<torch::Tensor, StepLosses> SynthGraph::step(const Work& work) {
  Impl& m = *impl_;
  ++m.calls;
#ifdef DFKD_CUDA
  if (m.leaf.is_cuda() && (m.graph || m.calls > kEagerSteps)) {
    if (!m.graph)
      m.graph = capture({m.leaf}, m.leaf.device().index(), [&m, &work] {
        std::tie(m.total, m.parts) = work();
        m.total.backward();
      }, m.grads);
    m.graph->replay();
    return {m.total.clone(), m.parts.cloned()};
  }
#endif
  m.leaf.mutable_grad() = torch::Tensor();  // (an optimizer's zero_grad)
  auto out = work();
  out.first.backward();
  return out;
}

}  // namespace dfkd
