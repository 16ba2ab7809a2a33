#include "core/data.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace dfkd {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Reads a file, gunzipping it when it starts with the gzip magic.
std::string read_maybe_gz(const std::string& path) {
  std::string raw = read_file(path, "E_DATA_NOT_FOUND");
  if (raw.size() < 2 || (unsigned char)raw[0] != 0x1f || (unsigned char)raw[1] != 0x8b) return raw;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail("E_DATA_INVALID", "zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char buf[1 << 16];
  int ret;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    ret = inflate(&zs, Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END) {
      inflateEnd(&zs);
      fail("E_DATA_INVALID", path + ": corrupt gzip data");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > (size_t(8) << 30)) { inflateEnd(&zs); fail("E_DATA_INVALID", path + ": too large"); }
  } while (ret != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  if (ret != Z_STREAM_END) fail("E_DATA_INVALID", path + ": truncated gzip data");
  return out;
}

uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

}  // namespace

torch::Tensor load_idx(const std::string& path) {
  std::string d = read_maybe_gz(path);
  auto p = reinterpret_cast<const unsigned char*>(d.data());
  if (d.size() < 4 || p[0] != 0 || p[1] != 0) fail("E_DATA_INVALID", path + ": not an IDX file (bad magic)");
  if (p[2] != 0x08) fail("E_DATA_INVALID", path + ": only unsigned-byte IDX files are supported");
  int nd = p[3];
  if (nd < 1 || nd > 4) fail("E_DATA_INVALID", path + ": IDX with " + std::to_string(nd) + " dimensions");
  if (d.size() < size_t(4 + 4 * nd)) fail("E_DATA_INVALID", path + ": truncated IDX header");
  std::vector<int64_t> dims;
  uint64_t n = 1;
  for (int i = 0; i < nd; ++i) {
    uint32_t v = be32(p + 4 + 4 * i);
    dims.push_back(v);
    // checked before multiplying: n <= 2^34 and v < 2^32 could wrap around 2^64
    if (v && n > (uint64_t(1) << 34) / v) fail("E_DATA_INVALID", path + ": IDX header claims an absurd size");
    n *= v;
  }
  size_t off = 4 + 4 * nd;
  if (d.size() - off != n)
    fail("E_DATA_INVALID", path + ": IDX header says " + std::to_string(n) + " bytes of data, file has " +
                               std::to_string(d.size() - off));
  auto t = torch::empty(dims, torch::kUInt8);
  std::memcpy(t.data_ptr(), d.data() + off, n);
  return t;
}

torch::Tensor load_npy(const std::string& path) {
  std::string d = read_file(path, "E_DATA_NOT_FOUND");
  if (d.size() < 10 || std::memcmp(d.data(), "\x93NUMPY", 6) != 0) fail("E_DATA_INVALID", path + ": not a .npy file");
  int major = (unsigned char)d[6];
  size_t hlen, hoff;
  if (major == 1) { hlen = (unsigned char)d[8] | ((unsigned char)d[9] << 8); hoff = 10; }
  else {
    if (d.size() < 12) fail("E_DATA_INVALID", path + ": truncated .npy header");
    hlen = (unsigned char)d[8] | ((unsigned char)d[9] << 8) | ((unsigned char)d[10] << 16) | (size_t((unsigned char)d[11]) << 24);
    hoff = 12;
  }
  if (hoff + hlen > d.size()) fail("E_DATA_INVALID", path + ": truncated .npy header");
  std::string h = d.substr(hoff, hlen);
  auto field = [&](const std::string& key) -> std::string {
    auto k = h.find("'" + key + "'");
    if (k == std::string::npos) fail("E_DATA_INVALID", path + ": .npy header lacks " + key);
    auto c = h.find(':', k);
    if (c == std::string::npos) fail("E_DATA_INVALID", path + ": bad .npy header");
    return h.substr(c + 1);
  };
  std::string descr = field("descr");
  auto q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos) fail("E_DATA_INVALID", path + ": bad .npy descr");
  descr = descr.substr(q1 + 1, q2 - q1 - 1);
  if (field("fortran_order").find("True") < field("fortran_order").find(','))
    fail("E_DATA_INVALID", path + ": Fortran-ordered .npy is not supported");
  std::string sh = field("shape");
  auto l = sh.find('('), r = sh.find(')');
  if (l == std::string::npos || r == std::string::npos) fail("E_DATA_INVALID", path + ": bad .npy shape");
  std::vector<int64_t> shape;
  uint64_t n = 1;
  std::string inner = sh.substr(l + 1, r - l - 1);
  size_t s = 0;
  while (s < inner.size()) {
    size_t e = inner.find(',', s);
    std::string tok = inner.substr(s, e == std::string::npos ? std::string::npos : e - s);
    if (tok.find_first_of("0123456789") != std::string::npos) {
      long long v;
      try { v = std::stoll(tok); } catch (...) { fail("E_DATA_INVALID", path + ": bad .npy shape"); }
      if (v < 0) fail("E_DATA_INVALID", path + ": negative .npy dimension");
      shape.push_back(v);
      if (v && n > (uint64_t(1) << 34) / uint64_t(v)) fail("E_DATA_INVALID", path + ": .npy shape is absurdly large");
      n *= uint64_t(v);
    }
    if (e == std::string::npos) break;
    s = e + 1;
  }
  torch::ScalarType st;
  size_t item;
  if (descr == "<f4" || descr == "=f4") { st = torch::kFloat32; item = 4; }
  else if (descr == "<f8" || descr == "=f8") { st = torch::kFloat64; item = 8; }
  else if (descr == "|u1" || descr == "u1") { st = torch::kUInt8; item = 1; }
  else if (descr == "<i8" || descr == "=i8") { st = torch::kInt64; item = 8; }
  else if (descr == "<i4" || descr == "=i4") { st = torch::kInt32; item = 4; }
  else fail("E_DATA_INVALID", path + ": unsupported .npy dtype '" + descr + "' (use float32, float64, uint8, int32 or int64)");
  size_t off = hoff + hlen;
  if (d.size() - off != n * item)
    fail("E_DATA_INVALID", path + ": .npy header says " + std::to_string(n * item) + " bytes of data, file has " +
                               std::to_string(d.size() - off));
  auto t = torch::empty(shape, st);
  if (n) std::memcpy(t.data_ptr(), d.data() + off, n * item);
  return t;
}

