#include "core/io/files.h"
#include "core/jobs/jobs.h"
#include "core/stats.h"

namespace dfkd {

Json stats_job(const Json& j, const EmitFn& emit, const std::atomic<bool>& cancel) {
  std::string teacher, output = "stats.safetensors", device = "cpu";
  std::vector<std::string> layers;
  int64_t batch = 256, threads = 0;
  Json data_spec;
  Reader r(j, "");
  r.fields("teacher", teacher, "data", data_spec, "output", output, "layers", layers);
  r.fields("batchSize", batch, "device", device, "threads", threads);
  r.finish();
  auto dev = pick_device(device);
  set_threads(threads);
  Teacher t(teacher, dev, layers);
  Dataset data = load_dataset(data_spec);
  auto shape = t.input_shape(data.x.sizes().slice(1).vec());
  t.num_classes(shape);
  Progress prog(emit);
  auto st = compute_stats(t, data, batch, [&](int64_t done, int64_t total) {
    prog.report("stats", done, total, {}, 0.0, double(done) / total);
    return !cancel.load();
  });
  st.meta["teacher"] = t.path();
  st.meta["inputShape"] = Json(Json::Array(shape.begin(), shape.end()));
  make_parent_dirs(output);
  save_stats(st, output);
  Json out;
  out["path"] = output;
  out["samples"] = st.meta.get("samples");
  Json::Array ls;
  for (auto& l : st.layers) {
    Json lj;
    lj["name"] = l.name;
    lj["channels"] = l.mean.numel();
    lj["spectrum"] = l.amplitude.defined() ? Json(Json::Array(l.amplitude.sizes().begin(), l.amplitude.sizes().end())) : Json();
    ls.push_back(lj);
  }
  out["layers"] = Json(ls);
  return out;
}

}  // namespace dfkd
