// The typed configuration of a run, parsed ONCE at the job boundary (parse_distill) from the
// JSON the façade sends: every key is read into a field of these structs, an unknown or
// misspelled key is E_CONFIG naming it, and enums replace the strings that were compared in hot
// paths. Defaults: the member initializers below are the values the methods share; each method's
// recipe (methods/<name>.cpp) sets its own with their sources. `config_json` writes a struct back
// (the report's effective config, the addon's defaults()).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/common.h"

namespace dfkd {

enum class Loss { kl, l1 };                       // student/generator discrepancy
enum class OptimKind { sgd, adam };
enum class Schedule { none, cosine, step };
enum class Spectrum { amplitude, power };
// The generator's last layer (zoo.cpp make_generator): "pixels" = sigmoid to [0, 1], then the
// teacher's input normalization; "standardized" = DFAD/DAFL's tanh -> BatchNorm (per-channel mean 0,
// std 1; affine with the BN term); "auto" = the rule of plan.cpp resolve_defaults.
enum class GenOutput { automatic, pixels, standardized };

// An optimizer and its schedule (the student's, the generator's).
struct OptimConfig {
  OptimKind optimizer = OptimKind::sgd;
  double lr = 0.1, momentum = 0.9, weight_decay = 0.0;
  std::vector<double> betas{0.9, 0.999};  // Adam's (PyTorch default)
  Schedule schedule = Schedule::cosine;
  std::vector<double> milestones;  // schedule step: steps, or fractions of the run when < 1
  double gamma = 0.1;
  int64_t warmup = 0;  // linear warm-up steps
};

struct TrainConfig : OptimConfig {
  int64_t steps = 2000;           // classical: optimizer steps
  int64_t steps_per_round = 100;  // inversion methods: KD steps after each synthesized batch
  int64_t batch = 128;
  double temperature = 4.0, ce_weight = 0.0;
  Loss loss = Loss::kl;
  int64_t crop_padding = 0;
  bool flip = false;
  double mixup = 0.0;
  double ema = 0.0;  // the student's weights averaged at this decay per step (train.h WeightAverage); 0 = off
};

// Input synthesis (deepinversion, statistical, spectral, noise): the optimizer of x and the
// weights of the loss terms (0 = term off).
struct SynthConfig {
  int64_t rounds = 20, batch = 64, iterations = 2000;
  double lr = 0.1;
  std::vector<double> betas{0.5, 0.9};
  Schedule lr_schedule = Schedule::none;  // none | cosine (warm-up min(100, iterations/10))
  int64_t jitter = 2;
  bool flip = true;
  int64_t bank_size = -1;  // -1: keep every synthesized image (rounds x batch)
  double ce = 1.0, bn = 0.0, first_bn_multiplier = 1.0;
  double feature = 0.0;
  bool squared = false;
  double first_layer_multiplier = 1.0;
  double spectral = 0.0;
  Spectrum spectrum = Spectrum::amplitude;
  std::vector<double> layer_weights;
  double tv_l1 = 0.0, tv_l2 = 0.0, l2 = 0.0;
  double adi = 0.0, adi_temperature = 3.0;
  double clip = 0.0;  // clamp x to [-clip, clip] after each step (0 = off)
};

struct GeneratorConfig : OptimConfig {
  int64_t nz = 100, ngf = 64;
  Loss loss = Loss::l1;
  double adversarial = 1.0, onehot = 0.0, activation = 0.0, entropy = 0.0, bn = 0.0;
  GenOutput output = GenOutput::automatic;
  double adv_warmup = 0.0;  // fast: the fraction of the rounds before the adversarial term is on
  // fast: the momentum of the BN term's running average of earlier batches' statistics (0: off)
  double bn_momentum = 0.0;
  GeneratorConfig() { optimizer = OptimKind::adam; lr = 1e-3; schedule = Schedule::none; }
};

struct AdversarialConfig {
  int64_t epochs = 40, iters_per_epoch = 50, student_steps = 5;
  int64_t batch = 0;  // generator batch; 0: the student's (train.batchSize)
  // Replay (methods/adversarial.cpp): the fraction of each student batch drawn from a bank of the
  // generator's earlier samples, and the bank's size in images (-1: every sample it is given, up
  // to 1 GiB of them).
  double replay = 0.0;
  int64_t bank_size = -1;
  bool diagnostics = false;
};

// A method's complete recipe: every section a run of it reads.
struct Recipe {
  TrainConfig train;
  SynthConfig synth;
  GeneratorConfig generator;
  AdversarialConfig adversarial;
};

struct OutputConfig {
  std::string dir = "dfkd-out";
  std::string student, report, checkpoint, generator, samples_prefix;  // "": in dir
  bool samples = true;
};

// Without a budget and without explicit sizes, a run is sized to this many seconds on the machine
// it runs on: the family benchmark's budget (bench/family.json, issue 20), not the papers'
// GPU-day sizes. `budget` in a config overrides it; explicit sizes (synth.rounds,
// adversarial.epochs / itersPerEpoch, train.steps) override the sizing.
constexpr double kDefaultBudgetSeconds = 300.0;

// The input prior: what a synthesized input should look like. "auto" follows the teacher's input:
// one channel -> "digits" (digits, documents, scans: a mirrored sample is not one of the class, so
// no flip), otherwise "natural" (DeepInversion's random flip).
enum class Prior { automatic, natural, digits };

struct DistillConfig {
  std::string method = "auto";  // auto: chosen from the teacher and what the user gives (choose_method)
  std::string method_reason;    // why auto chose it ("" when the user named the method)
  std::string teacher, student = "lenet5_half";  // student: a zoo name or a TorchScript file
  std::string device = "cpu";
  // The models' forwards: "fp32", or "bf16" autocast (convolutions and matmuls in bfloat16,
  // losses and weights in float32; for GPUs with bf16 tensor cores and recent CPUs).
  std::string precision = "fp32";
  bool channels_last = false;  // NHWC memory order for 4-D weights and inputs (cuDNN/oneDNN fast path)
  bool cuda_graphs = false;    // student and synthesis steps as CUDA graphs (graphs.h; CUDA devices only)
  uint64_t seed = 0;
  int64_t threads = 0;  // 0: leave libtorch's setting
  std::vector<int64_t> input_shape;
  Json data, test;  // dataset specs (load_dataset)
  std::string stats;
  std::vector<std::string> layers;
  OutputConfig output;
  int64_t eval_every = 0, checkpoint_every = 0;
  std::string resume;
  std::string version;  // the façade's package version, for the report
  double budget = 0;     // seconds; 0: none given (kDefaultBudgetSeconds when no size is given)
  // Data-parallel runs (dist.h; the ranks from torchrun's environment variables): how long a rank
  // waits for the others at the rendezvous and at each collective before E_DISTRIBUTED.
  double dist_timeout = 300;
  // A zoo student's BatchNorm over the ranks (dist.h sync_batch_norm): one process's student at the
  // global batch, at one all-reduce per layer and step each way; false: each rank's share's
  // statistics (DDP without SyncBatchNorm). Generators always synchronize theirs.
  bool dist_sync_bn = true;
  Prior prior = Prior::automatic;
  std::vector<double> mean, std;  // the teacher's input normalization; empty: metadata, then datasets
  // Which sizes the user gave (keys "synth.rounds", "adversarial.epochs", ...): a budget never overrides them.
  std::map<std::string, bool> given;
  Recipe recipe;
  bool has(const std::string& key) const { return given.count(key) > 0; }
};

// Seconds from a budget value: a number of seconds, or "90s", "10m", "2h", "1h30m".
double parse_budget(const Json& v);

// fields("a", x, "b", y, ...): field() of each (key, value) pair, for Reader and Writer.
template <class Self>
struct FieldList {
  template <class T, class... Rest>
  void fields(const char* k, T& v, Rest&&... rest) {
    static_cast<Self*>(this)->field(k, v);
    if constexpr (sizeof...(Rest) > 0) fields(std::forward<Rest>(rest)...);
  }
};

// A config object being read: typed reads mark their key; finish() fails with E_CONFIG on any
// key left unread ("unknown config key 'train.lrr'").
class Reader : public FieldList<Reader> {
 public:
  Reader(const Json& j, std::string where);
  void field(const char* k, double& v);
  void field(const char* k, int64_t& v);
  void field(const char* k, uint64_t& v);
  void field(const char* k, bool& v);
  void field(const char* k, std::string& v);
  void field(const char* k, std::vector<double>& v);
  void field(const char* k, std::vector<int64_t>& v);
  void field(const char* k, std::vector<std::string>& v);
  void field(const char* k, Json& v);
  void field(const char* k, Loss& v);
  void field(const char* k, OptimKind& v);
  void field(const char* k, Schedule& v);
  void field(const char* k, Spectrum& v);
  void field(const char* k, Prior& v);
  void field(const char* k, GenOutput& v);
  const Json* take(const char* k);  // the raw value (null when absent), marked read
  void finish() const;
  const std::string& where() const { return where_; }
  std::string key(const char* k) const { return where_.empty() ? k : where_ + "." + k; }

