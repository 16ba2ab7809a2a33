#include "core/config.h"

#include <filesystem>

#include "core/methods/registry.h"

namespace dfkd {

namespace {

template <class E>
struct EnumName { const char* name; E value; };
constexpr EnumName<Loss> kLoss[] = {{"kl", Loss::kl}, {"l1", Loss::l1}};
constexpr EnumName<OptimKind> kOptim[] = {{"sgd", OptimKind::sgd}, {"adam", OptimKind::adam}};
constexpr EnumName<Schedule> kSchedule[] = {{"none", Schedule::none}, {"cosine", Schedule::cosine}, {"step", Schedule::step}};
constexpr EnumName<Spectrum> kSpectrum[] = {{"amplitude", Spectrum::amplitude}, {"power", Spectrum::power}};
constexpr EnumName<Prior> kPrior[] = {{"auto", Prior::automatic}, {"natural", Prior::natural}, {"digits", Prior::digits}};
constexpr EnumName<GenOutput> kGenOutput[] = {{"auto", GenOutput::automatic}, {"pixels", GenOutput::pixels},
                                              {"standardized", GenOutput::standardized}};

template <class E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E v) {
  for (auto& e : table) if (e.value == v) return e.name;
  return "?";
}
template <class E, size_t N>
E enum_value(const EnumName<E> (&table)[N], const std::string& s, const std::string& key) {
  std::string names;
  for (auto& e : table) {
    if (s == e.name) return e.value;
    names += std::string(names.empty() ? "'" : ", '") + e.name + "'";
  }
  fail("E_CONFIG", "unknown " + key + " '" + s + "' (use " + names + ")");
}

Json abridged(const Json& j) {  // datasets from memory: the typed arrays as "float32[N]"
  if (j.is_blob()) return Json(j.as_blob()->dtype + "[" + std::to_string(j.as_blob()->bytes.size()) + " bytes]");
  if (!j.is_object()) return j;
  Json out = Json(Json::Object{});
  for (auto& [k, v] : j.as_object()) out[k] = abridged(v);
  return out;
}

std::string in_dir(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).lexically_normal().string();
}

}  // namespace

const char* name_of(Loss v) { return enum_name(kLoss, v); }
const char* name_of(OptimKind v) { return enum_name(kOptim, v); }
const char* name_of(Schedule v) { return enum_name(kSchedule, v); }
const char* name_of(Spectrum v) { return enum_name(kSpectrum, v); }
const char* name_of(Prior v) { return enum_name(kPrior, v); }
const char* name_of(GenOutput v) { return enum_name(kGenOutput, v); }

double parse_budget(const Json& v) {
  const char* usage = "budget must be a positive number of seconds or a duration like \"90s\", \"10m\", \"2h\", \"1h30m\"";
  double secs = 0;
  if (v.is_number()) {
    secs = v.as_number();
  } else if (v.is_string()) {
    const std::string s = v.as_string();
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      size_t k = j;
      while (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k]))) ++k;
      if (j == i) fail("E_CONFIG", std::string(usage) + ", got \"" + s + "\"");
      double n = std::stod(s.substr(i, j - i));
      std::string unit = s.substr(j, k - j);
      double mult = unit == "" || unit == "s" ? 1 : unit == "m" || unit == "min" ? 60 : unit == "h" ? 3600 : -1;
      if (mult < 0) fail("E_CONFIG", std::string(usage) + ", got \"" + s + "\" (unknown unit '" + unit + "')");
      secs += n * mult;
      i = k;
    }
  } else {
    fail("E_CONFIG", usage);
  }
  if (!(secs > 0) || !std::isfinite(secs)) fail("E_CONFIG", usage);
  return secs;
}

// ---- Reader / Writer -------------------------------------------------------------------------

