// Synthesizers (CMI's datafree/synthesis: one object per method that synthesize()s batches).
// InputSynthesizer (input.cpp) optimizes a batch of inputs from noise against a composed loss
// (deepinversion, statistical, spectral, noise: the weights of SynthConfig pick the terms);
// MetaGeneratorSynth (meta.cpp) adapts a meta-learned generator to each batch (fast);
// GeneratorSynth (generator.cpp) is the adversarial method's generator and its step.
#pragma once
#include <atomic>
#include <functional>

#include "core/checkpoint.h"
#include "core/common.h"
#include "core/config.h"
#include "core/graphs.h"
#include "core/losses.h"
#include "core/optim.h"
#include "core/stats.h"
#include "core/teacher.h"

namespace dfkd {

// Called after each iteration with its losses, unread (StepLosses: reading them waits for the device).
using ProgressFn = std::function<void(int64_t step, int64_t total, const StepLosses&)>;

// One tapped layer whose activation statistics the synthesized batch must match.
struct LayerTarget {
  int64_t tap;
  double weight = 1.0;
  torch::Tensor mean, std;        // feature_stats target (statistical)
  torch::Tensor spectrum;         // full spectral target from a stats file (spectral)
  torch::Tensor bn_mean, bn_var;  // BN-implied spectral constraints (spectral, no stats file)
};

// Layer targets of statistical and spectral: the stats file's layers (matched to the teacher's
// taps), or the BN taps' running statistics; synth.layerWeights (optional) scale each layer and
// synth.firstLayerMultiplier the first.
std::vector<LayerTarget> stats_targets(Teacher& teacher, const Stats* stats, const std::vector<int64_t>& shape,
                                       const SynthConfig& c);
// Statistical feature matching summed over `layers` (their weights), on a tapped forward's activations.
torch::Tensor feature_sum(const std::vector<torch::Tensor>& acts, const std::vector<LayerTarget>& layers, bool squared);

struct SynthResult {
  torch::Tensor x, y;
  StepLosses losses;  // the last iteration's, guarded: reading them fails with E_NAN if any was not finite
};

// What the inversion loop (methods/inversion.cpp) synthesizes its rounds' batches with.
class BatchSynth {
 public:
  virtual ~BatchSynth() = default;
  // One batch of synthesis.batchSize inputs (and the classes they were made for). `student` (may
  // be null where the method has no student term) is left in the mode it was in. Throws
  // E_CANCELLED when `cancel` is set between iterations, before any state of the synthesizer
  // changed (a cancelled round restarts from its beginning).
  virtual SynthResult run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                          const ProgressFn& progress) = 0;
  virtual const SynthConfig& config() const = 0;
  virtual bool uses_student() const { return false; }
  virtual void at_round(int64_t round, int64_t rounds) {}  // where the run is (schedules)
  virtual void save(Checkpoint&) {}                         // state kept across rounds
  virtual void load(CheckpointReader&, torch::Device) {}
};

// `batch` targets, every class equally often, shuffled (DeepInversion samples one class per image).
torch::Tensor balanced_targets(int64_t batch, int64_t classes, Rng& rng, torch::Device dev);
// DeepInversion's per-iteration augmentation: a random roll by up to `jitter` pixels and a
// random horizontal flip, drawn from the host RNG (read from host memory: no device sync).
torch::Tensor jitter_flip(const torch::Tensor& x, int64_t jitter, bool flip, Rng& rng);
// The same augmentation from draws that stay on the device (what a CUDA graph can replay):
// `offsets` (2 longs: the roll of dims 2 and 3, torch.roll's sign) and `flip` (a 0-dim bool).
torch::Tensor shift_flip(const torch::Tensor& x, const torch::Tensor& offsets, const torch::Tensor& flip);

// The batch of lowest loss so far, as DeepInversion keeps it, chosen on the device (no host read
// per iteration); a non-finite loss is never better.
class BestBatch {
 public:
  void offer(const torch::Tensor& loss, const torch::Tensor& x);  // the first offer is taken
  const torch::Tensor& x() const { return x_; }
 private:
  torch::Tensor x_, loss_;
};

