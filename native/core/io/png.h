// Writes a grid of images as a PNG (uncompressed deflate; no image library needed).
#pragma once
#include "core/common.h"

namespace dfkd {
// x: [N, C, H, W] in normalized space; mean/std (per channel, may be empty) undo the
// normalization, values are then clamped to [0, 1]. At most `max_images`, in rows of `ncol`.
void save_png_grid(const torch::Tensor& x, const std::string& path, const std::vector<double>& mean,
                   const std::vector<double>& std, int64_t max_images = 64, int64_t ncol = 8);
}  // namespace dfkd
