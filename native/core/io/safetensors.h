// safetensors I/O (https://github.com/huggingface/safetensors): the dtypes of io/dtype.h.
#pragma once
#include <map>

#include "core/common.h"

namespace dfkd {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata);
// `missing_code` when the file does not exist, `invalid_code` when it is not valid safetensors.
std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(const std::string& path,
                                                                    std::map<std::string, std::string>* metadata,
                                                                    const char* missing_code, const char* invalid_code);

}  // namespace dfkd