Reader::Reader(const Json& j, std::string where) : j_(j), where_(std::move(where)) {
  if (!j.is_null() && !j.is_object()) fail("E_CONFIG", "config field '" + where_ + "' must be an object");
}
const Json* Reader::take(const char* k) {
  seen_[k] = true;
  return j_.has(k) ? &j_.get(k) : nullptr;
}
void Reader::finish() const {
  if (!j_.is_object()) return;
  for (auto& [k, v] : j_.as_object())
    if (!seen_.count(k) && !v.is_null()) fail("E_CONFIG", "unknown config key '" + key(k.c_str()) + "'");
}

#define DFKD_READ(T, expr)                                                                  \
  void Reader::field(const char* k, T& v) {                                                \
    const Json* p = take(k);                                                               \
    if (!p) return;                                                                        \
    try { expr; } catch (const Error& e) {                                                 \
      if (std::string(e.what()).find(key(k)) != std::string::npos) throw;                 \
      fail("E_CONFIG", "config field '" + key(k) + "': " + e.what());                      \
    }                                                                                      \
  }
DFKD_READ(double, v = p->as_number())
DFKD_READ(int64_t, v = j_.integer(k, v))
DFKD_READ(uint64_t, v = uint64_t(j_.integer(k, int64_t(v))))
DFKD_READ(bool, v = p->as_bool())
DFKD_READ(std::string, v = p->as_string())
DFKD_READ(std::vector<double>, v = j_.nums(k))
DFKD_READ(std::vector<int64_t>, v = to_shape(j_.nums(k)))
DFKD_READ(std::vector<std::string>, v = j_.strs(k))
DFKD_READ(Json, v = *p)
DFKD_READ(Loss, v = enum_value(kLoss, p->as_string(), key(k)))
DFKD_READ(OptimKind, v = enum_value(kOptim, p->as_string(), key(k)))
DFKD_READ(Schedule, v = enum_value(kSchedule, p->as_string(), key(k)))
DFKD_READ(Spectrum, v = enum_value(kSpectrum, p->as_string(), key(k)))
DFKD_READ(Prior, v = enum_value(kPrior, p->as_string(), key(k)))
DFKD_READ(GenOutput, v = enum_value(kGenOutput, p->as_string(), key(k)))
#undef DFKD_READ

template <class T> void Writer::field(const char* k, const T& v) {
  if constexpr (std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<int64_t>> ||
                std::is_same_v<T, std::vector<std::string>>) {
    Json::Array a;
    for (auto& e : v) a.emplace_back(e);
    out[k] = Json(a);
  } else if constexpr (std::is_enum_v<T>) {
    out[k] = name_of(v);
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    out[k] = double(v);
  } else if constexpr (std::is_same_v<T, Json>) {
    out[k] = abridged(v);
  } else {
    out[k] = v;
  }
}

// ---- the keys of each section ------------------------------------------------------------------

