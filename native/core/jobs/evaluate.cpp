#include "core/jobs/jobs.h"
#include "core/train.h"

namespace dfkd {

Json evaluate_job(const Json& j) {
  std::string teacher_path, student_path, device = "cpu";
  int64_t batch = 512, threads = 0;
  Json test;
  Reader r(j, "");
  r.fields("teacher", teacher_path, "student", student_path, "test", test);
  r.fields("device", device, "batchSize", batch, "threads", threads);
  r.finish();
  auto dev = pick_device(device);
  set_threads(threads);
  Dataset data = load_dataset(test);
  torch::jit::Module teacher, student;
  const bool has_t = !teacher_path.empty(), has_s = !student_path.empty();
  if (!has_t && !has_s) fail("E_CONFIG", "evaluate needs a teacher and/or a student");
  if (has_t) teacher = load_module(teacher_path, dev);
  if (has_s) student = load_module(student_path, dev);
  return evaluate(has_t ? &teacher : nullptr, has_s ? &student : nullptr, data, batch, dev).json();
}

Json info_job(const Json& j) {
  std::string teacher, device = "cpu";
  std::vector<std::string> layers;
  std::vector<int64_t> shape;
  Reader r(j, "");
  r.fields("teacher", teacher, "device", device, "layers", layers, "inputShape", shape);
  r.finish();
  Teacher t(teacher, pick_device(device), layers);
  return t.info(t.input_shape(shape));
}

}  // namespace dfkd
