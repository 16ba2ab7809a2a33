#include "core/teacher.h"

#include <cmath>

#include "core/io/files.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/serialization/import.h>

#include <sstream>

namespace dfkd {

static const char* kMetaFile = "dfkd.json";

const char* name_of(TapKind k) { return k == TapKind::bn ? "bn" : k == TapKind::layer ? "layer" : "penultimate"; }

// Why a file that torch::jit::load refused is not TorchScript, when it is a common mistake: the
// weights that torch.save writes (a zip with data.pkl but no code/, or a legacy pickle) hold no
// code, so there is no model to run. Empty when the file is something else.
static std::string not_torchscript_hint(const std::string& bytes) {
  const bool zip = bytes.rfind("PK\x03\x04", 0) == 0;
  const bool pickle = !bytes.empty() && static_cast<unsigned char>(bytes[0]) == 0x80;
  if (!(zip && bytes.find("data.pkl") != std::string::npos && bytes.find("/code/") == std::string::npos) && !pickle)
    return "";
  return " is a PyTorch weights file (what torch.save writes: a state_dict or a pickled nn.Module), not TorchScript: "
         "it holds no code to run. Export the model in Python with "
         "torch.jit.script(model).save('teacher.pt') or torch.jit.trace(model, example_input).save('teacher.pt')";
}

torch::jit::Module load_module(const std::string& path, torch::Device device, Json* meta, std::string* converted) {
  std::string bytes = read_file(path, "E_MODEL_NOT_FOUND");
  torch::jit::ExtraFilesMap extra{{kMetaFile, ""}};
  torch::jit::Module m;
  try {
    std::istringstream in(bytes);
    m = torch::jit::load(in, device, extra);
  } catch (...) {
    Error e = translate(std::current_exception(), "E_MODEL_INVALID", "");
    if (e.code == "E_OOM") throw e;
    if (auto hint = not_torchscript_hint(bytes); !hint.empty()) throw Error("E_MODEL_INVALID", path + hint);
    throw Error("E_MODEL_INVALID", path + " is not a TorchScript model file (" +
                                       std::string(e.what()).substr(0, 300) + ")");
  }
  if (meta) {
    *meta = Json(Json::Object{});
    if (!extra[kMetaFile].empty()) {
      try { *meta = Json::parse(extra[kMetaFile]); } catch (const Error&) {}
    }
  }
  m.eval();
  // Weights saved in float16, bfloat16 or float64 (a model exported for inference, or trained in
  // double): dfkd feeds float32 inputs (autocast, when asked, lowers them itself), so the module
  // runs in float32; float16 and bfloat16 convert without loss.
  std::string stored;
  for (const auto& t : m.parameters())
    if (t.is_floating_point() && t.scalar_type() != at::kFloat) { stored = c10::toString(t.scalar_type()); break; }
  if (stored.empty())
    for (const auto& t : m.buffers())
      if (t.is_floating_point() && t.scalar_type() != at::kFloat) { stored = c10::toString(t.scalar_type()); break; }
  if (!stored.empty()) m.to(at::kFloat);
  if (converted) *converted = stored;
  return m;
}

void save_module(torch::jit::Module& m, const std::string& path, const Json& meta) {
  std::ostringstream out;
  m.save(out, {{kMetaFile, meta.dump()}});
  write_file_atomic(path, out.str());
}

// The logits in what a forward returned: a tensor; a tuple's first element (a model that also
// returns features); a dict's "logits" entry, or its only tensor (Hugging Face style outputs).
static torch::Tensor logits_of(const torch::jit::IValue& out, const char* who) {
  auto v = out;
  if (v.isTuple()) v = v.toTupleRef().elements().at(0);
  if (v.isGenericDict()) {
    auto d = v.toGenericDict();
    std::string keys;
    torch::jit::IValue only;
    int tensors = 0;
    for (const auto& e : d) {
      const std::string k = e.key().isString() ? e.key().toStringRef() : e.key().tagKind();
      keys += (keys.empty() ? "" : ", ") + k;
      if (k == "logits" && e.value().isTensor()) return e.value().toTensor();
      if (e.value().isTensor()) ++tensors, only = e.value();
    }
    if (tensors == 1) return only.toTensor();
    fail("E_MODEL_OUTPUT", std::string("the ") + who + "'s forward returns a dict without a \"logits\" entry (keys: " +
                               keys + "); return the logits, a tuple whose first element they are, or a dict with \"logits\"");
  }
  if (!v.isTensor()) fail("E_MODEL_OUTPUT", std::string("the ") + who + "'s forward must return a tensor of logits");
  return v.toTensor();
}

torch::Tensor run_logits(torch::jit::Module& m, const torch::Tensor& x, const char* who) {
  torch::jit::IValue out;
  ForwardCast fc;
  try {
    out = m.forward({fc.in(x)});
  } catch (...) {
    Error e = translate(std::current_exception(), "E_SHAPE", "");
    if (e.code != "E_SHAPE") throw e;
    throw Error("E_SHAPE", std::string("the ") + who + " rejected an input of shape " + shape_str(x.sizes()) +
                               ": " + std::string(e.what()).substr(0, 400));
  }
  auto t = fc.out(logits_of(out, who));
  if (t.dim() != 2)
    fail("E_MODEL_OUTPUT", std::string("the ") + who + " must return 2-D logits [batch, classes], got shape " +
                               shape_str(t.sizes()));
  return t;
}

Teacher::Teacher(const std::string& path, torch::Device device, const std::vector<std::string>& layers)
    : path_(path), device_(device) {
  module_ = load_module(path, device, &meta_, &stored_dtype_);
  for (auto p : module_.parameters()) p.requires_grad_(false);
  try {
    tapped_fn_ = build_tapped_forward(module_, layers, taps_, &convolutions_, &first_bn_);
  } catch (...) {
    throw translate(std::current_exception(), "E_TAPS", "tapping the teacher's layers");
  }
}

namespace {
// A softmax teacher's outputs as logits: log p (clamped so that a saturated 0 stays finite).
torch::Tensor log_of(const torch::Tensor& p) { return torch::log(p.clamp_min(1e-30)); }
}  // namespace

torch::Tensor Teacher::logits(const torch::Tensor& x) {
  auto t = run_logits(module_, x, "teacher");
  return output_ == "probabilities" ? log_of(t) : t;
}

Tapped Teacher::forward_tapped(const torch::Tensor& x) {
  ForwardCast fc;
  torch::jit::Stack stack{module_._ivalue(), fc.in(x)};
  try {
    tapped_fn_->run(stack);
  } catch (...) {
    Error e = translate(std::current_exception(), "E_SHAPE", "");
    if (e.code != "E_SHAPE") throw e;
    throw Error("E_SHAPE", "the teacher rejected an input of shape " + shape_str(x.sizes()) + ": " +
                               std::string(e.what()).substr(0, 400));
  }
  auto elems = stack.back().toTupleRef().elements();
  Tapped out;
  out.logits = fc.out(logits_of(elems.at(0), "teacher"));
  if (output_ == "probabilities") out.logits = log_of(out.logits);
  for (size_t i = 1; i < elems.size(); ++i) out.acts.push_back(fc.out(elems[i].toTensor()));
  return out;
}

std::vector<double> Teacher::input_mean(std::string* why) const {
  if (!first_bn_) return {};
  const auto& f = *first_bn_;
  torch::NoGradGuard ng;
  auto rm = f.running_mean.to(torch::kDouble).cpu();
  torch::Tensor mu;
  if (!f.weight.defined()) {  // BatchNorm on the input itself: its running mean is the input's
    mu = rm;
    if (why) *why = f.bn + "'s running mean (a BatchNorm on the input)";
  } else {
    // E[conv(x)]_o = sum_i mu_i * sum(W[o, i]) + b_o (zero padding's border ignored).
    auto a = f.weight.to(torch::kDouble).cpu().sum({2, 3});  // [out, in]
    if (a.size(0) != rm.size(0) || a.size(0) < 2 * a.size(1)) return {};
    auto rhs = rm - (f.bias.defined() ? f.bias.to(torch::kDouble).cpu() : torch::zeros_like(rm));
    mu = std::get<0>(torch::linalg_lstsq(a, rhs.unsqueeze(1))).squeeze(1);
    const double resid = (a.matmul(mu) - rhs).abs().mean().item<double>() / std::max(rhs.abs().mean().item<double>(), 1e-12);
    if (!(resid <= 0.2)) return {};
    if (why) {
      std::ostringstream o;
      o << f.bn << "'s running mean through " << f.conv << " (least squares over its " << a.size(0)
        << " channels, relative residual " << std::llround(resid * 1000) / 1000.0 << ")";
      *why = o.str();
    }
  }
  std::vector<double> out(mu.data_ptr<double>(), mu.data_ptr<double>() + mu.numel());
  return out;
}

std::vector<int64_t> Teacher::bn_taps() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < taps_.size(); ++i)
    if (taps_[i].kind == TapKind::bn) out.push_back(static_cast<int64_t>(i));
  return out;
}