class InputSynthesizer : public BatchSynth {
 public:
  // The terms are those of `c` with a positive weight: ce, bn, feature, spectral, tvL1, tvL2, l2, adi.
  InputSynthesizer(Teacher& teacher, const SynthConfig& c, std::vector<LayerTarget> layers,
                   std::vector<int64_t> input_shape, int64_t classes);
  InputSynthesizer(const InputSynthesizer&) = delete;  // its terms refer to it
  // Optimizes one batch from noise. `student` (may be null) is used by the ADI term.
  // Throws E_CANCELLED when `cancel` is set between iterations. In a data-parallel job (dist.h)
  // it optimizes and returns this rank's share of the batch against the global batch's statistics.
  SynthResult run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                  const ProgressFn& progress) override;
  // The loss of a given batch (no jitter): total and per-term values.
  std::pair<torch::Tensor, StepLosses> loss(const torch::Tensor& x, const torch::Tensor& y, torch::jit::Module* student);
  const SynthConfig& config() const override { return cfg_; }
  bool uses_student() const override { return cfg_.adi > 0; }
  // Each iteration's forward and backward through a SynthGraph (graphs.h): the batch and its
  // targets in static buffers, jitter and flip drawn on the device. Captured on CUDA; elsewhere
  // it runs the same path eagerly (tests). Without the ADI term only (a captured student
  // backward would write the student's gradients); false when it does not apply.
  bool use_graphs();

 private:
  Teacher& teacher_;
  SynthConfig cfg_;
  std::vector<LayerTarget> layers_;
  std::vector<int64_t> shape_;
  int64_t classes_;
  std::vector<losses::Term> terms_;
  bool graphs_ = false;
  torch::Tensor x_, y_, offsets_, flip_;  // the graphed step's static inputs
  std::unique_ptr<SynthGraph> graph_;
};

// The generator of the adversarial and fast methods (zoo.h make_generator), its head from
// `c.output` (resolved by plan.cpp) and the normalization, on the teacher's device, in train mode.
// sync_bn: its BatchNorm over the data-parallel group (each rank runs it on its share of z).
torch::jit::Module build_generator(const GeneratorConfig& c, Teacher& teacher, const std::vector<int64_t>& shape,
                                   at::Generator& init, const std::vector<double>& mean, const std::vector<double>& std,
                                   bool sync_bn = false);

// Fast-Datafree's meta-learned generator (FastDFKD, Fang et al. AAAI 2022; zju-vipa/Fast-Datafree
// datafree/synthesis/fast_meta.py): each batch starts from a copy of the meta generator and a
// fresh z, both adapted for synthesis.iterations Adam steps (generator.lr, z at synthesis.lr)
// against generator.bn x BN statistics (or, given `layers`, the statistical feature matching
// of a stats file's layers) + generator.onehot x CE to balanced targets -
// generator.adversarial x the KL on the samples where student and teacher agree (from
// generator.advWarmup of the run on; with generator.bnMomentum the BN term's batch statistics
// are mixed with a running average of the earlier batches', their bn_mmt); the batch of lowest
// loss is kept, and the meta generator takes one Adam step (lr generator.lr x iterations) along
// the sum of the copy's gradients (first-order MAML, their is_maml 1). In a data-parallel job
// (dist.h; built inside it) every rank runs the generator, its BatchNorm synchronized, and the
// teacher on its rows of z, the copy's gradients summed over the ranks: each rank returns its
// share of the one-process batch.
class MetaGeneratorSynth : public BatchSynth {
 public:
  // `layers`: a stats file's targets (stats_targets), or empty for the teacher's BN statistics
  // (E_NO_BN when generator.bn > 0 and it has none; generator.bn 0: DAFL's terms only).
  MetaGeneratorSynth(const SynthConfig& s, const GeneratorConfig& g, Teacher& teacher, std::vector<int64_t> input_shape,
                     int64_t classes, std::vector<LayerTarget> layers, at::Generator& init,
                     const std::vector<double>& mean, const std::vector<double>& std);
  MetaGeneratorSynth(const MetaGeneratorSynth&) = delete;  // its terms refer to it
  SynthResult run(Rng& rng, torch::jit::Module* student, const std::atomic<bool>& cancel,
                  const ProgressFn& progress) override;
  const SynthConfig& config() const override { return s_; }
  bool uses_student() const override { return g_.adversarial > 0; }
  void at_round(int64_t round, int64_t rounds) override;
  void save(Checkpoint& ck) override;
  void load(CheckpointReader& ck, torch::Device device) override;
  torch::jit::Module& module() { return meta_; }

