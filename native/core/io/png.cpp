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

namespace {

// A 3x5 pixel font: rows top to bottom, 3 bits each (MSB left).
const uint8_t* glyph(char ch) {
  static const uint8_t digits[10][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
                                        {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}};
  static const uint8_t percent[5] = {5, 1, 2, 4, 5};
  if (ch >= '0' && ch <= '9') return digits[ch - '0'];
  if (ch == '%') return percent;
  return nullptr;  // space, or a character the font lacks
}

// Draws `text` into an [H, W] uint8 plane at (y, x), each font pixel `s` x `s`.
void draw_text(torch::Tensor plane, const std::string& text, int64_t y, int64_t x, int64_t s) {
  for (char ch : text) {
    if (const uint8_t* g = glyph(ch))
      for (int64_t r = 0; r < 5; ++r)
        for (int64_t q = 0; q < 3; ++q)
          if (g[r] & (4 >> q)) {
            int64_t y0 = y + r * s, x0 = x + q * s;
            if (y0 + s <= plane.size(0) && x0 + s <= plane.size(1)) plane.slice(0, y0, y0 + s).slice(1, x0, x0 + s).fill_(255);
          }
    x += 4 * s;
  }
}

}  // namespace

void save_png_grid(const torch::Tensor& x0, const std::string& path, const std::vector<double>& mean,
                   const std::vector<double>& stdv, int64_t max_images, int64_t ncol,
                   const std::vector<std::string>& labels, int64_t min_side) {
  auto x = x0.detach().to(torch::kCPU, torch::kFloat32).slice(0, 0, max_images).contiguous();
  const int64_t n = x.size(0), c = x.size(1);
  const bool labeled = !labels.empty();
  const int64_t up = labeled ? std::max<int64_t>(1, (min_side + x.size(2) - 1) / x.size(2)) : 1;
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = stdv.empty() ? 1.0 : stdv[std::min<size_t>(ch, stdv.size() - 1)];
    double m = mean.empty() ? 0.0 : mean[std::min<size_t>(ch, mean.size() - 1)];
    x.select(1, ch).mul_(s).add_(m);
  }
  if (mean.empty() && stdv.empty()) {  // unknown normalization: stretch each image to [0,1]
    auto flat = x.view({n, -1});
    auto lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
    x = ((flat - lo) / (hi - lo + 1e-8)).view(x.sizes());
  }
  auto img = (x.clamp(0, 1) * 255).round().to(torch::kUInt8);
  if (up > 1) img = img.repeat_interleave(up, 2).repeat_interleave(up, 3);
  const int64_t h = img.size(2), w = img.size(3);
  const int64_t fs = labeled ? std::max<int64_t>(1, w / 40) : 0, strip = labeled ? 7 * fs : 0;  // text: 5 rows + margins
  const int64_t cols = std::min(ncol, n), rows = (n + cols - 1) / cols, pad = labeled ? 4 : 2;
  const int64_t th = h + strip;  // a tile: the image, its label under it
  const int64_t W = cols * (w + pad) + pad, H = rows * (th + pad) + pad, C = c == 1 ? 1 : 3;
  auto canvas = torch::zeros({H, W, C}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / cols, q = i % cols, y0 = pad + r * (th + pad), x0 = pad + q * (w + pad);
    auto tile = img[i].permute({1, 2, 0}).slice(2, 0, C);
    canvas.slice(0, y0, y0 + h).slice(1, x0, x0 + w).copy_(tile);
    if (labeled && i < int64_t(labels.size()))
      for (int64_t ch = 0; ch < C; ++ch) draw_text(canvas.select(2, ch), labels[i], y0 + h + fs, x0 + fs, fs);
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
