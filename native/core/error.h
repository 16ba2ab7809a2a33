// Coded errors: every failure that reaches a user carries a stable code (documented in README).
#pragma once
#include <stdexcept>
#include <string>

namespace dfkd {

struct Error : std::runtime_error {
  std::string code;
  Error(std::string code_, const std::string& msg) : std::runtime_error(msg), code(std::move(code_)) {}
};

[[noreturn]] inline void fail(const char* code, const std::string& msg) { throw Error(code, msg); }

}  // namespace dfkd