 private:
  const Json& j_;
  std::string where_;
  std::map<std::string, bool> seen_;
};

// Writes fields into a JSON object (same visitor as Reader).
class Writer : public FieldList<Writer> {
 public:
  Json out = Json(Json::Object{});
  template <class T> void field(const char* k, const T& v);
};

// The visitors of each struct: one list of (key, member) per struct, used to parse and to write.
template <class V> void visit(V& v, OptimConfig& c);
template <class V> void visit(V& v, TrainConfig& c);
template <class V> void visit(V& v, SynthConfig& c);
template <class V> void visit(V& v, GeneratorConfig& c);
template <class V> void visit(V& v, AdversarialConfig& c);

// Reads `j` (may be null) over `into` (the method's recipe): unknown keys are E_CONFIG.
void read_recipe(const Json& j, Recipe& into, const std::string& where = "");
Json recipe_json(const Recipe& r);  // { train, synth, generator, adversarial }

// The whole distill config; the method's recipe comes from the registry (methods/registry.h).
DistillConfig parse_distill(const Json& j);
Json config_json(const DistillConfig& c);  // the effective config (datasets from memory abridged)

// Enum names, for messages and reports.
const char* name_of(Loss v);
const char* name_of(OptimKind v);
const char* name_of(Schedule v);
const char* name_of(Spectrum v);
const char* name_of(Prior v);
const char* name_of(GenOutput v);

}  // namespace dfkd
