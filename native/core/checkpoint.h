// A checkpoint: one file (torch serialize archive) holding named modules (as TorchScript bytes),
// optimizers, tensors and a JSON of counters. Written atomically (io/files.h).
#pragma once
#include "core/common.h"

namespace dfkd {

class Checkpoint {
 public:
  torch::serialize::OutputArchive& out() { return out_; }
  void put_module(const std::string& key, torch::jit::Module& m);
  void put_json(const std::string& key, const Json& j);
  void put_generator(const std::string& key, at::Generator& g);
  std::string bytes();  // the serialized archive (written with write_file_atomic)
 private:
  torch::serialize::OutputArchive out_;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);  // E_CHECKPOINT on a missing/corrupt file
  torch::serialize::InputArchive& in() { return in_; }
  torch::jit::Module module(const std::string& key, torch::Device device);
  Json json(const std::string& key);
  void generator(const std::string& key, at::Generator& g);
  const std::string& path() const { return path_; }
 private:
  torch::serialize::InputArchive in_;
  std::string path_;
};

// Copies parameters and buffers of `src` into `dst` (same architecture), keeping dst's tensors
// (and so the optimizer's references to them) alive. E_CHECKPOINT when they do not match.
void copy_state(torch::jit::Module& dst, torch::jit::Module& src);

// Runs `f` (restoring from the checkpoint at `path`): whatever fails there (a corrupt archive,
// another optimizer or model) is E_CHECKPOINT, not a raw libtorch error.
void restoring(const std::string& path, const std::function<void()>& f);

}  // namespace dfkd