std::optional<int64_t> Teacher::tap_index(const std::string& name) const {
  for (size_t i = 0; i < taps_.size(); ++i)
    if (taps_[i].name == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

// Users' teachers rarely carry dfkd metadata, and a saved TorchScript graph keeps no input sizes
// (a traced graph's inputs load back as plain `Tensor`). What the weights say: the first
// parameter of a convolutional net is a conv weight [out, in, k, k] (in = the input channels;
// the side is probed among common sizes, and must be the only one the teacher accepts); that of
// an MLP a linear weight [out, in], in = C*H*W for a square image of 1 or 3 channels.
std::vector<int64_t> Teacher::input_shape(const std::vector<int64_t>& explicit_shape) {
  if (!explicit_shape.empty()) {
    shape_source_ = "given";
    return explicit_shape;
  }
  auto s = to_shape(meta_.nums("inputShape"));
  if (!s.empty()) {
    shape_source_ = "the teacher's dfkd metadata";
    return s;
  }
  const std::string hint = " pass inputShape (e.g. [1, 28, 28]; --input-shape 1,28,28) or a dataset";
  std::string first;
  torch::Tensor w;
  for (const auto& p : module_.named_parameters()) {
    first = p.name;
    w = p.value;
    break;
  }
  if (w.defined() && w.dim() == 2) {
    const int64_t n = w.size(1);
    for (int64_t c : {1, 3}) {
      auto side = std::llround(std::sqrt(double(n / c)));
      if (n % c == 0 && side * side * c == n) {
        shape_source_ = "inferred from " + first + " " + shape_str(w.sizes()) + " (a square image of " + std::to_string(c) + " channel" + (c > 1 ? "s" : "") + ")";
        return {c, side, side};
      }
    }
  }
  if (w.defined() && w.dim() == 4) {
    const int64_t c = w.size(1);
    std::vector<int64_t> fits;
    torch::NoGradGuard ng;
    for (int64_t side : {28, 32, 224, 64, 96}) {
      try {
        module_.forward({torch::zeros({2, c, side, side}, torch::TensorOptions().device(device_))});
        fits.push_back(side);
      } catch (...) {
      }
    }
    if (fits.size() == 1) {
      shape_source_ = "inferred from " + first + " " + shape_str(w.sizes()) + " (" + std::to_string(c) +
                      " channels) and the only side of 28, 32, 224, 64, 96 the teacher accepts";
      return {c, fits[0], fits[0]};
    }
    if (fits.size() > 1) {
      std::string list;
      for (auto f : fits) list += (list.empty() ? "" : ", ") + shape_str({c, f, f});
      fail("E_CONFIG", "the input shape of teacher " + path_ + " is ambiguous: its file has no dfkd metadata and it accepts " +
                           list + ";" + hint);
    }
  }
  fail("E_CONFIG", "the input shape of teacher " + path_ + " is unknown (no dfkd metadata in the file);" + hint);
}

int64_t Teacher::num_classes(const std::vector<int64_t>& shape) {
  if (num_classes_ < 0) {
    torch::NoGradGuard ng;
    std::vector<int64_t> full{2};
    full.insert(full.end(), shape.begin(), shape.end());
    // Two inputs, zeros and a fixed pattern (not the run's RNG): the rows of both must be
    // probabilities (or log-probabilities) for the forward to be taken for a softmax (log_softmax).
    // The tolerance covers bf16 autocast.
    const auto opts = torch::TensorOptions().device(device_);
    auto zero = run_logits(module_, torch::zeros(full, opts), "teacher");
    auto pattern = run_logits(module_, torch::arange(c10::multiply_integers(full), opts).reshape(full).mul(0.37).sin(), "teacher");
    num_classes_ = zero.size(1);
    auto rows_sum_to_one = [](const torch::Tensor& p) { return (p.sum(1) - 1).abs().max().item<double>() < 2e-2; };
    bool probs = num_classes_ > 1, logp = num_classes_ > 1;
    for (const auto& t : {zero, pattern}) {
      const auto f = t.to(torch::kDouble);
      probs = probs && f.isfinite().all().item<bool>() && f.min().item<double>() >= 0 && f.max().item<double>() <= 1 && rows_sum_to_one(f);
      logp = logp && f.isfinite().all().item<bool>() && f.max().item<double>() <= 0 && rows_sum_to_one(f.exp());
    }
    output_ = probs ? "probabilities" : logp ? "log-probabilities" : "logits";
  }
  return num_classes_;
}

Json Teacher::info(const std::vector<int64_t>& shape) {
  Json j;
  j["path"] = path_;
  j["device"] = device_.str();
  int64_t params = 0;
  for (auto p : module_.parameters()) params += p.numel();
  j["parameters"] = params;
  Json::Array in;
  for (auto d : shape) in.emplace_back(d);
  j["inputShape"] = Json(in);
  j["numClasses"] = num_classes(shape);
  j["output"] = output_;
  if (auto mu = input_mean(); !mu.empty()) j["inputMean"] = Json(Json::Array(mu.begin(), mu.end()));
  j["storedDtype"] = stored_dtype_.empty() ? std::string("Float") : stored_dtype_;
  Json::Array taps;
  for (auto& t : taps_) {
    Json tj;
    tj["name"] = t.name;
    tj["kind"] = name_of(t.kind);
    if (t.kind == TapKind::bn) tj["channels"] = t.running_mean.numel();
    taps.push_back(tj);
  }
  j["taps"] = Json(taps);
  j["bnLayers"] = static_cast<int64_t>(bn_taps().size());
  j["convolutions"] = convolutions_;
  j["meta"] = meta_;
  return j;
}

}  // namespace dfkd
