// Layer taps without Python help: rewrite a copy of the module's forward graph so that one call
// returns (logits, tap_1, ..., tap_n). Submodule calls are inlined one at a time so that the
// output of a named submodule can be captured before its call disappears; then every
// aten::batch_norm's input becomes a tap and its running stats are resolved to the module's
// buffers through the prim::GetAttr chain that produces them.
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <set>

#include "core/teacher.h"

namespace dfkd {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {

// "a.b.c" when v is self.a.b.c through prim::GetAttr nodes; nullopt otherwise.
std::optional<std::string> attr_path(Value* v, Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += (out.empty() ? "" : ".") + *it;
  return out;
}

// What v holds: a constant (frozen modules), or the attribute self.a.b.c it reads.
torch::jit::IValue resolve(torch::jit::Module& m, Value* v, Value* self) {
  if (auto iv = torch::jit::toIValue(v)) return *iv;
  auto path = attr_path(v, self);
  if (!path) fail("E_TAPS", "cannot resolve the running statistics of a batch_norm in the teacher's graph");
  torch::jit::IValue cur = m._ivalue();
  size_t start = 0;
  while (true) {
    size_t dot = path->find('.', start);
    std::string part = path->substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    cur = cur.toObject()->getAttr(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (!cur.isTensor() && !cur.isNone()) fail("E_TAPS", "batch_norm statistic '" + *path + "' is not a tensor");
  return cur;
}

// The first BatchNorm node `bn` when it normalizes the input `x` or a convolution of it (groups 1).
void first_bn_of(torch::jit::Module& m, Node* bn, Value* self, Value* x, const std::string& name,
                 const torch::Tensor& running_mean, std::optional<FirstBn>& out) {
  FirstBn f;
  f.bn = name;
  f.running_mean = running_mean;
  Value* in = bn->input(0);
  if (in != x) {
    Node* conv = in->node();
    const bool scripted = conv->kind() == c10::aten::conv2d, traced = conv->kind() == c10::aten::_convolution;
    if (!(scripted || traced) || conv->input(0) != x) return;
    auto groups = torch::jit::toIValue(conv->input(traced ? 8 : 6));
    if (!groups || !groups->isInt() || groups->toInt() != 1) return;
    if (traced && torch::jit::toIValue(conv->input(6)).value_or(false).toBool()) return;  // transposed
    auto w = resolve(m, conv->input(1), self);
    if (!w.isTensor()) return;
    f.weight = w.toTensor().detach();
    if (conv->input(2)->type()->kind() != c10::TypeKind::NoneType) {
      auto b = resolve(m, conv->input(2), self);
      if (b.isTensor()) f.bias = b.toTensor().detach();
    }
    auto p = attr_path(conv->input(1), self);
    f.conv = p ? p->substr(0, p->rfind('.')) : "the first convolution";
  }
  out = f;
}

}  // namespace

std::shared_ptr<torch::jit::GraphFunction> build_tapped_forward(torch::jit::Module& m,
                                                                const std::vector<std::string>& layers,
                                                                std::vector<Tap>& taps, int64_t* convolutions,
                                                                std::optional<FirstBn>* first_bn) {
  auto graph = m.get_method("forward").graph()->copy();
  Value* self = graph->inputs().at(0);
  std::set<std::string> wanted(layers.begin(), layers.end());
  std::vector<std::pair<std::string, size_t>> layer_outputs;  // name -> graph output index

  // Inline submodule calls one at a time, capturing the outputs of named submodules first.
  while (true) {
    auto calls = torch::jit::findAllNodes(*graph, c10::prim::CallMethod, /*recurse=*/true);
    if (calls.empty()) break;
    Node* call = calls.front();
    auto cls = call->input(0)->type()->cast<c10::ClassType>();
    if (!cls) fail("E_TAPS", "unsupported method call in the teacher's graph");
    if (auto path = attr_path(call->input(0), self);
        path && wanted.count(*path) && call->s(c10::attr::name) == "forward" && call->outputs().size() == 1 &&
        call->owningBlock() == graph->block()) {
      layer_outputs.emplace_back(*path, graph->registerOutput(call->output()));
      wanted.erase(*path);
    }
    auto* fn = torch::jit::tryToGraphFunction(cls->getMethod(call->s(c10::attr::name)));
    if (!fn) fail("E_TAPS", "cannot inline method " + call->s(c10::attr::name) + " of the teacher");
    torch::jit::inlineCallTo(call, fn, /*inline_optimized_graph=*/false);  // keep nested calls visible
  }
  torch::jit::Inline(*graph);  // free functions
  if (!wanted.empty()) {
    std::string missing;
    for (auto& w : wanted) missing += (missing.empty() ? "" : ", ") + w;
    fail("E_TAPS", "layer(s) not found among the teacher's submodules (or not called at top level of a "
                   "forward): " + missing);
  }

  std::vector<Value*> outs;
  Value* logits = graph->outputs().at(0);
  for (auto& [name, idx] : layer_outputs) {
    outs.push_back(graph->outputs().at(idx));
    taps.push_back({name, TapKind::layer, {}, {}});
  }
  int bn_i = 0;
  for (Node* n : graph->block()->nodes()) {
    if (n->kind() != c10::aten::batch_norm) continue;
    // BatchNorm without running statistics (track_running_stats=False) normalizes every batch by
    // its own moments, in eval too: nothing stored to match, so not a BN tap (the teacher counts
    // as BN-less if it has no other).
    if (n->input(3)->type()->kind() == c10::TypeKind::NoneType || n->input(4)->type()->kind() == c10::TypeKind::NoneType)
      continue;
    auto running_mean = resolve(m, n->input(3), self), running_var = resolve(m, n->input(4), self);
    if (running_mean.isNone() || running_var.isNone()) continue;
    auto path = attr_path(n->input(1), self);  // weight: "layer1.0.bn1.weight" -> module path
    std::string name = path ? path->substr(0, path->rfind('.')) : "bn" + std::to_string(bn_i);
    if (!path) {
      if (auto p = attr_path(n->input(3), self)) name = p->substr(0, p->rfind('.'));
    }
    ++bn_i;
    outs.push_back(n->input(0));
    taps.push_back({name, TapKind::bn, running_mean.toTensor().detach(), running_var.toTensor().detach()});
    if (first_bn && bn_i == 1) first_bn_of(m, n, self, graph->inputs().at(1), name, taps.back().running_mean, *first_bn);
  }
  if (convolutions) {  // scripted (aten::conv2d, ...) and traced (aten::_convolution) alike
    *convolutions = 0;
    for (auto kind : {c10::aten::conv1d, c10::aten::conv2d, c10::aten::conv3d, c10::aten::_convolution,
                      c10::aten::convolution, c10::aten::conv_transpose1d, c10::aten::conv_transpose2d,
                      c10::aten::conv_transpose3d})
      *convolutions += static_cast<int64_t>(torch::jit::findAllNodes(*graph, kind, /*recurse=*/true).size());
  }
  Node* last_linear = nullptr;
  for (Node* n : graph->block()->nodes()) {
    if (n->kind() == c10::aten::linear || n->kind() == c10::aten::addmm || n->kind() == c10::aten::matmul)
      last_linear = n;
  }
  if (last_linear) {
    outs.push_back(last_linear->kind() == c10::aten::addmm ? last_linear->input(1) : last_linear->input(0));
    taps.push_back({"penultimate", TapKind::penultimate, {}, {}});
  }

  // Replace the outputs with one tuple (logits, taps...).
  while (graph->outputs().size() > 0) graph->eraseOutput(graph->outputs().size() - 1);
  std::vector<Value*> all{logits};
  all.insert(all.end(), outs.begin(), outs.end());
  graph->setInsertPoint(graph->return_node());
  Node* tuple = graph->insertNode(graph->createTuple(all));
  graph->registerOutput(tuple->output());
  return std::make_shared<torch::jit::GraphFunction>("dfkd_tapped_forward", graph, nullptr);
}

}  // namespace dfkd
