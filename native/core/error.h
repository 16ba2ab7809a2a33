// Coded errors: every failure that reaches a user carries a stable code (documented in README).
#pragma once
#include <stdexcept>
#include <string>

namespace dfkd {

struct Error : std::runtime_error {
  std::string code;
  std::string checkpoint;  // E_CANCELLED / E_NAN: a checkpoint of a good state to resume from, if any
  Error(std::string code_, const std::string& msg, std::string ckpt = "")
      : std::runtime_error(msg), code(std::move(code_)), checkpoint(std::move(ckpt)) {}
};

[[noreturn]] inline void fail(const char* code, const std::string& msg) { throw Error(code, msg); }

}  // namespace dfkd
