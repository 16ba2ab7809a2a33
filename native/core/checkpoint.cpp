#include "core/checkpoint.h"

#include <cstring>
#include <sstream>

#include "core/io/files.h"

namespace dfkd {

void Checkpoint::put_module(const std::string& key, torch::jit::Module& m) {
  std::ostringstream s;
  m.save(s);
  std::string bytes = s.str();
  auto t = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  out_.write(key + ".module", t);
}

void Checkpoint::put_json(const std::string& key, const Json& j) {
  std::string s = j.dump();
  auto t = torch::empty({int64_t(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  out_.write(key + ".json", t);
}

void Checkpoint::put_generator(const std::string& key, at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  out_.write(key + ".rng", g.get_state());
}

std::string Checkpoint::bytes() {
  std::ostringstream s;
  out_.save_to(s);
  return s.str();
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  std::string bytes = read_file(path, "E_CHECKPOINT");
  try {
    std::istringstream s(bytes);
    in_.load_from(s);
  } catch (...) {
    throw Error("E_CHECKPOINT", path + " is not a dfkd checkpoint (" +
                                    std::string(translate(std::current_exception(), "E_CHECKPOINT", "").what()).substr(0, 200) + ")");
  }
}

static std::string bytes_of(torch::serialize::InputArchive& in, const std::string& key, const std::string& path) {
  torch::Tensor t;
  if (!in.try_read(key, t)) fail("E_CHECKPOINT", path + " lacks '" + key + "'");
  t = t.contiguous();
  return std::string(reinterpret_cast<const char*>(t.data_ptr()), t.numel());
}

torch::jit::Module CheckpointReader::module(const std::string& key, torch::Device device) {
  std::istringstream s(bytes_of(in_, key + ".module", path_));
  return torch::jit::load(s, device);
}

Json CheckpointReader::json(const std::string& key) { return Json::parse(bytes_of(in_, key + ".json", path_)); }

void CheckpointReader::generator(const std::string& key, at::Generator& g) {
  torch::Tensor st;
  if (!in_.try_read(key + ".rng", st)) fail("E_CHECKPOINT", path_ + " lacks '" + key + ".rng'");
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(st);
}

void copy_state(torch::jit::Module& dst, torch::jit::Module& src) {
  torch::NoGradGuard ng;
  std::map<std::string, torch::Tensor> s;
  for (auto p : src.named_parameters()) s[p.name] = p.value;
  for (auto b : src.named_buffers()) s[b.name] = b.value;
  auto put = [&](const std::string& name, torch::Tensor t) {
    auto it = s.find(name);
    if (it == s.end() || it->second.sizes() != t.sizes())
      fail("E_CHECKPOINT", "the checkpoint's model does not match this run's (tensor '" + name + "')");
    t.copy_(it->second);
  };
  for (auto p : dst.named_parameters()) put(p.name, p.value);
  for (auto b : dst.named_buffers()) put(b.name, b.value);
}

void restoring(const std::string& path, const std::function<void()>& f) {
  try {
    f();
  } catch (...) {
    Error e = translate(std::current_exception(), "E_TORCH", "");
    if (e.code == "E_CHECKPOINT" || e.code == "E_OOM") throw e;  // already clear
    throw Error("E_CHECKPOINT", path + " does not fit this run (another optimizer, model or method?): " + e.what());
  }
}

}  // namespace dfkd
