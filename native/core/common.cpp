#include "core/common.h"

#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>

#include <cmath>
#include <cstring>

namespace dfkd {

Rng::Rng(uint64_t seed, torch::Device dev) : host(at::make_generator<at::CPUGeneratorImpl>(seed)), device(host) {
  if (!dev.is_cpu()) {
    auto g = at::globalContext().defaultGenerator(dev);
    std::lock_guard<std::mutex> lock(g.mutex());
    device = g.clone();
    device.set_current_seed(seed);
  }
}

Error translate(std::exception_ptr e, const char* code, const std::string& context) {
  const std::string pre = context.empty() ? "" : context + ": ";
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err;
  } catch (const c10::OutOfMemoryError& err) {
    return Error("E_OOM", pre + "out of memory: " + err.what_without_backtrace() +
                              " (use a smaller batch size)");
  } catch (const c10::Error& err) {
    std::string msg = err.what_without_backtrace();
    if (msg.find("out of memory") != std::string::npos || msg.find("DefaultCPUAllocator") != std::string::npos)
      return Error("E_OOM", pre + msg + " (use a smaller batch size)");
    return Error(code, pre + msg);
  } catch (const std::bad_alloc&) {
    return Error("E_OOM", pre + "out of memory (std::bad_alloc); use a smaller batch size");
  } catch (const std::exception& err) {
    return Error(code, pre + err.what());
  } catch (...) {
    return Error(code, pre + "unknown error");
  }
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> to_shape(const std::vector<double>& v) {
  std::vector<int64_t> out;
  for (double d : v) {  // (casting an out-of-range double to an integer is undefined)
    if (!(d >= 0 && d <= 9007199254740992.0 && d == std::floor(d))) fail("E_CONFIG", "invalid dimension " + std::to_string(d) + " in a shape");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

torch::Tensor per_channel(const std::vector<double>& v, int64_t channels, const std::string& what) {
  if (v.size() != 1 && int64_t(v.size()) != channels)
    fail("E_CONFIG", what + " has " + std::to_string(v.size()) + " values for " + std::to_string(channels) + " channels");
  return torch::tensor(v, torch::kFloat32).expand({channels}).reshape({1, channels, 1, 1}).clone();
}

Json tensor_list(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous().view(-1);
  Json::Array a;
  auto p = c.data_ptr<double>();
  for (int64_t i = 0; i < c.numel(); ++i) a.emplace_back(p[i]);
  return Json(a);
}

// ---- device -> host reads -----------------------------------------------------------------------

namespace {
thread_local int64_t tl_reads = 0, tl_items = -1;
thread_local ForwardOptions tl_forward;
}  // namespace

std::vector<double> read_scalars(const std::vector<torch::Tensor>& scalars) {
  if (scalars.empty()) return {};
  std::vector<torch::Tensor> flat;
  flat.reserve(scalars.size());
  for (auto& t : scalars) flat.push_back(t.detach().reshape({1}).to(torch::kDouble));
  // One copy to the host (the sync), then plain memory reads.
  auto host = torch::cat(flat).to(torch::kCPU).contiguous();
  ++tl_reads;
  const double* p = host.data_ptr<double>();
  return std::vector<double>(p, p + host.numel());
}

SyncCounter::SyncCounter(bool count_items) : items_on_(count_items) {
  tl_reads = 0;
  tl_items = count_items ? 0 : -1;
  if (!count_items) return;
  handle_ = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        if (std::strcmp(fn.name(), "aten::_local_scalar_dense") == 0) ++tl_items;
        return nullptr;
      }).needsInputs(false).scopes({at::RecordScope::FUNCTION}));
}
SyncCounter::~SyncCounter() {
  if (items_on_) at::removeCallback(handle_);
}
int64_t SyncCounter::reads() const { return tl_reads; }
int64_t SyncCounter::items() const { return tl_items; }

void sync_device(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

// ---- forward precision and memory format ----------------------------------------------------------

void set_forward_options(const ForwardOptions& o) { tl_forward = o; }
const ForwardOptions& forward_options() { return tl_forward; }

ForwardCast::ForwardCast() : cast_(tl_forward.bf16 && !at::autocast::is_autocast_enabled(tl_forward.device)) {
  if (!cast_) return;
  const auto dev = tl_forward.device;
  prev_dtype_ = at::autocast::get_autocast_dtype(dev);
  at::autocast::set_autocast_dtype(dev, at::kBFloat16);
  at::autocast::set_autocast_enabled(dev, true);
  at::autocast::increment_nesting();
}
ForwardCast::~ForwardCast() {
  if (!cast_) return;
  const auto dev = tl_forward.device;
  at::autocast::set_autocast_enabled(dev, false);
  at::autocast::set_autocast_dtype(dev, prev_dtype_);
  // the weights cast for this forward: the next optimizer step changes them
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}
torch::Tensor ForwardCast::in(const torch::Tensor& x) const {
  return tl_forward.channels_last && x.dim() == 4 ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}
torch::Tensor ForwardCast::out(const torch::Tensor& t) const {
  // (also in a scope nested in another one, which left autocast to the outer scope)
  return tl_forward.bf16 && t.defined() && t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t;
}

Float32Scope::Float32Scope() : prev_(tl_forward.bf16) { tl_forward.bf16 = false; }
Float32Scope::~Float32Scope() { tl_forward.bf16 = prev_; }

void to_channels_last(torch::jit::Module& m) {
  torch::NoGradGuard ng;
  for (auto sub : m.modules()) {
    for (const auto& p : sub.named_parameters(/*recurse=*/false))
      if (p.value.dim() == 4) p.value.set_data(p.value.contiguous(at::MemoryFormat::ChannelsLast));
    for (const auto& b : sub.named_buffers(/*recurse=*/false))
      if (b.value.dim() == 4) b.value.set_data(b.value.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

}  // namespace dfkd