template <class V> void visit(V& v, OptimConfig& c) {
  v.fields("optimizer", c.optimizer, "lr", c.lr, "momentum", c.momentum, "weightDecay", c.weight_decay, "betas", c.betas);
  v.fields("schedule", c.schedule, "milestones", c.milestones, "gamma", c.gamma, "warmup", c.warmup);
}
template <class V> void visit(V& v, TrainConfig& c) {
  visit(v, static_cast<OptimConfig&>(c));
  v.fields("steps", c.steps, "stepsPerRound", c.steps_per_round, "batchSize", c.batch);
  v.fields("temperature", c.temperature, "ceWeight", c.ce_weight, "loss", c.loss);
  v.fields("cropPadding", c.crop_padding, "flip", c.flip, "mixup", c.mixup, "ema", c.ema);
}
template <class V> void visit(V& v, SynthConfig& c) {
  v.fields("rounds", c.rounds, "batchSize", c.batch, "iterations", c.iterations);
  v.fields("lr", c.lr, "betas", c.betas, "lrSchedule", c.lr_schedule, "jitter", c.jitter, "flip", c.flip);
  if constexpr (std::is_same_v<V, Writer>) { if (c.bank_size >= 0) v.field("bankSize", c.bank_size); }
  else v.field("bankSize", c.bank_size);
  v.fields("ce", c.ce, "bn", c.bn, "firstBnMultiplier", c.first_bn_multiplier);
  v.fields("feature", c.feature, "squared", c.squared, "firstLayerMultiplier", c.first_layer_multiplier,
           "spectral", c.spectral, "spectrum", c.spectrum, "layerWeights", c.layer_weights);
  v.fields("tvL1", c.tv_l1, "tvL2", c.tv_l2, "l2", c.l2, "adi", c.adi, "adiTemperature", c.adi_temperature, "clip", c.clip);
}
template <class V> void visit(V& v, GeneratorConfig& c) {
  // The generator's optimizer keys (momentum 0.9, no weight decay or warm-up otherwise).
  v.fields("optimizer", c.optimizer, "lr", c.lr, "betas", c.betas, "schedule", c.schedule, "milestones", c.milestones,
           "gamma", c.gamma);
  v.fields("nz", c.nz, "ngf", c.ngf, "loss", c.loss, "adversarial", c.adversarial);
  v.fields("onehot", c.onehot, "activation", c.activation, "entropy", c.entropy, "bn", c.bn, "output", c.output);
  v.fields("advWarmup", c.adv_warmup, "bnMomentum", c.bn_momentum);
}
template <class V> void visit(V& v, AdversarialConfig& c) {
  v.fields("epochs", c.epochs, "itersPerEpoch", c.iters_per_epoch, "studentSteps", c.student_steps);
  if constexpr (std::is_same_v<V, Writer>) { if (c.batch > 0) v.field("batchSize", c.batch); }
  else v.field("batchSize", c.batch);
  v.field("replay", c.replay);
  if constexpr (std::is_same_v<V, Writer>) { if (c.bank_size >= 0) v.field("bankSize", c.bank_size); }
  else v.field("bankSize", c.bank_size);
  v.field("diagnostics", c.diagnostics);
}

template <class T>
void read_section(Reader& parent, const char* k, T& into) {
  static const Json kNone;
  const Json* p = parent.take(k);
  Reader r(p ? *p : kNone, parent.key(k));  // (a reference: Reader keeps one)
  visit(r, into);
  r.finish();
}
template <class T>
Json write_section(const T& c) {
  Writer w;
  visit(w, const_cast<T&>(c));
  return w.out;
}

void read_recipe(const Json& j, Recipe& into, const std::string& where) {
  Reader r(j, where);
  read_section(r, "train", into.train);
  read_section(r, "synth", into.synth);
  read_section(r, "generator", into.generator);
  read_section(r, "adversarial", into.adversarial);
}

Json recipe_json(const Recipe& r) {
  Json j;
  j["train"] = write_section(r.train);
  j["synth"] = write_section(r.synth);
  j["generator"] = write_section(r.generator);
  j["adversarial"] = write_section(r.adversarial);
  return j;
}

template <class V> void visit(V& v, OutputConfig& c) {
  v.fields("dir", c.dir, "student", c.student, "report", c.report, "checkpoint", c.checkpoint);
  v.fields("generator", c.generator, "samplesPrefix", c.samples_prefix, "samples", c.samples);
}

template <class V> void visit_top(V& v, DistillConfig& c) {
  v.fields("teacher", c.teacher, "student", c.student, "device", c.device, "seed", c.seed, "threads", c.threads);
  v.fields("inputShape", c.input_shape, "data", c.data, "test", c.test, "stats", c.stats, "layers", c.layers);
  v.fields("evalEvery", c.eval_every, "checkpointEvery", c.checkpoint_every, "resume", c.resume, "version", c.version);
  v.field("prior", c.prior);
  v.fields("precision", c.precision, "channelsLast", c.channels_last, "cudaGraphs", c.cuda_graphs);
}

