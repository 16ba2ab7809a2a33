#include "core/data.h"

#include "core/io/tensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace dfkd {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

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
    auto m = per_channel(mean.empty() ? std::vector<double>{0.0} : mean, c, what + ": mean");
    auto s = per_channel(stdv.empty() ? std::vector<double>{1.0} : stdv, c, what + ": std");
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
