#include "core/io/png.h"

#include "core/io/files.h"

#include <zlib.h>

namespace dfkd {

static void put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += char((v >> (8 * i)) & 0xff);
}
static void chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, uint32_t(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  put32(out, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
}

void save_png_grid(const torch::Tensor& x0, const std::string& path, const std::vector<double>& mean,
                   const std::vector<double>& stdv, int64_t max_images, int64_t ncol) {
  auto x = x0.detach().to(torch::kCPU, torch::kFloat32).slice(0, 0, max_images).contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = stdv.empty() ? 1.0 : stdv[std::min<size_t>(ch, stdv.size() - 1)];
    double m = mean.empty() ? 0.0 : mean[std::min<size_t>(ch, mean.size() - 1)];
    x.select(1, ch).mul_(s).add_(m);
  }
  if (mean.empty() && stdv.empty()) {  // unknown normalization: stretch each image to [0,1]
    auto flat = x.view({n, -1});
    auto lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
    x = ((flat - lo) / (hi - lo + 1e-8)).view({n, c, h, w});
  }
  auto img = (x.clamp(0, 1) * 255).round().to(torch::kUInt8);
  const int64_t cols = std::min(ncol, n), rows = (n + cols - 1) / cols, pad = 2;
  const int64_t W = cols * (w + pad) + pad, H = rows * (h + pad) + pad, C = c == 1 ? 1 : 3;
  auto canvas = torch::zeros({H, W, C}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / cols, q = i % cols;
    auto tile = img[i].permute({1, 2, 0}).slice(2, 0, C);
    canvas.slice(0, pad + r * (h + pad), pad + r * (h + pad) + h).slice(1, pad + q * (w + pad), pad + q * (w + pad) + w).copy_(tile);
  }
  std::string raw;
  auto p = canvas.data_ptr<uint8_t>();
  for (int64_t r = 0; r < H; ++r) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(p + r * W * C), W * C);
  }
  uLongf zlen = compressBound(raw.size());
  std::string z(zlen, '\0');
  compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6);
  z.resize(zlen);
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, uint32_t(W));
  put32(ihdr, uint32_t(H));
  ihdr += char(8);
  ihdr += char(C == 1 ? 0 : 2);
  ihdr += std::string(3, '\0');
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  write_file_atomic(path, out);
}

}  // namespace dfkd
