#include "core/io/safetensors.h"

#include <cstring>

#include "core/io/dtype.h"
#include "core/io/files.h"

namespace dfkd {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header;
  Json::Object md;
  for (auto& [k, v] : metadata) md[k] = Json(v);
  header["__metadata__"] = Json(md);
  std::string data;
  for (auto& [name, t0] : tensors) {
    auto t = t0.contiguous().cpu();
    auto dt = dtype_of(t.scalar_type());
    if (!dt) fail("E_IO", "safetensors: unsupported dtype of tensor '" + name + "'");
    Json e;
    e["dtype"] = dt->safetensors;
    Json::Array shape;
    for (auto d : t.sizes()) shape.emplace_back(d);
    e["shape"] = Json(shape);
    size_t nbytes = t.numel() * t.element_size();
    e["data_offsets"] = Json(Json::Array{Json(data.size()), Json(data.size() + nbytes)});
    data.append(reinterpret_cast<const char*>(t.data_ptr()), nbytes);
    header[name] = e;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  write_file_atomic(path, out + h + data);
}

std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(const std::string& path,
                                                                    std::map<std::string, std::string>* metadata,
                                                                    const char* missing, const char* invalid) {
  std::string d = read_file(path, missing);
  if (d.size() < 8) fail(invalid, path + " is not a safetensors file (too short)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t((unsigned char)d[i]) << (8 * i);
  if (n > d.size() - 8 || n > (uint64_t(100) << 20)) fail(invalid, path + " is not a safetensors file (bad header size)");
  Json h;
  try { h = Json::parse(d.substr(8, n)); } catch (const Error&) { fail(invalid, path + ": corrupt safetensors header"); }
  if (!h.is_object()) fail(invalid, path + ": corrupt safetensors header");
  const size_t base = 8 + n;
  std::vector<std::pair<std::string, torch::Tensor>> out;
  try {
    for (auto& [name, e] : h.as_object()) {
      if (name == "__metadata__") {
        if (metadata && e.is_object())
          for (auto& [k, v] : e.as_object()) if (v.is_string()) (*metadata)[k] = v.as_string();
        continue;
      }
      std::string code = e.str("dtype", "");
      auto dt = dtype_by_safetensors(code);
      if (!dt) fail(invalid, path + ": tensor '" + name + "' has unsupported dtype " + code);
      auto shape = to_shape(e.nums("shape"));
      auto count = checked_count(shape);
      if (!count) fail(invalid, path + ": absurd shape");
      auto off = e.nums("data_offsets");
      if (off.size() != 2 || !(off[0] >= 0) || !(off[1] >= off[0]) || off[1] > double(d.size()) ||
          uint64_t(off[1] - off[0]) != *count * dt->item || base + uint64_t(off[1]) > d.size())
        fail(invalid, path + ": tensor '" + name + "' has inconsistent offsets");
      auto t = torch::empty(shape, dt->type);
      if (*count) std::memcpy(t.data_ptr(), d.data() + base + size_t(off[0]), *count * dt->item);
      out.emplace_back(name, t);
    }
  } catch (const Error& e) {
    if (e.code == invalid) throw;
    throw Error(invalid, path + ": corrupt safetensors header (" + e.what() + ")");
  }
  return out;
}

}  // namespace dfkd
