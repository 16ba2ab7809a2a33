// Shared includes and helpers of the core (pure C++17 + libtorch; no N-API here). Files: io/.
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
Json tensor_list(const torch::Tensor& t);  // 1-D tensor -> JSON array of numbers

}  // namespace dfkd
