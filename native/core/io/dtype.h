// The one dtype table of dfkd's file formats and typed arrays (npy descr, safetensors code,
// JS typed-array name), and the one overflow guard for element counts read from a file.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

namespace dfkd {

struct DType {
  c10::ScalarType type;
  size_t item;            // bytes per element
  const char* name;       // typed arrays from JS: "float32", ...
  const char* npy;        // little-endian .npy descr: "<f4", ...
  const char* safetensors;  // "F32", ...
};

// nullopt when the table has no such entry (the caller's error says what it was reading).
std::optional<DType> dtype_by_name(const std::string& name);
std::optional<DType> dtype_by_npy(const std::string& descr);  // also "=f4", "|u1", "u1"
std::optional<DType> dtype_by_safetensors(const std::string& code);
std::optional<DType> dtype_of(c10::ScalarType t);

// Elements that a shape read from a file may claim at the most (2^40: 8 TB of float64, far
// more than any file dfkd reads, and far from wrapping 2^64 when multiplied by an item size).
constexpr uint64_t kMaxElements = uint64_t(1) << 40;
// The product of `dims`, checked before each multiplication; nullopt when a dimension is
// negative or the product passes kMaxElements.
std::optional<uint64_t> checked_count(const std::vector<int64_t>& dims);

}  // namespace dfkd
