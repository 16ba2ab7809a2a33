#include "core/zoo.h"

#include "core/teacher.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>

namespace dfkd {

using torch::jit::Module;

namespace {

// Each model gets its own CompilationUnit (held by its modules, freed with them): a shared one
// kept every class ever built (memory grew with every job) and was mutated by concurrent jobs
// without a lock (duplicate class names, crashes).
thread_local std::shared_ptr<torch::jit::CompilationUnit> t_unit;
struct UnitScope {
  UnitScope() { t_unit = std::make_shared<torch::jit::CompilationUnit>(); }
  ~UnitScope() { t_unit.reset(); }
};
// make_model / make_generator(sync_bn): the BatchNorm layers of the model being built normalize
// over the data-parallel group (dist.h).
thread_local bool t_sync_bn = false;
struct SyncScope {
  explicit SyncScope(bool on) { t_sync_bn = on; }
  ~SyncScope() { t_sync_bn = false; }
};

// Zoo models are built to be trained: parameters require grad.
Module trainable(Module m) {
  for (auto p : m.parameters()) p.requires_grad_(true);
  return m;
}

Module new_module(const std::string& cls) {
  Module m(c10::QualifiedName("__torch__.dfkd." + cls), t_unit, /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

// The names the zoo's sources use: torch.<op> (aten) as in any TorchScript, and dfkd.<op>, the
// operators this library registers (dist.h: dfkd.sync_batch_norm).
struct ZooResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction& f,
                                                         const torch::jit::SourceRange& loc) override {
    if (name == "dfkd") return std::make_shared<torch::jit::BuiltinModule>("dfkd");
    return torch::jit::nativeResolver()->resolveValue(name, f, loc);
  }
};

void define(Module& m, const std::string& src) { m.define(src, std::make_shared<ZooResolver>()); }

torch::Tensor normal(std::vector<int64_t> shape, double std, at::Generator& gen) {
  return torch::randn(shape, gen) * std;
}
torch::Tensor uniform(std::vector<int64_t> shape, double bound, at::Generator& gen) {
  return torch::rand(shape, gen) * (2 * bound) - bound;
}

// Conv2d (kaiming normal, fan_out, as torchvision's ResNet init).
Module conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, bool bias, at::Generator& gen) {
  Module m = new_module("Conv2d");
  m.register_parameter("weight", normal({out, in, k, k}, std::sqrt(2.0 / (out * k * k)), gen), false);
  std::string b = "None";
  if (bias) {
    m.register_parameter("bias", uniform({out}, 1.0 / std::sqrt(double(in * k * k)), gen), false);
    b = "self.bias";
  }
  auto s = std::to_string(stride), p = std::to_string(pad);
  define(m, "def forward(self, x):\n  return torch.conv2d(x, self.weight, " + b + ", [" + s + ", " + s + "], [" + p +
                ", " + p + "], [1, 1], 1)\n");
  return m;
}

Module batchnorm(int64_t c, bool affine = true) {
  Module m = new_module("BatchNorm2d");
  std::string w = "None", b = "None";
  if (affine) {
    m.register_parameter("weight", torch::ones({c}), false);
    m.register_parameter("bias", torch::zeros({c}), false);
    w = "self.weight";
    b = "self.bias";
  }
  m.register_buffer("running_mean", torch::zeros({c}));
  m.register_buffer("running_var", torch::ones({c}));
  m.register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  const std::string args = "x, " + w + ", " + b + ", self.running_mean, self.running_var, self.training, 0.1, 1e-05";
  define(m,
         "def forward(self, x):\n"
         "  if self.training:\n"
         "    self.num_batches_tracked += 1\n" +
         (t_sync_bn ? "  return dfkd.sync_batch_norm(" + args + ")\n" : "  return torch.batch_norm(" + args + ", True)\n"));
  return m;
}

Module linear(int64_t in, int64_t out, at::Generator& gen) {
  Module m = new_module("Linear");
  double bound = 1.0 / std::sqrt(double(in));
  m.register_parameter("weight", uniform({out, in}, bound, gen), false);
  m.register_parameter("bias", uniform({out}, bound, gen), false);
  define(m, "def forward(self, x):\n  return torch.linear(x, self.weight, self.bias)\n");
  return m;
}

// LeNet-5 with BatchNorm (so DeepInversion can invert it). conv1 pads by 2 so that a 28x28
// MNIST digit sees LeCun's 32x32 field; the fc width follows the input size.
Module lenet5(const std::vector<int64_t>& in, int64_t classes, double width, at::Generator& gen) {
  auto c = [&](int64_t n) { return std::max<int64_t>(1, std::llround(n * width)); };
  int64_t h = in[1], w = in[2];
  h = (h / 2 - 4) / 2 - 4;  // conv1 keeps size (pad 2); pool; conv2 -4; pool; conv3 -4
  w = (w / 2 - 4) / 2 - 4;
  if (h < 1 || w < 1) fail("E_CONFIG", "lenet5 needs inputs of at least 28x28, got " + shape_str(in));
  Module m = new_module(width == 1.0 ? "LeNet5" : "LeNet5Half");
  m.register_module("conv1", conv(in[0], c(6), 5, 1, 2, true, gen));
  m.register_module("bn1", batchnorm(c(6)));
  m.register_module("conv2", conv(c(6), c(16), 5, 1, 0, true, gen));
  m.register_module("bn2", batchnorm(c(16)));
  m.register_module("conv3", conv(c(16), c(120), 5, 1, 0, true, gen));
  m.register_module("bn3", batchnorm(c(120)));
  m.register_module("fc1", linear(c(120) * h * w, c(84), gen));
  m.register_module("fc2", linear(c(84), classes, gen));
  define(m,
         "def forward(self, x):\n"
         "  x = torch.max_pool2d(torch.relu(self.bn1.forward(self.conv1.forward(x))), [2, 2])\n"
         "  x = torch.max_pool2d(torch.relu(self.bn2.forward(self.conv2.forward(x))), [2, 2])\n"
         "  x = torch.relu(self.bn3.forward(self.conv3.forward(x)))\n"
         "  x = torch.flatten(x, 1)\n"
         "  x = torch.relu(self.fc1.forward(x))\n"
         "  return self.fc2.forward(x)\n");
  return m;
}

Module basic_block(int64_t in, int64_t out, int64_t stride, at::Generator& gen) {
  Module m = new_module("BasicBlock");
  m.register_module("conv1", conv(in, out, 3, stride, 1, false, gen));
  m.register_module("bn1", batchnorm(out));
  m.register_module("conv2", conv(out, out, 3, 1, 1, false, gen));
  m.register_module("bn2", batchnorm(out));
  std::string shortcut = "x";
  if (stride != 1 || in != out) {
    m.register_module("down_conv", conv(in, out, 1, stride, 0, false, gen));
    m.register_module("down_bn", batchnorm(out));
    shortcut = "self.down_bn.forward(self.down_conv.forward(x))";
  }
  define(m,
         "def forward(self, x):\n"
         "  out = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n"
         "  out = self.bn2.forward(self.conv2.forward(out))\n"
         "  return torch.relu(out + " + shortcut + ")\n");
  return m;
}

// CIFAR-style ResNet (He et al. 2016): 3x3 stem, stages of BasicBlocks, global average pool.
Module resnet(const std::string& cls, const std::vector<int64_t>& blocks, const std::vector<int64_t>& widths,
              const std::vector<int64_t>& in, int64_t classes, at::Generator& gen) {
  Module m = new_module(cls);
  m.register_module("conv1", conv(in[0], widths[0], 3, 1, 1, false, gen));
  m.register_module("bn1", batchnorm(widths[0]));
  std::string body;
  int64_t cin = widths[0];
  for (size_t s = 0; s < blocks.size(); ++s) {
    for (int64_t b = 0; b < blocks[s]; ++b) {
      std::string name = "layer" + std::to_string(s + 1) + "_" + std::to_string(b);
      m.register_module(name, basic_block(cin, widths[s], (b == 0 && s > 0) ? 2 : 1, gen));
      body += "  x = self." + name + ".forward(x)\n";
      cin = widths[s];
    }
  }
  m.register_module("fc", linear(cin, classes, gen));
  define(m,
         "def forward(self, x):\n"
         "  x = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n" + body +
         "  x = torch.flatten(torch.adaptive_avg_pool2d(x, [1, 1]), 1)\n"
         "  return self.fc.forward(x)\n");
  return m;
}

}  // namespace

