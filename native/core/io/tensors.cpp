#include "core/io/tensors.h"

#include <zlib.h>

#include <cstring>

#include "core/io/dtype.h"
#include "core/io/files.h"

namespace dfkd {

namespace {

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
  for (int i = 0; i < nd; ++i) dims.push_back(be32(p + 4 + 4 * i));
  auto count = checked_count(dims);
  if (!count) fail("E_DATA_INVALID", path + ": IDX header claims an absurd size");
  const uint64_t n = *count;
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
    }
    if (e == std::string::npos) break;
    s = e + 1;
  }
  auto count = checked_count(shape);
  if (!count) fail("E_DATA_INVALID", path + ": .npy shape is absurdly large");
  const uint64_t n = *count;
  auto dt = dtype_by_npy(descr);
  if (!dt) fail("E_DATA_INVALID", path + ": unsupported .npy dtype '" + descr + "' (use float32, float64, uint8, int32 or int64)");
  const torch::ScalarType st = dt->type;
  const size_t item = dt->item;
  size_t off = hoff + hlen;
  if (d.size() - off != n * item)
    fail("E_DATA_INVALID", path + ": .npy header says " + std::to_string(n * item) + " bytes of data, file has " +
                               std::to_string(d.size() - off));
  auto t = torch::empty(shape, st);
  if (n) std::memcpy(t.data_ptr(), d.data() + off, n * item);
  return t;
}

torch::Tensor from_blob(const Blob& b, const std::vector<int64_t>& shape) {
  auto dt = dtype_by_name(b.dtype);
  if (!dt) fail("E_DATA_INVALID", "unsupported typed array " + b.dtype);
  const torch::ScalarType st = dt->type;
  const size_t item = dt->item;
  size_t n = b.bytes.size() / item;
  std::vector<int64_t> s = shape.empty() ? std::vector<int64_t>{int64_t(n)} : shape;
  for (auto v : s) if (v < 0) fail("E_DATA_INVALID", "negative dimension in shape");
  auto want_count = checked_count(s);
  if (!want_count) fail("E_DATA_INVALID", "shape " + shape_str(s) + " is absurdly large");
  const uint64_t want = *want_count;
  if (want != n) fail("E_DATA_INVALID", "typed array has " + std::to_string(n) + " elements, shape " + shape_str(s) + " needs " + std::to_string(want));
  auto t = torch::empty(s, st);
  if (n) std::memcpy(t.data_ptr(), b.bytes.data(), n * item);
  return t;
}

}  // namespace dfkd
