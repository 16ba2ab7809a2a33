// A small JSON value: the config that comes from JS, the events and reports that go back,
// and safetensors headers. Also carries raw typed buffers (in-memory datasets from JS).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace dfkd {

struct Blob {  // a typed array's bytes: dtype is "uint8" | "float32" | "int32" | "int64" | "float64"
  std::string dtype;
  std::vector<uint8_t> bytes;
};

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;
  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(double(i)) {}
  Json(int64_t i) : v_(double(i)) {}
  Json(size_t i) : v_(double(i)) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}
  Json(std::shared_ptr<Blob> b) : v_(std::move(b)) {}

  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return v_.index() == 1; }
  bool is_number() const { return v_.index() == 2; }
  bool is_string() const { return v_.index() == 3; }
  bool is_array() const { return v_.index() == 4; }
  bool is_object() const { return v_.index() == 5; }
  bool is_blob() const { return v_.index() == 6; }

  bool as_bool() const;
  double as_number() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();
  const std::shared_ptr<Blob>& as_blob() const;

  // Object access. get() returns null for a missing key (or a non-object).
  bool has(const std::string& k) const;
  const Json& get(const std::string& k) const;
  Json& operator[](const std::string& k);  // makes this an object if null
  // Typed reads with defaults; a present value of the wrong type is an E_CONFIG error naming the key.
  double num(const std::string& k, double def) const;
  int64_t integer(const std::string& k, int64_t def) const;
  bool boolean(const std::string& k, bool def) const;
  std::string str(const std::string& k, const std::string& def) const;
  std::vector<double> nums(const std::string& k) const;
  std::vector<std::string> strs(const std::string& k) const;

  std::string dump() const;
  static Json parse(const std::string& text);  // throws dfkd::Error E_PARSE

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object, std::shared_ptr<Blob>> v_;
};

}  // namespace dfkd