std::vector<std::string> zoo_names() { return {"lenet5", "lenet5_half", "resnet8", "resnet20", "resnet18"}; }

bool is_zoo_name(const std::string& name) {
  auto names = zoo_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

Module make_model(const std::string& name, const std::vector<int64_t>& in, int64_t classes, at::Generator& gen,
                  bool sync_bn) {
  if (in.size() != 3) fail("E_CONFIG", "model input shape must be [C, H, W], got " + shape_str(in));
  UnitScope unit;
  SyncScope sync(sync_bn);
  if (name == "lenet5") return trainable(lenet5(in, classes, 1.0, gen));
  if (name == "lenet5_half") return trainable(lenet5(in, classes, 0.5, gen));
  if (name == "resnet8") return trainable(resnet("ResNet8", {1, 1, 1}, {16, 32, 64}, in, classes, gen));
  if (name == "resnet20") return trainable(resnet("ResNet20", {3, 3, 3}, {16, 32, 64}, in, classes, gen));
  if (name == "resnet18") return trainable(resnet("ResNet18", {2, 2, 2, 2}, {64, 128, 256, 512}, in, classes, gen));
  std::string names;
  for (auto& n : zoo_names()) names += (names.empty() ? "" : ", ") + n;
  fail("E_CONFIG", "unknown student model '" + name + "' (built-in models: " + names + ")");
}

Module make_generator(int64_t nz, int64_t ngf, const std::vector<int64_t>& out, at::Generator& gen,
                      const GeneratorHead& head, bool sync_bn) {
  if (out.size() != 3 || out[1] % 4 || out[2] % 4)
    fail("E_CONFIG", "the generator needs an input shape [C, H, W] with H and W divisible by 4, got " + shape_str(out));
  const int64_t h0 = out[1] / 4, w0 = out[2] / 4;
  UnitScope unit;
  SyncScope sync(sync_bn);
  Module m = new_module("Generator");
  m.register_module("l1", linear(nz, 2 * ngf * h0 * w0, gen));
  m.register_module("bn0", batchnorm(2 * ngf));
  m.register_module("conv1", conv(2 * ngf, 2 * ngf, 3, 1, 1, true, gen));
  m.register_module("bn1", batchnorm(2 * ngf));
  m.register_module("conv2", conv(2 * ngf, ngf, 3, 1, 1, true, gen));
  m.register_module("bn2", batchnorm(ngf));
  m.register_module("conv3", conv(ngf, out[0], 3, 1, 1, true, gen));
  std::string last;
  if (head.pixels) {
    m.register_buffer("mean", per_channel(head.mean, out[0], "the normalization's mean"));
    m.register_buffer("std", per_channel(head.std, out[0], "the normalization's std"));
    last = "(torch.sigmoid(self.conv3.forward(x)) - self.mean) / self.std";
  } else {
    m.register_module("bn3", batchnorm(out[0], head.affine));
    last = "self.bn3.forward(torch.tanh(self.conv3.forward(x)))";
  }
  define(m,
         "def forward(self, z):\n"
         "  x = self.l1.forward(torch.flatten(z, 1)).view(-1, " + std::to_string(2 * ngf) + ", " + std::to_string(h0) +
         ", " + std::to_string(w0) + ")\n"
         "  x = torch.upsample_nearest2d(self.bn0.forward(x), None, [2.0, 2.0])\n"
         "  x = torch.leaky_relu(self.bn1.forward(self.conv1.forward(x)), 0.2)\n"
         "  x = torch.upsample_nearest2d(x, None, [2.0, 2.0])\n"
         "  x = torch.leaky_relu(self.bn2.forward(self.conv2.forward(x)), 0.2)\n"
         "  return " + last + "\n");
  return trainable(m);
}

Module make_student(const std::string& name_or_path, const std::vector<int64_t>& in, int64_t classes,
                    at::Generator& gen, torch::Device device, bool sync_bn) {
  Module m = is_zoo_name(name_or_path) ? make_model(name_or_path, in, classes, gen, sync_bn) : load_module(name_or_path, device);
  m.to(device);
  m.train();
  for (auto p : m.parameters()) p.requires_grad_(true);  // a file may hold frozen parameters
  return m;
}

}  // namespace dfkd
