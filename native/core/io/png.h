// Writes a grid of images as a PNG (uncompressed deflate; no image library needed).
#pragma once
#include "core/common.h"

namespace dfkd {
// x: [N, C, H, W] in normalized space; mean/std (per channel, may be empty) undo the
// normalization, values are then clamped to [0, 1]. At most `max_images`, in rows of `ncol`.
// `labels` (one per image, digits, spaces and '%'): written under each image, which is scaled
// up (nearest) to at least `min_side` pixels so that a person can read the grid.
void save_png_grid(const torch::Tensor& x, const std::string& path, const std::vector<double>& mean,
                   const std::vector<double>& std, int64_t max_images = 64, int64_t ncol = 8,
                   const std::vector<std::string>& labels = {}, int64_t min_side = 84);
}  // namespace dfkd