torch::Tensor from_blob(const Blob& b, const std::vector<int64_t>& shape) {
  torch::ScalarType st;
  size_t item;
  if (b.dtype == "float32") { st = torch::kFloat32; item = 4; }
  else if (b.dtype == "float64") { st = torch::kFloat64; item = 8; }
  else if (b.dtype == "uint8") { st = torch::kUInt8; item = 1; }
  else if (b.dtype == "int32") { st = torch::kInt32; item = 4; }
  else if (b.dtype == "int64") { st = torch::kInt64; item = 8; }
  else fail("E_DATA_INVALID", "unsupported typed array " + b.dtype);
  size_t n = b.bytes.size() / item;
  std::vector<int64_t> s = shape.empty() ? std::vector<int64_t>{int64_t(n)} : shape;
  uint64_t want = 1;
  for (auto v : s) {
    if (v < 0) fail("E_DATA_INVALID", "negative dimension in shape");
    if (v && want > (uint64_t(1) << 40) / uint64_t(v)) fail("E_DATA_INVALID", "shape " + shape_str(s) + " is absurdly large");
    want *= uint64_t(v);
  }
  if (want != n) fail("E_DATA_INVALID", "typed array has " + std::to_string(n) + " elements, shape " + shape_str(s) + " needs " + std::to_string(want));
  auto t = torch::empty(s, st);
  if (n) std::memcpy(t.data_ptr(), b.bytes.data(), n * item);
  return t;
}

static torch::Tensor to_images(torch::Tensor x, const std::string& what) {
  if (x.dim() == 3) x = x.unsqueeze(1);  // [N,H,W] -> [N,1,H,W]
  if (x.dim() == 2) x = x.unsqueeze(1).unsqueeze(1);  // [N,F] -> [N,1,1,F]
  if (x.dim() != 4) fail("E_DATA_INVALID", what + ": images must be [N,H,W] or [N,C,H,W], got " + shape_str(x.sizes()));
  if (x.scalar_type() == torch::kUInt8) return x.to(torch::kFloat32).div_(255.0);
  return x.to(torch::kFloat32);
}

static torch::Tensor to_labels(torch::Tensor y, const std::string& what) {
  if (y.is_floating_point()) {
    if (!torch::equal(y, y.round())) fail("E_DATA_INVALID", what + ": labels must be integers");
  }
  y = y.to(torch::kInt64).reshape({-1});
  if (y.numel() && y.min().item<int64_t>() < 0) fail("E_DATA_INVALID", what + ": negative label");
  return y;
}

