// The one interface every distillation method implements, and what the registry knows of each.
// The driver (driver.cpp) owns the run: setup, cancel, eval cadence, checkpoint timing and the
// report; a method owns its loop's state and advances it one checkpoint unit at a time (a
// classical step, an inversion round, an adversarial iteration).
#pragma once
#include <memory>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/stats.h"
#include "core/synth/synth.h"

namespace dfkd {

struct Run;

class Method {
 public:
  virtual ~Method() = default;
  // Builds the optimizer(s) (r.opt for the student) and synthesizer; sets r.steps.
  virtual void init(Run& r) = 0;
  // Continues from a checkpoint (the driver restored the student and RNG before init).
  virtual void restore(Run& r, CheckpointReader& ck, const Json& state) = 0;
  // Writes the method's own state (bank, RNG, generator) and returns its counters.
  virtual Json save(Run& r, Checkpoint& ck) = 0;
  virtual void begin(Run& r) {}                   // before the first unit (phase, clocks)
  virtual bool done() const = 0;
  virtual int64_t unit() const = 0;               // units completed
  virtual void advance(Run& r) = 0;               // one unit; E_CANCELLED within it
  virtual void finish(Run& r) {}                  // after the last unit (timings, extra files)
  virtual int64_t total() const = 0;              // units of the whole run
  // A budgeted run re-sized mid-way (the driver's deadline check): `units` >= unit() + 1.
  // Returns the plan entries it changed ({"synth.rounds": n}, ...).
  virtual Json resize(Run& r, int64_t units) = 0;
};

struct MethodInfo;
using MakeMethod = std::unique_ptr<Method> (*)(const MethodInfo&);
// Input-synthesis methods: checks/adjusts the synthesis config and returns the layer targets.
using PrepareSynth = std::vector<LayerTarget> (*)(SynthConfig& c, Teacher& teacher, const Stats* stats,
                                                  const std::vector<int64_t>& input_shape);

// The inversion loop's synthesizer of a method, from the run's effective config; `init` draws
// the initial weights of whatever it trains across rounds.
using MakeSynth = std::unique_ptr<BatchSynth> (*)(const MethodInfo& info, const DistillConfig& c, Run& r,
                                                  const Stats* stats, at::Generator& init);
// prepare()'s layer targets and an InputSynthesizer (deepinversion, statistical, spectral, noise).
std::unique_ptr<BatchSynth> input_synth(const MethodInfo& info, const DistillConfig& c, Run& r, const Stats* stats,
                                        at::Generator& init);

struct MethodInfo {
  const char* name;
  Recipe (*recipe)();            // every default of the method, with its source
  MakeMethod make;
  PrepareSynth prepare = nullptr;  // inversion-loop methods only (the synth config's checks)
  const char* sections = "train";  // the config sections it reads (report, defaults())
  bool generator_loop = false;     // TorchScript profiling executor on (see job.cpp); the generator's defaults (plan.cpp)
  MakeSynth synth = input_synth;   // inversion-loop methods: the batch synthesizer
};

const std::vector<MethodInfo>& methods();
const MethodInfo& method_info(const std::string& name);  // E_CONFIG naming the known ones
// { method: { train: {...}, synth: {...}, ... } } with the sections each method reads.
Json methods_defaults();
Json sections_json(const Json& all, const MethodInfo& m);  // the sections of `all` that m reads

// The shared implementations: classical (data), inversion (rounds of synthesis + KD from a bank:
// the input-synthesis methods and fast),
// adversarial (generator vs student).
std::unique_ptr<Method> make_classical(const MethodInfo&);
std::unique_ptr<Method> make_inversion(const MethodInfo&);
std::unique_ptr<Method> make_adversarial(const MethodInfo&);

// What the input-synthesis recipes share (inversion.cpp, with sources): the student side of the
// `datafree` library and DeepInversion's optimizer of the inputs.
Recipe inversion_recipe();

}  // namespace dfkd
