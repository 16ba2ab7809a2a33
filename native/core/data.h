// Tensor datasets: MNIST IDX (gz or not), .npy, in-memory typed arrays; batching with a seeded
// shuffle; normalization; augmentation (random crop with padding, horizontal flip).
#pragma once
#include "core/common.h"

namespace dfkd {

struct Dataset {
  torch::Tensor x;  // [N, C, H, W] float32 (raw scale: IDX/uint8 -> [0,1]), normalized on load if asked
  torch::Tensor y;  // [N] int64, or undefined when there are no labels
  int64_t size() const { return x.defined() ? x.size(0) : 0; }
  bool labeled() const { return y.defined(); }
};

// Spec (JSON from the façade):
//   { images: path (.idx/.idx3-ubyte[.gz] | .npy), labels?: path, start?, end?,
//     mean?: [..], std?: [..] }                      files
//   { x: <typed array>, shape: [N,C,H,W], y?: <typed array>, start?, end?, mean?, std? }  memory
// Codes: E_DATA_NOT_FOUND, E_DATA_INVALID (corrupt/mismatched files), E_CONFIG.
Dataset load_dataset(const Json& spec);

// Random crop with zero padding `pad` and horizontal flip with probability 0.5 (if `flip`).
torch::Tensor augment(const torch::Tensor& x, int64_t pad, bool flip, Rng& rng);

// The first round(fraction * n) rows become lam * x_i + (1 - lam) * x_perm(i), lam ~ U(0,1) per row;
// the rest is returned as is. Unlabeled: the teacher labels the mixtures (KD on synthesized data).
torch::Tensor mixup(const torch::Tensor& x, double fraction, Rng& rng);

// Indices of batch number `step` of a seeded shuffled pass over n rows: epoch e = step / ceil(n/batch)
// uses randperm(n) seeded with (seed, e). Stateless, so a resumed run draws the same batches.
class Batches {
 public:
  Batches(int64_t n, int64_t batch, uint64_t seed) : n_(n), batch_(batch), seed_(seed) {}
  torch::Tensor at(int64_t step);
  int64_t per_epoch() const { return (n_ + batch_ - 1) / batch_; }
 private:
  int64_t n_, batch_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  torch::Tensor perm_;
};

}  // namespace dfkd
