// A TorchScript teacher: load, device placement, introspection and layer taps.
//
// Taps: a graph pass over the module's forward (see taps.cpp) exposes, as extra outputs of one
// forward, the input of every aten::batch_norm (with its running mean/var), the outputs of any
// submodule the user names, and the input of the last linear layer ("penultimate" features).
#pragma once
#include <memory>
#include <optional>

#include "core/common.h"

namespace dfkd {

enum class TapKind { bn, layer, penultimate };
const char* name_of(TapKind k);  // "bn" | "layer" | "penultimate"

struct Tap {
  std::string name;  // module path: "layer1.0.bn1" (bn), "features.3" (layer), "penultimate"
  TapKind kind;
  torch::Tensor running_mean, running_var;  // bn taps only
};

// What the graph says of the teacher's input (Teacher::input_mean): the first BatchNorm's running
// mean and, when that BatchNorm follows a convolution of the input itself, that
// convolution's weight and bias (weight undefined: the BatchNorm reads the input directly).
struct FirstBn {
  std::string conv, bn;  // module paths
  torch::Tensor weight, bias, running_mean;
};

struct Tapped {
  torch::Tensor logits;
  std::vector<torch::Tensor> acts;  // one per Tap, in taps() order
};

class Teacher {
 public:
  // Throws E_MODEL_NOT_FOUND / E_MODEL_INVALID. `layers`: extra submodule paths to tap.
  Teacher(const std::string& path, torch::Device device, const std::vector<std::string>& layers = {});

  torch::Tensor logits(const torch::Tensor& x);  // plain forward; E_SHAPE when x is rejected
  Tapped forward_tapped(const torch::Tensor& x);
  const std::vector<Tap>& taps() const { return taps_; }
  std::vector<int64_t> bn_taps() const;  // indices of kind "bn"
  std::optional<int64_t> tap_index(const std::string& name) const;
  // Convolution calls in the forward (0: a multilayer perceptron, or attention without convolutions).
  int64_t convolutions() const { return convolutions_; }

  // Metadata stored by dfkd in the file (extra file "dfkd.json"): inputShape, mean, std, ...
  const Json& meta() const { return meta_; }
  // The input shape (C,H,W): explicit, else from meta, else inferred from the file (infer_shape);
  // E_CONFIG when unknown or ambiguous.
  std::vector<int64_t> input_shape(const std::vector<int64_t>& explicit_shape = {});
  // How the last input_shape() was found: "given", "metadata" or what inference read.
  const std::string& shape_source() const { return shape_source_; }
  int64_t num_classes(const std::vector<int64_t>& input_shape);  // runs one forward, cached
  // What the forward returns, found by num_classes()'s probe: "logits", "log-probabilities" (a
  // log_softmax at its end: logits up to a constant per row, used as they are) or "probabilities"
  // (a softmax at its end: rows in [0, 1] that sum to 1). Probabilities would flatten every loss on
  // softmax(logits / T) (KD at T = 20 sees near-uniform targets): logits() and forward_tapped()
  // return their logarithms instead, which are logits up to a constant per row.
  const std::string& output_kind() const { return output_; }
  // The per-channel mean of the inputs the teacher was trained on, read from its first BatchNorm's
  // running mean where that BatchNorm normalizes the input or a convolution of it (E[conv(x)] =
  // mu * sum(W) + b per output channel: least squares over the output channels). Empty when the
  // teacher has no such layer or the linear fit is poor (relative residual > 0.2). `why` says
  // what it read.
  std::vector<double> input_mean(std::string* why = nullptr) const;
  // The dtype its floating weights were stored in when not float32 (they run in float32), else "".
  const std::string& stored_dtype() const { return stored_dtype_; }
  Json info(const std::vector<int64_t>& input_shape);

  torch::jit::Module& module() { return module_; }
  torch::Device device() const { return device_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  torch::Device device_;
  torch::jit::Module module_;
  Json meta_;
  std::vector<Tap> taps_;
  std::shared_ptr<torch::jit::GraphFunction> tapped_fn_;
  int64_t num_classes_ = -1;
  std::string output_ = "logits";
  std::string stored_dtype_;
  std::optional<FirstBn> first_bn_;
  int64_t convolutions_ = 0;
  std::string shape_source_;
};

// Loads any TorchScript file with dfkd's error codes; also used for students.
// Floating weights stored in another dtype (float16, bfloat16, float64) are converted to float32;
// `converted` (when given) gets the stored dtype's name then, else "".
torch::jit::Module load_module(const std::string& path, torch::Device device, Json* meta = nullptr,
                               std::string* converted = nullptr);
// Saves a module with dfkd metadata, atomically.
void save_module(torch::jit::Module& m, const std::string& path, const Json& meta);
// Runs m.forward(x); a tuple output gives its first element; E_SHAPE / E_MODEL_OUTPUT on failure.
torch::Tensor run_logits(torch::jit::Module& m, const torch::Tensor& x, const char* who);

// The tap pass itself (taps.cpp): returns the rewritten graph function and fills `taps` (and
// `convolutions`, when given, with the number of convolution calls in the inlined forward).
std::shared_ptr<torch::jit::GraphFunction> build_tapped_forward(torch::jit::Module& m,
                                                                const std::vector<std::string>& layers,
                                                                std::vector<Tap>& taps, int64_t* convolutions = nullptr,
                                                                std::optional<FirstBn>* first_bn = nullptr);

}  // namespace dfkd
