// Native model zoo: genuine TorchScript modules built with torch::jit::Module::define, so that
// a saved student opens in Python's torch.jit.load. Also builds dfkd's image generator.
#pragma once
#include "core/common.h"

namespace dfkd {

// name: "lenet5" | "lenet5_half" | "resnet18" | "resnet8" | "resnet20"
// in_shape: (C,H,W). Weights are drawn from `gen` (deterministic for a seed). sync_bn: its
// BatchNorm layers call dfkd::sync_batch_norm (dist.h), for a data-parallel run; such a module
// loads only where dfkd is loaded (copy its state into the plain model to save it).
torch::jit::Module make_model(const std::string& name, const std::vector<int64_t>& in_shape, int64_t classes,
                              at::Generator& gen, bool sync_bn = false);
std::vector<std::string> zoo_names();
bool is_zoo_name(const std::string& name);

// A student to train, on `device`, in train mode with every parameter requiring grad: a zoo
// model when `name_or_path` is a zoo name (with sync_bn as make_model's), else a TorchScript file.
torch::jit::Module make_student(const std::string& name_or_path, const std::vector<int64_t>& in_shape,
                                int64_t classes, at::Generator& gen, torch::Device device, bool sync_bn = false);

// DFAD's GeneratorA (VainF/Data-Free-Adversarial-Distillation network/gan.py), sized for the
// teacher's input (C,H,W), H and W divisible by 4: z[B,nz] -> Linear -> BN -> up2 -> conv3x3 ->
// BN -> LeakyReLU(0.2) -> up2 -> conv3x3 -> BN -> LeakyReLU(0.2) -> conv3x3 -> head. The head:
// - pixels: sigmoid (images in [0, 1], Fast-Datafree's Generator, datafree/models/generator.py),
//   then the teacher's normalization (p - mean) / std (buffers "mean", "std": one value or one per
//   channel), so every output is an input the teacher could have been given;
// - otherwise tanh -> BatchNorm (GeneratorA), `affine` or not (per-channel mean 0 / std 1).
struct GeneratorHead {
  bool pixels = false, affine = false;
  std::vector<double> mean, std;  // pixels: the normalization
};
// sync_bn: as make_model's (a data-parallel run: each rank runs it on its share of z).
torch::jit::Module make_generator(int64_t nz, int64_t ngf, const std::vector<int64_t>& out_shape, at::Generator& gen,
                                  const GeneratorHead& head = {}, bool sync_bn = false);

}  // namespace dfkd