Dataset load_dataset(const Json& spec) {
  Dataset ds;
  std::string what;
  if (spec.has("x")) {
    what = "in-memory dataset";
    ds.x = to_images(from_blob(*spec.get("x").as_blob(), to_shape(spec.nums("shape"))), what);
    if (spec.has("y")) ds.y = to_labels(from_blob(*spec.get("y").as_blob(), {}), what);
  } else if (spec.has("images")) {
    std::string img = spec.str("images", "");
    what = img;
    bool npy = ends_with(img, ".npy");
    ds.x = to_images(npy ? load_npy(img) : load_idx(img), what);
    if (spec.has("labels")) {
      std::string lab = spec.str("labels", "");
      ds.y = to_labels(ends_with(lab, ".npy") ? load_npy(lab) : load_idx(lab), lab);
    }
  } else {
    fail("E_CONFIG", "a dataset needs 'images' (a file) or 'x' (a typed array)");
  }
  if (ds.y.defined() && ds.y.size(0) != ds.x.size(0))
    fail("E_DATA_INVALID", what + ": " + std::to_string(ds.x.size(0)) + " images but " + std::to_string(ds.y.size(0)) + " labels");
  int64_t n = ds.x.size(0);
  if (n == 0) fail("E_DATA_INVALID", what + ": the dataset is empty");
  int64_t start = spec.integer("start", 0), end = spec.integer("end", n);
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (start < 0 || end > n || start >= end)
    fail("E_CONFIG", what + ": range [" + std::to_string(start) + ", " + std::to_string(end) + ") is outside its " + std::to_string(n) + " rows");
  ds.x = ds.x.slice(0, start, end).contiguous();
  if (ds.y.defined()) ds.y = ds.y.slice(0, start, end).contiguous();
  auto mean = spec.nums("mean"), stdv = spec.nums("std");
  if (!mean.empty() || !stdv.empty()) {
    int64_t c = ds.x.size(1);
    auto expand = [&](std::vector<double> v, const char* name) {
      if (v.size() == 1) v.assign(c, v[0]);
      if (int64_t(v.size()) != c) fail("E_CONFIG", what + ": " + name + " has " + std::to_string(v.size()) + " values for " + std::to_string(c) + " channels");
      return torch::tensor(v, torch::kFloat32).view({1, c, 1, 1});
    };
    auto m = expand(mean.empty() ? std::vector<double>{0.0} : mean, "mean");
    auto s = expand(stdv.empty() ? std::vector<double>{1.0} : stdv, "std");
    if ((s <= 0).any().item<bool>()) fail("E_CONFIG", what + ": std must be positive");
    ds.x = (ds.x - m) / s;
  }
  if (!torch::isfinite(ds.x).all().item<bool>()) fail("E_DATA_INVALID", what + ": images contain NaN or inf");
  return ds;
}

torch::Tensor augment(const torch::Tensor& x, int64_t pad, bool flip, Rng& rng) {
  auto out = x;
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (pad > 0) {
    auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0);
    // One random offset per sample, applied with a gather over a shifted index grid.
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
    auto dy = torch::randint(0, 2 * pad + 1, {n}, rng.device, opts);
    auto dx = torch::randint(0, 2 * pad + 1, {n}, rng.device, opts);
    auto iy = torch::arange(h, opts).view({1, h}) + dy.view({n, 1});  // [n,h]
    auto ix = torch::arange(w, opts).view({1, w}) + dx.view({n, 1});  // [n,w]
    const int64_t c = x.size(1), W = w + 2 * pad;
    auto rows = padded.gather(2, iy.view({n, 1, h, 1}).expand({n, c, h, W}));
    out = rows.gather(3, ix.view({n, 1, 1, w}).expand({n, c, h, w}));
  }
  if (flip) {
    auto mask = torch::rand({n}, rng.device, x.options()).lt(0.5).view({n, 1, 1, 1});
    out = torch::where(mask, out.flip({3}), out);
  }
  return out;
}

torch::Tensor mixup(const torch::Tensor& x, double fraction, Rng& rng) {
  const int64_t n = x.size(0), k = std::llround(std::clamp(fraction, 0.0, 1.0) * double(n));
  if (k == 0 || n < 2) return x;
  auto partner = x.index_select(0, torch::randperm(n, rng.device, torch::TensorOptions().dtype(torch::kLong).device(x.device())).slice(0, 0, k));
  auto lam = torch::rand({k, 1, 1, 1}, rng.device, x.options());
  auto mixed = lam * x.slice(0, 0, k) + (1 - lam) * partner;
  return k == n ? mixed : torch::cat({mixed, x.slice(0, k)}, 0);
}

torch::Tensor Batches::at(int64_t step) {
  if (n_ <= 0) fail("E_DATA_INVALID", "cannot draw a batch from an empty dataset");
  int64_t e = step / per_epoch(), k = step % per_epoch();
  if (e != epoch_) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + uint64_t(e) + 1);
    perm_ = torch::randperm(n_, g, torch::kLong);
    epoch_ = e;
  }
  return perm_.slice(0, k * batch_, std::min(n_, (k + 1) * batch_));
}

}  // namespace dfkd
