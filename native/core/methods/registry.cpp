// The methods dfkd knows. Adding one: a file methods/<name>.cpp that defines
// `MethodInfo <name>_method()` (its recipe and implementation), plus its line below.
#include "core/methods/registry.h"

#define DFKD_METHODS(X) \
  X(classical)          \
  X(statistical)        \
  X(spectral)           \
  X(deepinversion)      \
  X(adversarial)        \
  X(fast)               \
  X(noise)

namespace dfkd {

#define DFKD_DECLARE(name) MethodInfo name##_method();
DFKD_METHODS(DFKD_DECLARE)
#undef DFKD_DECLARE

const std::vector<MethodInfo>& methods() {
#define DFKD_ENTRY(name) name##_method(),
  static const std::vector<MethodInfo> all{DFKD_METHODS(DFKD_ENTRY)};
#undef DFKD_ENTRY
  return all;
}

const MethodInfo& method_info(const std::string& name) {
  std::string names;
  for (auto& m : methods()) {
    if (name == m.name) return m;
    names += std::string(names.empty() ? "" : ", ") + m.name;
  }
  fail("E_CONFIG", "unknown method '" + name + "' (" + names + ")");
}

Json sections_json(const Json& all, const MethodInfo& m) {
  Json out = Json(Json::Object{});
  std::string s = m.sections;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(' ', i);
    std::string k = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (!k.empty()) out[k] = all.get(k);
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

Json methods_defaults() {
  Json j = Json(Json::Object{});
  for (auto& m : methods()) j[m.name] = sections_json(recipe_json(m.recipe()), m);
  return j;
}

}  // namespace dfkd
