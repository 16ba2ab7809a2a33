// Tensor files: MNIST IDX (gz or not), .npy, and typed arrays from JS (Blob).
// Codes: E_DATA_NOT_FOUND (no such file), E_DATA_INVALID (corrupt or unsupported).
#pragma once
#include "core/common.h"

namespace dfkd {

torch::Tensor load_idx(const std::string& path);   // uint8 tensor with the IDX dims
torch::Tensor load_npy(const std::string& path);   // tensor of the file's dtype
torch::Tensor from_blob(const Blob& b, const std::vector<int64_t>& shape);

}  // namespace dfkd
