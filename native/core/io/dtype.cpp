#include "core/io/dtype.h"

namespace dfkd {

namespace {
const DType kTable[] = {
    {c10::ScalarType::Float, 4, "float32", "<f4", "F32"},
    {c10::ScalarType::Double, 8, "float64", "<f8", "F64"},
    {c10::ScalarType::Byte, 1, "uint8", "|u1", "U8"},
    {c10::ScalarType::Int, 4, "int32", "<i4", "I32"},
    {c10::ScalarType::Long, 8, "int64", "<i8", "I64"},
};
template <class P>
std::optional<DType> find(P&& pred) {
  for (auto& d : kTable) if (pred(d)) return d;
  return std::nullopt;
}
}  // namespace

std::optional<DType> dtype_by_name(const std::string& n) { return find([&](const DType& d) { return n == d.name; }); }
std::optional<DType> dtype_by_npy(const std::string& s) {
  // '=' (native order) is little-endian on every platform dfkd builds for; '|' marks single bytes.
  std::string descr = s;
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "u1") descr = "|u1";
  return find([&](const DType& d) { return descr == d.npy; });
}
std::optional<DType> dtype_by_safetensors(const std::string& c) { return find([&](const DType& d) { return c == d.safetensors; }); }
std::optional<DType> dtype_of(c10::ScalarType t) { return find([&](const DType& d) { return t == d.type; }); }

std::optional<uint64_t> checked_count(const std::vector<int64_t>& dims) {
  uint64_t n = 1;
  for (auto v : dims) {
    if (v < 0) return std::nullopt;
    if (v && n > kMaxElements / uint64_t(v)) return std::nullopt;  // before it wraps
    n *= uint64_t(v);
  }
  return n;
}

}  // namespace dfkd
