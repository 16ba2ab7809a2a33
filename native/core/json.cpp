#include "core/json.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace dfkd {

namespace {
const Json kNull;
[[noreturn]] void type_error(const char* want) { fail("E_CONFIG", std::string("expected a JSON ") + want); }
}  // namespace

bool Json::as_bool() const { if (!is_bool()) type_error("boolean"); return std::get<bool>(v_); }
double Json::as_number() const { if (!is_number()) type_error("number"); return std::get<double>(v_); }
const std::string& Json::as_string() const { if (!is_string()) type_error("string"); return std::get<std::string>(v_); }
const Json::Array& Json::as_array() const { if (!is_array()) type_error("array"); return std::get<Array>(v_); }
Json::Array& Json::as_array() { if (!is_array()) type_error("array"); return std::get<Array>(v_); }
const Json::Object& Json::as_object() const { if (!is_object()) type_error("object"); return std::get<Object>(v_); }
Json::Object& Json::as_object() { if (!is_object()) type_error("object"); return std::get<Object>(v_); }
const std::shared_ptr<Blob>& Json::as_blob() const { if (!is_blob()) type_error("typed array"); return std::get<std::shared_ptr<Blob>>(v_); }

bool Json::has(const std::string& k) const {
  return is_object() && std::get<Object>(v_).count(k) && !std::get<Object>(v_).at(k).is_null();
}
const Json& Json::get(const std::string& k) const {
  if (!is_object()) return kNull;
  auto& o = std::get<Object>(v_);
  auto it = o.find(k);
  return it == o.end() ? kNull : it->second;
}
Json& Json::operator[](const std::string& k) {
  if (is_null()) v_ = Object{};
  return as_object()[k];
}

#define DFKD_TYPED(expr, want)                                                            \
  const Json& v = get(k);                                                                 \
  if (v.is_null()) return def;                                                            \
  try { return expr; } catch (const Error&) {                                             \
    fail("E_CONFIG", "config field '" + k + "' must be " want);                           \
  }
double Json::num(const std::string& k, double def) const { DFKD_TYPED(v.as_number(), "a number") }
int64_t Json::integer(const std::string& k, int64_t def) const {
  DFKD_TYPED(static_cast<int64_t>(std::llround(v.as_number())), "an integer")
}
bool Json::boolean(const std::string& k, bool def) const { DFKD_TYPED(v.as_bool(), "a boolean") }
std::string Json::str(const std::string& k, const std::string& def) const { DFKD_TYPED(v.as_string(), "a string") }
#undef DFKD_TYPED

std::vector<double> Json::nums(const std::string& k) const {
  std::vector<double> out;
  const Json& v = get(k);
  if (v.is_null()) return out;
  if (v.is_number()) return {v.as_number()};
  if (!v.is_array()) fail("E_CONFIG", "config field '" + k + "' must be an array of numbers");
  for (auto& e : v.as_array()) {
    if (!e.is_number()) fail("E_CONFIG", "config field '" + k + "' must be an array of numbers");
    out.push_back(e.as_number());
  }
  return out;
}
std::vector<std::string> Json::strs(const std::string& k) const {
  std::vector<std::string> out;
  const Json& v = get(k);
  if (v.is_null()) return out;
  if (v.is_string()) return {v.as_string()};
  if (!v.is_array()) fail("E_CONFIG", "config field '" + k + "' must be an array of strings");
  for (auto& e : v.as_array()) {
    if (!e.is_string()) fail("E_CONFIG", "config field '" + k + "' must be an array of strings");
    out.push_back(e.as_string());
  }
  return out;
}

// ---- serialization ----------------------------------------------------------------------------
static void dump_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}
static void dump_to(const Json& j, std::string& out) {
  if (j.is_null()) out += "null";
  else if (j.is_bool()) out += j.as_bool() ? "true" : "false";
  else if (j.is_number()) {
    double d = j.as_number();
    if (!std::isfinite(d)) { out += "null"; return; }
    char b[32];
    if (d == std::floor(d) && std::fabs(d) < 1e15) std::snprintf(b, sizeof b, "%.0f", d);
    else std::snprintf(b, sizeof b, "%.9g", d);
    out += b;
  } else if (j.is_string()) dump_string(j.as_string(), out);
  else if (j.is_array()) {
    out += '[';
    bool first = true;
    for (auto& e : j.as_array()) { if (!first) out += ','; first = false; dump_to(e, out); }
    out += ']';
  } else if (j.is_object()) {
    out += '{';
    bool first = true;
    for (auto& [k, v] : j.as_object()) {
      if (!first) out += ',';
      first = false;
      dump_string(k, out);
      out += ':';
      dump_to(v, out);
    }
    out += '}';
  } else out += "null";  // blobs are not serialized
}
std::string Json::dump() const { std::string s; dump_to(*this, s); return s; }

// ---- parsing ----------------------------------------------------------------------------------
namespace {
struct Parser {
  const std::string& s;
  size_t i = 0;
  int depth = 0;
  [[noreturn]] void bad(const char* what) { fail("E_PARSE", std::string("invalid JSON: ") + what + " at offset " + std::to_string(i)); }
  void ws() { while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i; }
  bool eat(char c) { ws(); if (i < s.size() && s[i] == c) { ++i; return true; } return false; }
  void lit(const char* w) { for (; *w; ++w, ++i) if (i >= s.size() || s[i] != *w) bad("bad literal"); }
  std::string str() {
    if (!eat('"')) bad("expected string");
    std::string out;
    while (true) {
      if (i >= s.size()) bad("unterminated string");
      char c = s[i++];
      if (c == '"') break;
      if (c != '\\') { out += c; continue; }
      if (i >= s.size()) bad("bad escape");
      char e = s[i++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i + 4 > s.size() || !std::all_of(s.begin() + i, s.begin() + i + 4, [](char h) { return std::isxdigit((unsigned char)h); }))
            bad("bad \\u escape");  // (std::stoul would throw a non-dfkd exception)
          unsigned cp = std::stoul(s.substr(i, 4), nullptr, 16);
          i += 4;
          if (cp < 0x80) out += char(cp);
          else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
          else { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
          break;
        }
        default: out += e;
      }
    }
    return out;
  }
  Json value() {
    if (++depth > 64) bad("nesting too deep");
    ws();
    if (i >= s.size()) bad("unexpected end");
    Json out;
    char c = s[i];
    if (c == '{') {
      ++i;
      Json::Object o;
      if (!eat('}')) {
        do { std::string k = str(); if (!eat(':')) bad("expected ':'"); o[k] = value(); } while (eat(','));
        if (!eat('}')) bad("expected '}'");
      }
      out = Json(std::move(o));
    } else if (c == '[') {
      ++i;
      Json::Array a;
      if (!eat(']')) {
        do { a.push_back(value()); } while (eat(','));
        if (!eat(']')) bad("expected ']'");
      }
      out = Json(std::move(a));
    } else if (c == '"') out = Json(str());
    else if (c == 't') { lit("true"); out = Json(true); }
    else if (c == 'f') { lit("false"); out = Json(false); }
    else if (c == 'n') { lit("null"); }
    else {
      size_t start = i;
      while (i < s.size() && (std::isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E')) ++i;
      if (start == i) bad("unexpected character");
      try { out = Json(std::stod(s.substr(start, i - start))); } catch (...) { bad("bad number"); }
    }
    --depth;
    return out;
  }
};
}  // namespace

Json Json::parse(const std::string& text) {
  Parser p{text};
  Json v = p.value();
  p.ws();
  if (p.i != text.size()) p.bad("trailing characters");
  return v;
}

}  // namespace dfkd