 private:
  SynthConfig s_;
  GeneratorConfig g_;
  Teacher& teacher_;
  std::vector<int64_t> shape_;
  int64_t classes_;
  std::vector<LayerTarget> layers_;
  torch::jit::Module meta_;
  std::unique_ptr<Optim> meta_opt_;
  std::vector<losses::Term> terms_;
  bool adversarial_on_ = false;  // past the warm-up
  torch::Tensor finite_;
  // generator.bnMomentum: per BN layer, the running average of earlier batches' moments
  // (checkpointed) and this batch's latest step's moments.
  std::vector<losses::Moments> averages_, last_;
};

// DAFL's activation (on the teacher's penultimate features; E_CONFIG without a linear head) and
// information-entropy terms at the generator config's weights (0 = off), appended to `terms`.
void add_dafl_terms(std::vector<losses::Term>& terms, const GeneratorConfig& c, Teacher& teacher);

// DFAD/DAFL generator and its step: discrepancy (maximized), DAFL's one-hot / activation /
// information-entropy terms and the BN term (weights 0 = off).
class GeneratorSynth {
 public:
  // `mean`, `std`: the teacher's input normalization (the pixel head's; empty: unknown).
  GeneratorSynth(const GeneratorConfig& c, Teacher& teacher, std::vector<int64_t> input_shape, at::Generator& init,
                 int64_t total_steps, const std::vector<double>& mean = {}, const std::vector<double>& std = {});
  GeneratorSynth(const GeneratorSynth&) = delete;  // its terms refer to it
  // In a data-parallel job (dist.h; built inside it) `batch` is one rank's share: every rank draws
  // the whole batch's z and runs the generator on its rows, its BatchNorm synchronized (the whole
  // batch's statistics), and sums the generator's gradients over the ranks (step); the same
  // generator on every rank.
  torch::Tensor sample(int64_t batch, Rng& rng);  // no grad, generator in train mode
  // One generator step: maximize the teacher-student discrepancy (+ optional DAFL/BN terms).
  // With `diagnostics`, also reports "discrepancy_after": the discrepancy on the same z after the step.
  // The losses stay on the device, guarded (a read fails with E_NAN once any step's was not finite).
  StepLosses step(torch::jit::Module& student, int64_t batch, double temperature, Rng& rng, int64_t step,
              bool diagnostics = false);
  torch::jit::Module& module() { return g_; }
  // The generator to write to a file: its plain model with this one's state when its BatchNorm is
  // synchronized (dfkd's operator: such a module loads only where dfkd is loaded), else itself.
  torch::jit::Module portable();
  Optim& optim() { return *opt_; }
  int64_t nz() const { return c_.nz; }

 private:
  torch::Tensor generate(const torch::Tensor& z);  // G(z) under the thread's forward options
  GeneratorConfig c_;
  Teacher& teacher_;
  std::vector<int64_t> shape_;
  std::vector<double> mean_, std_;
  bool sync_ = false;
  torch::jit::Module g_;
  std::unique_ptr<Optim> opt_;
  std::vector<losses::Term> terms_;
  bool tapped_ = false;
  torch::Tensor finite_;      // every step's loss so far was finite (on the device)
  double temperature_ = 1.0;  // of the current step (the discrepancy term reads it)
};

}  // namespace dfkd