DistillConfig parse_distill(const Json& j) {
  DistillConfig c;
  Reader r(j, "");
  r.field("method", c.method);
  // "auto" is resolved from the teacher before a run (plan.cpp choose_method); parsed as such,
  // the config is still checked key by key.
  c.recipe = c.method == "auto" ? Recipe{} : method_info(c.method).recipe();
  visit_top(r, c);
  if (!(c.recipe.train.ema >= 0 && c.recipe.train.ema < 1)) fail("E_CONFIG", "train.ema must be in [0, 1)");
  if (!(c.recipe.generator.bn_momentum >= 0 && c.recipe.generator.bn_momentum < 1))
    fail("E_CONFIG", "generator.bnMomentum must be in [0, 1)");
  if (!(c.recipe.adversarial.replay >= 0 && c.recipe.adversarial.replay < 1))
    fail("E_CONFIG", "adversarial.replay must be in [0, 1)");
  if (c.has("adversarial.bankSize") && c.recipe.adversarial.bank_size < 1)
    fail("E_CONFIG", "adversarial.bankSize must be >= 1");
  if (c.precision != "fp32" && c.precision != "bf16") fail("E_CONFIG", "precision must be 'fp32' or 'bf16'");
  if (const Json* b = r.take("budget"); b && !b->is_null()) c.budget = parse_budget(*b);
  if (const Json* d = r.take("distributed"); d && !d->is_null()) {
    Reader dr(*d, "distributed");
    dr.fields("timeout", c.dist_timeout, "syncBatchNorm", c.dist_sync_bn);
    dr.finish();
    if (!(c.dist_timeout > 0)) fail("E_CONFIG", "distributed.timeout must be a positive number of seconds");
  }
  if (const Json* n = r.take("normalization"); n && !n->is_null()) {
    Reader nr(*n, "normalization");
    nr.fields("mean", c.mean, "std", c.std);
    nr.finish();
    if (c.mean.empty() || c.mean.size() != c.std.size())
      fail("E_CONFIG", "normalization needs mean and std with one value per channel (or one for all)");
    for (double s : c.std) if (!(s > 0)) fail("E_CONFIG", "normalization.std must be positive");
  }
  for (const char* sec : {"train", "synth", "generator", "adversarial"}) {
    const Json& sj = j.get(sec);
    if (sj.is_object())
      for (auto& [k, v] : sj.as_object())
        if (!v.is_null()) c.given[std::string(sec) + "." + k] = true;
  }
  read_section(r, "output", c.output);
  read_section(r, "train", c.recipe.train);
  read_section(r, "synth", c.recipe.synth);
  read_section(r, "generator", c.recipe.generator);
  read_section(r, "adversarial", c.recipe.adversarial);
  r.finish();
  // Derived defaults, resolved here so that the report shows the values the run used.
  auto& o = c.output;
  if (o.student.empty()) o.student = in_dir(o.dir, "student.pt");
  if (o.report.empty()) o.report = in_dir(o.dir, "report.json");
  if (o.checkpoint.empty()) o.checkpoint = in_dir(o.dir, "checkpoint.dfkd");
  if (o.generator.empty()) o.generator = in_dir(o.dir, "generator.pt");
  if (o.samples_prefix.empty()) o.samples_prefix = in_dir(o.dir, "samples");
  auto& s = c.recipe.synth;
  if (s.bank_size < 0) s.bank_size = s.rounds * s.batch;  // keep every synthesized image
  if (c.recipe.adversarial.batch <= 0) c.recipe.adversarial.batch = c.recipe.train.batch;
  return c;
}

Json config_json(const DistillConfig& c) {
  Writer w;
  w.field("method", c.method);
  visit_top(w, const_cast<DistillConfig&>(c));
  Json j = w.out;
  for (auto* k : {"data", "test"}) if (j.get(k).is_null()) j.as_object().erase(k);
  if (c.budget > 0) j["budget"] = c.budget;
  if (!c.mean.empty()) {
    Writer n;
    n.fields("mean", const_cast<std::vector<double>&>(c.mean), "std", const_cast<std::vector<double>&>(c.std));
    j["normalization"] = n.out;
  }
  j["output"] = write_section(c.output);
  Json r = recipe_json(c.recipe);
  for (auto& [k, v] : r.as_object()) j[k] = v;
  return j;
}

}  // namespace dfkd
