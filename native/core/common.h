// Shared includes and helpers of the core (C++20 + libtorch; no N-API here). Files: io/.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"

namespace dfkd {

// Per-job random number generators: `host` draws the scalars that steer a loop (jitter offsets,
// flips), `device` draws tensors where they live, so no random tensor is copied host -> device
// inside a loop. On the CPU both are one generator.
struct Rng {
  at::Generator host, device;
  Rng(uint64_t seed, torch::Device dev);
  bool shared() const { return host.unsafeGetGeneratorImpl() == device.unsafeGetGeneratorImpl(); }
};

// Maps whatever was thrown to a coded dfkd::Error: c10::OutOfMemoryError -> E_OOM,
// other c10::Error -> `code` (message without the C++ backtrace), dfkd::Error unchanged.
Error translate(std::exception_ptr e, const char* code, const std::string& context);

std::string shape_str(at::IntArrayRef s);
std::vector<int64_t> to_shape(const std::vector<double>& v);
// Per-channel values as a [1, C, 1, 1] float tensor: one value for all channels or one per
// channel; E_CONFIG "<what> has N values for C channels" otherwise.
torch::Tensor per_channel(const std::vector<double>& v, int64_t channels, const std::string& what);
Json tensor_list(const torch::Tensor& t);  // 1-D tensor -> JSON array of numbers

// ---- device -> host reads -----------------------------------------------------------------------
// The training loops read device values only through read_scalars: one copy (one host sync on a
// GPU) for all the scalars of a reported step. A job counts, per thread, these reads and — with
// DFKD_COUNT_SYNCS=1 — every other scalar read (.item(): aten::_local_scalar_dense), so the
// report can show that a step costs no sync unless it is reported (report.hostSyncs).
std::vector<double> read_scalars(const std::vector<torch::Tensor>& scalars);
class SyncCounter {
 public:
  explicit SyncCounter(bool count_items);  // this thread's counts start at 0
  ~SyncCounter();
  SyncCounter(const SyncCounter&) = delete;
  int64_t reads() const;  // read_scalars calls
  int64_t items() const;  // other scalar reads (-1 when not counted)
 private:
  uint64_t handle_ = 0;
  bool items_on_;
};
// Waits for the device's queued work (a no-op on the CPU): for timing a device's steps.
void sync_device(torch::Device device);

// ---- forward precision and memory format ----------------------------------------------------------
// How the models' forwards (teacher, student, generator) run, per thread (a job sets it from its
// config; ForwardCast applies it around each forward): under bf16 autocast (config precision
// "bf16"; outputs come back float32, so every loss is computed in float32), and with 4-D inputs
// in channels-last memory order (config channelsLast; the modules' 4-D weights are converted
// once, to_channels_last). The values are the same tensors either way, only their layout differs.
struct ForwardOptions {
  bool bf16 = false, channels_last = false;
  c10::DeviceType device = c10::DeviceType::CPU;
};
void set_forward_options(const ForwardOptions& o);
const ForwardOptions& forward_options();
// A job's forward options for its lifetime: the thread's defaults again when it ends, however it ends.
class ForwardOptionsScope {
 public:
  ForwardOptionsScope() = default;
  explicit ForwardOptionsScope(const ForwardOptions& o) { set_forward_options(o); }
  ~ForwardOptionsScope() { set_forward_options({}); }
  ForwardOptionsScope(const ForwardOptionsScope&) = delete;
};
class ForwardCast {
 public:
  ForwardCast();  // autocast on for this scope when the thread's options say so
  ~ForwardCast();
  ForwardCast(const ForwardCast&) = delete;
  torch::Tensor in(const torch::Tensor& x) const;   // channels-last when asked (4-D)
  torch::Tensor out(const torch::Tensor& t) const;  // float32 again (a bf16 tensor under autocast)
 private:
  bool cast_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};
// Evaluation and calibration-free reads measure the float32 model whatever the training precision.
class Float32Scope {
 public:
  Float32Scope();
  ~Float32Scope();
  Float32Scope(const Float32Scope&) = delete;
 private:
  bool prev_;
};
// 4-D parameters and buffers of a module in channels-last order (in place; same values).
void to_channels_last(torch::jit::Module& m);

}  // namespace dfkd
